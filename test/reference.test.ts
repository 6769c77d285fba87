import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ModelConfig, Weights } from "../src/model/config.js";
import { parameterShapes } from "../src/model/config.js";
import { Rng, randomWeights } from "../src/model/random.js";
import {
  applyRotary,
  type ForwardRequest64,
  type KvCache64,
  ReferenceModel,
} from "../src/model/reference.js";
import { ForwardRequestError, WeightsError } from "../src/model/request.js";

/** A tiny model: vocab 11, hidden 8, 2 layers, 4 heads over 2 kv heads of dim 4, MLP 12. */
function tiny(over: Partial<ModelConfig> = {}): ModelConfig {
  return {
    modelType: "unmask",
    vocabSize: 11,
    hiddenSize: 8,
    numLayers: 2,
    numHeads: 4,
    numKvHeads: 2,
    headDim: 4,
    intermediateSize: 12,
    ropeTheta: 10000,
    rmsNormEps: 1e-6,
    maxPositions: 32,
    tieWordEmbeddings: false,
    qkvBias: false,
    attention: "full",
    blockSize: 0,
    logitShift: false,
    maskTokenId: 10,
    padTokenId: null,
    bosTokenId: null,
    eosTokenId: null,
    ...over,
  };
}

/** Large std so that every weight visibly moves the output. */
function tinyModel(over: Partial<ModelConfig> = {}, seed = 1): ReferenceModel {
  const config = tiny(over);
  return new ReferenceModel(config, randomWeights(config, seed, 0.5));
}

const ids = (...t: number[]) => Int32Array.from(t);

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Logit row i of a [*, V] array. */
const row = (logits: Float64Array, i: number, V = 11) => logits.subarray(i * V, (i + 1) * V);

/** Keeps the key/value positions `keep` (in order) of a returned cache. */
function sliceKv(kv: KvCache64, config: ModelConfig, keep: number[]): KvCache64 {
  const { numKvHeads: KV, headDim: D } = config;
  const pick = (a: Float64Array) => {
    const out = new Float64Array(kv.rows * KV * keep.length * D);
    for (let rg = 0; rg < kv.rows * KV; rg++) {
      keep.forEach((j, k) => {
        out.set(
          a.subarray((rg * kv.length + j) * D, (rg * kv.length + j + 1) * D),
          (rg * keep.length + k) * D,
        );
      });
    }
    return out;
  };
  return {
    rows: kv.rows,
    length: keep.length,
    keys: kv.keys.map(pick),
    values: kv.values.map(pick),
  };
}

const canvas = ids(3, 1, 4, 1, 5, 9, 2, 6);

