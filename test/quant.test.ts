// int8/int4 weights (src/model/quant.ts): the rotation, the int8 nodes against their slow twin,
// the int4 packing against its slow twin, the MatMulNBits node against a float MatMul of the
// dequantized weight, and a quantized engine against the float64 reference of the dequantized
// model. Also the --device option the same engine options carry.

import assert from "node:assert/strict";
import { test } from "node:test";
import { Graph } from "../src/graph/graph.js";
import * as op from "../src/graph/ops.js";
import { type ModelConfig, parameterShapes, type Weights } from "../src/model/config.js";
import { buildInferenceGraph, OnnxModel } from "../src/model/engine.js";
import { foldedConfig, foldResidual, graphRotationBlock } from "../src/model/fold.js";
import {
  blockBits,
  blockLinear,
  channelLinear,
  channelLinearReference,
  dequantizeBlocks,
  dequantizeChannels,
  type QuantType,
  quantBlock,
  quantizeBlocks,
  quantizeChannels,
  quantizeTokens,
  quantTypes,
  rotateInGraph,
  rotateRows,
  rotationBlock,
} from "../src/model/quant.js";
import { randomWeights } from "../src/model/random.js";
import { ReferenceModel } from "../src/model/reference.js";
import { DeviceError, floatTensor, Session } from "../src/runtime/session.js";
import { relativeError, tinyModelConfig } from "./tiny-config.js";

function seeded(n: number, seed: number): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  });
}

test("the rotation: blocks of the largest power of two dividing the width, orthogonal, undone by its transpose", () => {
  assert.deepEqual([256, 768, 2048, 72, 3584].map(rotationBlock), [256, 256, 2048, 8, 512]);
  const [rows, inDim] = [3, 96];
  const x = seeded(rows * inDim, 11);
  const y = rotateRows(x, rows, inDim);
  for (let r = 0; r < rows; r++) {
    const norm = (v: Float32Array) => Math.hypot(...v.subarray(r * inDim, (r + 1) * inDim));
    assert.ok(Math.abs(norm(y) - norm(x)) < 1e-5 * norm(x), `row ${r}: norm kept`);
  }
  assert.ok(relativeError(y, x) > 0.5, "it moves the values");
  assert.ok(relativeError(rotateRows(y, rows, inDim, true), x) < 1e-6);
});

test("int8 weights: W·R within half a step per output channel; dequantizeChannels gives W back closely", () => {
  const [out, inDim] = [5, 48];
  const w = seeded(out * inDim, 3);
  w[7] = 9; // an outlier: the rotation spreads it over its block
  const q = quantizeChannels(w, out, inDim);
  const rotated = rotateRows(w, out, inDim);
  for (let o = 0; o < out; o++) {
    for (let i = 0; i < inDim; i++) {
      const e = Math.abs(q.q[i * out + o] * q.scale[o] - rotated[o * inDim + i]);
      assert.ok(e <= q.scale[o] / 2 + 1e-6, `[${o}, ${i}]: error ${e}, step ${q.scale[o]}`);
    }
  }
  assert.ok(relativeError(dequantizeChannels(q, out, inDim), w) < 0.01);
});

test("the graph's rotation (one product up to blocks of 64, two above) equals rotateRows", async () => {
  const rows = 3;
  for (const [inDim, block] of [
    [72, 8],
    [384, 128],
    [384, 64],
    [2048, 2048],
    [2048, 64],
  ]) {
    const x = seeded(rows * inDim, inDim + block);
    const g = new Graph("rotation");
    g.output(rotateInGraph(g.input("x", "float32", [rows, inDim]), block), "y");
    const session = await Session.fromGraph(g, { threads: 1 });
    const { y } = await session.run({ x: floatTensor(x, [rows, inDim]) });
    await session.release();
    const err = relativeError(y.data as Float32Array, rotateRows(x, rows, inDim, false, block));
    assert.ok(err < 1e-6, `${inDim} in blocks of ${block}: ${err}`);
  }
});

