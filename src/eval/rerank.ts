// A causal model that never learned fill-in-the-middle can still use a hole's suffix through its
// likelihood: a beam of fills of the hole's length written from the prefix, and of those the one
// after which the suffix is likeliest — log p(fill | prefix) + log p(suffix | prefix, fill).
// It is how the yardstick (src/eval/claim.ts) gives the AR twin an infill score beside the
// diffusion models': the same holes, the true length, the suffix seen by both.

import { copyKv } from "../diffusion/kv.js";
import type { KvCache, LanguageModel } from "../model/types.js";

export interface RerankOptions {
  /** Fills kept per step (default 8). */
  beam?: number;
  /** Tokens of the suffix scored at most (default 48). */
  suffixTokens?: number;
}

interface Beam {
  ids: number[];
  logProb: number;
}

/**
 * The fill (ids, `hole` tokens) of a causal model between `prefix` and `suffix` ids: a beam
 * search of width `beam` from the prefix, ties to the lower ids, the finished fills reranked by
 * the suffix's log-likelihood after them. The prefix is cut from the left to what the context
 * holds beside the hole and the scored suffix; an empty one starts from the model's BOS.
 */
export async function rerankFill(
  model: LanguageModel,
  prefix: readonly number[],
  hole: number,
  suffix: readonly number[],
  o: RerankOptions = {},
): Promise<number[]> {
  const cfg = model.config;
  if (cfg.attention !== "causal" || cfg.logitShift) {
    throw new RangeError(`rerankFill needs a causal model without logit shift (${cfg.attention})`);
  }
  const width = o.beam ?? 8;
  if (!Number.isInteger(width) || width < 1) {
    throw new RangeError(`beam: expected an integer ≥ 1, got ${width}`);
  }
  if (!Number.isInteger(hole) || hole < 1) {
    throw new RangeError(`hole: expected an integer ≥ 1, got ${hole}`);
  }
  const tail = suffix.slice(0, Math.max(0, o.suffixTokens ?? 48));
  let context = prefix.slice(Math.max(0, prefix.length - (cfg.maxPositions - hole - tail.length)));
  if (context.length === 0) {
    if (cfg.bosTokenId === null)
      throw new RangeError("an empty prefix and no BOS token to start from");
    context = [cfg.bosTokenId];
  }
  if (context.length + hole + tail.length > cfg.maxPositions) {
    throw new RangeError(
      `a hole of ${hole} tokens and ${tail.length} of suffix leave no room in the context of ${cfg.maxPositions}`,
    );
  }
  // the prefix's K/V once: every later pass runs only the fills (and the suffix) against it
  const first = await model.forward({
    tokens: Int32Array.from(context),
    rows: 1,
    logitsAt: Int32Array.of(context.length - 1),
    returnKv: true,
  });
  const prefixKv = first.kv!;
  const tiles = new Map<number, KvCache>(); // the prefix's K/V once per row, by row count
  const tiled = (rows: number) => {
    let kv = tiles.get(rows);
    if (kv === undefined) {
      kv = {
        rows,
        length: prefixKv.length,
        keys: prefixKv.keys.map((k) => new Float32Array(rows * k.length)),
        values: prefixKv.values.map((v) => new Float32Array(rows * v.length)),
      };
      for (let r = 0; r < rows; r++) {
        copyKv(model.config, prefixKv, [0, 1], [[0, prefixKv.length]], kv, r);
      }
      tiles.set(rows, kv);
    }
    return kv;
  };
  let beams: Beam[] = [{ ids: [], logProb: 0 }];
  let next = [[logSoftmax(first.logits)]];
  for (let step = 0; step < hole; step++) {
    if (step > 0)
      next = await logSoftmaxAt(
        model,
        tiled(beams.length),
        beams.map((b) => b.ids),
        [step - 1],
      );
    const candidates: Beam[] = [];
    beams.forEach((b, r) => {
      for (const id of topIds(next[r][0], width)) {
        candidates.push({ ids: [...b.ids, id], logProb: b.logProb + next[r][0][id] });
      }
    });
    candidates.sort((a, b) => b.logProb - a.logProb || compareIds(a.ids, b.ids));
    beams = candidates.slice(0, width);
  }
  if (tail.length === 0) return beams[0].ids;
  // log p(suffix | prefix, fill): the logits before each suffix token
  const at = tail.map((_, i) => hole - 1 + i);
  const scored = await logSoftmaxAt(
    model,
    tiled(beams.length),
    beams.map((b) => [...b.ids, ...tail]),
    at,
  );
  let best = 0;
  let bestScore = Number.NEGATIVE_INFINITY;
  beams.forEach((b, r) => {
    const score = b.logProb + tail.reduce((s, t, i) => s + scored[r][i][t], 0);
    if (score > bestScore) [best, bestScore] = [r, score];
  });
  return beams[best].ids;
}

/**
 * log softmax (float64) of each row's logits at the fresh indices `at`, the rows (of equal
 * length) run after `context` (the prefix's K/V, one copy per row): [rows][at][vocab].
 */
async function logSoftmaxAt(
  model: LanguageModel,
  context: KvCache,
  rows: number[][],
  at: number[],
): Promise<Float64Array[][]> {
  const V = model.config.vocabSize;
  const out = await model.forward({
    tokens: Int32Array.from(rows.flat()),
    rows: rows.length,
    context,
    logitsAt: Int32Array.from(rows.flatMap(() => at)),
  });
  return rows.map((_, r) =>
    at.map((_, i) =>
      logSoftmax(out.logits.subarray((r * at.length + i) * V, (r * at.length + i + 1) * V)),
    ),
  );
}

function logSoftmax(logits: Float32Array): Float64Array {
  let max = Number.NEGATIVE_INFINITY;
  for (const v of logits) max = Math.max(max, v);
  let sum = 0;
  for (const v of logits) sum += Math.exp(v - max);
  const logZ = max + Math.log(sum);
  return Float64Array.from(logits, (v) => v - logZ);
}

/** The `k` most likely ids of a row, the lower id first on ties. */
function topIds(row: Float64Array, k: number): number[] {
  const ids = Array.from(row.keys());
  ids.sort((a, b) => row[b] - row[a] || a - b);
  return ids.slice(0, k);
}

function compareIds(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return 0;
}
