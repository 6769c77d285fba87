// The statistics a denoising or decoding step needs of each requested row's distribution: the
// top-k ids with their log-probabilities, the log-sum-exp and the entropy, with some tokens
// (the mask token, suppressed end tokens) held at −∞. The ONNX engine computes them in the graph
// (`stepStatistics`), so that greedy decoding and the probability, margin and entropy confidences
// never bring a vocabulary-wide row into JavaScript; `hostStepStats` is the slow, obvious float64
// twin (the reference model's, and the yardstick of the tests). The entropy is −Σ p·log p; Dream's
// form −Σ p·log(p + 1e-10) differs from it by less than V·1e-10 (below float32 rounding of the sum
// for V ≤ 10⁵).

import type { Graph, Tensor } from "../graph/graph.js";
import * as op from "../graph/ops.js";
import { floatTensor, type HostTensor, int32Tensor } from "../runtime/session.js";
import type { StatsRequest, StepStats } from "./types.js";

export interface StatsInputs {
  /** int64 [1]: how many of the P positions get statistics (P when asked for, else 1). */
  rows: Tensor;
  /** int64 [1]: k. */
  k: Tensor;
  /** int32 [S]: excluded token ids (ids outside the vocabulary exclude nothing). */
  exclude: Tensor;
  /** float32 [1]: 1 / temperature, applied to the logits before every statistic. */
  inverseTemperature: Tensor;
  /** int32 [B, P]: a token per position whose log-probability to return. */
  scoreIds: Tensor;
}

export interface StatsOutputs {
  /** int32 [B, P, k] */
  ids: Tensor;
  /** float32 [B, P, k] */
  logProbs: Tensor;
  /** float32 [B, P] */
  logSumExp: Tensor;
  /** float32 [B, P]: −Σ p·log p */
  entropy: Tensor;
  /** float32 [B, P] */
  scoreLogProbs: Tensor;
}

/**
 * The statistics of logits [B, P, V] as graph nodes (float32). Only vectorised kernels touch the
 * whole rows (Add, LogSoftmax, Softmax, Mul, Max, ReduceSum, TopK: onnxruntime's elementwise Exp
 * and Log are scalar and cost ~10× more); the log-sum-exp is max − log p(argmax).
 */
export function stepStatistics(all: Tensor, vocabSize: number, inputs: StatsInputs): StatsOutputs {
  const g = all.graph;
  // onnxruntime runs every node whatever is fetched: a request without statistics slices 1 row
  const logits = op.sliceTo(all, inputs.rows, 1, "nstats"); // [B, P, V]
  const ids = new Int32Array(vocabSize);
  for (let v = 0; v < vocabSize; v++) ids[v] = v;
  const vocab = g.initializer(g.freeName("stats.vocab_ids"), "int32", [vocabSize, 1], ids); // [V, 1]
  const hits = op.cast(op.equal(vocab, inputs.exclude), "float32"); // [V, S]
  const excluded = op.cast(op.reduceMax(hits, [1], false), "bool"); // [V]
  const penalty = op.where(excluded, g.scalar(Number.NEGATIVE_INFINITY), g.scalar(0)); // [V]
  const masked = op.mul(op.add(logits, penalty), inputs.inverseTemperature); // [B, P, V]
  const logProbs = op.logSoftmax(masked, -1); // [B, P, V]
  const top = op.topK(logProbs, inputs.k, "k"); // [B, P, k]
  const probs = op.softmax(masked, -1); // [B, P, V]
  // −Σ p·log p, with excluded tokens (p = 0, log p = −∞) contributing 0
  const finite = op.max(logProbs, g.scalar(-1e30)); // [B, P, V]
  const entropy = op.neg(op.reduceSum(op.mul(probs, finite), [-1], false)); // [B, P]
  const first = op.slice(top.values, [0], [1], [-1]); // [B, P, 1]: log p(argmax) = max − lse
  const logSumExp = op.sub(op.reduceMax(masked, [-1]), first); // [B, P, 1]
  const score = op.gatherElements(logProbs, op.unsqueeze(inputs.scoreIds, [2]), 2); // [B, P, 1]
  return {
    ids: op.cast(top.indices, "int32"),
    logProbs: top.values,
    logSumExp: op.squeeze(logSumExp, [-1]), // [B, P]
    entropy, // [B, P]
    scoreLogProbs: op.squeeze(score, [-1]), // [B, P]
  };
}

