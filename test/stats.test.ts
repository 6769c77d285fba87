// Step statistics computed in the graph against the host computation they replace.
//
// Tolerance: the graph works in float32 (max, exp, a sum over the vocabulary, log), the host twin
// in float64 from the same float32 logits. Ids are compared exactly (TopK and the host break
// ties toward the lower id, and both see the same float32 values). Log-probabilities, the
// log-sum-exp and the entropy differ by float32 rounding: each term's relative error is ~2⁻²⁴
// and the vocabulary-wide sum adds at most V·2⁻²⁴ relative to the sum, so for V ≤ 10⁴ and logits of
// magnitude ≤ 30 an absolute bound of 2e-5 (plus 2e-6 relative) holds with room to spare.

import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import {
  filterTopK,
  filterTopP,
  marginConfidence,
  marginFromStats,
  negativeEntropy,
  sampleCategorical,
  sampleNucleus,
  softmax,
} from "../src/diffusion/sampling.js";
import { Graph } from "../src/graph/graph.js";
import { OnnxModel } from "../src/model/engine.js";
import { Rng, randomWeights } from "../src/model/random.js";
import { ReferenceModel } from "../src/model/reference.js";
import { ForwardRequestError } from "../src/model/request.js";
import { hostStepStats, statsFeeds, statsInputs, stepStatistics } from "../src/model/stats.js";
import type { StatsRequest, StepStats } from "../src/model/types.js";
import { floatTensor, Session } from "../src/runtime/session.js";
import { tinyModelConfig } from "./tiny-config.js";

const close = (a: number, b: number, what: string) =>
  assert.ok(
    Math.abs(a - b) <= 2e-5 + 2e-6 * Math.abs(b) || a === b,
    `${what}: ${a} vs ${b} (difference ${Math.abs(a - b)})`,
  );

function assertStatsEqual(got: StepStats, want: StepStats, rows: number) {
  assert.equal(got.k, want.k);
  assert.deepEqual(Array.from(got.ids), Array.from(want.ids), "top-k ids");
  for (let i = 0; i < rows * got.k; i++) close(got.logProbs[i], want.logProbs[i], `logProbs[${i}]`);
  for (let r = 0; r < rows; r++) {
    close(got.logSumExp[r], want.logSumExp[r], `logSumExp[${r}]`);
    close(got.entropy[r], want.entropy[r], `entropy[${r}]`);
    if (want.scoreLogProbs !== undefined) {
      close(got.scoreLogProbs![r], want.scoreLogProbs[r], `scoreLogProbs[${r}]`);
    }
  }
}

/** Runs the graph's statistics on given logits [B, P, V]. */
async function graphStats(
  logits: Float32Array,
  B: number,
  P: number,
  V: number,
  request: StatsRequest,
): Promise<StepStats> {
  const g = new Graph("stats");
  const x = g.input("logits", "float32", ["rows", V]);
  const s = stepStatistics(x, V, statsInputs(g));
  g.output(s.ids, "ids");
  g.output(s.logProbs, "lp");
  g.output(s.logSumExp, "lse");
  g.output(s.entropy, "h");
  g.output(s.scoreLogProbs, "score_lp");
  const session = await Session.fromGraph(g, { threads: 1 });
  try {
    const out = await session.run({
      logits: floatTensor(logits, [B * P, V]),
      ...statsFeeds(request, B * P),
    });
    const stats: StepStats = {
      k: request.topK,
      temperature: request.temperature ?? 1,
      ids: out.ids.data as Int32Array,
      logProbs: out.lp.data as Float32Array,
      logSumExp: out.lse.data as Float32Array,
      entropy: out.h.data as Float32Array,
    };
    if (request.scoreTokens !== undefined) stats.scoreLogProbs = out.score_lp.data as Float32Array;
    return stats;
  } finally {
    await session.release();
  }
}

/** Random logits with exact ties and one-ulp near-ties among the largest values. */
function trickyLogits(rows: number, V: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  const x = new Float32Array(rows * V);
  for (let i = 0; i < x.length; i++) x[i] = 8 * (rng.next() - 0.5);
  for (let r = 0; r < rows; r++) {
    const row = x.subarray(r * V, (r + 1) * V);
    const top = 6 + 3 * rng.next();
    const a = Math.floor(rng.next() * V);
    const b = Math.floor(rng.next() * V);
    const c = Math.floor(rng.next() * V);
    row[a] = top;
    row[b] = top; // an exact tie for first place (unless b === a)
    if (r % 2 === 0) {
      // one float32 ulp below: a near-tie
      const f = new Float32Array([top]);
      const bits = new Int32Array(f.buffer);
      bits[0] -= 1;
      row[c] = f[0];
    } else {
      row[c] = row[(c + 1) % V]; // a tie lower down
    }
  }
  return x;
}

