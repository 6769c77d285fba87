// The ONNX Runtime engine against the float64 reference, variant by variant, on tiny random models.

import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { sliceKv } from "../src/diffusion/kv.js";
import { type ModelConfig, parameterShapes } from "../src/model/config.js";
import { buildInferenceGraph, OnnxModel } from "../src/model/engine.js";
import { randomWeights } from "../src/model/random.js";
import { ReferenceModel } from "../src/model/reference.js";
import { ForwardRequestError } from "../src/model/request.js";
import type { ForwardRequest, KvCache, LanguageModel } from "../src/model/types.js";
import { relativeError, tinyModelConfig } from "./tiny-config.js";

const tinyConfig = (over: Record<string, unknown> = {}): ModelConfig => tinyModelConfig(over);

const tokens = (n: number, seed = 1, vocab = 23) =>
  Int32Array.from({ length: n }, (_, i) => (i * 7 + seed * 13) % vocab);

const models: LanguageModel[] = [];
async function pair(config: ModelConfig, seed = 3): Promise<[OnnxModel, ReferenceModel]> {
  const weights = randomWeights(config, seed, 0.2);
  const onnx = await OnnxModel.create(config, weights, { threads: 1 });
  const ref = new ReferenceModel(config, weights);
  models.push(onnx, ref);
  return [onnx, ref];
}
after(async () => {
  for (const m of models) await m.dispose();
});

async function agree(onnx: OnnxModel, ref: ReferenceModel, request: ForwardRequest) {
  const a = await onnx.forward(request);
  const b = await ref.forward(request);
  assert.equal(a.positions, b.positions);
  const err = relativeError(a.logits, b.logits);
  assert.ok(err <= 1e-4, `relative error ${err}`);
  if (request.returnKv) {
    const ka = a.kv as KvCache;
    const kb = b.kv as KvCache;
    assert.equal(ka.length, kb.length);
    for (let l = 0; l < ka.keys.length; l++) {
      assert.ok(relativeError(ka.keys[l], kb.keys[l]) <= 1e-4, `keys of layer ${l}`);
      assert.ok(relativeError(ka.values[l], kb.values[l]) <= 1e-4, `values of layer ${l}`);
    }
  }
  return a;
}

const variants: [string, Record<string, unknown>][] = [
  ["full attention, GQA, untied", {}],
  [
    "causal, qkv bias, tied",
    { attention_mask: "causal", attention_bias: true, tie_word_embeddings: true },
  ],
  ["block-causal, MHA", { attention_mask: "block_causal", block_size: 4, num_key_value_heads: 4 }],
  ["logit shift", { logit_shift: true, attention_bias: true }],
  ["one kv head", { num_key_value_heads: 1, head_dim: 6 }],
];

