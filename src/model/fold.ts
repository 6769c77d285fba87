// The residual stream in a rotated basis, for the int8 form (QuaRot, Ashkboos et al. 2024, §4):
// the same model, its weights changed offline so that the inputs of q/k/v, gate/up and the LM
// head come already rotated and need no rotation in the graph. With R the orthogonal map of
// src/model/quant.ts (`rotateRows`) on the hidden width H, the stream x becomes x·R:
//   - the embedding's rows E·R;
//   - every RMSNorm's weight γ is moved into the linear weights that read its output, per input
//     channel (W·diag(γ)), and the norm keeps a weight of ones: RMSNorm without γ commutes with
//     R (it divides by the row's norm, which R keeps), so norm(x·R) = norm(x)·R;
//   - a weight that reads the stream (q, k, v, gate, up, the head) becomes W·diag(γ)·R, as
//     (norm(x)·R)·(W·diag(γ)·R)ᵀ = norm(x)·diag(γ)·Wᵀ;
//   - a weight that writes into it (o_proj, down_proj) becomes Rᵀ·W: its output y·R = a·(Rᵀ·W)ᵀ;
//   - the head no longer shares the embedding's values (E·R against E·diag(γ)·R): the folded
//     model is untied.
// Biases are on the outputs of q, k and v and do not change. A folded float model computes what
// the original does up to float rounding (the tests check it with the float64 reference).

import type { ModelConfig, WeightReader, Weights } from "./config.js";
import { oneProductBlock, rotateRows, rotationBlock } from "./quant.js";

const embedding = "model.embed_tokens.weight";

/** The layer prefix and RMSNorm before a linear weight that reads the stream, or undefined. */
function normBefore(name: string): string | undefined {
  if (name === "lm_head.weight") return "model.norm.weight";
  const m = /^(model\.layers\.\d+\.)(self_attn\.[qkv]_proj|mlp\.(gate|up)_proj)\.weight$/.exec(
    name,
  );
  if (m === null) return undefined;
  return `${m[1]}${m[2].startsWith("mlp.") ? "post_attention" : "input"}_layernorm.weight`;
}

/** Whether a linear weight writes into the residual stream (its output side is rotated). */
function writesStream(name: string): boolean {
  return /^model\.layers\.\d+\.(self_attn\.o_proj|mlp\.down_proj)\.weight$/.test(name);
}

/**
 * Inputs per block of the rotation the int8 graph applies to the input of linear weight `name`
 * (of `inDim` inputs) of a folded model: 1 (none) where it comes rotated (q, k, v, gate, up, the
 * head); for down_proj's, the widest, blocks of at most 64 (one product: on the 110M shape its
 * blocks of 2048 took two products and over half its own integer product's time; on the
 * embedded model top-1 agreement 99.12% against 99.07% with its whole block of 256); for
 * o_proj's, the largest power of two dividing the width (blocks of 64 there too: 98.87%).
 */
export function graphRotationBlock(name: string, inDim: number): number {
  if (normBefore(name) !== undefined) return 1;
  return name.endsWith(".mlp.down_proj.weight") ? oneProductBlock(inDim) : rotationBlock(inDim);
}

/** The folded model's config: the same but untied (the head is not the embedding any more). */
export function foldedConfig(config: ModelConfig): ModelConfig {
  return { ...config, tieWordEmbeddings: false };
}

/** w [rows, width] transposed. */
function transposed(w: Float32Array, rows: number, width: number): Float32Array {
  const t = new Float32Array(w.length);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < width; c++) t[c * rows + r] = w[r * width + c];
  }
  return t;
}

/**
 * The folded model's weights (of `foldedConfig(config)`), each computed from the original's when
 * read: a WeightReader over `weights`.
 */
export function foldResidual(config: ModelConfig, weights: Weights | WeightReader): WeightReader {
  const h = config.hiddenSize;
  const source = (name: string) =>
    name === "lm_head.weight" && config.tieWordEmbeddings ? embedding : name;
  const has = (name: string) => weights.has(source(name));
  const get = (name: string): Float32Array => {
    const w = weights instanceof Map ? weights.get(source(name)) : weights.read(source(name));
    if (w === undefined) throw new RangeError(`foldResidual: no weight ${name}`);
    return w;
  };
  const read = (name: string): Float32Array => {
    if (name === embedding) return rotateRows(get(name), config.vocabSize, h);
    if (name.endsWith("layernorm.weight") || name === "model.norm.weight") {
      return new Float32Array(h).fill(1);
    }
    const norm = normBefore(name);
    if (norm !== undefined) {
      const gamma = get(norm);
      const w = Float32Array.from(get(name));
      const out = w.length / h;
      for (let o = 0; o < out; o++) for (let i = 0; i < h; i++) w[o * h + i] *= gamma[i];
      return rotateRows(w, out, h);
    }
    if (writesStream(name)) {
      const w = get(name); // [H, in]
      const inDim = w.length / h;
      // (Rᵀ·W)ᵀ = Wᵀ·R: the rows of Wᵀ rotated
      return transposed(rotateRows(transposed(w, h, inDim), inDim, h), inDim, h);
    }
    return get(name);
  };
  return { has, read };
}
