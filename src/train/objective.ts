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
// A LossBatch's lossIndex names hidden states: the diffusion builders read the model's logit
// shift (`shift`, the Dream family predicts token i from position i − 1) and point each loss
// at the state the engine reads at inference (src/model/engine.ts). The next-token loss is the
// same either way: state i predicts token i + 1.

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
  /**
   * The model's logit shift (Dream; `logit_shift` in config.json): the token at position j is
   * predicted from the hidden state at j − 1, as the engine reads it at inference. Position 0
   * then has no predictor: it may be masked but carries no loss (DiffuLLaMA's shifted loss,
   * `logits[:, :-1]` against `x[:, 1:]`).
   */
  shift?: boolean;
  /**
   * Complementary masks (Fast-dLLM v2, arXiv:2509.26328; LaViDa): every row also appears a second
   * time (rows rows..2·rows − 1 of the batch) with exactly the other positions of its noised
   * region masked, at rate 1 − p, so each token is trained once as a target and once as
   * context. Each copy's loss is an estimate of the bound; the batch carries their mean. The
   * copy's weight uses max(1 − p, ε), so that a copy at a rate near 0 cannot blow up a step.
   */
  complementary?: boolean;
  /** The smallest rate a loss weight divides by (default LLaDA's ε). */
  eps?: number;
}

/**
 * MDLM/LLaDA masked diffusion: each token of row r is replaced by the mask id with probability
 * rates[r]; the masked positions carry loss with weight 1 / (rates[r] · normalizer). It is the
 * block objective below with one block per row.
 */
export function maskedDiffusionBatch(
  clean: Int32Array,
  rows: number,
  length: number,
  rng: Rng,
  o: MaskedDiffusionOptions,
): LossBatch {
  return blockDiffusionBatch(clean, rows, length, rng, {
    ...o,
    blockSize: length,
    context: "noisy",
  });
}

export interface BlockDiffusionOptions extends MaskedDiffusionOptions {
  /** Tokens per block; must divide the row length. */
  blockSize: number;
  /**
   * clean (default): BD3-LM's objective exactly, one block per row. noisy: every block masked at
   * its own rate, each block seeing noisy earlier blocks (more loss positions per forward pass,
   * but not the BD3-LM bound). dual: BD3-LM's vectorized trainer, every block at its own rate
   * against clean earlier blocks, over [x_t ; x_0]. See `blockDiffusionBatch`.
   */
  context?: "clean" | "noisy" | "dual";
  /**
   * The first position that is noised and carries loss (a multiple of the block size; default 0).
   * Distillation rows (src/train/distill.ts) set it to the prompt's length: the prompt stays clean
   * and only the teacher's response trains, block by block against the prompt and the clean
   * response blocks before it. The dual form then holds [x_t of the response ; x_0].
   */
  from?: number;
}

/**
 * BD3-LM's vectorized training mask (kuleshov-group/bd3lms `block_diff_mask`) over the tokens
 * [x_t ; x_0] as an additive bias (0 visible, −∞ not), where x_t holds the noisy copies of
 * positions from..length − 1 (all of them by default) and x_0 the clean row. A query of block b sees
 *   x_t → x_t: its own noisy block b (block diagonal, M_BD);
 *   x_t → x_0: clean blocks before b (offset block-causal, M_OBC);
 *   x_0 → x_0: clean blocks up to b (block-causal, M_BC).
 * So the noisy copy of block b sees exactly what block b sees when it is decoded after clean
 * blocks 0..b − 1, and every block trains in one forward pass.
 */
export function blockDualMask(length: number, blockSize: number, from = 0): Float32Array {
  const noisy = length - from;
  const n = noisy + length;
  const blockOf = (i: number) => Math.floor((i < noisy ? from + i : i - noisy) / blockSize);
  const bias = new Float32Array(n * n).fill(Number.NEGATIVE_INFINITY);
  for (let q = 0; q < n; q++) {
    const qClean = q >= noisy;
    const qBlock = blockOf(q);
    for (let k = 0; k < n; k++) {
      const kClean = k >= noisy;
      const kBlock = blockOf(k);
      const visible =
        (qBlock === kBlock && qClean === kClean) ||
        (qBlock > kBlock && kClean && !qClean) ||
        (qBlock >= kBlock && kClean && qClean);
      if (visible) bias[q * n + k] = 0;
    }
  }
  return bias;
}