describe("ONNX engine against the float64 reference", () => {
  for (const [name, over] of variants) {
    it(`(a) full canvas → logits: ${name}`, async () => {
      const [onnx, ref] = await pair(tinyConfig(over));
      await agree(onnx, ref, { tokens: tokens(12), rows: 1, returnKv: true });
    });
  }

  it("(b) logits only at requested positions equal the full logits there", async () => {
    for (const over of [{}, { logit_shift: true }]) {
      const [onnx, ref] = await pair(tinyConfig(over));
      const full = await onnx.forward({ tokens: tokens(10), rows: 1 });
      const at = Int32Array.from([7, 0, 3]);
      const part = await agree(onnx, ref, { tokens: tokens(10), rows: 1, logitsAt: at });
      assert.equal(part.positions, 3);
      const v = 23;
      at.forEach((i, k) => {
        assert.deepEqual(
          part.logits.subarray(k * v, (k + 1) * v),
          full.logits.subarray(i * v, (i + 1) * v),
        );
      });
    }
  });

  it("(c) a block over a cached prefix, and a dual cache, reproduce the full canvas", async () => {
    const [onnx, ref] = await pair(tinyConfig());
    const canvas = tokens(16);
    const full = await onnx.forward({ tokens: canvas, rows: 1, returnKv: true });
    const kv = full.kv as KvCache;
    const v = 23;
    const { numKvHeads: hkv, headDim: d } = onnx.config;
    // Keep cached positions `keep` of the full pass.
    const select = (keep: number[]): KvCache => {
      const pick = (src: Float32Array) => {
        const out = new Float32Array(hkv * keep.length * d);
        for (let h = 0; h < hkv; h++) {
          keep.forEach((pos, j) => {
            out.set(
              src.subarray((h * 16 + pos) * d, (h * 16 + pos + 1) * d),
              (h * keep.length + j) * d,
            );
          });
        }
        return out;
      };
      return { rows: 1, length: keep.length, keys: kv.keys.map(pick), values: kv.values.map(pick) };
    };
    // Prefix cache: positions 0..5 cached, block 6..15 fresh.
    const prefix = await agree(onnx, ref, {
      tokens: canvas.slice(6),
      rows: 1,
      positions: Int32Array.from({ length: 10 }, (_, i) => 6 + i),
      context: select([0, 1, 2, 3, 4, 5]),
    });
    assert.ok(relativeError(prefix.logits, full.logits.subarray(6 * v)) <= 1e-5);
    // Dual cache: prefix 0..5 and suffix 10..15 cached, block 6..9 fresh.
    const dual = await agree(onnx, ref, {
      tokens: canvas.slice(6, 10),
      rows: 1,
      positions: Int32Array.from([6, 7, 8, 9]),
      context: select([0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 15]),
    });
    assert.ok(relativeError(dual.logits, full.logits.subarray(6 * v, 10 * v)) <= 1e-5);
  });

  it("(d) causal decoding token by token with a KV cache reproduces the causal full pass", async () => {
    const [onnx] = await pair(tinyConfig({ attention_mask: "causal", attention_bias: true }));
    const canvas = tokens(12);
    const v = 23;
    const full = await onnx.forward({ tokens: canvas, rows: 1 });
    let cache: KvCache | undefined;
    for (let i = 0; i < canvas.length; i++) {
      const step = await onnx.forward({
        tokens: canvas.slice(i, i + 1),
        rows: 1,
        context: cache,
        returnKv: true,
      });
      cache = step.kv;
      assert.equal(cache?.length, i + 1);
      const err = relativeError(step.logits, full.logits.subarray(i * v, (i + 1) * v));
      assert.ok(err <= 1e-5, `token ${i}: relative error ${err}`);
    }
  });

  it("(e) batched canvases equal each canvas alone", async () => {
    const [onnx, ref] = await pair(tinyConfig({ attention_mask: "causal" }));
    const rows = [tokens(9, 1), tokens(9, 2), tokens(9, 3)];
    const batch = Int32Array.from(rows.flatMap((r) => Array.from(r)));
    const at = Int32Array.from([0, 8, 4, 4, 2, 1]);
    const together = await agree(onnx, ref, { tokens: batch, rows: 3, logitsAt: at });
    const v = 23;
    for (let r = 0; r < 3; r++) {
      const alone = await onnx.forward({
        tokens: rows[r],
        rows: 1,
        logitsAt: at.slice(r * 2, r * 2 + 2),
      });
      assert.ok(
        relativeError(together.logits.subarray(r * 2 * v, (r + 1) * 2 * v), alone.logits) <= 1e-6,
      );
    }
  });

  it("(f) every cache kind with two rows equals the same rows without a cache", async () => {
    const v = 23;
    const L = 16;
    const two = Int32Array.from([...tokens(L, 1), ...tokens(L, 4)]); // [2, L], distinct rows
    const range = (a: number, b: number) => Int32Array.from({ length: b - a }, (_, i) => a + i);
    const rowsOf = (a: number, b: number) =>
      Int32Array.from([...two.slice(a, b), ...two.slice(L + a, L + b)]);
    const positionsOf = (a: number, b: number) => Int32Array.from([...range(a, b), ...range(a, b)]);
    /** logits of both rows at [a, b) of a full pass, [2, b − a, V] */
    const expected = (full: Float32Array, a: number, b: number) =>
      Float32Array.from([
        ...full.subarray(a * v, b * v),
        ...full.subarray((L + a) * v, (L + b) * v),
      ]);
    const cases: [string, Record<string, unknown>, [number, number][], [number, number]][] = [
      ["prefix", {}, [[0, 6]], [6, L]],
      [
        "dual",
        {},
        [
          [0, 6],
          [10, L],
        ],
        [6, 10],
      ],
      ["block", { attention_mask: "block_causal", block_size: 4 }, [[0, 8]], [8, L]],
      ["AR", { attention_mask: "causal" }, [[0, 11]], [11, 12]],
    ];
    for (const [name, over, cached, [a, b]] of cases) {
      const [onnx, ref] = await pair(tinyConfig(over));
      const full = await onnx.forward({ tokens: two, rows: 2, returnKv: true });
      const request: ForwardRequest = {
        tokens: rowsOf(a, b),
        rows: 2,
        positions: positionsOf(a, b),
        context: sliceKv(onnx.config, full.kv!, cached),
      };
      const out = await agree(onnx, ref, { ...request, returnKv: true });
      const want = expected(full.logits, a, b);
      const err = relativeError(out.logits, want);
      assert.ok(err <= 1e-5, `${name}: relative error ${err}`);
      // logits at some positions of each row (the last layer's queries run on those rows only)
      const n = b - a;
      const at = Int32Array.of(n - 1, 0, 0, n - 1);
      const some = await agree(onnx, ref, { ...request, logitsAt: at });
      const picked = new Float32Array(at.length * v);
      at.forEach((i, k) => {
        const row = Math.floor(k / 2) * n + i;
        picked.set(want.subarray(row * v, (row + 1) * v), k * v);
      });
      const errAt = relativeError(some.logits, picked);
      assert.ok(errAt <= 1e-5, `${name}, logitsAt: relative error ${errAt}`);
    }
  });

  it("(g) an explicit bias replaces the config's mask, on the engine as on the reference", async () => {
    const [onnx, ref] = await pair(tinyConfig({ attention_mask: "causal" }));
    const n = 8;
    // a custom mask: each position sees itself and the two before it
    const bias = new Float32Array(2 * n * n).fill(Number.NEGATIVE_INFINITY);
    for (let r = 0; r < 2; r++) {
      for (let i = 0; i < n; i++)
        for (let j = Math.max(0, i - 2); j <= i; j++) bias[(r * n + i) * n + j] = 0;
    }
    const request = { tokens: Int32Array.from([...tokens(n, 1), ...tokens(n, 2)]), rows: 2 };
    const custom = await agree(onnx, ref, { ...request, attentionBias: bias });
    const causal = await onnx.forward(request);
    assert.ok(relativeError(custom.logits, causal.logits) > 1e-3, "the custom mask is used");
    // at some positions of each row: the bias's rows go with the queries
    const logitsAt = Int32Array.of(7, 1, 4, 0, 6, 2);
    const some = await agree(onnx, ref, { ...request, attentionBias: bias, logitsAt });
    const v = 23;
    logitsAt.forEach((i, k) => {
      const row = Math.floor(k / 3) * n + i;
      const err = relativeError(
        some.logits.subarray(k * v, (k + 1) * v),
        custom.logits.subarray(row * v, (row + 1) * v),
      );
      assert.ok(err <= 1e-5, `row ${k}: relative error ${err}`);
    });
  });

  it("(h) rotary angles from the positions: far positions agree, the graph does not grow with the context", async () => {
    const near = tinyConfig();
    const far = tinyConfig({ max_position_embeddings: 131072, rope_theta: 1000000 });
    const bytes = (c: ModelConfig) =>
      buildInferenceGraph(c, randomWeights(c, 1)).initializers.reduce(
        (s, i) => s + i.byteLength,
        0,
      );
    assert.equal(bytes(far), bytes(near));
    const [onnx, ref] = await pair(far);
    const positions = Int32Array.from([131071, 100000, 99999, 65536, 12345, 7]);
    await agree(onnx, ref, { tokens: tokens(6), rows: 1, positions });
  });

  it("float16 weights agree with the reference within half precision", async () => {
    const config = tinyConfig({ attention_bias: true });
    const weights = randomWeights(config, 3, 0.2);
    const half = await OnnxModel.create(config, weights, { threads: 1, weightType: "float16" });
    models.push(half);
    const request = { tokens: tokens(12), rows: 1 };
    const err = relativeError(
      (await half.forward(request)).logits,
      (await new ReferenceModel(config, weights).forward(request)).logits,
    );
    assert.ok(err > 0 && err <= 5e-3, `relative error ${err}`);
  });

  it("rejects a bad request with the same typed error as the reference", async () => {
    const [onnx] = await pair(tinyConfig());
    await assert.rejects(
      onnx.forward({ tokens: Int32Array.from([1, 99]), rows: 1 }),
      ForwardRequestError,
    );
    await assert.rejects(onnx.forward({ tokens: tokens(65), rows: 1 }), /exceed|outside/);
  });
});

