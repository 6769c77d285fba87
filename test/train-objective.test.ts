import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Rng } from "../src/model/random.js";
import {
  applyFim,
  blockDiffusionBatch,
  maskedDiffusionBatch,
  nextTokenBatch,
  sampleMaskRates,
} from "../src/train/objective.js";

const MASK = 0;

/** rows × length tokens, none equal to the mask id. */
function cleanRows(rows: number, length: number, seed = 1): Int32Array {
  const rng = new Rng(seed);
  return Int32Array.from({ length: rows * length }, () => 7 + rng.int(100));
}

describe("sampleMaskRates", () => {
  it("puts one rate in each stratum [i/n, (i+1)/n), mapped to [ε, 1]", () => {
    const n = 64;
    const eps = 1e-3;
    const p = sampleMaskRates(n, new Rng(3), true, eps);
    for (let i = 0; i < n; i++) {
      const t = (p[i] - eps) / (1 - eps);
      assert.ok(t >= i / n && t < (i + 1) / n, `rate ${i}: t = ${t}`);
    }
  });

  it("draws independent uniforms without low discrepancy, never below ε", () => {
    const p = sampleMaskRates(2000, new Rng(4), false, 0.05);
    assert.ok(p.every((x) => x >= 0.05 && x <= 1));
    const mean = p.reduce((a, b) => a + b, 0) / p.length;
    assert.ok(Math.abs(mean - 0.525) < 0.02, `mean ${mean}`);
    // Not stratified: the first rates are not all small.
    assert.ok(Math.max(...p.subarray(0, 100)) > 0.5);
  });

  it("is a pure function of the generator state", () => {
    const a = new Rng(9);
    const b = Rng.fromState(a.state());
    assert.deepEqual(sampleMaskRates(8, a), sampleMaskRates(8, b));
  });
});

describe("maskedDiffusionBatch (MDLM/LLaDA)", () => {
  const rows = 4;
  const length = 4096;
  const rates = [0.001, 0.25, 0.5, 0.9];
  const clean = cleanRows(rows, length);
  const batch = maskedDiffusionBatch(clean, rows, length, new Rng(5), { maskId: MASK, rates });

  it("masks about t of each row, with the mask id exactly at the loss positions", () => {
    const lossAt = new Set(batch.lossIndex);
    for (let r = 0; r < rows; r++) {
      let masked = 0;
      for (let i = r * length; i < (r + 1) * length; i++) {
        const isMasked = batch.tokens[i] === MASK;
        assert.equal(isMasked, lossAt.has(i), `position ${i}`);
        if (isMasked) masked++;
        else assert.equal(batch.tokens[i], clean[i]);
      }
      const sd = Math.sqrt(rates[r] * (1 - rates[r]) * length);
      assert.ok(Math.abs(masked - rates[r] * length) < 4 * sd + 1, `row ${r}: ${masked} masked`);
    }
  });

  it("targets the clean tokens with weight 1 / (p_mask · rows · length)", () => {
    assert.equal(batch.rows, rows);
    assert.equal(batch.targets.length, batch.lossIndex.length);
    for (let k = 0; k < batch.lossIndex.length; k++) {
      const i = batch.lossIndex[k];
      assert.equal(batch.targets[k], clean[i]);
      const r = Math.floor(i / length);
      assert.equal(batch.weights[k], Math.fround(1 / (rates[r] * rows * length)));
    }
  });

  it("is an unbiased estimate: E[Σ weights] = 1 (each token's expected weight is 1/(rows·L))", () => {
    // Σ_k w_k = Σ_r masked_r / (p_r · rows · L): each row's share is about 1/rows (row 0, at
    // p = ε, masks only ~4 tokens: too few to test).
    for (let r = 1; r < rows; r++) {
      let share = 0;
      batch.lossIndex.forEach((i, k) => {
        if (Math.floor(i / length) === r) share += batch.weights[k];
      });
      assert.ok(Math.abs(share * rows - 1) < 0.1, `row ${r}: rows·Σw = ${share * rows}`);
    }
  });

  it("honours a normaliser and leaves the input rows untouched", () => {
    const copy = clean.slice();
    const b = maskedDiffusionBatch(clean, rows, length, new Rng(5), {
      maskId: MASK,
      rates,
      normalizer: 10,
    });
    assert.deepEqual(clean, copy);
    assert.equal(b.weights[0], Math.fround(1 / (rates[Math.floor(b.lossIndex[0] / length)] * 10)));
  });

  it("rejects a mismatched shape", () => {
    assert.throws(() => maskedDiffusionBatch(clean, 3, length, new Rng(1), { maskId: 0, rates }));
  });
});