describe("Rng (PCG32)", () => {
  it("reproduces the reference pcg32-demo sequence for seed 42, stream 54", () => {
    const rng = new Rng(42, 54);
    const first = Array.from({ length: 6 }, () => rng.nextUint32());
    assert.deepEqual(
      first,
      [0xa15c02b7, 0x7b47f409, 0xba1d3330, 0x83d2f293, 0xbfa4784b, 0xcbed606e],
    );
    for (let i = 0; i < 614; i++) rng.nextUint32();
    const later = Array.from({ length: 6 }, () => rng.nextUint32());
    assert.deepEqual(
      later,
      [0xfcef7cd6, 0x1b488b5a, 0xd0daf7ea, 0x1d9a70f7, 0x241a37cf, 0x9a3857b7],
    );
  });

  it("matches a BigInt transcription of pcg32_random_r on other seeds", () => {
    const M = (1n << 64n) - 1n;
    for (const [seed, stream] of [
      [Number.MAX_SAFE_INTEGER, -1],
      [0, 0],
      [-7, 123456789],
    ]) {
      const inc = ((BigInt(stream) << 1n) | 1n) & M;
      let state = 0n;
      const step = () => {
        const old = state;
        state = (old * 6364136223846793005n + inc) & M;
        const xorshifted = Number((((old >> 18n) ^ old) >> 27n) & 0xffffffffn);
        const rot = Number(old >> 59n);
        return ((xorshifted >>> rot) | (xorshifted << (-rot & 31))) >>> 0;
      };
      step();
      state = (state + (BigInt(seed) & M)) & M;
      step();
      const rng = new Rng(seed, stream);
      for (let i = 0; i < 1000; i++) assert.equal(rng.nextUint32(), step());
    }
  });

  it("resumes exactly from a JSON checkpoint of its state", () => {
    const rng = new Rng(2024);
    for (let i = 0; i < 17; i++) rng.normal();
    const saved = JSON.stringify(rng.state());
    const ahead = [rng.next(), rng.normal(), rng.int(7), rng.nextUint32()];
    const resumed = Rng.fromState(JSON.parse(saved));
    assert.deepEqual(
      [resumed.next(), resumed.normal(), resumed.int(7), resumed.nextUint32()],
      ahead,
    );
    assert.throws(
      () => resumed.setState({ algorithm: "pcg32", state: "xyz", increment: "1" }),
      RangeError,
    );
    assert.throws(
      () =>
        resumed.setState({ algorithm: "pcg32", state: "0".repeat(16), increment: "0".repeat(16) }),
      /odd/,
    );
  });

  it("draws floats in [0, 1), standard normals and unbiased integers", () => {
    const rng = new Rng(7);
    let sum = 0;
    let sumSq = 0;
    const N = 20000;
    for (let i = 0; i < N; i++) {
      const u = rng.next();
      assert.ok(u >= 0 && u < 1);
      const z = rng.normal();
      sum += z;
      sumSq += z * z;
    }
    assert.ok(Math.abs(sum / N) < 0.03, `mean ${sum / N}`);
    assert.ok(Math.abs(sumSq / N - 1) < 0.05, `variance ${sumSq / N}`);
    const seen = new Set<number>();
    for (let i = 0; i < 600; i++) {
      const k = rng.int(6);
      assert.ok(Number.isInteger(k) && k >= 0 && k < 6);
      seen.add(k);
    }
    assert.equal(seen.size, 6);
    assert.equal(rng.int(1), 0);
    assert.ok(rng.int(2 ** 32) < 2 ** 32);
    assert.throws(() => rng.int(0), RangeError);
    assert.throws(() => rng.int(2.5), RangeError);
    assert.throws(() => new Rng(0.5), RangeError);
  });

  it("randomWeights fills every parameter deterministically", () => {
    const config = tiny({ qkvBias: true });
    const a = randomWeights(config, 5);
    const b = randomWeights(config, 5);
    const c = randomWeights(config, 6);
    for (const { name, shape } of parameterShapes(config)) {
      const w = a.get(name)!;
      assert.equal(
        w.length,
        shape.reduce((x, y) => x * y, 1),
        name,
      );
      assert.deepEqual(w, b.get(name));
      assert.notDeepEqual(w, c.get(name));
      const mean = w.reduce((s, v) => s + v, 0) / w.length;
      assert.ok(Math.abs(mean - (name.endsWith("norm.weight") ? 1 : 0)) < 0.05, name);
      assert.ok(
        w.some((v) => v !== mean),
        `${name} has noise`,
      );
    }
    assert.equal(a.size, parameterShapes(config).length);
  });
});

