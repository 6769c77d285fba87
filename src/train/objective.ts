// Training objectives as batch builders: each turns clean token rows [rows, length] into a
// LossBatch — the model input, the positions that carry loss, their targets and their weights —
// so that one training-step graph (src/train/step.ts) serves every objective:
//
//   loss = Σ_k weights[k] · −log p_θ(targets[k] | tokens) at logits row lossIndex[k]
//
// All randomness comes from the Rng passed in, so a run that restores the Rng's state draws the
// same masks again.
//
// Masked diffusion (MDLM: Sahoo et al. 2024, "Simple and Effective Masked Diffusion Language
// Models"; LLaDA: Nie et al. 2025, "Large Language Diffusion Models"). LLaDA's pre-training loss
// (ML-GSAI/LLaDA GUIDELINES.md, `forward_process`) is
//
//   t ~ U[0, 1];  p_mask = (1 − ε)·t + ε  (ε = 1e-3);  mask each token with probability p_mask;
//   loss = Σ_{masked} CE / p_mask  /  (B · L)
//
// an upper bound on the negative log-likelihood per token. MDLM (kuleshov-group/mdlm
// diffusion.py, `_sample_t`) reduces its variance with antithetic ("low-discrepancy") times: n
// uniforms u_i, t_i = (u_i/n + i/n) mod 1, one time in each stratum [i/n, (i+1)/n); then
// t ← (1 − ε)t + ε. `sampleMaskRates` draws them; the loop draws them for the whole optimizer
// batch (all micro-batches), as MDLM's later `_sample_t(n, accum_step)` does.
//
// Models with `logitShift` (the Dream family predict token i from position i − 1) need lossIndex
// shifted by one; our own models do not shift, and nothing here does.

import type { Rng } from "../model/random.js";
import type { LossBatch } from "./step.js";

export type { LossBatch };

/** LLaDA's ε: the smallest masking probability. */
export const defaultMaskEps = 1e-3;

/**
 * Masking probabilities p_mask ∈ [ε, 1] for n rows: t_i uniform, stratified as MDLM's antithetic
 * sampling when `lowDiscrepancy`, then p = (1 − ε)t + ε.
 */
export function sampleMaskRates(
  n: number,
  rng: Rng,
  lowDiscrepancy = true,
  eps = defaultMaskEps,
): Float64Array {
  const p = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const u = rng.next();
    const t = lowDiscrepancy ? (u + i) / n : u; // MDLM: (u_i/n + i/n) mod 1, always < 1
    p[i] = (1 - eps) * t + eps;
  }
  return p;
}

/** Copies the chosen positions into a LossBatch (K known only after masking). */
function collect(
  tokens: Int32Array,
  rows: number,
  index: number[],
  targets: number[],
  weights: number[],
): LossBatch {
  return {
    tokens,
    rows,
    lossIndex: Int32Array.from(index),
    targets: Int32Array.from(targets),
    weights: Float32Array.from(weights),
  };
}

function checkRows(clean: Int32Array, rows: number, length: number): void {
  if (!Number.isInteger(rows) || !Number.isInteger(length) || rows < 1 || length < 1) {
    throw new RangeError(`rows and length must be positive integers, got ${rows}, ${length}`);
  }
  if (clean.length !== rows * length) {
    throw new RangeError(`expected ${rows}×${length} tokens, got ${clean.length}`);
  }
}

export interface MaskedDiffusionOptions {
  maskId: number;
  /** p_mask of each row, [rows], e.g. from sampleMaskRates. */
  rates: ArrayLike<number>;
  /** The loss normaliser (default rows · length; the loop passes the whole optimizer batch's). */
  normalizer?: number;
}

/**
 * MDLM/LLaDA masked diffusion: each token of row r is replaced by the mask id with probability
 * rates[r]; the masked positions carry loss with weight 1 / (rates[r] · normalizer).
 */
export function maskedDiffusionBatch(
  clean: Int32Array,
  rows: number,
  length: number,
  rng: Rng,
  o: MaskedDiffusionOptions,
): LossBatch {
  checkRows(clean, rows, length);
  const normalizer = o.normalizer ?? rows * length;
  const tokens = clean.slice();
  const index: number[] = [];
  const targets: number[] = [];
  const weights: number[] = [];
  for (let r = 0; r < rows; r++) {
    const p = o.rates[r];
    const w = 1 / (p * normalizer);
    for (let i = r * length; i < (r + 1) * length; i++) {
      if (rng.next() < p) {
        tokens[i] = o.maskId;
        index.push(i);
        targets.push(clean[i]);
        weights.push(w);
      }
    }
  }
  return collect(tokens, rows, index, targets, weights);
}

export interface BlockDiffusionOptions extends MaskedDiffusionOptions {
  /** Tokens per block; must divide the row length. */
  blockSize: number;
  /**
   * clean (default): BD3-LM's objective exactly, one block per row. noisy: every block masked at
   * its own rate, each block seeing noisy earlier blocks (more loss positions per forward pass,
   * but not the BD3-LM bound). See `blockDiffusionBatch`.
   */
  context?: "clean" | "noisy";
}

