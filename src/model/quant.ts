// Weight quantization of the layers' linear weights, done tensor by tensor while the graph is
// built, and the graph node that computes with them: ONNX Runtime's MatMulNBits (com.microsoft).
// Both int8 and int4 are block-wise along the input dimension and asymmetric: in each block of
// 16 inputs of one output, W ≈ scale · (q − zero) with q, zero in [0, 2^bits − 1]. The kernel
// runs at accuracy level 4: it quantizes the activations to int8 per block and multiplies in
// integers (its fast path on CPUs).
// Measured alternatives (bench quant, the embedded model): DynamicQuantizeMatMul with int8
// weights per output channel agreed with float32 on 94.4% of masked positions (activations
// quantized per tensor); blocks of 32 agreed on 98.7% (int8) and 94.9% (int4), blocks of 16 on
// 99.2% and 95.5%.
// The slow twin, `dequantizeBlocks`, states in plain arithmetic what the weights stand for.

import type { Tensor } from "../graph/graph.js";

export type QuantType = "int8" | "int4";
export const quantTypes: readonly QuantType[] = ["int8", "int4"];

/** Inputs per scale and zero point: 16, MatMulNBits' finest block. */
export const quantBlock = 16;

/** Bits of each quant type. */
export const quantBits: Readonly<Record<QuantType, 4 | 8>> = { int8: 8, int4: 4 };

export interface BlockWeight {
  bits: 4 | 8;
  /**
   * [out, blocks, quantBlock · bits / 8] uint8; at 4 bits two values a byte, the lower index in
   * the low nibble. A last block past the input width is padded with zero weights.
   */
  packed: Uint8Array;
  /** [out · blocks] */
  scale: Float32Array;
  /** [out · ⌈blocks · bits / 8⌉] uint8, packed like `packed` along the blocks of each output */
  zero: Uint8Array;
  blocks: number;
}

/** Values of `bits` bits per byte. */
const perByte = (bits: 4 | 8) => 8 / bits;

/** W [out, in] (PyTorch layout) → block-wise asymmetric `bits`-bit integers. */
export function quantizeBlocks(
  w: Float32Array,
  out: number,
  inDim: number,
  bits: 4 | 8,
): BlockWeight {
  const blocks = Math.ceil(inDim / quantBlock);
  const k = perByte(bits);
  const top = 2 ** bits - 1;
  const zeroBytes = Math.ceil(blocks / k);
  const row = blocks * quantBlock; // padded inputs per output
  const packed = new Uint8Array((out * row) / k);
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
      zero[o * zeroBytes + Math.floor(b / k)] |= z << ((b % k) * bits);
      for (let i = 0; i < quantBlock; i++) {
        const e = o * row + b * quantBlock + i;
        const q = Math.min(top, Math.max(0, Math.round(value(i) / s) + z));
        packed[Math.floor(e / k)] |= q << ((e % k) * bits);
      }
    }
  }
  return { bits, packed, scale, zero, blocks };
}

/** The float32 weight [out, in] a BlockWeight stands for. */
export function dequantizeBlocks(w: BlockWeight, out: number, inDim: number): Float32Array {
  const x = new Float32Array(out * inDim);
  const k = perByte(w.bits);
  const mask = 2 ** w.bits - 1;
  const zeroBytes = Math.ceil(w.blocks / k);
  const row = w.blocks * quantBlock;
  for (let o = 0; o < out; o++) {
    for (let i = 0; i < inDim; i++) {
      const e = o * row + i;
      const b = Math.floor(i / quantBlock);
      const q = (w.packed[Math.floor(e / k)] >> ((e % k) * w.bits)) & mask;
      const z = (w.zero[o * zeroBytes + Math.floor(b / k)] >> ((b % k) * w.bits)) & mask;
      x[o * inDim + i] = (q - z) * w.scale[o * w.blocks + b];
    }
  }
  return x;
}

/** Bytes of a weight [out, in] in `bits`-bit blocks: packed values, scales and zero points. */
export function blockBytes(out: number, inDim: number, bits: 4 | 8): number {
  const blocks = Math.ceil(inDim / quantBlock);
  return (
    out * (blocks * ((quantBlock * bits) / 8) + 4 * blocks + Math.ceil(blocks / perByte(bits)))
  );
}

/**
 * x @ Wᵀ through MatMulNBits for x [..., in] and the weight `quantize()` makes (quantizeBlocks).
 * The weight is made when the graph is serialised, once for its three initializers, and dropped
 * after the last: loading holds one float tensor at a time. `accuracy` 4 (the engine's)
 * quantizes activations to int8 per block; 0 keeps them float32 (the exact twin of a float MatMul
 * with the dequantized weight, which the tests use).
 */
export function blockLinear(
  x: Tensor,
  name: string,
  quantize: () => BlockWeight,
  out: number,
  inDim: number,
  bits: 4 | 8,
  accuracy: 0 | 4 = 4,
): Tensor {
  const g = x.graph;
  const blocks = Math.ceil(inDim / quantBlock);
  let made: BlockWeight | undefined;
  let left = 3;
  const part = (pick: (w: BlockWeight) => Uint8Array | Float32Array) => () => {
    made ??= quantize();
    const data = pick(made);
    if (--left === 0) made = undefined;
    return data;
  };
  const blob = (quantBlock * bits) / 8;
  const zeroBytes = Math.ceil(blocks / perByte(bits));
  const b = g.initializer(
    `${name}.q${bits}`,
    "uint8",
    [out, blocks, blob],
    part((w) => w.packed),
  );
  const scale = g.initializer(
    `${name}.scale`,
    "float32",
    [out * blocks],
    part((w) => w.scale),
  );
  const zero = g.initializer(
    `${name}.zero`,
    "uint8",
    [out * zeroBytes],
    part((w) => w.zero),
  );
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
