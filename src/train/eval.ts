// Held-out likelihood in bits per byte, on any LanguageModel (the ONNX engine, the float64
// reference, a fake), chosen by the config's attention:
//
//   full          masked-diffusion NELBO, a Monte Carlo upper bound on −log p(x), in LLaDA's
//                 low-variance form (Nie et al. 2025, App. B.5; ML-GSAI/LLaDA
//                 get_log_likelihood.py): draw l uniform in {1..L}, mask l positions uniformly
//                 without replacement, score (L/l)·Σ_masked −log p(x_i | x_masked). Over the
//                 samples of a sequence, l is stratified (one uniform per stratum, as MDLM).
//   block_causal  the same per block (BD3-LM): a sample picks block b and l in {1..S}, masks l
//                 positions of block b with the earlier blocks clean, and scores
//                 numBlocks·(S/l)·Σ_masked −log p; (b, l) are stratified jointly.
//   causal        the exact log-likelihood, Σ_{i≥1} −log p(x_i | x_<i) (the first token of each
//                 sequence has no context and is not scored).
//
// Bits per byte = Σ nats / ln 2 / Σ bytes, where bytes are the UTF-8 bytes of the text the
// sequences came from (EOS separators have no bytes). A diffusion model scores every token
// including the first, an AR model all but the first of each sequence: over long sequences the
// difference is small, and it favours the AR model.

import { Rng } from "../model/random.js";
import type { LanguageModel } from "../model/types.js";
import { BYTE_OFFSET } from "./bpe.js";
import type { PackedRows } from "./data.js";

export interface EvalText {
  /** Token sequences, each scored on its own (batched with others of its length). */
  sequences: readonly Int32Array[];
  /** UTF-8 bytes of the text the sequences came from. */
  bytes: number;
}

export interface EvalOptions {
  /** Monte Carlo samples per sequence for the diffusion bounds (default 16). */
  samples?: number;
  /** Rows per forward pass (default 8). */
  batchRows?: number;
  /** Seed of the masks (default 0). */
  seed?: number;
  onProgress?: (done: number, total: number) => void;
}

export interface LikelihoodResult {
  method: "diffusion-elbo" | "block-diffusion-elbo" | "exact";
  /** Σ −log p over the sequences, in nats (for the diffusion methods an upper-bound estimate). */
  nats: number;
  /** Tokens scored. */
  tokens: number;
  bytes: number;
  natsPerToken: number;
  bitsPerByte: number;
  /** Standard error of bitsPerByte from the Monte Carlo spread (0 when exact). */
  standardError: number;
}

export class LikelihoodError extends Error {
  override name = "LikelihoodError";
}

/**
 * The first `maxRows` packed rows of a held-out token stream as EvalText, with their exact UTF-8
 * byte count: byte-level BPE tokens are bytes, so the bytes of a row are the sum of its tokens'
 * lengths (special tokens, such as the EOS between documents, count zero).
 */
export function packedEvalText(
  rows: PackedRows,
  tokenizer: { token(id: number): Uint8Array },
  maxRows = rows.count,
): EvalText {
  const sequences: Int32Array[] = [];
  let bytes = 0;
  for (let r = 0; r < Math.min(maxRows, rows.count); r++) {
    const row = new Int32Array(rows.length);
    rows.copyRow(r, row);
    for (const id of row) if (id >= BYTE_OFFSET) bytes += tokenizer.token(id).length;
    sequences.push(row);
  }
  return { sequences, bytes };
}

/** Bits per byte of held-out text under `model`, by the method its attention calls for. */
export async function bitsPerByte(
  model: LanguageModel,
  text: EvalText,
  options: EvalOptions = {},
): Promise<LikelihoodResult> {
  const { attention } = model.config;
  const scored =
    attention === "causal"
      ? await exactNll(model, text, options)
      : await elbo(model, text, options);
  const tokens = text.sequences.reduce(
    (n, s) => n + (attention === "causal" ? Math.max(0, s.length - 1) : s.length),
    0,
  );
  const perByte = 1 / Math.LN2 / text.bytes;
  return {
    method:
      attention === "causal"
        ? "exact"
        : attention === "block_causal"
          ? "block-diffusion-elbo"
          : "diffusion-elbo",
    nats: scored.nats,
    tokens,
    bytes: text.bytes,
    natsPerToken: scored.nats / tokens,
    bitsPerByte: scored.nats * perByte,
    standardError: Math.sqrt(scored.variance) * perByte,
  };
}

/** One forward row: its tokens, the positions scored, and each position's weight. */
interface Item {
  seq: number;
  tokens: Int32Array;
  at: number[];
  targets: number[];
  weight: number;
}

