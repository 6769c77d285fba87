// The small pure functions a denoising step is made of, each with the reference it follows:
// how many tokens to reveal (schedule), how sure the model is of a position (confidence), how a
// token is drawn (Gumbel-max or categorical, with top-k / top-p), and which positions to reveal
// (top-k, threshold, factor, sampled, Bernoulli). All arithmetic is float64; every random draw
// comes from the caller's seeded Rng in a fixed order; ties break toward the lower position.
//
// References:
//   LLaDA  — ML-GSAI/LLaDA generate.py (add_gumbel_noise, get_num_transfer_tokens, remasking
//            'low_confidence' | 'random'); Nie et al., "Large Language Diffusion Models" (2025).
//   Dream  — DreamLM/Dream generation_utils.py (sample_tokens, top_p_logits, top_k_logits,
//            timesteps = linspace(1, eps, steps + 1), algs origin / maskgit_plus / topk_margin /
//            entropy, alg_temp); Ye et al., "Dream 7B" (2025).
//   Fast-dLLM — NVlabs/Fast-dLLM llada/generate.py (get_transfer_index with threshold,
//            get_transfer_index_dynamic with factor); Wu et al. (2025).
//   EB-sampler — Ben-Hamu et al., "Accelerated Sampling from Masked Diffusion Models via Entropy
//            Bounded Unmasking" (arXiv:2505.24857), Algorithm 1.

import type { Rng } from "../model/random.js";

// ---------------------------------------------------------------------------------------------
// Schedules: how many positions a step reveals

/**
 * LLaDA's `get_num_transfer_tokens`: the masked count of a block spread evenly over its steps,
 * the remainder going to the first steps (a linear noise schedule moves the same expected number
 * of tokens per step).
 */
export function numTransferTokens(maskCount: number, steps: number): Int32Array {
  const base = Math.floor(maskCount / steps);
  const remainder = maskCount % steps;
  const out = new Int32Array(steps).fill(base);
  for (let i = 0; i < remainder; i++) out[i] += 1;
  return out;
}

/**
 * Dream's timesteps `torch.linspace(1, eps, steps + 1)`, held as float32 values the way torch
 * holds them (so the transfer counts below truncate exactly where Dream's do).
 */
export function dreamTimesteps(steps: number, eps: number): Float64Array {
  const out = new Float64Array(steps + 1);
  for (let i = 0; i <= steps; i++) out[i] = Math.fround(1 + ((eps - 1) * i) / steps);
  out[steps] = Math.fround(eps);
  return out;
}

/**
 * Dream's transfer count at step i of `steps`: `int(num_mask_token * (1 - s / t))` with
 * t = timesteps[i], s = timesteps[i + 1], in float32 as torch computes it; every remaining mask on
 * the last step.
 */
export function dreamTransferCount(
  maskCount: number,
  step: number,
  steps: number,
  timesteps: Float64Array,
): number {
  if (step >= steps - 1) return maskCount;
  return Math.trunc(Math.fround(maskCount * dreamTransferProbability(step, steps, timesteps)));
}

/** Dream's `p_transfer = 1 - s / t` (float32), 1 on the last step: the `origin` algorithm. */
export function dreamTransferProbability(
  step: number,
  steps: number,
  timesteps: Float64Array,
): number {
  if (step >= steps - 1) return 1;
  const t = timesteps[step];
  const s = timesteps[step + 1];
  return Math.fround(1 - Math.fround(s / t));
}

// ---------------------------------------------------------------------------------------------
// Logit processing (in place on a float64 row)

/** Index of the largest value; the lowest index on ties. -1 if every value is -Infinity or NaN. */
export function argmax(x: ArrayLike<number>, n = x.length): number {
  let best = -1;
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < n; i++) {
    if (x[i] > max) {
      max = x[i];
      best = i;
    }
  }
  return best;
}

/** log Σ exp(x), stable; -Infinity if every value is -Infinity. */
export function logSumExp(x: Float64Array, n = x.length): number {
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < n; i++) if (x[i] > max) max = x[i];
  if (max === Number.NEGATIVE_INFINITY) return max;
  let sum = 0;
  for (let i = 0; i < n; i++) sum += Math.exp(x[i] - max);
  return max + Math.log(sum);
}

/** softmax(x) into `out` (float64; may be `x` itself); all zeros if every x is −∞. */
export function softmax(x: Float64Array, out: Float64Array, n = x.length): Float64Array {
  const lse = logSumExp(x, n);
  for (let i = 0; i < n; i++) out[i] = lse === Number.NEGATIVE_INFINITY ? 0 : Math.exp(x[i] - lse);
  return out;
}