/**
 * Block diffusion (BD3-LM: Arriola et al. 2025, "Block Diffusion: Interpolating Between
 * Autoregressive and Diffusion Language Models"), for a model with block-causal attention
 * (`attention: "block_causal"`: a position sees its own block and every earlier block).
 *
 * BD3-LM's loss is Σ_b E_t[ (1/t) Σ_{masked i in block b} −log p(x_i | x_t^b, x^{<b}) ] / L:
 * block b is noised, the blocks before it are clean. Its trainer gets every block in one pass
 * by feeding [x_t, x_0] (2L tokens) with a special attention mask; our step takes L tokens and
 * derives the mask from the config, so:
 *
 * - `context: "clean"` keeps BD3-LM's objective: per row one block b (uniform), masked at the
 *   row's rate; blocks before b stay clean, and blocks after b cannot reach block b's logits
 *   under block-causal attention. Loss weights carry numBlocks / (p · normalizer), so the
 *   expectation over b is BD3-LM's loss. The price: a forward pass over L tokens trains one
 *   block, numBlocks times fewer loss positions than the 2L-token trainer.
 * - `context: "noisy"`: a rate per block (rates has rows · numBlocks entries), every block
 *   masked; block b then conditions on noisy earlier blocks. Every position trains, but it is
 *   not BD3-LM's bound and differs from decoding, where earlier blocks are clean.
 */
export function blockDiffusionBatch(
  clean: Int32Array,
  rows: number,
  length: number,
  rng: Rng,
  o: BlockDiffusionOptions,
): LossBatch {
  checkRows(clean, rows, length);
  const S = o.blockSize;
  if (!Number.isInteger(S) || S < 1 || length % S !== 0) {
    throw new RangeError(`block size ${S} must divide the row length ${length}`);
  }
  const blocks = length / S;
  const normalizer = o.normalizer ?? rows * length;
  const tokens = clean.slice();
  const index: number[] = [];
  const targets: number[] = [];
  const weights: number[] = [];
  const maskBlock = (start: number, p: number, w: number) => {
    for (let i = start; i < start + S; i++) {
      if (rng.next() < p) {
        tokens[i] = o.maskId;
        index.push(i);
        targets.push(clean[i]);
        weights.push(w);
      }
    }
  };
  for (let r = 0; r < rows; r++) {
    if ((o.context ?? "clean") === "clean") {
      const p = o.rates[r];
      const b = rng.int(blocks);
      maskBlock(r * length + b * S, p, blocks / (p * normalizer));
    } else {
      for (let b = 0; b < blocks; b++) {
        const p = o.rates[r * blocks + b];
        maskBlock(r * length + b * S, p, 1 / (p * normalizer));
      }
    }
  }
  return collect(tokens, rows, index, targets, weights);
}

/**
 * The next-token loss of the autoregressive twin (causal attention): the input is the clean row,
 * logits at position i predict token i + 1, weights 1 / normalizer (default rows · (length − 1)).
 */
export function nextTokenBatch(
  clean: Int32Array,
  rows: number,
  length: number,
  normalizer = rows * (length - 1),
): LossBatch {
  checkRows(clean, rows, length);
  if (length < 2) throw new RangeError("next-token rows need at least 2 tokens");
  const K = rows * (length - 1);
  const lossIndex = new Int32Array(K);
  const targets = new Int32Array(K);
  let k = 0;
  for (let r = 0; r < rows; r++) {
    for (let i = r * length; i < (r + 1) * length - 1; i++, k++) {
      lossIndex[k] = i;
      targets[k] = clean[i + 1];
    }
  }
  return {
    tokens: clean.slice(),
    rows,
    lossIndex,
    targets,
    weights: new Float32Array(K).fill(1 / normalizer),
  };
}

export interface FimOptions {
  /** Share of rows transformed (Bavarian et al. use 0.5). */
  rate: number;
  prefixId: number;
  middleId: number;
  suffixId: number;
}

/**
 * Fill-in-the-middle for the AR twin (Bavarian et al. 2022, "Efficient Training of Language
 * Models to Fill in the Middle"), PSM order, applied in place to packed rows before the
 * next-token loss ("context-level" FIM, with spans cut at token boundaries). A transformed row
 * holds [PRE] prefix [SUF] suffix [MID] middle, built from the row's first length − 3 tokens
 * (the last three make room for the sentinels) split at two uniform cut points.
 */
export function applyFim(
  clean: Int32Array,
  rows: number,
  length: number,
  rng: Rng,
  o: FimOptions,
): void {
  checkRows(clean, rows, length);
  const n = length - 3;
  if (n < 0) throw new RangeError("FIM rows need at least 3 tokens");
  for (let r = 0; r < rows; r++) {
    if (rng.next() >= o.rate) continue;
    const row = clean.subarray(r * length, (r + 1) * length);
    const src = row.slice(0, n);
    let a = rng.int(n + 1);
    let b = rng.int(n + 1);
    if (a > b) [a, b] = [b, a];
    let at = 0;
    row[at++] = o.prefixId;
    row.set(src.subarray(0, a), at);
    at += a;
    row[at++] = o.suffixId;
    row.set(src.subarray(b), at);
    at += n - b;
    row[at++] = o.middleId;
    row.set(src.subarray(a, b), at);
  }
}