describe("step statistics in the graph", () => {
  for (const [V, k] of [
    [37, 1],
    [37, 2],
    [500, 5],
    [8192, 2],
  ] as const) {
    it(`equal the float64 host twin: V ${V}, k ${k}, ties and near-ties`, async () => {
      const B = 2;
      const P = 7;
      const logits = trickyLogits(B * P, V, V + k);
      const scoreTokens = Int32Array.from({ length: B * P }, (_, i) => (i * 11) % V);
      for (const exclude of [undefined, Int32Array.of(0), Int32Array.of(3, V - 1, 5)]) {
        const request: StatsRequest = { topK: k, scoreTokens };
        if (exclude !== undefined) request.exclude = exclude;
        const got = await graphStats(logits, B, P, V, request);
        assertStatsEqual(got, hostStepStats(logits, B * P, V, request), B * P);
      }
    });
  }

  it("an excluded token never appears in the top-k and has log-probability −∞", async () => {
    const V = 16;
    const logits = new Float32Array(V).fill(0);
    logits[4] = 10;
    const request = { topK: 3, exclude: Int32Array.of(4), scoreTokens: Int32Array.of(4) };
    const got = await graphStats(logits, 1, 1, V, request);
    assert.ok(!Array.from(got.ids).includes(4));
    assert.deepEqual(Array.from(got.ids), [0, 1, 2]); // equal logits: lowest ids first
    assert.equal(got.scoreLogProbs![0], Number.NEGATIVE_INFINITY);
    close(got.logSumExp[0], Math.log(V - 1), "log-sum-exp over the 15 others");
    close(got.entropy[0], Math.log(V - 1), "entropy of a uniform 15-way choice");
  });
});

describe("Dream's top-p draw from the candidates", () => {
  it("keeps the same nucleus and draws the same token as the whole row, or declines", async () => {
    const V = 300;
    const k = 64;
    const probs = new Float64Array(k);
    const order = new Int32Array(k);
    const w = new Float64Array(V);
    const full = new Float64Array(V);
    const sortScratch = new Float64Array(V);
    const vocabOrder = new Int32Array(V);
    let drawn = 0;
    let declined = 0;
    for (const [temperature, topP, topK] of [
      [0.2, 0.95, 0],
      [0.7, 0.9, 0],
      [1, 0.5, 3],
      [1, 0.99, 0],
      [5, 0.95, 0], // a flat distribution: the nucleus outgrows the candidates
    ] as const) {
      const rows = 40;
      const logits = trickyLogits(rows, V, Math.round(temperature * 100 + topP * 10));
      for (let i = 0; i < logits.length; i++) logits[i] *= 1 + (i % 3); // varied sharpness
      const exclude = Int32Array.of(7);
      const stats = await graphStats(logits, 1, rows, V, { topK: k, exclude, temperature });
      for (let r = 0; r < rows; r++) {
        const a = new Rng(r);
        const b = new Rng(r);
        const fromCandidates = sampleNucleus(
          stats.ids,
          stats.logProbs,
          r * k,
          k,
          topP,
          topK,
          a,
          probs,
          order,
        );
        // the whole-row host path: the row / T, mask excluded, top-p, top-k, softmax, draw
        for (let v = 0; v < V; v++)
          w[v] = v === 7 ? Number.NEGATIVE_INFINITY : logits[r * V + v] / temperature;
        filterTopP(w, topP, vocabOrder, sortScratch, V);
        filterTopK(w, topK, sortScratch, V);
        softmax(w, full, V);
        let kept = 0;
        for (let v = 0; v < V; v++) if (full[v] > 0) kept++;
        if (fromCandidates === null) {
          assert.ok(kept > k, `declined with a nucleus of ${kept}`);
          declined++;
          continue;
        }
        drawn++;
        const token = sampleCategorical(full, b, V);
        assert.equal(fromCandidates.token, token, `row ${r}`);
        close(probs[fromCandidates.index], full[token], "probability of the drawn token");
        assert.equal(fromCandidates.kept, kept, "nucleus size");
        let entropy = 0;
        for (let t = 0; t < fromCandidates.kept; t++)
          entropy += probs[t] * Math.log(probs[t] + 1e-10);
        close(entropy, negativeEntropy(full, V), "negative entropy of the nucleus");
      }
    }
    assert.ok(drawn > 100 && declined > 0, `${drawn} drawn, ${declined} declined`);
  });
});

const tinyConfig = (over: Record<string, unknown> = {}) =>
  tinyModelConfig({ vocab_size: 61, ...over });

