// int8/int4 weights (src/model/quant.ts): the packing against its slow twin, the MatMulNBits node
// against a float MatMul of the dequantized weight, and a quantized engine against the float64
// reference of the dequantized model. Also the --device option the same engine options carry.

import assert from "node:assert/strict";
import { test } from "node:test";
import { Graph } from "../src/graph/graph.js";
import { parameterShapes, type Weights } from "../src/model/config.js";
import { OnnxModel } from "../src/model/engine.js";
import {
  blockLinear,
  dequantizeBlocks,
  quantBits,
  quantBlock,
  quantizeBlocks,
  quantTypes,
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

test("block quantization: every weight within half a step of its value; padding stays out", () => {
  for (const bits of [4, 8] as const) {
    for (const [out, inDim] of [
      [5, 64],
      [3, 40], // a last block of 8 inputs, padded to a whole block
    ]) {
      const w = seeded(out * inDim, bits + inDim);
      const q = quantizeBlocks(w, out, inDim, bits);
      assert.equal(q.blocks, Math.ceil(inDim / quantBlock));
      assert.equal(q.packed.length, (out * q.blocks * quantBlock * bits) / 8);
      const back = dequantizeBlocks(q, out, inDim);
      for (let o = 0; o < out; o++) {
        for (let i = 0; i < inDim; i++) {
          const step = q.scale[o * q.blocks + Math.floor(i / quantBlock)];
          const e = Math.abs(back[o * inDim + i] - w[o * inDim + i]);
          assert.ok(e <= step / 2 + 1e-6, `${bits} bits [${o}, ${i}]: error ${e}, step ${step}`);
        }
      }
      // 4 bits keep ~1/16 of the block's range, 8 bits ~1/256
      const rel = relativeError(back, w);
      assert.ok(rel < (bits === 4 ? 0.08 : 0.005), `${bits} bits: ${rel}`);
    }
  }
});

test("MatMulNBits computes x @ Wᵀ of the dequantized weight (exactly in float, closely at int8 activations)", async () => {
  for (const bits of [4, 8] as const) {
    const [rows, inDim, out] = [6, 72, 10];
    const w = seeded(out * inDim, 3 * bits);
    const x = seeded(rows * inDim, 7);
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
        blockLinear(input, "w", bits, out, inDim, () => q, accuracy),
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

test("a quantized engine agrees with the float64 reference of its dequantized weights", async () => {
  const config = tinyModelConfig({ hidden_size: 32, intermediate_size: 64, head_dim: 8 });
  const weights = randomWeights(config, 9, 0.1);
  const tokens = Int32Array.from({ length: 12 }, (_, i) => (i * 5) % config.vocabSize);
  for (const quant of quantTypes) {
    const engine = await OnnxModel.create(config, weights, { threads: 1, quant });
    const dequantized: Weights = new Map(weights);
    for (const { name, shape } of parameterShapes(config)) {
      if (!name.startsWith("model.layers.") || !name.endsWith("proj.weight")) continue;
      const [out, inDim] = shape;
      const q = quantizeBlocks(weights.get(name)!, out, inDim, quantBits[quant]);
      dequantized.set(name, dequantizeBlocks(q, out, inDim));
    }
    const reference = new ReferenceModel(config, dequantized);
    const a = await engine.forward({ tokens, rows: 1 });
    const b = await reference.forward({ tokens, rows: 1 });
    await engine.dispose();
    // the kernel's int8 activations are the only difference left
    const err = relativeError(a.logits, b.logits);
    assert.ok(err < 3e-2, `${quant}: ${err}`);
    // and the quantization is real: float32 weights give other logits
    const exact = new ReferenceModel(config, weights);
    const c = await exact.forward({ tokens, rows: 1 });
    assert.ok(relativeError(c.logits, b.logits) > 1e-4, `${quant}: weights unchanged`);
  }
});

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