describe("weights streamed into the session (a WeightReader)", () => {
  /** A reader over `weights` that counts its reads. */
  const counting = (weights: Map<string, Float32Array>) => {
    const reads: string[] = [];
    return {
      reads,
      has: (name: string) => weights.has(name),
      read: (name: string) => {
        reads.push(name);
        return Float32Array.from(weights.get(name)!);
      },
    };
  };

  it("gives the logits of the in-memory weights, in memory and through an external-data file", async () => {
    const config = tinyConfig();
    const weights = randomWeights(config, 5, 0.2);
    const request = { tokens: tokens(10), rows: 1 };
    const expected = (await pair(config, 5))[0];
    const want = (await expected.forward(request)).logits;
    for (const externalDataAbove of [Number.POSITIVE_INFINITY, 0]) {
      const reader = counting(weights);
      const streamed = await OnnxModel.create(config, reader, { threads: 1, externalDataAbove });
      models.push(streamed);
      // every parameter read exactly once, when the graph was serialised
      assert.deepEqual([...reader.reads].sort(), [...weights.keys()].sort());
      assert.deepEqual(Array.from((await streamed.forward(request)).logits), Array.from(want));
    }
  });

  it("reads a tensor only when its turn comes in the external-data file", () => {
    const config = tinyConfig();
    const reader = counting(randomWeights(config, 6));
    const graph = buildInferenceGraph(config, reader);
    assert.equal(reader.reads.length, 0, "building the graph reads nothing");
    const { external } = graph.toModel({ externalData: "w.bin", externalThreshold: 0 });
    assert.equal(reader.reads.length, 0, "laying out the model reads nothing");
    // the weights each initializer holds: one, or several side by side (q/k/v, gate/up)
    const holds = graph.initializers.map((i) => i.tensor.name.split("+"));
    assert.ok(holds.some((names) => names.length === 3) && holds.some((n) => n.length === 2));
    // a chunk reads the weights of its own initializer, in the file's order: nothing ahead
    let seen = 0;
    let next = 0;
    for (const _chunk of external) {
      const fresh = reader.reads.slice(seen);
      seen = reader.reads.length;
      if (fresh.length === 0) continue; // padding, or a constant of the graph
      const at = holds.findIndex((names, i) => i >= next && names.join() === fresh.join());
      assert.ok(at >= 0, `${fresh.join(", ")} read for one chunk`);
      next = at + 1;
    }
    assert.equal(reader.reads.length, parameterShapes(config).length, "every weight read once");
  });

  it("holds every float weight once, with no Concat of weights for onnxruntime to fold into a copy", () => {
    const config = tinyConfig({ attention_bias: true });
    const graph = buildInferenceGraph(config, randomWeights(config, 8));
    const shapes = parameterShapes(config);
    const weightBytes = shapes.reduce((n, p) => n + 4 * p.shape.reduce((a, b) => a * b, 1), 0);
    const names = new Set(shapes.map((p) => p.name));
    const held = graph.initializers
      .filter((i) => i.tensor.name.split("+").every((name) => names.has(name)))
      .reduce((n, i) => n + i.byteLength, 0);
    assert.equal(held, weightBytes);
    const fromInitializers = graph.nodes.filter(
      (n) => n.op === "Concat" && n.inputs.every((t) => t !== null && t.producer === undefined),
    );
    assert.deepEqual(fromInitializers, []);
  });

  it("a tensor read with the wrong size is a GraphError naming it", async () => {
    const config = tinyConfig();
    const weights = randomWeights(config, 7);
    const short = {
      has: (name: string) => weights.has(name),
      read: (name: string) => weights.get(name)!.subarray(name.endsWith("norm.weight") ? 1 : 0),
    };
    await assert.rejects(
      OnnxModel.create(config, short, { threads: 1 }),
      /initializer .*norm\.weight: \d+ values for shape/,
    );
  });
});
