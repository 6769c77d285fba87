import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ModelConfig } from "../src/model/config.js";
import { randomWeights } from "../src/model/random.js";
import { ReferenceModel } from "../src/model/reference.js";
import type { ForwardRequest, ForwardResult, LanguageModel } from "../src/model/types.js";
import { BpeTokenizer, SPECIAL_IDS } from "../src/train/bpe.js";
import { PackedRows } from "../src/train/data.js";
import { bitsPerByte, packedEvalText } from "../src/train/eval.js";

const V = 11;
const MASK = 10;

function tiny(over: Partial<ModelConfig> = {}): ModelConfig {
  return {
    modelType: "unmask",
    vocabSize: V,
    hiddenSize: 8,
    numLayers: 2,
    numHeads: 2,
    numKvHeads: 1,
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
    maskTokenId: MASK,
    padTokenId: null,
    bosTokenId: null,
    eosTokenId: null,
    ...over,
  };
}

/** A model with all-zero logits (uniform over V), recording what it was asked. */
class UniformModel implements LanguageModel {
  requests: ForwardRequest[] = [];
  constructor(readonly config: ModelConfig) {}
  async forward(request: ForwardRequest): Promise<ForwardResult> {
    this.requests.push(request);
    const n = request.tokens.length / request.rows;
    const p = request.logitsAt ? request.logitsAt.length / request.rows : n;
    return { logits: new Float32Array(request.rows * p * V), positions: p };
  }
  async dispose(): Promise<void> {}
}

const seq = (...t: number[]) => Int32Array.from(t);
const close = (a: number, b: number, tol: number, what: string) =>
  assert.ok(Math.abs(a - b) <= tol, `${what}: ${a} vs ${b}`);