describe("ReferenceModel", () => {
  it("matches a 1-layer, hidden-2 example computed by hand", async () => {
    // vocab 2, hidden 2, one head of dim 2, MLP width 1; q, k, v, o and the embeddings are the
    // identity, the layer norms ones, gate = [1, 0], up = [1, 1], down = [1, 0]ᵀ, final norm [2, ½].
    const e = 1e-6;
    const config = tiny({
      vocabSize: 2,
      hiddenSize: 2,
      numLayers: 1,
      numHeads: 1,
      numKvHeads: 1,
      headDim: 2,
      intermediateSize: 1,
      rmsNormEps: e,
    });
    const I = Float32Array.of(1, 0, 0, 1);
    const weights: Weights = new Map([
      ["model.embed_tokens.weight", I],
      ["model.layers.0.input_layernorm.weight", Float32Array.of(1, 1)],
      ["model.layers.0.self_attn.q_proj.weight", I],
      ["model.layers.0.self_attn.k_proj.weight", I],
      ["model.layers.0.self_attn.v_proj.weight", I],
      ["model.layers.0.self_attn.o_proj.weight", I],
      ["model.layers.0.post_attention_layernorm.weight", Float32Array.of(1, 1)],
      ["model.layers.0.mlp.gate_proj.weight", Float32Array.of(1, 0)],
      ["model.layers.0.mlp.up_proj.weight", Float32Array.of(1, 1)],
      ["model.layers.0.mlp.down_proj.weight", Float32Array.of(1, 0)],
      ["model.norm.weight", Float32Array.of(2, 0.5)],
      ["lm_head.weight", I],
    ]);
    const rms = (a: number, b: number) => 1 / Math.sqrt((a * a + b * b) / 2 + e);
    const silu = (z: number) => z / (1 + Math.exp(-z));
    /** The layer's MLP and the head, from the residual stream after attention. */
    const tail = (a: number, b: number) => {
      const r = rms(a, b);
      const h = silu(a * r) * (a * r + b * r); // silu(gate) · up
      const a2 = a + h; // down adds h to channel 0
      const r2 = rms(a2, b);
      return [2 * a2 * r2, 0.5 * b * r2]; // final norm, identity head
    };

    // tokens [0, 1] at positions 0, 1: the normed embeddings are [s, 0] and [0, s]
    const s = rms(1, 0);
    // q = k = v = those; RoPE (D = 2) turns position 1 by 1 radian: q1 = k1 = [-s sin 1, s cos 1].
    // Scaled scores: q0·k0 = q1·k1 = s²/√2, q0·k1 = q1·k0 = -s² sin 1/√2.
    const same = Math.exp((s * s) / Math.SQRT2);
    const cross = Math.exp((-s * s * Math.sin(1)) / Math.SQRT2);
    const pSame = same / (same + cross);
    const pCross = cross / (same + cross);
    // attention output (unrotated values) plus the residual embedding
    const full = [...tail(1 + pSame * s, pCross * s), ...tail(pCross * s, 1 + pSame * s)];
    const got = new ReferenceModel(config, weights).forward64({ tokens: ids(0, 1), rows: 1 });
    assert.ok(maxDiff(got.logits, full) < 1e-14, `${got.logits} vs ${full}`);

    // causal: position 0 sees only itself, so its attention output is v0 = [s, 0]
    const causal = new ReferenceModel({ ...config, attention: "causal" }, weights);
    const expected = [...tail(1 + s, 0), ...tail(pCross * s, 1 + pSame * s)];
    assert.ok(maxDiff(causal.forward64({ tokens: ids(0, 1), rows: 1 }).logits, expected) < 1e-14);
  });

  it("rotates by halves (HF rotate_half), not interleaved pairs", () => {
    // D = 4, θ = 100: inv_freq = [1, 100^(-1/2)] = [1, 0.1]; position 3 → angles [3, 0.3, 3, 0.3]
    const x = Float64Array.of(9, 1, 2, 3, 4);
    applyRotary(x, 1, 4, 3, 100);
    const [c1, s1, c2, s2] = [Math.cos(3), Math.sin(3), Math.cos(0.3), Math.sin(0.3)];
    const expected = [9, 1 * c1 - 3 * s1, 2 * c2 - 4 * s2, 3 * c1 + 1 * s1, 4 * c2 + 2 * s2];
    assert.ok(maxDiff(x, expected) < 1e-15);
  });

  it("causal: logits at i do not depend on later tokens; full attention: they do", () => {
    const changed = ids(3, 1, 4, 1, 5, 7, 7, 7);
    const causal = tinyModel({ attention: "causal" });
    const a = causal.forward64({ tokens: canvas, rows: 1 }).logits;
    const b = causal.forward64({ tokens: changed, rows: 1 }).logits;
    assert.deepEqual(a.subarray(0, 5 * 11), b.subarray(0, 5 * 11));
    assert.ok(maxDiff(row(a, 5), row(b, 5)) > 1e-3);

    const full = tinyModel();
    const fa = full.forward64({ tokens: canvas, rows: 1 }).logits;
    const fb = full.forward64({ tokens: changed, rows: 1 }).logits;
    assert.ok(maxDiff(row(fa, 0), row(fb, 0)) > 1e-3);
  });

  it("block_causal: a position sees its own block and the blocks before, not the ones after", () => {
    const model = tinyModel({ attention: "block_causal", blockSize: 2 });
    const base = model.forward64({ tokens: canvas, rows: 1 }).logits;
    const late = model.forward64({ tokens: ids(3, 1, 4, 1, 0, 9, 2, 6), rows: 1 }).logits;
    assert.deepEqual(base.subarray(0, 4 * 11), late.subarray(0, 4 * 11)); // blocks 0, 1
    assert.ok(maxDiff(row(base, 4), row(late, 4)) > 1e-3);
    assert.ok(maxDiff(row(base, 6), row(late, 6)) > 1e-3); // later blocks see it
    // position 0 sees position 1 (same block), unlike causal attention
    const early = model.forward64({ tokens: ids(3, 0, 4, 1, 5, 9, 2, 6), rows: 1 }).logits;
    assert.ok(maxDiff(row(base, 0), row(early, 0)) > 1e-3);
    assert.deepEqual(
      base.subarray(0, 2 * 11),
      model.forward64({ tokens: canvas.subarray(0, 2), rows: 1 }).logits,
    );
  });

  for (const [name, over, split] of [
    ["causal", { attention: "causal" }, 5],
    ["block_causal", { attention: "block_causal", blockSize: 2 }, 4],
  ] as const) {
    it(`${name}: a prefix with returnKv, then the rest with that context, equals one pass`, async () => {
      const model = tinyModel(over);
      const whole = model.forward64({ tokens: canvas, rows: 1, returnKv: true });
      const prefix = model.forward64({
        tokens: canvas.subarray(0, split),
        rows: 1,
        returnKv: true,
      });
      assert.equal(prefix.kv!.length, split);
      const rest = model.forward64({
        tokens: canvas.subarray(split),
        rows: 1,
        context: prefix.kv,
        returnKv: true,
      });
      assert.ok(maxDiff(rest.logits, whole.logits.subarray(split * 11)) < 1e-12);
      assert.ok(maxDiff(prefix.logits, whole.logits.subarray(0, split * 11)) < 1e-12);
      for (let l = 0; l < 2; l++) {
        assert.ok(maxDiff(rest.kv!.keys[l], whole.kv!.keys[l]) < 1e-12);
        assert.ok(maxDiff(rest.kv!.values[l], whole.kv!.values[l]) < 1e-12);
      }
      // the float32 interface: same within float32 rounding
      const prefix32 = await model.forward({
        tokens: canvas.subarray(0, split),
        rows: 1,
        returnKv: true,
      });
      assert.ok(prefix32.kv!.keys[0] instanceof Float32Array);
      assert.equal(prefix32.kv!.keys[0].length, 2 * split * 4); // [1, KV, split, D]
      const rest32 = await model.forward({
        tokens: canvas.subarray(split),
        rows: 1,
        context: prefix32.kv,
      });
      assert.ok(maxDiff(rest32.logits, whole.logits.subarray(split * 11)) < 1e-4);
    });
  }

  it("full attention: a dual cache (prefix + suffix, non-contiguous) reproduces the middle", () => {
    const config = tiny();
    const model = tinyModel();
    const whole = model.forward64({ tokens: canvas, rows: 1, returnKv: true });
    const context = sliceKv(whole.kv!, config, [0, 1, 2, 6, 7]);
    const middle = model.forward64({
      tokens: canvas.subarray(3, 6),
      rows: 1,
      positions: ids(3, 4, 5),
      context,
    });
    assert.ok(maxDiff(middle.logits, whole.logits.subarray(3 * 11, 6 * 11)) < 1e-12);
  });

  it("logitsAt returns the same rows as the full output, in the order asked", () => {
    for (const logitShift of [false, true]) {
      const model = tinyModel({ logitShift });
      const tokens = Int32Array.of(...canvas, ...canvas.slice().reverse());
      const all = model.forward64({ tokens, rows: 2 }).logits; // [2, 8, V]
      const some = model.forward64({ tokens, rows: 2, logitsAt: ids(6, 0, 3, 3, 7, 1) });
      assert.equal(some.positions, 3);
      const want = [6, 0, 3, 8 + 3, 8 + 7, 8 + 1].flatMap((i) => Array.from(row(all, i)));
      assert.deepEqual(Array.from(some.logits), want);
      assert.equal(model.forward64({ tokens, rows: 2, logitsAt: ids() }).logits.length, 0);
    }
  });

  it("rows are independent: a batch equals each row alone", () => {
    const model = tinyModel({ attention: "causal" });
    const rows = [canvas, ids(0, 0, 1, 2, 3, 4, 10, 10), ids(9, 8, 7, 6, 5, 4, 3, 2)];
    const positions = [
      ids(0, 1, 2, 3, 4, 5, 6, 7),
      ids(4, 5, 6, 7, 8, 9, 10, 11),
      ids(7, 6, 5, 4, 3, 2, 1, 0),
    ];
    const batch = model.forward64({
      tokens: Int32Array.from(rows.flatMap((r) => Array.from(r))),
      positions: Int32Array.from(positions.flatMap((r) => Array.from(r))),
      rows: 3,
      returnKv: true,
    });
    rows.forEach((tokens, r) => {
      const alone = model.forward64({ tokens, positions: positions[r], rows: 1, returnKv: true });
      assert.ok(maxDiff(alone.logits, batch.logits.subarray(r * 88, (r + 1) * 88)) < 1e-12);
      const size = 2 * 8 * 4; // [KV, L, D] of one row
      assert.ok(
        maxDiff(alone.kv!.keys[1], batch.kv!.keys[1].subarray(r * size, (r + 1) * size)) < 1e-12,
      );
    });
  });

  it("logit shift: the logits at i are the unshifted logits at i - 1 (index 0 keeps its own)", () => {
    const config = tiny();
    const weights = randomWeights(config, 9, 0.5);
    const plain = new ReferenceModel(config, weights).forward64({ tokens: canvas, rows: 1 }).logits;
    const shifted = new ReferenceModel({ ...config, logitShift: true }, weights).forward64({
      tokens: canvas,
      rows: 1,
    }).logits;
    assert.deepEqual(row(shifted, 0), row(plain, 0));
    for (let i = 1; i < 8; i++) assert.deepEqual(row(shifted, i), row(plain, i - 1));
  });

  it("a tied head is the embedding matrix", () => {
    const tied = tiny({ tieWordEmbeddings: true });
    const weights = randomWeights(tied, 3, 0.5);
    assert.equal(weights.has("lm_head.weight"), false);
    const untied = new Map(weights).set(
      "lm_head.weight",
      weights.get("model.embed_tokens.weight")!,
    );
    const a = new ReferenceModel(tied, weights).forward64({ tokens: canvas, rows: 1 }).logits;
    const b = new ReferenceModel(tiny(), untied).forward64({ tokens: canvas, rows: 1 }).logits;
    assert.deepEqual(a, b);
    const other = new ReferenceModel(tiny(), randomWeights(tiny(), 3, 0.5));
    assert.ok(maxDiff(a, other.forward64({ tokens: canvas, rows: 1 }).logits) > 1e-3);
  });

  it("qkv bias: zero biases change nothing, nonzero ones change the output", () => {
    const config = tiny({ qkvBias: true });
    const weights = randomWeights(config, 4, 0.5);
    const zeroed = new Map(weights);
    for (const name of weights.keys()) {
      if (name.endsWith("_proj.bias"))
        zeroed.set(name, new Float32Array(weights.get(name)!.length));
    }
    const run = (c: ModelConfig, w: Weights) =>
      new ReferenceModel(c, w).forward64({ tokens: canvas, rows: 1 }).logits;
    const withBias = run(config, weights);
    const zeroBias = run(config, zeroed);
    assert.deepEqual(zeroBias, run(tiny(), weights)); // a bias-free config ignores them
    assert.ok(maxDiff(withBias, zeroBias) > 1e-3);
  });

  it("grouped-query attention equals multi-head attention with each kv head repeated", () => {
    for (const qkvBias of [false, true]) {
      const gqa = tiny({ qkvBias });
      const weights = randomWeights(gqa, 8, 0.5);
      const mha = tiny({ qkvBias, numKvHeads: 4 });
      const repeated = new Map(weights);
      // query head h reads kv head ⌊h / 2⌋: repeat each kv head's rows (D = 4 of them) twice
      const repeat = (w: Float32Array, width: number) => {
        const out = new Float32Array(w.length * 2);
        for (let h = 0; h < 4; h++) {
          const g = Math.floor(h / 2);
          out.set(w.subarray(g * 4 * width, (g + 1) * 4 * width), h * 4 * width);
        }
        return out;
      };
      for (let l = 0; l < 2; l++) {
        for (const p of ["k_proj", "v_proj"]) {
          const name = `model.layers.${l}.self_attn.${p}`;
          repeated.set(`${name}.weight`, repeat(weights.get(`${name}.weight`)!, 8));
          if (qkvBias) repeated.set(`${name}.bias`, repeat(weights.get(`${name}.bias`)!, 1));
        }
      }
      const request: ForwardRequest64 = { tokens: canvas, rows: 1 };
      const a = new ReferenceModel(gqa, weights).forward64(request).logits;
      const b = new ReferenceModel(mha, repeated).forward64(request).logits;
      assert.ok(maxDiff(a, b) < 1e-12);
    }
  });

  it("an explicit attention bias overrides the config's default", () => {
    const model = tinyModel();
    const causal = tinyModel({ attention: "causal" });
    const bias = new Float32Array(8 * 8);
    for (let i = 0; i < 8; i++) for (let j = i + 1; j < 8; j++) bias[i * 8 + j] = -Infinity;
    const a = model.forward64({ tokens: canvas, rows: 1, attentionBias: bias }).logits;
    assert.deepEqual(a, causal.forward64({ tokens: canvas, rows: 1 }).logits);
  });

  it("rejects bad requests with a ForwardRequestError naming the field", () => {
    const model = tinyModel();
    const kv = model.forward64({ tokens: ids(1, 2, 3, 4), rows: 2, returnKv: true }).kv!;
    const kv1 = model.forward64({ tokens: ids(1, 2), rows: 1, returnKv: true }).kv!;
    const bad: [string, ForwardRequest64][] = [
      ["rows", { tokens: canvas, rows: 0 }],
      ["tokens", { tokens: canvas, rows: 3 }],
      ["tokens", { tokens: ids(), rows: 1 }],
      ["tokens", { tokens: ids(1, 11), rows: 1 }],
      ["tokens", { tokens: ids(-1, 2), rows: 1 }],
      ["positions", { tokens: ids(1, 2), rows: 1, positions: ids(0) }],
      ["positions", { tokens: ids(1, 2), rows: 1, positions: ids(0, 32) }],
      ["positions", { tokens: ids(1, 2), rows: 1, positions: ids(-1, 0) }],
      // default positions 2..32 run past maxPositions (32)
      ["positions", { tokens: new Int32Array(31), rows: 1, context: kv1 }],
      ["logitsAt", { tokens: ids(1, 2), rows: 1, logitsAt: ids(2) }],
      ["logitsAt", { tokens: ids(1, 2), rows: 1, logitsAt: ids(-1) }],
      ["logitsAt", { tokens: ids(1, 2, 3, 4), rows: 2, logitsAt: ids(0) }],
      ["attentionBias", { tokens: ids(1, 2), rows: 1, attentionBias: new Float32Array(3) }],
      [
        "attentionBias",
        { tokens: ids(1, 2), rows: 1, attentionBias: Float32Array.of(0, 0, 0, NaN) },
      ],
      ["context.rows", { tokens: ids(1, 2), rows: 1, context: kv }],
      [
        "context.keys",
        { tokens: ids(1, 2, 3, 4), rows: 2, context: { ...kv, keys: kv.keys.slice(1) } },
      ],
      ["context.keys[0]", { tokens: ids(1, 2, 3, 4), rows: 2, context: { ...kv, length: 3 } }],
      [
        "context.values[1]",
        {
          tokens: ids(1, 2, 3, 4),
          rows: 2,
          context: { ...kv, values: [kv.values[0], new Float64Array(3)] },
        },
      ],
    ];
    for (const [field, request] of bad) {
      assert.throws(
        () => model.forward64(request),
        (e: unknown) => e instanceof ForwardRequestError && e.field === field,
        `expected a ForwardRequestError on ${field}`,
      );
    }
  });

  it("the async interface rejects bad requests and checks weights up front", async () => {
    const model = tinyModel();
    await assert.rejects(model.forward({ tokens: ids(11), rows: 1 }), ForwardRequestError);
    await model.dispose();
    await model.dispose();
    const config = tiny();
    const weights = randomWeights(config, 1);
    weights.delete("model.layers.1.mlp.up_proj.weight");
    assert.throws(() => new ReferenceModel(config, weights), WeightsError);
    weights.set("model.layers.1.mlp.up_proj.weight", new Float32Array(5));
    assert.throws(() => new ReferenceModel(config, weights), /up_proj.weight: has 5 values/);
  });
});