/**
 * Block diffusion (BD3-LM: Arriola et al. 2025, "Block Diffusion: Interpolating Between
 * Autoregressive and Diffusion Language Models"), for a model with block-causal attention
 * (`attention: "block_causal"`: a position sees its own block and every earlier block).
 *
 * BD3-LM's loss is Σ_b E_t[ (1/t) Σ_{masked i in block b} −log p(x_i | x_t^b, x^{<b}) ] / L:
 * block b is noised, the blocks before it are clean.
 *
 * - `context: "clean"` keeps BD3-LM's objective with L tokens: per row one block b (uniform),
 *   masked at the row's rate; blocks before b stay clean, and blocks after b cannot reach block
 *   b's logits under block-causal attention. Loss weights carry numBlocks / (p · normalizer), so
 *   the expectation over b is BD3-LM's loss; a forward pass trains one block.
 * - `context: "noisy"`: a rate per block (rates has rows · numBlocks entries), every block
 *   masked; block b then conditions on noisy earlier blocks. Every position trains, but it is
 *   not BD3-LM's bound and differs from decoding, where earlier blocks are clean.
 * - `context: "dual"`: BD3-LM's own trainer. Each row becomes [x_t ; x_0] (2L tokens, positions
 *   0..L−1 twice) under `blockDualMask` (the batch carries the bias and the positions), a rate
 *   per block as BD3-LM's `_sample_t`: every block trains against clean earlier blocks in one
 *   pass, weights 1 / (p_b · normalizer).
 *
 * Under the logit shift the first token of block b is predicted from position bS − 1, which
 * decoding computes against clean blocks only (src/diffusion/denoise.ts starts its window one
 * early): in the dual form that is the x_0 copy's hidden state. (Fast-dLLM v2's trainer reads
 * the x_t copy there instead, a noisy predecessor its decoder never sees.)
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
  const context = o.context ?? "clean";
  const from = o.from ?? 0;
  if (!Number.isInteger(from) || from < 0 || from >= length || from % S !== 0) {
    throw new RangeError(`from ${from} must be a multiple of the block size ${S} below ${length}`);
  }
  const blocks = length / S;
  const first = from / S; // the first block that is noised
  const copies = o.complementary ? 2 : 1;
  const dual = context === "dual";
  const noisy = dual ? length - from : 0; // x_t tokens before x_0 in a dual row
  const stride = noisy + length; // tokens per batch row
  const normalizer = (o.normalizer ?? rows * (length - from)) * copies;
  const eps = o.eps ?? defaultMaskEps;
  const tokens = new Int32Array(copies * rows * stride);
  for (let c = 0; c < copies * rows; c++) {
    const row = clean.subarray((c % rows) * length, ((c % rows) + 1) * length);
    if (dual) tokens.set(row.subarray(from), c * stride);
    tokens.set(row, c * stride + noisy);
  }
  const index: number[] = [];
  const targets: number[] = [];
  const weights: number[] = [];
  /** Masks position j of batch row `row` (a copy of clean row r); its loss weight divides by `rate`. */
  const maskAt = (row: number, r: number, j: number, rate: number, factor: number) => {
    const start = row * stride;
    const at = dual ? start + j - from : start + j; // where position j's noisy token is
    tokens[at] = o.maskId;
    let hidden = at;
    if (o.shift) {
      if (j === 0) return; // nothing before position 0 predicts it
      hidden = dual && j % S === 0 ? start + noisy + j - 1 : at - 1;
    }
    index.push(hidden);
    targets.push(clean[r * length + j]);
    weights.push(factor / (Math.max(rate, eps) * normalizer));
  };
  const noiseBlock = (r: number, b: number, p: number, factor: number) => {
    for (let j = b * S; j < (b + 1) * S; j++) {
      if (rng.next() < p) maskAt(r, r, j, p, factor);
      else if (copies === 2) maskAt(rows + r, r, j, 1 - p, factor);
    }
  };
  const noised = blocks - first;
  for (let r = 0; r < rows; r++) {
    if (context === "clean") noiseBlock(r, first + rng.int(noised), o.rates[r], noised);
    else for (let b = first; b < blocks; b++) noiseBlock(r, b, o.rates[r * noised + b - first], 1);
  }
  const batch: LossBatch = {
    tokens,
    rows: copies * rows,
    lossIndex: Int32Array.from(index),
    targets: Int32Array.from(targets),
    weights: Float32Array.from(weights),
  };
  if (dual) {
    batch.positions = Int32Array.from({ length: tokens.length }, (_, i) => {
      const k = i % stride;
      return k < noisy ? from + k : k - noisy;
    });
    batch.attentionBias = blockDualMask(length, S, from);
  }
  return batch;
}