/**
 * Dream's `top_k_logits`: every logit below the k-th largest becomes -Infinity (ties with the
 * k-th are kept, as `logits < topk(...)[..., -1]` keeps them). k ≤ 0 or k ≥ n: unchanged.
 * `scratch` (length ≥ n) avoids an allocation.
 */
export function filterTopK(x: Float64Array, k: number, scratch: Float64Array, n = x.length): void {
  if (k <= 0 || k >= n) return;
  const sorted = scratch.subarray(0, n);
  sorted.set(x.subarray(0, n));
  sorted.sort().reverse();
  const kth = sorted[k - 1];
  for (let i = 0; i < n; i++) if (x[i] < kth) x[i] = Number.NEGATIVE_INFINITY;
}

/**
 * Dream's `top_p_logits` (nucleus): sort descending, remove every token whose cumulative
 * probability, counting itself, exceeds p, except that the first token above p is kept (the
 * mask shifted right by one). p ≥ 1: unchanged. `order` (Int32Array) and `probs` (Float64Array),
 * both of length ≥ n, are scratch. The slow, obvious form: it sorts the whole vocabulary.
 */
export function filterTopPBySort(
  x: Float64Array,
  p: number,
  order: Int32Array,
  probs: Float64Array,
  n = x.length,
): void {
  if (p >= 1) return;
  const idx = order.subarray(0, n);
  for (let i = 0; i < n; i++) idx[i] = i;
  idx.sort((a, b) => x[b] - x[a] || a - b);
  softmax(x, probs, n);
  let cumulative = 0;
  let previousAbove = false; // the shifted mask: token j is removed if token j-1 was above p
  for (let j = 0; j < n; j++) {
    const i = idx[j];
    cumulative += probs[i];
    const remove = j > 0 && previousAbove;
    previousAbove = cumulative > p;
    if (remove) x[i] = Number.NEGATIVE_INFINITY;
  }
}

/**
 * filterTopP with the same result as filterTopPBySort, sorting only the candidates: the tokens
 * whose probability is at least a threshold that falls by 16× until their mass exceeds p. Every
 * token left out is less likely than every candidate, so it comes after them in the sorted order
 * and is removed. A 100k vocabulary sorts a few dozen entries instead of all of them. `probs`
 * ends up holding scratch values.
 */
export function filterTopP(
  x: Float64Array,
  p: number,
  order: Int32Array,
  probs: Float64Array,
  n = x.length,
): void {
  if (p >= 1) return;
  softmax(x, probs, n);
  for (let threshold = 1 / 16; ; threshold /= 16) {
    let count = 0;
    let mass = 0;
    const last = threshold < 1e-12; // every token is a candidate
    for (let i = 0; i < n; i++) {
      if (last || probs[i] >= threshold) {
        order[count++] = i;
        mass += probs[i];
      }
    }
    if (mass <= p && !last) continue;
    const candidates = order.subarray(0, count);
    candidates.sort((a, b) => x[b] - x[a] || a - b);
    let cumulative = 0;
    let keep = count; // candidates before `keep` stay
    for (let j = 0; j < count; j++) {
      cumulative += probs[candidates[j]];
      if (cumulative > p) {
        keep = j + 1;
        break;
      }
    }
    for (let j = 0; j < keep; j++) probs[candidates[j]] = -1; // marks the kept tokens
    for (let i = 0; i < n; i++) if (probs[i] !== -1) x[i] = Number.NEGATIVE_INFINITY;
    return;
  }
}

// ---------------------------------------------------------------------------------------------
// Drawing a token

/**
 * LLaDA's Gumbel-max in float64: argmax of exp(logits) / (−log u)^T with u ~ U[0, 1) drawn for
 * every vocabulary entry (arXiv:2409.02908: low-precision Gumbel noise hurts masked diffusion).
 * Computed as its logarithm, logits − T·log(−log u), which has the same argmax and cannot
 * overflow. T = 0 draws nothing and is the plain argmax.
 */
export function gumbelArgmax(x: Float64Array, temperature: number, rng: Rng, n = x.length): number {
  if (temperature === 0) return argmax(x, n);
  let best = -1;
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < n; i++) {
    const u = rng.next();
    const score = x[i] - temperature * Math.log(-Math.log(u));
    if (score > max) {
      max = score;
      best = i;
    }
  }
  return best === -1 ? argmax(x, n) : best;
}

/** One draw from a categorical distribution by its inverse CDF (one uniform from `rng`). */
export function sampleCategorical(probs: Float64Array, rng: Rng, n = probs.length): number {
  const u = rng.next();
  let cumulative = 0;
  let last = -1;
  for (let i = 0; i < n; i++) {
    if (probs[i] <= 0) continue;
    cumulative += probs[i];
    last = i;
    if (u < cumulative) return i;
  }
  return last; // rounding left the sum just under u
}

