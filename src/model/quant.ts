// Weight quantization of the linear layers, done tensor by tensor while the graph is built, and
// the graph nodes that compute with them.
//
// int8 (`channelLinear`), every linear layer and the LM head: activations and weights rotated
// by the same orthogonal map R (a Hadamard transform per block of inputs, so x·Wᵀ =
// (x·R)·(W·R)ᵀ), then W·R in int8 symmetric per output channel and x·R in int8 per token
// (s = max|x·R| / 127 per row), multiplied in integers by ONNX Runtime's MatMulIntegerToFloat
// (com.microsoft), whose uint8 × int8 GEMM uses AVX512-VNNI / AVX-VNNI, and scaled back by
// scale[o] in the node and by s where the transformer puts it (src/model/transformer.ts: into
// the rotary tables for q and k, into down's row scale for up). The rotation spreads a row's
// outliers over its block, so the per-token scale is not set by a few channels (QuaRot,
// Ashkboos et al. 2024). The engine rotates the residual stream offline (src/model/fold.ts): the
// inputs of q/k/v, gate/up and the head come rotated and skip R in the graph (a block of 1);
// those of o_proj (in its largest power-of-two block, two products) and down_proj (blocks of 64,
// one product) are rotated here (fold.ts' graphRotationBlock). The projections that read the
// same activations (q, k, v; gate, up) share one quantization of them, a product each (one
// product of the weights side by side, sliced after, spent ~10-40 ms of a forward copying the
// slices).
// int4 (`blockLinear`), the layers' linear weights: block-wise asymmetric 4-bit weights through
// MatMulNBits at accuracy level 4 (activations quantized to int8 per block; its integer fast path
// on CPUs): in each block of 16 inputs of one output, W ≈ scale · (q − zero), q, zero in [0, 15];
// v_proj's and an untied head's in 8 bits the same way (blockBits); a tied head stays float32.
// int4-lean: the same weights at accuracy level 0 (float32 arithmetic), which loads in less
// memory (blockAccuracy).
//
// Measured alternatives (AMD EPYC Zen 5 with AVX512-VNNI, 2 threads, onnxruntime-node 1.30, a
// shared machine). One [256, 768] × [768, 3072] projection against float
// MatMul, medians of interleaved runs at load 1.7 (under load 5–8 the ratios read higher and
// scattered): MatMulIntegerToFloat with per-token scales (this form, rotation aside) 2.0–2.2×
// float's speed; DynamicQuantizeMatMul (per-tensor activations) 2.5–2.6×; MatMulNBits 8 bits
// at accuracy 4 1.15× in blocks of 32 (1.0–2.2× under load for blocks of 16 to 128), at
// accuracy 0 0.8×; MatMulInteger with int8 activations (int8 × int8) 0.17× (no VNNI kernel for
// it on this CPU); MatMulNBits 4 bits 0.9–1.8×. The whole 110M forward: see docs/BENCHMARKS.md
// (on one thread int8 is 2.3–2.6× float32; with the per-token scale given to the node it did
// not scale to two threads as float32 does: see channelLinear).
// Top-1 agreement with float32 at masked positions (bench quant: the embedded model, 16 canvases,
// 2039 positions; "/64": 64 canvases, 8157): DynamicQuantizeMatMul (activations per tensor)
// 94.4%; per-token activations without rotation 98.0%, the same with float weights 98.0% (the
// activations were the error), int8 weights with float activations 99.6%; rotated, the head kept
// float32 99.4% (99.1% /64) but the forward only 1.6–1.8× float32's speed (the float head is a
// fifth of the work); rotated, every layer and the head, rotations in the graph 99.1% (98.8%
// /64); this form (the residual stream rotated offline, fold.ts) 99.2% (98.9% /64); that with
// o_proj's input also rotated offline, per head (QuaRot's H_head folded into v and o, no
// rotation left but down_proj's) 98.7% (98.9% /64); this form with one scale per tensor for the
// inputs that come from an RMSNorm (rows of one norm: no per-token Mul after the product)
// 98.5% (98.6% /64); that with
// the head's activations in two int8 parts (what the first leaves quantized again) 99.4% (99.0%
// /64) at ~18% more time; also two parts for every layer 99.2% /64 (the int8 weights' floor);
// exact float logits for the head's top 4 99.4% (99.1% /64) at twice the time (ScatterElements);
// Hadamard blocks of at most 64 (one product each) 98.5–98.8%, random signs on the rotation
// 98.8% (98.9% /64). With the rotary embedding as one node and the scale folds (2026-12-03):
// 99.07%; then down_proj's input in blocks of 64 (one product), o_proj's in one of 256 (two):
// 99.12% (98.90% /64); every rotation in the graph in blocks of 64 (the offline one without
// the permutation): 98.87% (98.82% /64). On 256 canvases (32,537 positions, the bench's default
// since): 98.79%; int8 weights with float activations 99.23%, int8 activations with exact
// weights 99.05%, layer 0 and the head float32 99.44% at 1.40× float32's speed
// (docs/BENCHMARKS.md, "Quantization"). Rotating down_proj's 2048 inputs (110M shape) as
// 8 · 16 · 16 (three products, 40 multiply-adds per input instead of 96) was slower than as
// 32 · 64: each product is a pass over the activations, ~0.12–0.16 ms. MatMulNBits 8 bits with
// the head float32: 98.7% in blocks of 32, 99.2% in blocks of 16 (1.05–1.33× float32's speed
// on the 110M shape). int4: 94.9% in blocks of 32, 95.5% in blocks of 16; on 256 canvases
// (32,537 positions, 2026-12-03) 94.98%, with v_proj in 8 bits 96.01%; not kept: each block's
// range shrunk to the least squared error (94.95–94.85%), the int8 form's rotated residual
// stream (94.59%), the norm weights moved into the linear weights without rotation (94.49%).
// The slow twins, `channelLinearReference` and `dequantizeBlocks`, state in plain arithmetic
// what the nodes compute.