describe("blockDiffusionBatch (BD3-LM)", () => {
  const rows = 64;
  const length = 32;
  const S = 8;
  const clean = cleanRows(rows, length, 2);

  it("clean context: one noisy block per row, earlier blocks clean, weight numBlocks/(p·N)", () => {
    const rates = Array.from({ length: rows }, (_, r) => 0.5 + r / (4 * rows));
    const b = blockDiffusionBatch(clean, rows, length, new Rng(6), {
      maskId: MASK,
      rates,
      blockSize: S,
    });
    const blocksUsed = new Set<number>();
    for (let r = 0; r < rows; r++) {
      const masked: number[] = [];
      for (let i = 0; i < length; i++) if (b.tokens[r * length + i] === MASK) masked.push(i);
      if (masked.length === 0) continue;
      const block = Math.floor(masked[0] / S);
      blocksUsed.add(block);
      assert.ok(
        masked.every((i) => Math.floor(i / S) === block),
        `row ${r} masks two blocks`,
      );
    }
    assert.equal(blocksUsed.size, length / S, "every block gets chosen somewhere");
    for (let k = 0; k < b.lossIndex.length; k++) {
      const r = Math.floor(b.lossIndex[k] / length);
      assert.equal(b.weights[k], Math.fround(length / S / (rates[r] * rows * length)));
      assert.equal(b.targets[k], clean[b.lossIndex[k]]);
    }
  });

  it("noisy context: every block masked at its own rate", () => {
    const blocks = length / S;
    const rates = Array.from({ length: rows * blocks }, (_, i) => (i % blocks === 0 ? 1 : 0.001));
    const b = blockDiffusionBatch(clean, rows, length, new Rng(7), {
      maskId: MASK,
      rates,
      blockSize: S,
      context: "noisy",
    });
    for (let r = 0; r < rows; r++) {
      for (let i = 0; i < S; i++) assert.equal(b.tokens[r * length + i], MASK);
    }
    assert.ok(b.lossIndex.length < rows * S + 10);
    assert.equal(b.weights[0], Math.fround(1 / (rows * length)));
  });

  it("rejects a block size that does not divide the row", () => {
    assert.throws(
      () =>
        blockDiffusionBatch(clean, rows, length, new Rng(1), {
          maskId: MASK,
          rates: [],
          blockSize: 5,
        }),
      /divide/,
    );
  });
});

describe("nextTokenBatch (AR)", () => {
  it("predicts token i+1 from position i with weight 1/(rows·(L−1))", () => {
    const clean = Int32Array.from([10, 11, 12, 13, 20, 21, 22, 23]);
    const b = nextTokenBatch(clean, 2, 4);
    assert.deepEqual(b.tokens, clean);
    assert.deepEqual([...b.lossIndex], [0, 1, 2, 4, 5, 6]);
    assert.deepEqual([...b.targets], [11, 12, 13, 21, 22, 23]);
    assert.ok(b.weights.every((w) => w === Math.fround(1 / 6)));
  });

  it("from a prompt's end: only the response's tokens are targets", () => {
    const clean = Int32Array.from([10, 11, 12, 13, 20, 21, 22, 23]);
    const b = nextTokenBatch(clean, 2, 4, undefined, 2);
    assert.deepEqual([...b.lossIndex], [1, 2, 5, 6]);
    assert.deepEqual([...b.targets], [12, 13, 22, 23]);
    assert.ok(b.weights.every((w) => w === Math.fround(1 / 4)));
    assert.throws(() => nextTokenBatch(clean, 2, 4, undefined, 4), /from 4/);
  });
});

describe("applyFim (PSM)", () => {
  it("rearranges a row into [PRE] prefix [SUF] suffix [MID] middle of the same length", () => {
    const L = 20;
    const rows = 50;
    const clean = Int32Array.from({ length: rows * L }, (_, i) => 100 + (i % L));
    const out = clean.slice();
    applyFim(out, rows, L, new Rng(8), { rate: 0.5, prefixId: 4, middleId: 5, suffixId: 6 });
    let transformed = 0;
    for (let r = 0; r < rows; r++) {
      const row = [...out.subarray(r * L, (r + 1) * L)];
      if (row[0] !== 4) {
        assert.deepEqual(row, [...clean.subarray(r * L, (r + 1) * L)]);
        continue;
      }
      transformed++;
      const suf = row.indexOf(6);
      const mid = row.indexOf(5);
      assert.ok(suf > 0 && mid > suf);
      const prefix = row.slice(1, suf);
      const suffix = row.slice(suf + 1, mid);
      const middle = row.slice(mid + 1);
      const src = [...clean.subarray(r * L, r * L + L - 3)];
      assert.deepEqual([...prefix, ...middle, ...suffix], src);
    }
    assert.ok(transformed > 10 && transformed < 40, `${transformed} of ${rows} transformed`);
  });
});