// rotation blocks of 8 and of 64 (one product in the graph), of 128 (two products)
for (const [inDim, block] of [
  [72, 8],
  [384, 128],
  [384, 64],
]) {
  test(`channelLinear (rotation in blocks of ${block}, per-token int8, MatMulIntegerToFloat) equals its slow twin, and x @ Wᵀ closely`, async () => {
    const [batch, seq, out] = [2, 5, 10];
    const w = seeded(out * inDim, 5);
    const x = seeded(batch * seq * inDim, 7);
    for (let r = 0; r < batch * seq; r++) {
      for (let i = 0; i < inDim; i++) x[r * inDim + i] *= 0.3 * (r + 1); // rows of other ranges
    }
    x.fill(0, 3 * inDim, 4 * inDim); // a row of zeros
    const q = quantizeChannels(w, out, inDim, block);
    // an input that comes rotated: neither side rotated in the graph or the twin (blocks of 1)
    const rotatedX = rotateRows(x, batch * seq, inDim, false, block);
    const rotatedW = rotateRows(w, out, inDim, false, block);
    const q0 = quantizeChannels(rotatedW, out, inDim, 1);
    assert.deepEqual(q0, q, "the same integers whichever side rotates the weight");
    const g = new Graph("int8");
    const input = g.input("x", "float32", [batch, seq, inDim]);
    const input0 = g.input("x0", "float32", [batch, seq, inDim]);
    // the product's rows times the activations' scales
    const x8 = quantizeTokens(input, block);
    const x0 = quantizeTokens(input0, 1);
    g.output(
      op.mul(
        channelLinear(x8, "w", out, inDim, () => q),
        x8.scale,
      ),
      "y",
    );
    g.output(
      op.mul(
        channelLinear(x0, "w0", out, inDim, () => q0),
        x0.scale,
      ),
      "y0",
    );
    const session = await Session.fromGraph(g, { threads: 1 });
    const { y, y0 } = await session.run({
      x: floatTensor(x, [batch, seq, inDim]),
      x0: floatTensor(rotatedX, [batch, seq, inDim]),
    });
    await session.release();
    assert.deepEqual(y.dims, [batch, seq, out]);
    const twin = channelLinearReference(x, batch * seq, q, out, inDim, block);
    // the graph rotates in float32 products, the twin in float64: a value on a rounding boundary
    // may land one int8 step apart (the rotation itself is checked against rotateRows apart)
    assert.ok(relativeError(y.data as Float32Array, twin) < 2e-3);
    const twin0 = channelLinearReference(rotatedX, batch * seq, q0, out, inDim, 1);
    assert.ok(relativeError(y0.data as Float32Array, twin0) < 1e-6);
    assert.ok(relativeError(twin0, twin) < 1e-5, "rotated before or inside: the same product");
    assert.ok(
      relativeError(dequantizeChannels(q0, out, inDim, 1), rotatedW) < 0.01,
      "unrotated dequantization gives W·R back",
    );
    const exact = new Float32Array(batch * seq * out);
    for (let r = 0; r < batch * seq; r++) {
      for (let o = 0; o < out; o++) {
        let s = 0;
        for (let i = 0; i < inDim; i++) s += x[r * inDim + i] * w[o * inDim + i];
        exact[r * out + o] = s;
      }
    }
    const err = relativeError(twin, exact);
    assert.ok(err > 1e-5 && err < 2e-2, `twin against the float product: ${err}`);
    for (let o = 0; o < out; o++) assert.equal(y.data[3 * out + o], 0, "the zero row stays zero");
  });
}