import type { Tensor } from "../graph/graph.js";
import * as op from "../graph/ops.js";

export type QuantType = "int8" | "int4" | "int4-lean";
export const quantTypes: readonly QuantType[] = ["int8", "int4", "int4-lean"];

/**
 * int4-lean: int4's weights, multiplied in float32 (MatMulNBits at accuracy level 0). At level 4
 * onnxruntime repacks each weight when the session is made, with a sum per block, and holds the
 * stored originals until it is made: loading a 2.3 GB (float32) BF16 checkpoint peaked at 2.01×
 * the int4 weights, the Qwen2.5-7B shape at 15.0 GB; at level 0, 1.45× and 9.9 GB. Level 4 is the
 * faster (the 580M bench shape, medians of 7: one token 22–28 ms against 65–118, 32 tokens 95–117
 * against 192–212; the 7B shape's 32 tokens 1.37 s against 3.21).
 */
export const blockAccuracy = (quant: "int4" | "int4-lean"): 0 | 4 => (quant === "int4" ? 4 : 0);

// ---- int8: rotated, per output channel × per token -------------------------------------------

/** An int8 weight, symmetric per output channel: (W·R)[o, i] ≈ scale[o] · q[i, o]. */
export interface ChannelWeight {
  /** [in, out] int8: transposed, the right-hand side of x @ Wᵀ */
  q: Int8Array;
  /** [out] */
  scale: Float32Array;
}

/** The largest magnitude of an int8 value used: the range is symmetric, [−127, 127]. */
const int8Top = 127;

/** Keeps a row of zeros from a zero scale (far below any activation's own). */
const tiny = 1e-30;

/** Inputs per rotation block, unless chosen otherwise: the largest power of two dividing `inDim`. */
export function rotationBlock(inDim: number): number {
  let b = 1;
  while (inDim % (2 * b) === 0) b *= 2;
  return b;
}

/** The largest block the graph rotates with one product, x [M · in / b, b] · H_b. */
const oneProductTop = 64;

/** Inputs per rotation block for a rotation the graph does in one product: at most oneProductTop. */
export function oneProductBlock(inDim: number): number {
  return Math.min(rotationBlock(inDim), oneProductTop);
}

/**
 * The block b as b1 · b2, the graph's two products (b1 = 1: one), both powers of two: one
 * product up to oneProductTop (b multiply-adds per input), else two (b1 ≤ b2, b1 + b2 per input).
 */