/**
 * Dream's categorical draw (logits / T → top-p → top-k → softmax → inverse-CDF draw in id order)
 * from a row's k most likely tokens at temperature T (`ids`, `logProbs` from the step statistics,
 * most likely first, at `offset`), when the nucleus lies among them. The kept set and the draw are
 * those of filterTopP → filterTopK → softmax → sampleCategorical on the whole row, up to float32
 * rounding of the log-probabilities (a draw can differ only when the uniform falls within that
 * rounding of a cumulative boundary). Returns null, drawing nothing, when the k candidates hold
 * no more than `topP` of the mass: the caller then needs the whole row. `probs` receives the kept
 * tokens' probabilities in candidate order (`index` is the drawn token's); `order` is scratch
 * (both ≥ k).
 */
export function sampleNucleus(
  ids: ArrayLike<number>,
  logProbs: ArrayLike<number>,
  offset: number,
  k: number,
  topP: number,
  topK: number,
  rng: Rng,
  probs: Float64Array,
  order: Int32Array,
): { token: number; index: number; kept: number } | null {
  let cumulative = 0;
  let kept = 0;
  for (let t = 0; t < k; t++) {
    cumulative += Math.exp(logProbs[offset + t]);
    if (cumulative > topP) {
      kept = t + 1;
      break;
    }
  }
  if (kept === 0) return null;
  if (topK > 0 && kept > topK) {
    // Dream's top-k after top-p keeps the values tied with the k-th
    const kth = logProbs[offset + topK - 1];
    while (kept > topK && logProbs[offset + kept - 1] < kth) kept--;
  }
  let max = Number.NEGATIVE_INFINITY;
  for (let t = 0; t < kept; t++) max = Math.max(max, logProbs[offset + t]);
  let sum = 0;
  for (let t = 0; t < kept; t++) sum += Math.exp(logProbs[offset + t] - max);
  for (let t = 0; t < kept; t++) probs[t] = Math.exp(logProbs[offset + t] - max) / sum;
  // the inverse CDF walks the vocabulary in id order
  const byId = order.subarray(0, kept);
  for (let t = 0; t < kept; t++) byId[t] = t;
  byId.sort((a, b) => ids[offset + a] - ids[offset + b]);
  const u = rng.next();
  let running = 0;
  let pick = byId[kept - 1];
  for (const t of byId) {
    if (probs[t] <= 0) continue;
    running += probs[t];
    pick = t;
    if (u < running) break;
  }
  return { token: ids[offset + pick], index: pick, kept };
}

// ---------------------------------------------------------------------------------------------
// Confidence of a position, from its probabilities

/** Dream's `topk_margin`: top-1 minus top-2 probability. */
export function marginConfidence(probs: Float64Array, n = probs.length): number {
  let first = Number.NEGATIVE_INFINITY;
  let second = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < n; i++) {
    const p = probs[i];
    if (p > first) {
      second = first;
      first = p;
    } else if (p > second) {
      second = p;
    }
  }
  return n > 1 ? first - second : first;
}

/**
 * marginConfidence from step statistics: top-1 − top-2 probability of row j, from its k ≥ 2
 * most likely log-probabilities ([rows, k]).
 */
export function marginFromStats(logProbs: ArrayLike<number>, j: number, k: number): number {
  return Math.exp(logProbs[j * k]) - Math.exp(logProbs[j * k + 1]);
}

/** Dream's `entropy` confidence: the negative entropy Σ p·log(p + 1e-10) (higher is surer). */
export function negativeEntropy(probs: Float64Array, n = probs.length): number {
  let s = 0;
  for (let i = 0; i < n; i++) s += probs[i] * Math.log(probs[i] + 1e-10);
  return s;
}

// ---------------------------------------------------------------------------------------------
// Selection: which candidates a step reveals. Candidates are given by index into `confidence`;
// results are indices into the same arrays, in the order chosen.

/** Candidate order: confidence descending, then position ascending (deterministic ties). */
export function rankByConfidence(
  confidence: Float64Array,
  positions: Int32Array,
  count: number,
  order: Int32Array,
): Int32Array {
  const idx = order.subarray(0, count);
  for (let i = 0; i < count; i++) idx[i] = i;
  idx.sort((a, b) => {
    const ca = confidence[a];
    const cb = confidence[b];
    if (ca !== cb) return ca > cb ? -1 : 1;
    return positions[a] - positions[b];
  });
  return idx;
}