test("block quantization at 4 and 8 bits: every weight within half a step of its value; padding stays out", () => {
  for (const bits of [4, 8] as const) {
    for (const [out, inDim] of [
      [5, 64],
      [3, 40], // a last block of 8 inputs, padded to a whole block
      [2, 48], // an odd number of blocks: the 4-bit zero points' last byte half used
    ]) {
      const w = seeded(out * inDim, inDim);
      const q = quantizeBlocks(w, out, inDim, bits);
      assert.equal(q.blocks, Math.ceil(inDim / quantBlock));
      assert.equal(q.packed.length, (out * q.blocks * quantBlock * bits) / 8);
      assert.equal(q.zero.length, out * Math.ceil((q.blocks * bits) / 8));
      const back = dequantizeBlocks(q, out, inDim);
      for (let o = 0; o < out; o++) {
        for (let i = 0; i < inDim; i++) {
          const step = q.scale[o * q.blocks + Math.floor(i / quantBlock)];
          assert.ok(
            step * (2 ** bits - 1) <= 2.001 * Math.max(...w.map(Math.abs)),
            "a step spans the block's range",
          );
          const e = Math.abs(back[o * inDim + i] - w[o * inDim + i]);
          assert.ok(e <= step / 2 + 1e-6, `${bits} bits [${o}, ${i}]: error ${e}, step ${step}`);
        }
      }
      // 4 bits keep ~1/16 of the block's range, 8 bits ~1/256
      assert.ok(relativeError(back, w) < (bits === 4 ? 0.08 : 0.006), `${bits} bits`);
    }
  }
  assert.deepEqual(
    [
      "model.layers.0.self_attn.v_proj.weight",
      "model.layers.0.self_attn.k_proj.weight",
      "lm_head.weight",
      "model.embed_tokens.weight",
    ].map(blockBits),
    [8, 4, 8, 4],
  );
});

test("MatMulNBits computes x @ Wᵀ of the dequantized weight (exactly in float, closely at int8 activations)", async () => {
  const [rows, inDim, out] = [6, 72, 10];
  const w = seeded(out * inDim, 12);
  const x = seeded(rows * inDim, 7);
  for (const bits of [4, 8] as const) {
    const q = quantizeBlocks(w, out, inDim, bits);
    const dq = dequantizeBlocks(q, out, inDim);
    const expected = new Float32Array(rows * out);
    for (let r = 0; r < rows; r++) {
      for (let o = 0; o < out; o++) {
        let s = 0;
        for (let i = 0; i < inDim; i++) s += x[r * inDim + i] * dq[o * inDim + i];
        expected[r * out + o] = s;
      }
    }
    for (const accuracy of [0, 4] as const) {
      const g = new Graph("nbits");
      const input = g.input("x", "float32", [rows, inDim]);
      g.output(
        blockLinear(input, "w", out, inDim, bits, () => q, accuracy),
        "y",
      );
      const session = await Session.fromGraph(g, { threads: 1 });
      const { y } = await session.run({ x: floatTensor(x, [rows, inDim]) });
      await session.release();
      const err = relativeError(y.data as Float32Array, expected);
      assert.ok(err < (accuracy === 0 ? 1e-5 : 2e-2), `${bits} bits, accuracy ${accuracy}: ${err}`);
    }
  }
});

/** Every weight of the folded model of `config` (src/model/fold.ts), read. */
function folded(config: ModelConfig, weights: Weights): Weights {
  const reader = foldResidual(config, weights);
  return new Map(parameterShapes(foldedConfig(config)).map((p) => [p.name, reader.read(p.name)]));
}

test("the folded model (residual stream rotated, norm weights moved into the linear weights) computes what the original does", async () => {
  for (const over of [
    { tie_word_embeddings: true, attention_bias: true },
    { tie_word_embeddings: false, hidden_size: 48, head_dim: 8 }, // rotation blocks of 16
  ]) {
    const config = tinyModelConfig(over);
    const weights = randomWeights(config, 21, 0.3); // norm weights 1 ± 0.3
    const tokens = Int32Array.from({ length: 10 }, (_, i) => (i * 7) % config.vocabSize);
    const f = folded(config, weights);
    assert.equal(f.get("model.norm.weight")![0], 1, "norm weights are ones");
    assert.ok(
      relativeError(
        f.get("model.embed_tokens.weight")!,
        weights.get("model.embed_tokens.weight")!,
      ) > 0.3,
      "the embedding is rotated",
    );
    const a = await new ReferenceModel(foldedConfig(config), f).forward({ tokens, rows: 1 });
    const b = await new ReferenceModel(config, weights).forward({ tokens, rows: 1 });
    const err = relativeError(a.logits, b.logits);
    assert.ok(err < 1e-5, `${JSON.stringify(over)}: ${err}`);
  }
  assert.deepEqual(
    [
      "lm_head.weight",
      "model.layers.0.self_attn.o_proj.weight",
      "model.layers.3.mlp.up_proj.weight",
      "model.layers.3.mlp.down_proj.weight",
    ].map((name) => graphRotationBlock(name, 768)),
    [1, 256, 1, 64],
  );
});