/** The exclusion list fed when a request excludes nothing: an id no token has. */
const noExclusion = Int32Array.of(-1);

/**
 * The feeds of the statistics' inputs (named as `statsInputs` names them) for a request over
 * [rows, p] positions; without a request, the statistics of the first position only (empty
 * tensors crash some of onnxruntime's kernels).
 */
export function statsFeeds(
  stats: StatsRequest | undefined,
  rows: number,
  p: number,
): Record<string, HostTensor> {
  const exclude = stats?.exclude?.length ? stats.exclude : noExclusion;
  const count = stats === undefined ? 1 : p;
  return {
    stats_rows: { type: "int64", data: BigInt64Array.of(BigInt(count)), dims: [1] },
    top_k: { type: "int64", data: BigInt64Array.of(BigInt(stats?.topK ?? 1)), dims: [1] },
    exclude_ids: int32Tensor(exclude, [exclude.length]),
    inverse_temperature: floatTensor(Float32Array.of(1 / (stats?.temperature ?? 1)), [1]),
    score_ids: int32Tensor(stats?.scoreTokens ?? new Int32Array(rows * count), [rows, count]),
  };
}

/** The statistics' graph inputs, named as statsFeeds feeds them. */
export function statsInputs(g: Graph): StatsInputs {
  return {
    rows: g.input("stats_rows", "int64", [1]),
    k: g.input("top_k", "int64", [1]),
    exclude: g.input("exclude_ids", "int32", ["nexclude"]),
    inverseTemperature: g.input("inverse_temperature", "float32", [1]),
    scoreIds: g.input("score_ids", "int32", ["batch", "nstats"]),
  };
}

/**
 * The same statistics in float64 from logits [rows·p, V] (any precision), rounded to float32 at
 * the end. Ties in the top-k go to the lower id.
 */
export function hostStepStats(
  logits: ArrayLike<number>,
  rowCount: number,
  vocabSize: number,
  request: StatsRequest,
): StepStats {
  const { topK: k } = request;
  const V = vocabSize;
  const out: StepStats = {
    k,
    temperature: request.temperature ?? 1,
    ids: new Int32Array(rowCount * k),
    logProbs: new Float32Array(rowCount * k),
    logSumExp: new Float32Array(rowCount),
    entropy: new Float32Array(rowCount),
  };
  if (request.scoreTokens !== undefined) out.scoreLogProbs = new Float32Array(rowCount);
  const excluded = new Uint8Array(V);
  const temperature = request.temperature ?? 1;
  for (const t of request.exclude ?? []) if (t >= 0 && t < V) excluded[t] = 1;
  const w = new Float64Array(V);
  const best = new Int32Array(k);
  for (let r = 0; r < rowCount; r++) {
    let max = Number.NEGATIVE_INFINITY;
    for (let v = 0; v < V; v++) {
      w[v] = excluded[v] ? Number.NEGATIVE_INFINITY : logits[r * V + v] / temperature;
      if (w[v] > max) max = w[v];
    }
    let sum = 0;
    for (let v = 0; v < V; v++) sum += Math.exp(w[v] - max);
    const lse = max + Math.log(sum);
    let entropy = 0;
    for (let v = 0; v < V; v++) {
      const p = Math.exp(w[v] - lse);
      if (p > 0) entropy -= p * Math.log(p);
    }
    // top-k by insertion: larger value first, then lower id
    let count = 0;
    for (let v = 0; v < V; v++) {
      if (count === k && !(w[v] > w[best[k - 1]])) continue;
      let j = Math.min(count, k - 1);
      while (j > 0 && w[v] > w[best[j - 1]]) {
        best[j] = best[j - 1];
        j--;
      }
      best[j] = v;
      if (count < k) count++;
    }
    for (let j = 0; j < k; j++) {
      out.ids[r * k + j] = best[j];
      out.logProbs[r * k + j] = w[best[j]] - lse;
    }
    out.logSumExp[r] = lse;
    out.entropy[r] = entropy;
    if (out.scoreLogProbs !== undefined) {
      out.scoreLogProbs[r] = w[request.scoreTokens![r]] - lse;
    }
  }
  return out;
}
