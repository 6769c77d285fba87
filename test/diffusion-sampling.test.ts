// The pure functions of a step against hand-computed values from their references.

import assert from "node:assert/strict";
import { test } from "node:test";
import {
  dreamTimesteps,
  dreamTransferCount,
  filterTopK,
  filterTopP,
  filterTopPBySort,
  gumbelArgmax,
  marginConfidence,
  negativeEntropy,
  numTransferTokens,
  rankByConfidence,
  selectFactor,
  selectSampled,
  selectThreshold,
  softmax,
} from "../src/diffusion/sampling.js";
import { Rng } from "../src/model/random.js";

const NEG = Number.NEGATIVE_INFINITY;

test("LLaDA's get_num_transfer_tokens: even split, remainder first", () => {
  assert.deepEqual(Array.from(numTransferTokens(10, 4)), [3, 3, 2, 2]);
  assert.deepEqual(Array.from(numTransferTokens(3, 5)), [1, 1, 1, 0, 0]);
  assert.deepEqual(Array.from(numTransferTokens(32, 32)), Array(32).fill(1));
});

test("Dream's timesteps linspace(1, eps, steps + 1) in float32, and its transfer counts", () => {
  const t = dreamTimesteps(4, 1e-3);
  const expected = [1, 0.75025, 0.5005, 0.25075, 0.001].map(Math.fround);
  assert.deepEqual(Array.from(t), expected);
  // int(masked · (1 − s/t)); everything on the last step
  assert.equal(dreamTransferCount(20, 0, 4, t), 4);
  assert.equal(dreamTransferCount(16, 1, 4, t), 5);
  assert.equal(dreamTransferCount(7, 3, 4, t), 7);
  // one step per token: 1 − s/t is just under 1/(remaining) and truncates to 0 early on
  const u = dreamTimesteps(8, 1e-3);
  assert.equal(dreamTransferCount(8, 0, 8, u), 0);
});

test("Dream's top-k and top-p filters", () => {
  const x = Float64Array.of(1, 3, 2, 3);
  filterTopK(x, 2, new Float64Array(4));
  assert.deepEqual(Array.from(x), [NEG, 3, NEG, 3]); // ties with the k-th stay
  const logits = Float64Array.from([0.5, 0.3, 0.15, 0.05], Math.log);
  const a = logits.slice();
  filterTopP(a, 0.7, new Int32Array(4), new Float64Array(4));
  assert.deepEqual(Array.from(a, Number.isFinite), [true, true, false, false]);
  const b = logits.slice();
  filterTopP(b, 0.5, new Int32Array(4), new Float64Array(4)); // 0.5 is not above 0.5: keep the next
  assert.deepEqual(Array.from(b, Number.isFinite), [true, true, false, false]);
  const c = logits.slice();
  filterTopP(c, 0.4, new Int32Array(4), new Float64Array(4)); // the first token always stays
  assert.deepEqual(Array.from(c, Number.isFinite), [true, false, false, false]);
});

test("Gumbel-max: temperature 0 is argmax (lowest id on ties); temperature 1 samples the softmax", () => {
  const rng = new Rng(1);
  assert.equal(gumbelArgmax(Float64Array.of(0, 2, 2, 1), 0, rng), 1);
  const logits = Float64Array.of(Math.log(0.6), Math.log(0.3), Math.log(0.1));
  const counts = [0, 0, 0];
  for (let i = 0; i < 20000; i++) counts[gumbelArgmax(logits, 1, rng)]++;
  for (const [i, p] of [0.6, 0.3, 0.1].entries())
    assert.ok(Math.abs(counts[i] / 20000 - p) < 0.015, `${counts}`);
});

test("confidences: probability, margin, negative entropy", () => {
  const p = softmax(Float64Array.from([0.7, 0.2, 0.1], Math.log), new Float64Array(3));
  assert.ok(Math.abs(marginConfidence(p) - 0.5) < 1e-12);
  const h = 0.7 * Math.log(0.7 + 1e-10) + 0.2 * Math.log(0.2 + 1e-10) + 0.1 * Math.log(0.1 + 1e-10);
  assert.ok(Math.abs(negativeEntropy(p) - h) < 1e-12);
  assert.deepEqual(Array.from(softmax(Float64Array.of(NEG, NEG), new Float64Array(2))), [0, 0]);
});

test("selections: ranking, threshold, Fast-dLLM's factor rule, sampled without replacement", () => {
  const conf = Float64Array.of(0.5, 0.99, 0.4, 0.9, 0.5);
  const positions = Int32Array.of(10, 11, 12, 13, 14);
  const ranked = rankByConfidence(conf, positions, 5, new Int32Array(5));
  assert.deepEqual(Array.from(ranked), [1, 3, 0, 4, 2]); // ties by position
  assert.deepEqual(Array.from(selectThreshold(ranked, conf, 0.9)), [1, 3]);
  assert.deepEqual(Array.from(selectThreshold(ranked, conf, 0.999)), [1]); // the surest always
  // factor 1: thresholds −1, 1 − 1/3, 1 − 1/4, …: 0.99 and 0.9 pass, 0.5 < 0.75 stops
  assert.deepEqual(Array.from(selectFactor(ranked, conf, 1)), [1, 3]);
  // the reference's quirk: stopping on the last candidate still takes it
  const c2 = Float64Array.of(0.99, 0.99, 0.1);
  const r2 = rankByConfidence(c2, Int32Array.of(0, 1, 2), 3, new Int32Array(3));
  assert.equal(selectFactor(r2, c2, 1).length, 3);
  const out = new Int32Array(5);
  const pick = (seed: number) =>
    Array.from(selectSampled(conf, positions, 5, 3, 0.1, new Rng(seed), new Float64Array(5), out));
  const a = pick(4);
  assert.equal(new Set(a).size, 3);
  assert.deepEqual(pick(4), a);
  // a sharp alg_temp is the top-k
  const sharp = Array.from(
    selectSampled(conf, positions, 5, 2, 1e-4, new Rng(1), new Float64Array(5), out),
  );
  assert.deepEqual(sharp, [1, 3]);
});

test("filterTopP (candidates only) equals the full sort on random and tied logits", () => {
  const rng = new Rng(3);
  for (let trial = 0; trial < 300; trial++) {
    const n = 1 + rng.int(300);
    const scale = [0.1, 1, 5, 30][trial % 4];
    const x = Float64Array.from({ length: n }, () =>
      trial % 5 === 0 ? Math.round(rng.normal() * 2) : scale * rng.normal(),
    );
    const p = [0.1, 0.5, 0.9, 0.95, 0.999, 0.999999][trial % 6];
    const fast = Float64Array.from(x);
    const slow = Float64Array.from(x);
    filterTopP(fast, p, new Int32Array(n), new Float64Array(n));
    filterTopPBySort(slow, p, new Int32Array(n), new Float64Array(n));
    assert.deepEqual(fast, slow, `trial ${trial}: n ${n}, p ${p}`);
  }
});