describe("step statistics from the engine", () => {
  const disposers: (() => Promise<void>)[] = [];
  after(async () => {
    for (const d of disposers) await d();
  });

  for (const [name, over] of [
    ["full attention", {}],
    ["causal, logit shift", { attention_mask: "causal", logit_shift: true }],
  ] as const) {
    it(`${name}: equal the host computation on the engine's own logits, and the float64 reference`, async () => {
      const config = tinyConfig(over);
      const weights = randomWeights(config, 7, 1.5);
      const engine = await OnnxModel.create(config, weights, { threads: 1 });
      disposers.push(() => engine.dispose());
      const reference = new ReferenceModel(config, weights);
      const rows = 2;
      const n = 9;
      const tokens = Int32Array.from({ length: rows * n }, (_, i) => (i * 13 + 5) % 61);
      const logitsAt = Int32Array.of(0, 3, 8, 1, 2, 8);
      const stats: StatsRequest = {
        topK: 3,
        exclude: Int32Array.of(60, 59),
        scoreTokens: Int32Array.of(1, 2, 3, 4, 5, 6),
      };
      const both = await engine.forward({ tokens, rows, logitsAt, stats });
      const only = await engine.forward({ tokens, rows, logitsAt, stats, logits: false });
      assert.equal(only.logits.length, 0, "logits: false returns no vocabulary-wide rows");
      assert.ok(both.engineMs !== undefined && both.engineMs >= 0);
      assertStatsEqual(only.stats!, hostStepStats(both.logits, rows * 3, 61, stats), rows * 3);
      assertStatsEqual(only.stats!, both.stats!, rows * 3);
      // against the float64 reference: the same statistics up to the engine's float32 forward
      // pass (ids may swap only where two log-probabilities are within that error)
      const ref = (await reference.forward({ tokens, rows, logitsAt, stats, logits: false }))
        .stats!;
      for (let i = 0; i < ref.ids.length; i++) {
        if (only.stats!.ids[i] !== ref.ids[i]) {
          assert.ok(Math.abs(only.stats!.logProbs[i] - ref.logProbs[i]) < 1e-4, `id ${i}`);
        }
        assert.ok(Math.abs(only.stats!.logProbs[i] - ref.logProbs[i]) < 1e-4);
      }
      for (let r = 0; r < rows * 3; r++) {
        assert.ok(Math.abs(only.stats!.entropy[r] - ref.entropy[r]) < 1e-4);
        assert.ok(Math.abs(only.stats!.logSumExp[r] - ref.logSumExp[r]) < 1e-4);
      }
    });
  }

  it("every confidence kind from the statistics equals the host path's", async () => {
    const config = tinyConfig();
    const engine = await OnnxModel.create(config, randomWeights(config, 9, 2), { threads: 1 });
    disposers.push(() => engine.dispose());
    const n = 20;
    const tokens = Int32Array.from({ length: n }, (_, i) => (i * 17 + 3) % 61);
    const V = 61;
    const mask = 60;
    const stats = { topK: 2, exclude: Int32Array.of(mask) };
    const out = await engine.forward({ tokens, rows: 1, stats });
    const s = out.stats!;
    const w = new Float64Array(V);
    const probs = new Float64Array(V);
    for (let j = 0; j < n; j++) {
      // the host path of the denoise loop: the row in float64, the mask token at −∞, softmax
      for (let v = 0; v < V; v++) w[v] = out.logits[j * V + v];
      w[mask] = Number.NEGATIVE_INFINITY;
      softmax(w, probs, V);
      let token = 0;
      for (let v = 1; v < V; v++) if (probs[v] > probs[token]) token = v;
      assert.equal(s.ids[j * 2], token, `token at ${j}`);
      close(Math.exp(s.logProbs[j * 2]), probs[token], `probability at ${j}`);
      close(marginFromStats(s.logProbs, j, 2), marginConfidence(probs, V), `margin at ${j}`);
      close(-s.entropy[j], negativeEntropy(probs, V), `negative entropy at ${j}`);
    }
  });

  it("a bad statistics request is a ForwardRequestError naming the field", async () => {
    const config = tinyConfig();
    const engine = await OnnxModel.create(config, randomWeights(config, 1), { threads: 1 });
    disposers.push(() => engine.dispose());
    const tokens = Int32Array.of(1, 2, 3);
    for (const [stats, field] of [
      [{ topK: 0 }, "stats.topK"],
      [{ topK: 62 }, "stats.topK"],
      [{ topK: 1, exclude: Int32Array.of(61) }, "stats.exclude"],
      [{ topK: 1, scoreTokens: Int32Array.of(1, 2) }, "stats.scoreTokens"],
    ] as const) {
      await assert.rejects(
        engine.forward({ tokens, rows: 1, stats }),
        (e: unknown) => e instanceof ForwardRequestError && e.field === field,
      );
    }
  });
});