test("a quantized engine agrees with the float64 reference of its dequantized weights", async () => {
  // an untied head, which int8 quantizes apart from the embedding, and a tied one, which int8's
  // folding unties
  for (const tie of [false, true]) {
    // down_proj's input in blocks of 64 (its width's 256 capped), o_proj's in one of 32
    const config = tinyModelConfig({
      hidden_size: 32,
      intermediate_size: 256,
      head_dim: 8,
      tie_word_embeddings: tie,
    });
    const weights = randomWeights(config, 9, 0.1);
    await quantizedAgainstReference(config, weights, tie ? ["int8"] : quantTypes);
    // int4 quantizes an untied head (8 bits); a tied one stays the float embedding
    const names = buildInferenceGraph(config, weights, "float32", "int4").initializers.map(
      (i) => i.tensor.name,
    );
    assert.equal(names.includes("lm_head.weight.q8"), !tie);
  }
});

async function quantizedAgainstReference(
  config: ModelConfig,
  weights: Weights,
  quants: readonly QuantType[],
): Promise<void> {
  const tokens = Int32Array.from({ length: 12 }, (_, i) => (i * 5) % config.vocabSize);
  for (const quant of quants) {
    const engine = await OnnxModel.create(config, weights, { threads: 1, quant });
    // int8 runs the folded model: its float weights are what is quantized
    const base = quant === "int8" ? folded(config, weights) : weights;
    const baseConfig = quant === "int8" ? foldedConfig(config) : config;
    const dequantized: Weights = new Map(base);
    for (const { name, shape } of parameterShapes(baseConfig)) {
      const layer = name.startsWith("model.layers.") && name.endsWith("proj.weight");
      // int8 quantizes the head (the folded model's is untied), int4 an untied one
      if (!layer && name !== "lm_head.weight") continue;
      const [out, inDim] = shape;
      const w = base.get(name)!;
      const block = graphRotationBlock(name, inDim);
      dequantized.set(
        name,
        quant === "int8"
          ? dequantizeChannels(quantizeChannels(w, out, inDim, block), out, inDim, block)
          : dequantizeBlocks(quantizeBlocks(w, out, inDim, blockBits(name)), out, inDim),
      );
    }
    const reference = new ReferenceModel(baseConfig, dequantized);
    const a = await engine.forward({ tokens, rows: 1 });
    const b = await reference.forward({ tokens, rows: 1 });
    await engine.dispose();
    // the int8 activations are the only difference left
    const err = relativeError(a.logits, b.logits);
    assert.ok(err < 3e-2, `${quant}: ${err}`);
    // and the quantization is real: float32 weights give other logits
    const exact = new ReferenceModel(config, weights);
    const c = await exact.forward({ tokens, rows: 1 });
    assert.ok(relativeError(c.logits, b.logits) > 1e-4, `${quant}: weights unchanged`);
  }
}

test("--device cuda runs like the CPU where the CUDA provider is installed, else is a DeviceError saying how to install it", async () => {
  const config = tinyModelConfig();
  const weights = randomWeights(config, 4, 0.1);
  const tokens = Int32Array.from({ length: 8 }, (_, i) => (i * 3) % config.vocabSize);
  const cpu = await OnnxModel.create(config, weights, { threads: 1 });
  const expected = (await cpu.forward({ tokens, rows: 1 })).logits;
  await cpu.dispose();
  let gpu: OnnxModel;
  try {
    gpu = await OnnxModel.create(config, weights, { device: "cuda" });
  } catch (error) {
    assert.ok(error instanceof DeviceError, String(error));
    assert.match(error.message, /--onnxruntime-node-install-cuda=v12/);
    return;
  }
  const got = (await gpu.forward({ tokens, rows: 1 })).logits;
  await gpu.dispose();
  assert.ok(relativeError(got, expected) < 1e-3);
});