/**
 * The next-token loss of the autoregressive twin (causal attention): the input is the clean row,
 * logits at position i predict token i + 1, for the targets at positions max(from, 1)..length − 1
 * (distillation rows set `from` to the prompt's length: only the response trains); weights
 * 1 / normalizer (default rows · (length − max(from, 1))).
 */
export function nextTokenBatch(
  clean: Int32Array,
  rows: number,
  length: number,
  normalizer?: number,
  from = 0,
): LossBatch {
  checkRows(clean, rows, length);
  const first = checkFrom(from, length);
  const per = length - first;
  const K = rows * per;
  const lossIndex = new Int32Array(K);
  const targets = new Int32Array(K);
  let k = 0;
  for (let r = 0; r < rows; r++) {
    for (let j = first; j < length; j++, k++) {
      lossIndex[k] = r * length + j - 1;
      targets[k] = clean[r * length + j];
    }
  }
  return {
    tokens: clean.slice(),
    rows,
    lossIndex,
    targets,
    weights: new Float32Array(K).fill(1 / (normalizer ?? K)),
  };
}

/** The first target position of a next-token loss from `from`: max(from, 1), checked. */
function checkFrom(from: number, length: number): number {
  if (length < 2) throw new RangeError("next-token rows need at least 2 tokens");
  if (!Number.isInteger(from) || from < 0 || from >= length) {
    throw new RangeError(`from ${from} must be an integer in [0, ${length})`);
  }
  return Math.max(from, 1);
}

export interface DraftOptions {
  /** Masks per draft block: the tokens a decoding round drafts. */
  blockSize: number;
  maskId: number;
  /** Weight of the draft loss beside the next-token loss (default 1). */
  weight?: number;
  /**
   * The first position the masks draft (distillation rows: the prompt's length, so that the
   * drafts learn the teacher's greedy text; default 0). The next-token loss covers every position.
   */
  from?: number;
  /** Of the next-token part (default rows · (length − 1)); the draft part is scaled alike. */
  normalizer?: number;
}

/**
 * TiDAR's training layout (Liu et al. 2025, "TiDAR: Think in Diffusion, Talk in
 * Autoregression", arXiv:2511.08923): one causal model that both verifies (next-token logits of
 * the clean tokens) and drafts (one denoising step over a block of masks), trained in one
 * forward pass over [x_0 ; masks]. Each row holds the clean tokens under causal attention — the
 * next-token loss at every position, exactly the AR twin's — followed by a copy of positions from..length − 1 made
 * of masks and cut into blocks of `blockSize`; a mask of block b sees the clean tokens before
 * its block and every mask of its block (bidirectional within the block, as the paper's
 * "fully masked" drafting blocks). A mask at position q predicts token q + 1, as the causal
 * rows do: at decoding time a block of masks follows the draft being verified, its first mask
 * where the verifier's own next token will be (src/diffusion/speculative.ts). loss = next-token
 * mean + weight · draft mean.
 */
