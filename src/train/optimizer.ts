// AdamW over one flat Float32Array of parameters (llm.c keeps every parameter in one contiguous
// buffer, so the update is a single loop), with gradient clipping by global norm.
//
// The update is PyTorch's `torch.optim.AdamW` (Loshchilov & Hutter, "Decoupled Weight Decay
// Regularization", 2019), element by element, computed in float64 and stored in float32:
//
//   p ← p · (1 − lr·λ)                          (decoupled decay, only where decay[i] = 1)
//   m ← β₁m + (1 − β₁)g        v ← β₂v + (1 − β₂)g²
//   p ← p − (lr / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε)
//
// Which parameters decay follows nanoGPT's `configure_optimizers`: every tensor of two or more
// dimensions (the matmul weights and the embedding) decays; vectors (RMSNorm weights, biases) do
// not.

export interface AdamWOptions {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

/** nanoGPT's defaults for GPT-2-style pre-training (β₂ = 0.95, λ = 0.1). */
export const defaultAdamW: AdamWOptions = { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 };

/** Where a parameter tensor lies in the flat buffer. */
export interface FlatSlice {
  shape: readonly number[];
  offset: number;
  size: number;
}

/** 1 where weight decay applies (tensors of rank ≥ 2), 0 elsewhere. */
export function decayMask(layout: readonly FlatSlice[], size: number): Uint8Array {
  const mask = new Uint8Array(size);
  for (const p of layout) if (p.shape.length >= 2) mask.fill(1, p.offset, p.offset + p.size);
  return mask;
}

export class AdamW {
  readonly m: Float32Array;
  readonly v: Float32Array;
  /** Updates done so far (t of the bias correction is step + 1 during an update). */
  step = 0;

  constructor(
    readonly size: number,
    readonly decay: Uint8Array,
    readonly options: AdamWOptions = defaultAdamW,
  ) {
    if (decay.length !== size) throw new RangeError(`decay mask has ${decay.length} != ${size}`);
    this.m = new Float32Array(size);
    this.v = new Float32Array(size);
  }

  /** One update of `params` in place from `grad` at learning rate `lr`. */
  update(params: Float32Array, grad: Float32Array, lr: number): void {
    const { beta1, beta2, eps, weightDecay } = this.options;
    const { m, v, decay } = this;
    if (params.length !== this.size || grad.length !== this.size) {
      throw new RangeError(`AdamW.update: expected ${this.size} parameters and gradients`);
    }
    this.step++;
    const stepSize = lr / (1 - beta1 ** this.step);
    const sqrtCorrection2 = Math.sqrt(1 - beta2 ** this.step);
    const shrink = 1 - lr * weightDecay;
    for (let i = 0; i < params.length; i++) {
      const g = grad[i];
      const mi = beta1 * m[i] + (1 - beta1) * g;
      const vi = beta2 * v[i] + (1 - beta2) * g * g;
      m[i] = mi;
      v[i] = vi;
      const p = decay[i] === 1 ? params[i] * shrink : params[i];
      params[i] = p - (stepSize * mi) / (Math.sqrt(vi) / sqrtCorrection2 + eps);
    }
  }
}

/** The L2 norm of `grad` (float64 accumulation). */
export function globalNorm(grad: Float32Array): number {
  let sum = 0;
  for (let i = 0; i < grad.length; i++) sum += grad[i] * grad[i];
  return Math.sqrt(sum);
}

/**
 * Scales `grad` in place so that its global L2 norm is at most `maxNorm` (as PyTorch's
 * `clip_grad_norm_`: factor maxNorm / (norm + 1e-6), applied only when below 1). Returns the
 * norm before clipping. `maxNorm` ≤ 0 or Infinity: no clipping.
 */
export function clipGradNorm(grad: Float32Array, maxNorm: number): number {
  const norm = globalNorm(grad);
  if (maxNorm > 0 && Number.isFinite(maxNorm)) {
    const factor = maxNorm / (norm + 1e-6);
    if (factor < 1) for (let i = 0; i < grad.length; i++) grad[i] *= factor;
  }
  return norm;
}