/** The k most confident candidates (LLaDA's `torch.topk(confidence, k)`). */
export function selectTopK(ranked: Int32Array, k: number): Int32Array {
  return ranked.subarray(0, Math.min(k, ranked.length));
}

/**
 * Fast-dLLM's threshold rule (`get_transfer_index` with `threshold`): the most confident
 * candidate always, and every other one whose confidence is at least the threshold.
 */
export function selectThreshold(
  ranked: Int32Array,
  confidence: Float64Array,
  threshold: number,
): Int32Array {
  let k = ranked.length === 0 ? 0 : 1;
  while (k < ranked.length && confidence[ranked[k]] >= threshold) k++;
  return ranked.subarray(0, k);
}

/**
 * Fast-dLLM's `get_transfer_index_dynamic` (factor rule): walking the ranked candidates, stop at
 * the first n-th (1-based) whose confidence is below 1 − factor/(n + 1), the first always
 * passing; as in the reference, stopping at the first or the last candidate takes one more.
 */
export function selectFactor(
  ranked: Int32Array,
  confidence: Float64Array,
  factor: number,
): Int32Array {
  const n = ranked.length;
  if (n === 0) return ranked;
  let top = 0;
  for (; top < n; top++) {
    const threshold = top === 0 ? -1 : 1 - factor / (top + 2);
    if (confidence[ranked[top]] < threshold) break;
  }
  if (top === n) top = n - 1; // the reference's loop variable ends on the last index
  if (top === 0 || top === n - 1) top += 1;
  return ranked.subarray(0, top);
}

/**
 * EB-sampler's entropy bound: the largest prefix U of the ranked candidates (surest first) with
 * Σ_{l∈U} H_l − max_{l∈U} H_l ≤ gamma, at least the first. `entropy` holds each candidate's
 * entropy (nats). The sum less the maximum never falls as U grows, so the prefix stops at the
 * first candidate that breaks the bound.
 */
export function selectEntropyBounded(
  ranked: Int32Array,
  entropy: Float64Array,
  gamma: number,
): Int32Array {
  let sum = 0;
  let max = Number.NEGATIVE_INFINITY;
  let k = 0;
  for (; k < ranked.length; k++) {
    const h = entropy[ranked[k]];
    const nextSum = sum + h;
    const nextMax = Math.max(max, h);
    if (k > 0 && nextSum - nextMax > gamma) break;
    sum = nextSum;
    max = nextMax;
  }
  return ranked.subarray(0, k);
}

/**
 * Dream's `alg_temp` selection: softmax(confidence / algTemperature) over the candidates, then k
 * draws without replacement (`torch.multinomial(..., replacement=False)`). Once only candidates
 * whose weight underflowed to zero are left, they are taken by confidence, then position. `weights` and `out` are scratch (≥ count).
 */
export function selectSampled(
  confidence: Float64Array,
  positions: Int32Array,
  count: number,
  k: number,
  algTemperature: number,
  rng: Rng,
  weights: Float64Array,
  out: Int32Array,
): Int32Array {
  const w = weights.subarray(0, count);
  for (let i = 0; i < count; i++) w[i] = confidence[i] / algTemperature;
  softmax(w, w, count);
  const taken = Math.min(k, count);
  let total = 0;
  for (let i = 0; i < count; i++) if (Number.isFinite(w[i])) total += w[i];
  for (let j = 0; j < taken; j++) {
    let pick = -1;
    if (total > 0) {
      const u = rng.next() * total;
      let cumulative = 0;
      for (let i = 0; i < count; i++) {
        if (w[i] <= 0) continue;
        cumulative += w[i];
        pick = i;
        if (u < cumulative) break;
      }
    }
    if (pick === -1 || w[pick] <= 0) {
      // only zero weights left (torch would refuse): the surest not yet taken, then by position
      pick = -1;
      for (let i = 0; i < count; i++) {
        if (w[i] === -1) continue;
        if (
          pick === -1 ||
          confidence[i] > confidence[pick] ||
          (confidence[i] === confidence[pick] && positions[i] < positions[pick])
        ) {
          pick = i;
        }
      }
    }
    total -= Math.max(w[pick], 0);
    w[pick] = -1; // taken
    out[j] = pick;
  }
  return out.subarray(0, taken);
}

/**
 * Dream's `origin` algorithm: every candidate independently with probability p (one uniform
 * each, in candidate order).
 */
export function selectBernoulli(count: number, p: number, rng: Rng, out: Int32Array): Int32Array {
  let k = 0;
  for (let i = 0; i < count; i++) if (rng.next() < p) out[k++] = i;
  return out.subarray(0, k);
}
