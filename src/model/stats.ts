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
import { countTensor, floatTensor, type HostTensor, int32Tensor } from "../runtime/session.js";
import type { StatsRequest, StepStats } from "./types.js";

export interface StatsInputs {
  /** int64 [1]: how many of the R requested rows get statistics (R when asked for, else 1). */
  rows: Tensor;
  /** int64 [1]: k. */
  k: Tensor;
  /** int32 [S]: excluded token ids in [0, V), or −1: none. */
  exclude: Tensor;
  /** float32 [1]: 1 / temperature, applied to the logits before every statistic. */
  inverseTemperature: Tensor;
  /** int32 [nstats]: a token per row whose log-probability to return. */
  scoreIds: Tensor;
}

export interface StatsOutputs {
  /** int32 [nstats, k] */
  ids: Tensor;
  /** float32 [nstats, k] */
  logProbs: Tensor;
  /** float32 [nstats] */
  logSumExp: Tensor;
  /** float32 [nstats]: −Σ p·log p */
  entropy: Tensor;
  /** float32 [nstats] */
  scoreLogProbs: Tensor;
}

/**
 * The logit an excluded token is given: finite, so that its term of the entropy is 0·(−1e30) = 0
 * where −∞ would make it NaN (no real logit comes near it; it is reported as −∞).
 */
const excludedLogit = -1e30;

/**
 * The statistics of the first `inputs.rows` rows of logits [R, V] as graph nodes (float32). Only
 * vectorised kernels touch vocabulary-wide rows (Slice, Mul, Add, LogSoftmax, TopK, Softmax,
 * Mul, ReduceSum: onnxruntime's elementwise Exp and Log are scalar and cost ~10× more); the
 * exclusions are scattered into one V-wide row, and the log-sum-exp is x(argmax) − log p(argmax).
 */
export function stepStatistics(
  logits: Tensor,
  vocabSize: number,
  inputs: StatsInputs,
): StatsOutputs {
  const g = logits.graph;
  // onnxruntime runs every node whatever is fetched: a request without statistics takes 1 row
  const asked = op.sliceTo(logits, inputs.rows, 0, "nstats"); // [S, V]
  // −1e30 at the excluded ids, 0 elsewhere; the id −1 (none) lands in a spare last slot
  const zeros = g.initializer(
    g.freeName("stats.zeros"),
    "float32",
    [vocabSize + 1],
    () => new Float32Array(vocabSize + 1),
  );
  const updates = op.full(op.shapeOf(inputs.exclude), inputs.exclude.shape, excludedLogit);
  const scattered = op.scatterElements(zeros, inputs.exclude, updates, 0); // [V + 1]
  const penalty = op.slice(scattered, [0], [vocabSize], [0]); // [V]
  const x = op.add(op.mul(asked, inputs.inverseTemperature), penalty); // [S, V]
  const logProbs = op.logSoftmax(x, -1); // [S, V]
  const top = op.topK(logProbs, inputs.k, "k"); // [S, k]
  const probs = op.softmax(x, -1); // [S, V]
  const entropy = op.neg(op.reduceSum(op.mul(probs, logProbs), [-1], false)); // [S]
  const first = op.slice(top.indices, [0], [1], [-1]); // [S, 1]
  const lse = op.sub(op.gatherElements(x, first, 1), op.slice(top.values, [0], [1], [-1])); // [S, 1]
  const score = op.gatherElements(logProbs, op.unsqueeze(inputs.scoreIds, [1]), 1); // [S, 1]
  /** An excluded token's log-probability (about −1e30) as −∞. */
  const reported = (t: Tensor) =>
    op.where(op.less(t, excludedLogit / 10), Number.NEGATIVE_INFINITY, t);
  return {
    ids: op.cast(top.indices, "int32"),
    logProbs: reported(top.values),
    logSumExp: op.reshape(lse, [-1]), // [S]
    entropy, // [S]
    scoreLogProbs: reported(op.reshape(score, [-1])), // [S]
  };
}

/** The exclusion list fed when a request excludes nothing. */
const noExclusion = Int32Array.of(-1);

/**
 * The feeds of the statistics' inputs (named as `statsInputs` names them) for a request over
 * `count` rows; without a request, the statistics of the first row only (empty tensors crash
 * some of onnxruntime's kernels).
 */
export function statsFeeds(
  stats: StatsRequest | undefined,
  count: number,
): Record<string, HostTensor> {
  const exclude = stats?.exclude?.length ? stats.exclude : noExclusion;
  const n = stats === undefined ? 1 : count;
  return {
    stats_rows: countTensor(n),
    top_k: countTensor(stats?.topK ?? 1),
    exclude_ids: int32Tensor(exclude, [exclude.length]),
    inverse_temperature: floatTensor(Float32Array.of(1 / (stats?.temperature ?? 1)), [1]),
    score_ids: int32Tensor(stats?.scoreTokens ?? new Int32Array(n), [n]),
  };
}

/** The statistics' graph inputs, named as statsFeeds feeds them. */
export function statsInputs(g: Graph): StatsInputs {
  return {
    rows: g.input("stats_rows", "int64", [1]),
    k: g.input("top_k", "int64", [1]),
    exclude: g.input("exclude_ids", "int32", ["nexclude"]),
    inverseTemperature: g.input("inverse_temperature", "float32", [1]),
    scoreIds: g.input("score_ids", "int32", ["nstats"]),
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