export function draftBatch(
  clean: Int32Array,
  rows: number,
  length: number,
  o: DraftOptions,
): LossBatch {
  const from = o.from ?? 0;
  if (!Number.isInteger(from) || from < 0 || from >= length - 1) {
    throw new RangeError(`from ${from} must be an integer in [0, ${length - 1})`);
  }
  const ar = nextTokenBatch(clean, rows, length, o.normalizer);
  const S = o.blockSize;
  if (!Number.isInteger(S) || S < 1)
    throw new RangeError(`block size ${S}: expected an integer ≥ 1`);
  const masks = length - from;
  const stride = length + masks;
  const draftPerRow = length - 1 - from; // ≥ 1: the last mask has no next token
  // the draft mean over as many rows as the next-token normaliser counts
  const normalizedRows = (o.normalizer ?? rows * (length - 1)) / (length - 1);
  const draftWeight = (o.weight ?? 1) / (normalizedRows * draftPerRow);
  const tokens = new Int32Array(rows * stride).fill(o.maskId);
  // the next-token entries, at their rows' new stride; then each row's drafting masks
  const index = Array.from(ar.lossIndex, (i) => i + Math.floor(i / length) * masks);
  const targets = Array.from(ar.targets);
  const weights = Array.from(ar.weights);
  for (let r = 0; r < rows; r++) {
    tokens.set(clean.subarray(r * length, (r + 1) * length), r * stride);
    for (let q = from; q < length - 1; q++) {
      index.push(r * stride + length + q - from);
      targets.push(clean[r * length + q + 1]);
      weights.push(draftWeight);
    }
  }
  return {
    tokens,
    rows,
    positions: Int32Array.from({ length: rows * stride }, (_, i) => {
      const k = i % stride;
      return k < length ? k : from + k - length;
    }),
    attentionBias: draftMask(length, S, from),
    lossIndex: Int32Array.from(index),
    targets: Int32Array.from(targets),
    weights: Float32Array.from(weights),
  };
}

/**
 * draftBatch's attention over [x_0 (length) ; masks of positions from..length − 1] as an additive
 * bias (0 visible, −∞ not): x_0 causal; a mask of block b (blocks of `blockSize` from `from`)
 * sees x_0 before from + b·blockSize and the masks of block b.
 */
export function draftMask(length: number, blockSize: number, from = 0): Float32Array {
  const n = 2 * length - from;
  const bias = new Float32Array(n * n).fill(Number.NEGATIVE_INFINITY);
  for (let q = 0; q < n; q++) {
    if (q < length) {
      for (let k = 0; k <= q; k++) bias[q * n + k] = 0;
      continue;
    }
    const b = Math.floor((q - length) / blockSize);
    const start = from + b * blockSize; // the block's first position
    for (let k = 0; k < start; k++) bias[q * n + k] = 0;
    const first = length + b * blockSize;
    for (let k = first; k < Math.min(n, first + blockSize); k++) bias[q * n + k] = 0;
  }
  return bias;
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

/**
 * DiffuLLaMA's attention-mask annealing (Gong et al. 2025, "Scaling Diffusion Language Models
 * via Adaptation from Autoregressive Models", arXiv:2410.17891): adapting a causal model to
 * bidirectional attention gradually. Their trainer (LLaMA-Factory `train/ddm/trainer.py`)
 * uses at optimizer step s (0-based) the ratio min(1, (s + 1) / anneal_steps) ...
 */
export function annealRatio(step: number, annealSteps: number): number {
  return Math.min(1, (step + 1) / annealSteps);
}

/**
 * ... and `get_anneal_attn_mask`: the causal mask OR a Bernoulli(ratio) draw for every (query,
 * key) pair, one draw per forward pass shared by all rows, heads and layers. Returned as an
 * additive bias [length, length] (0 visible, −∞ not); undefined once the ratio reaches 1 (every
 * key visible: full attention, no bias). Draws only for the pairs above the diagonal.
 */
export function annealMask(length: number, ratio: number, rng: Rng): Float32Array | undefined {
  if (ratio >= 1) return undefined;
  const bias = new Float32Array(length * length);
  for (let q = 0; q < length; q++) {
    for (let k = q + 1; k < length; k++) {
      if (!(rng.next() < ratio)) bias[q * length + k] = Number.NEGATIVE_INFINITY;
    }
  }
  return bias;
}