function factors(b: number): [number, number] {
  const b1 = b <= oneProductTop ? 1 : 2 ** Math.floor(Math.log2(b) / 2);
  return [b1, b / b1];
}

/** The Sylvester–Hadamard matrix H_n / √n, [n, n] row-major: symmetric and orthogonal. */
function hadamard(n: number): Float32Array {
  const h = new Float32Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      let parity = 0;
      for (let k = i & j; k; k >>= 1) parity ^= k & 1;
      h[i * n + j] = (parity ? -1 : 1) / Math.sqrt(n);
    }
  }
  return h;
}

/**
 * R, block by block of b inputs: a block as a matrix X [b1, b2] (factors(b)) becomes
 * (H_b1 · X · H_b2)ᵀ flattened, which is x·H_b (H_b = H_b1 ⊗ H_b2, by the fast Walsh–Hadamard
 * transform) with index i1·b2 + i2 moved to i2·b1 + i1. `inverse` applies Rᵀ. Reads
 * src[at, at + in), writes dst[at, at + in).
 */
function rotateRow(
  src: ArrayLike<number>,
  dst: Float32Array,
  at: number,
  inDim: number,
  inverse: boolean,
  b: number,
): void {
  const [b1, b2] = factors(b);
  const block = new Float64Array(b);
  for (let start = at; start < at + inDim; start += b) {
    for (let i1 = 0; i1 < b1; i1++) {
      for (let i2 = 0; i2 < b2; i2++) {
        // Rᵀ = Pᵀ·H_b: undo the move first
        block[i1 * b2 + i2] = src[start + (inverse ? i2 * b1 + i1 : i1 * b2 + i2)];
      }
    }
    for (let half = 1; half < b; half *= 2) {
      for (let i = 0; i < b; i += 2 * half) {
        for (let j = i; j < i + half; j++) {
          const u = block[j];
          const v = block[j + half];
          block[j] = u + v;
          block[j + half] = u - v;
        }
      }
    }
    const norm = 1 / Math.sqrt(b);
    for (let i1 = 0; i1 < b1; i1++) {
      for (let i2 = 0; i2 < b2; i2++) {
        dst[start + (inverse ? i1 * b2 + i2 : i2 * b1 + i1)] = block[i1 * b2 + i2] * norm;
      }
    }
  }
}

/** x [rows, in] · R (or · Rᵀ) in blocks of `block` inputs, row by row. */
export function rotateRows(
  x: Float32Array,
  rows: number,
  inDim: number,
  inverse = false,
  block = rotationBlock(inDim),
): Float32Array {
  const y = new Float32Array(rows * inDim);
  for (let r = 0; r < rows; r++) rotateRow(x, y, r * inDim, inDim, inverse, block);
  return y;
}

/** x [..., in] · R in the graph, in blocks of b inputs: one or two small products. */
export function rotateInGraph(x: Tensor, b: number): Tensor {
  const g = x.graph;
  const [b1, b2] = factors(b);
  const h = (n: number) =>
    g.initializer(g.freeName(`hadamard${n}`), "float32", [n, n], hadamard(n));
  const right = op.matmul(op.reshape(x, [-1, b1, b2]), h(b2)); // [blocks, b1, b2]: X·H_b2
  if (b1 === 1) return op.reshapeAs(right, x);
  const left = op.matmul(op.transpose(right, [0, 2, 1]), h(b1)); // [blocks, b2, b1]: (H_b1·X·H_b2)ᵀ
  return op.reshapeAs(left, x); // [..., in]
}

/**
 * W [out, in] (PyTorch layout) → W·R in int8 per output channel, one row at a time, R in blocks
 * of `block` inputs; W itself for a block of 1 (a weight whose input comes rotated already,
 * src/model/fold.ts).
 */
export function quantizeChannels(
  w: Float32Array,
  out: number,
  inDim: number,
  block = rotationBlock(inDim),
): ChannelWeight {
  const q = new Int8Array(inDim * out);
  const scale = new Float32Array(out);
  const row = new Float32Array(inDim);
  for (let o = 0; o < out; o++) {
    const values = w.subarray(o * inDim, (o + 1) * inDim);
    rotateRow(values, row, 0, inDim, false, block);
    let top = 0;
    for (let i = 0; i < inDim; i++) top = Math.max(top, Math.abs(row[i]));
    const s = top === 0 ? 1 : top / int8Top;
    scale[o] = s;
    for (let i = 0; i < inDim; i++) q[i * out + o] = Math.round(row[i] / s);
  }
  return { q, scale };
}