/** Runs items of one length in batches; calls `score(item, nats)` with Σ −log p of its positions. */
async function runItems(
  model: LanguageModel,
  items: Item[],
  score: (item: Item, nats: number) => void,
): Promise<void> {
  const V = model.config.vocabSize;
  const rows = items.length;
  const n = items[0].tokens.length;
  const p = Math.max(1, ...items.map((it) => it.at.length));
  const tokens = new Int32Array(rows * n);
  const logitsAt = new Int32Array(rows * p);
  items.forEach((it, r) => {
    tokens.set(it.tokens, r * n);
    for (let j = 0; j < p; j++) logitsAt[r * p + j] = it.at[Math.min(j, it.at.length - 1)] ?? 0;
  });
  const { logits, positions } = await model.forward({ tokens, rows, logitsAt });
  if (positions !== p)
    throw new LikelihoodError(`model returned ${positions} positions, asked ${p}`);
  items.forEach((it, r) => {
    let nats = 0;
    for (let j = 0; j < it.at.length; j++) {
      nats += negLogSoftmax(logits, (r * p + j) * V, V, it.targets[j]);
    }
    score(it, nats);
  });
}

/** −log softmax(logits[base .. base + V))[target], in float64. */
function negLogSoftmax(logits: Float32Array, base: number, V: number, target: number): number {
  let max = -Infinity;
  for (let v = 0; v < V; v++) max = Math.max(max, logits[base + v]);
  let sum = 0;
  for (let v = 0; v < V; v++) sum += Math.exp(logits[base + v] - max);
  return max + Math.log(sum) - logits[base + target];
}

/** Groups items by sequence length and feeds them to the model `batchRows` at a time. */
async function forEachBatch(
  model: LanguageModel,
  items: Iterable<Item>,
  batchRows: number,
  score: (item: Item, nats: number) => void,
): Promise<void> {
  const pending = new Map<number, Item[]>();
  for (const it of items) {
    const queue = pending.get(it.tokens.length) ?? [];
    queue.push(it);
    pending.set(it.tokens.length, queue);
    if (queue.length === batchRows) {
      pending.delete(it.tokens.length);
      await runItems(model, queue, score);
    }
  }
  for (const queue of pending.values()) await runItems(model, queue, score);
}

/** Diffusion NELBO estimate (full or block-causal attention); see the module comment. */
async function elbo(
  model: LanguageModel,
  text: EvalText,
  o: EvalOptions,
): Promise<{ nats: number; variance: number }> {
  const { maskTokenId: mask, attention, blockSize } = model.config;
  if (mask === null) throw new LikelihoodError("the model's config has no mask_token_id");
  const maskTokenId: number = mask;
  const S = o.samples ?? 16;
  const rng = new Rng(o.seed ?? 0);
  const perSeq = text.sequences.map(() => ({ sum: 0, sumSq: 0 }));
  let done = 0;
  const total = text.sequences.length * S;

  function* items(): Generator<Item> {
    for (let seq = 0; seq < text.sequences.length; seq++) {
      const x = text.sequences[seq];
      const L = x.length;
      if (L === 0) continue;
      const span = attention === "block_causal" ? Math.min(blockSize, L) : L;
      const blocks = Math.ceil(L / span);
      for (let s = 0; s < S; s++) {
        const u = (rng.next() + s) / S; // stratified over the samples
        const b = Math.floor(u * blocks);
        const start = b * span;
        const len = Math.min(span, L - start);
        const l = 1 + Math.min(len - 1, Math.floor((u * blocks - b) * len));
        // l positions of [start, start + len) uniformly without replacement (partial Fisher–Yates)
        const pool = Array.from({ length: len }, (_, i) => start + i);
        for (let i = 0; i < l; i++) {
          const j = i + rng.int(len - i);
          [pool[i], pool[j]] = [pool[j], pool[i]];
        }
        const at = pool.slice(0, l).sort((a, c) => a - c);
        const tokens = x.slice();
        for (const i of at) tokens[i] = maskTokenId;
        yield { seq, tokens, at, targets: at.map((i) => x[i]), weight: (blocks * len) / l };
      }
    }
  }

  await forEachBatch(model, items(), o.batchRows ?? 8, (it, nats) => {
    const v = it.weight * nats;
    perSeq[it.seq].sum += v;
    perSeq[it.seq].sumSq += v * v;
    o.onProgress?.(++done, total);
  });
  let nats = 0;
  let variance = 0;
  for (const { sum, sumSq } of perSeq) {
    const mean = sum / S;
    nats += mean;
    if (S > 1) variance += ((sumSq / S - mean * mean) * (S / (S - 1))) / S;
  }
  return { nats, variance };
}

/** Exact AR negative log-likelihood of tokens 1..L−1 of each sequence. */
async function exactNll(
  model: LanguageModel,
  text: EvalText,
  o: EvalOptions,
): Promise<{ nats: number; variance: number }> {
  const shift = model.config.logitShift;
  let nats = 0;
  let done = 0;
  function* items(): Generator<Item> {
    for (let seq = 0; seq < text.sequences.length; seq++) {
      const x = text.sequences[seq];
      if (x.length < 2) continue;
      // logitShift: index i already holds token i's distribution; else index i predicts i + 1.
      const at = Array.from({ length: x.length - 1 }, (_, i) => (shift ? i + 1 : i));
      const targets = Array.from({ length: x.length - 1 }, (_, i) => x[i + 1]);
      yield { seq, tokens: x, at, targets, weight: 1 };
    }
  }
  await forEachBatch(model, items(), o.batchRows ?? 8, (_it, n) => {
    nats += n;
    o.onProgress?.(++done, text.sequences.length);
  });
  return { nats, variance: 0 };
}