describe("bitsPerByte", () => {
  it("diffusion ELBO of a uniform model is exactly L·ln V per sequence, whatever the masks", async () => {
    const model = new UniformModel(tiny());
    const text = {
      sequences: [seq(1, 2, 3, 4, 5, 6), seq(7, 8, 9, 1, 2, 3), seq(4, 5)],
      bytes: 20,
    };
    const r = await bitsPerByte(model, text, { samples: 5, batchRows: 4 });
    assert.equal(r.method, "diffusion-elbo");
    close(r.nats, 14 * Math.log(V), 1e-9, "nats");
    close(r.bitsPerByte, (14 * Math.log(V)) / Math.LN2 / 20, 1e-12, "bits/byte");
    close(r.natsPerToken, Math.log(V), 1e-12, "nats/token");
    assert.equal(r.tokens, 14);
    close(r.standardError, 0, 1e-9, "no spread");
    // 15 items, batched by length, at most 4 rows a pass: 10 rows of 6 tokens, 5 of 2.
    const rowsOf = (n: number) =>
      model.requests.filter((q) => q.tokens.length / q.rows === n).reduce((a, q) => a + q.rows, 0);
    assert.equal(rowsOf(6), 10);
    assert.equal(rowsOf(2), 5);
    assert.ok(model.requests.every((q) => q.rows <= 4));
  });

  it("masks l ∈ 1..L positions, asks logits exactly there, and stratifies l", async () => {
    const model = new UniformModel(tiny());
    const x = seq(1, 2, 3, 4, 5, 6, 7, 8);
    await bitsPerByte(model, { sequences: [x], bytes: 8 }, { samples: 8, batchRows: 1 });
    const counts = model.requests.map((q) => {
      const masked = [...q.tokens].flatMap((t, i) => (t === MASK ? [i] : []));
      assert.deepEqual([...q.logitsAt!], masked);
      q.tokens.forEach((t, i) => {
        if (t !== MASK) assert.equal(t, x[i]);
      });
      return masked.length;
    });
    // 8 samples over L = 8: one in each stratum, l = 1 … 8.
    assert.deepEqual(counts, [1, 2, 3, 4, 5, 6, 7, 8]);
  });

  it("the ELBO estimate converges to its expectation (L = 2, enumerated exactly)", async () => {
    const model = new ReferenceModel(tiny(), randomWeights(tiny(), 3, 0.5));
    const x = seq(3, 7);
    const nll = async (tokens: Int32Array, at: number) => {
      const { logits } = await model.forward({ tokens, rows: 1, logitsAt: Int32Array.of(at) });
      let max = -Infinity;
      for (const v of logits) max = Math.max(max, v);
      const lse = max + Math.log(logits.reduce((s, v) => s + Math.exp(v - max), 0));
      return lse - logits[x[at]];
    };
    // E_l[(L/l) Σ_masked −log p]: l = 1 (prob ½, either position, weight 2); l = 2 (weight 1).
    const one = (2 * (await nll(seq(MASK, 7), 0)) + 2 * (await nll(seq(3, MASK), 1))) / 2;
    const two = (await nll(seq(MASK, MASK), 0)) + (await nll(seq(MASK, MASK), 1));
    const expected = (one + two) / 2;
    const r = await bitsPerByte(model, { sequences: [x], bytes: 1 }, { samples: 400, seed: 1 });
    close(r.nats, expected, 4 * r.standardError * Math.LN2 + 1e-9, "ELBO");
    assert.ok(r.standardError > 0);
  });

  it("block diffusion: one block per sample, earlier blocks clean, L·ln V for a uniform model", async () => {
    const model = new UniformModel(tiny({ attention: "block_causal", blockSize: 4 }));
    const x = seq(1, 2, 3, 4, 5, 6, 7, 8, 9, 1, 2, 3);
    const r = await bitsPerByte(model, { sequences: [x], bytes: 12 }, { samples: 6 });
    assert.equal(r.method, "block-diffusion-elbo");
    close(r.nats, 12 * Math.log(V), 1e-9, "nats");
    const blocks = new Set<number>();
    for (const q of model.requests) {
      for (let r2 = 0; r2 < q.rows; r2++) {
        const row = [...q.tokens.subarray(r2 * 12, (r2 + 1) * 12)];
        const masked = row.flatMap((t, i) => (t === MASK ? [i] : []));
        const b = Math.floor(masked[0] / 4);
        blocks.add(b);
        assert.ok(masked.every((i) => Math.floor(i / 4) === b));
      }
    }
    assert.deepEqual([...blocks].sort(), [0, 1, 2], "stratified over blocks");
  });

  it("AR: the exact log-likelihood, position i predicting token i + 1", async () => {
    const cfg = tiny({ attention: "causal", maskTokenId: null });
    const model = new ReferenceModel(cfg, randomWeights(cfg, 5, 0.5));
    const x = seq(1, 4, 2, 8, 5, 7, 3);
    const { logits } = await model.forward({ tokens: x, rows: 1 });
    let expected = 0;
    for (let i = 0; i + 1 < x.length; i++) {
      const row = logits.subarray(i * V, (i + 1) * V);
      const max = Math.max(...row);
      expected += max + Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0)) - row[x[i + 1]];
    }
    const r = await bitsPerByte(model, { sequences: [x, x], bytes: 10 });
    assert.equal(r.method, "exact");
    assert.equal(r.tokens, 12);
    close(r.nats, 2 * expected, 1e-4, "nats");
    close(r.bitsPerByte, (2 * expected) / Math.LN2 / 10, 1e-5, "bits/byte");
    assert.equal(r.standardError, 0);
  });

  it("refuses a diffusion model without a mask id", async () => {
    const model = new UniformModel(tiny({ maskTokenId: null }));
    await assert.rejects(bitsPerByte(model, { sequences: [seq(1, 2)], bytes: 2 }), /mask_token_id/);
  });
});

describe("packedEvalText", () => {
  it("takes rows of a token stream and counts their exact UTF-8 bytes (specials: 0)", () => {
    const tok = new BpeTokenizer({ merges: [] }); // bytes only: id = 7 + byte
    const text = "héllo, wörld ✓\n";
    const ids = [...tok.encodeOrdinary(text), SPECIAL_IDS.eos];
    const rows = new PackedRows(Uint16Array.from([...ids, ...ids]), ids.length);
    const t = packedEvalText(rows, tok, 1);
    assert.equal(t.sequences.length, 1);
    assert.deepEqual([...t.sequences[0]], ids);
    assert.equal(t.bytes, Buffer.byteLength(text));
    assert.equal(packedEvalText(rows, tok).bytes, 2 * Buffer.byteLength(text));
  });
});