/**
 * The float32 weight [out, in] a ChannelWeight stands for: its dequantized W·R, times Rᵀ (R in
 * blocks of `block` inputs, as quantized; a block of 1: as it is).
 */
export function dequantizeChannels(
  w: ChannelWeight,
  out: number,
  inDim: number,
  block = rotationBlock(inDim),
): Float32Array {
  const rotated = new Float32Array(out * inDim);
  for (let o = 0; o < out; o++) {
    for (let i = 0; i < inDim; i++) rotated[o * inDim + i] = w.q[i * out + o] * w.scale[o];
  }
  return rotateRows(rotated, out, inDim, true, block);
}

/** Rounds half to even, as QuantizeLinear does. */
function roundEven(v: number): number {
  const r = Math.round(v); // half up
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * The slow twin of quantizeTokens and channelLinear: x [rows, in] rotated in blocks of `block`
 * (1: not at all) and quantized per row in plain arithmetic, the integer product, and the two
 * scales; returns [rows, out].
 */
export function channelLinearReference(
  x: Float32Array,
  rows: number,
  w: ChannelWeight,
  out: number,
  inDim: number,
  block = rotationBlock(inDim),
): Float32Array {
  const rotated = rotateRows(x, rows, inDim, false, block);
  const y = new Float32Array(rows * out);
  const q = new Int32Array(inDim);
  for (let r = 0; r < rows; r++) {
    let top = 0;
    for (let i = 0; i < inDim; i++) top = Math.max(top, Math.abs(rotated[r * inDim + i]));
    const s = Math.fround(Math.fround(top * Math.fround(1 / int8Top)) + tiny);
    for (let i = 0; i < inDim; i++) q[i] = roundEven(Math.fround(rotated[r * inDim + i] / s));
    for (let o = 0; o < out; o++) {
      let sum = 0; // exact: |sum| < 2^31
      for (let i = 0; i < inDim; i++) sum += q[i] * w.q[i * out + o];
      y[r * out + o] = sum * s * w.scale[o];
    }
  }
  return y;
}

/**
 * Activations x [..., in] rotated in blocks of `block` inputs (1: not at all, an input that comes
 * rotated) and quantized per token for channelLinear: `q` uint8 [..., in], x·R ≈ scale ·
 * (q − zero), `zero` 128, `scale` float32 [..., 1]. Inputs with as many rows may share `zeros`.
 */
export interface TokenQuant {
  q: Tensor;
  scale: Tensor;
  zero: Tensor;
  /** uint8 [M] of 128s for x's M rows: QuantizeLinear's zero point per row */
  zeros: Tensor;
}

export function quantizeTokens(
  x: Tensor,
  block = rotationBlock(x.shape[x.rank - 1] as number),
  zeros?: Tensor,
): TokenQuant {
  const g = x.graph;
  const inDim = x.shape[x.rank - 1] as number;
  const rotated = block > 1 ? rotateInGraph(x, block) : x; // [..., in]
  const scale = op.add(op.mul(op.reduceMax(op.abs(rotated), [-1]), 1 / int8Top), tiny); // [..., 1]
  const rowScale = op.reshape(scale, [-1]); // [M]
  const zero = g.scalar(128, "uint8");
  const perRow = zeros ?? op.expand(zero, op.shapeOf(rowScale), rowScale.shape); // [M]
  // QuantizeLinear takes one scale per row along axis 0 of a matrix: x as [M, in], back after
  const rows = op.reshape(rotated, [-1, inDim]); // [M, in]
  const q = g.node(
    "QuantizeLinear",
    [rows, rowScale, perRow],
    [{ dtype: "uint8", shape: rows.shape }],
    { axis: { i: 0 } },
  )[0];
  return { q: op.reshapeAs(q, x), scale, zero, zeros: perRow }; // [..., in]
}

/**
 * x @ Wᵀ through MatMulIntegerToFloat for activations quantized by quantizeTokens and W by
 * quantizeChannels, but for the factor x.scale per row: the product's rows times x.scale are
 * x @ Wᵀ (the transformer multiplies it in where it costs least, src/model/transformer.ts). The
 * weight is made by `weight` when the graph is serialised (a checkpoint's tensor read and
 * quantized just then) and released once both its tensors are written.
 */
export function channelLinear(
  x: TokenQuant,
  name: string,
  out: number,
  inDim: number,
  weight: () => ChannelWeight,
): Tensor {
  const g = x.q.graph;
  let held: ChannelWeight | undefined;
  const q = g.initializer(`${name}.q8`, "int8", [inDim, out], () => {
    held = weight();
    return held.q;
  });
  const scale = g.initializer(`${name}.scale`, "float32", [out], () => {
    const values = (held ?? weight()).scale;
    held = undefined;
    return values;
  });
  const shape = [...x.q.shape.slice(0, -1), out];
  // The node takes a scale of 1 for the activations, their per-token scales left to the caller:
  // given a non-scalar a_scale, onnxruntime scales the output in a second pass on one thread
  // (ScaleOutput in dynamic_quantize_matmul.cc), which kept the int8 forward from using the
  // second core.
  return g.node(
    "MatMulIntegerToFloat",
    [x.q, q, g.scalar(1), scale, x.zero],
    [{ dtype: "float32", shape }],
    {},
    "com.microsoft",
  )[0];
}

// ---- int4: blocks of 16 inputs, MatMulNBits ---------------------------------------------------

/** Inputs per scale and zero point: 16, MatMulNBits' finest block. */
export const quantBlock = 16;

/** Bits per weight in MatMulNBits' blocks: 4, and 8 for the weights that need more (blockBits). */
export type BlockBits = 4 | 8;

/**
 * The bits the int4 form gives linear weight `name`: 8 for v_proj and an untied head, 4 for every
 * other. llama.cpp's k-quant mixtures give attn_v (and the output, Q6_K) more bits for the same
 * reason (llama-quant.cpp,
 * llama_tensor_get_type: Q6_K for attn_v in Q4_K_M's chosen layers; "a nice boost in quantization
 * accuracy with nearly negligible increase in model size" where v is small). Measured on the
 * embedded model (256 canvases, 32,537 masked positions), top-1 agreement with float32 at 4 bits
 * everywhere 94.98%; one weight kept float32 at a time, layer 0's v_proj gave the most (95.97%),
 * the 4 v_proj together 96.07%, layer 0's q/k/v 96.36%. v_proj is 1/12 of a layer's linear
 * weights without grouped-query attention, under 1% in a Qwen2.5-7B layer (4 KV heads of 28).
 * The head in 8 bits read 96.03% against 96.01% in float32 (the embedded model's, tied, made its
 * own weight for the measurement).
 */
export function blockBits(name: string): BlockBits {
  return name.endsWith(".self_attn.v_proj.weight") || name === untiedHead ? 8 : 4;
}

/**
 * The LM head's own weight, which int4 quantizes to 8 bits (blockBits) when the model has one:
 * a tied head reads the embedding, which the lookup holds in float32 anyway (an 8-bit copy
 * beside it raised the tied 580M bench model's memory, 1.09 → 1.25 GB after loading).
 */
export const untiedHead = "lm_head.weight";

export interface BlockWeight {
  bits: BlockBits;
  /**
   * [out, blocks, quantBlock · bits / 8] uint8, 8 / bits values a byte, the lower index in the
   * lower bits. A last block past the input width is padded with zero weights.
   */
  packed: Uint8Array;
  /** [out · blocks] */
  scale: Float32Array;
  /** [out · ⌈blocks · bits / 8⌉] uint8, packed like `packed` along the blocks of each output */
  zero: Uint8Array;
  blocks: number;
}

/** Values a byte holds, the largest value, and the bytes of the zero points of one output. */
function blockLayout(bits: BlockBits, blocks: number) {
  const perByte = 8 / bits;
  return { perByte, top: 2 ** bits - 1, zeroBytes: Math.ceil(blocks / perByte) };
}

/** W [out, in] (PyTorch layout) → block-wise asymmetric integers of `bits` bits. */
export function quantizeBlocks(
  w: Float32Array,
  out: number,
  inDim: number,
  bits: BlockBits = 4,
): BlockWeight {
  const blocks = Math.ceil(inDim / quantBlock);
  const { perByte, top, zeroBytes } = blockLayout(bits, blocks);
  const row = blocks * quantBlock; // padded inputs per output
  const packed = new Uint8Array((out * row) / perByte);
  const scale = new Float32Array(out * blocks);
  const zero = new Uint8Array(out * zeroBytes);
  for (let o = 0; o < out; o++) {
    for (let b = 0; b < blocks; b++) {
      const value = (i: number) => {
        const col = b * quantBlock + i;
        return col < inDim ? w[o * inDim + col] : 0;
      };
      let min = 0;
      let max = 0;
      for (let i = 0; i < quantBlock; i++) {
        min = Math.min(min, value(i));
        max = Math.max(max, value(i));
      }
      const s = max === min ? 1 : (max - min) / top;
      const z = Math.min(top, Math.max(0, Math.round(-min / s)));
      scale[o * blocks + b] = s;
      zero[o * zeroBytes + Math.floor(b / perByte)] |= z << ((b % perByte) * bits);
      for (let i = 0; i < quantBlock; i++) {
        const e = o * row + b * quantBlock + i;
        const q = Math.min(top, Math.max(0, Math.round(value(i) / s) + z));
        packed[Math.floor(e / perByte)] |= q << ((e % perByte) * bits);
      }
    }
  }
  return { bits, packed, scale, zero, blocks };
}

/** The float32 weight [out, in] a BlockWeight stands for. */
export function dequantizeBlocks(w: BlockWeight, out: number, inDim: number): Float32Array {
  const x = new Float32Array(out * inDim);
  const { perByte, top, zeroBytes } = blockLayout(w.bits, w.blocks);
  const row = w.blocks * quantBlock;
  /** Value e of bytes packed perByte to a byte (an output's values start on a whole byte). */
  const at = (bytes: Uint8Array, e: number) =>
    (bytes[Math.floor(e / perByte)] >> ((e % perByte) * w.bits)) & top;
  for (let o = 0; o < out; o++) {
    for (let i = 0; i < inDim; i++) {
      const b = Math.floor(i / quantBlock);
      const z = at(w.zero, o * zeroBytes * perByte + b);
      x[o * inDim + i] = (at(w.packed, o * row + i) - z) * w.scale[o * w.blocks + b];
    }
  }
  return x;
}

/**
 * x @ Wᵀ through MatMulNBits for x [..., in] and W quantized by quantizeBlocks to `bits` bits. The
 * weight is made by `weight` when the graph is serialised and released once its three tensors are
 * written. `accuracy` 4 (the engine's) quantizes activations to int8 per block; 0 keeps them
 * float32 (the exact twin of a float MatMul with the dequantized weight, which the tests use).
 */
export function blockLinear(
  x: Tensor,
  name: string,
  out: number,
  inDim: number,
  bits: BlockBits,
  weight: () => BlockWeight,
  accuracy: 0 | 4 = 4,
): Tensor {
  const g = x.graph;
  const blocks = Math.ceil(inDim / quantBlock);
  const { perByte, zeroBytes } = blockLayout(bits, blocks);
  let held: BlockWeight | undefined;
  let taken = 0;
  const part =
    <K extends "packed" | "scale" | "zero">(key: K) =>
    (): BlockWeight[K] => {
      held ??= weight();
      if (held.bits !== bits)
        throw new RangeError(`${name}: ${held.bits}-bit weight, ${bits} expected`);
      const values = held[key];
      if (++taken % 3 === 0) held = undefined; // all three written: let it go
      return values;
    };
  const blob = quantBlock / perByte;
  const b = g.initializer(`${name}.q${bits}`, "uint8", [out, blocks, blob], part("packed"));
  const scale = g.initializer(`${name}.scale`, "float32", [out * blocks], part("scale"));
  const zero = g.initializer(`${name}.zero`, "uint8", [out * zeroBytes], part("zero"));
  const shape = [...x.shape.slice(0, -1), out];
  return g.node(
    "MatMulNBits",
    [x, b, scale, zero],
    [{ dtype: "float32", shape }],
    {
      K: { i: inDim },
      N: { i: out },
      bits: { i: bits },
      block_size: { i: quantBlock },
      accuracy_level: { i: accuracy },
    },
    "com.microsoft",
  )[0];
}
