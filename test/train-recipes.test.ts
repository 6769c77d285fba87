// Training recipes for parallel decoding, each against the float64 reference (src/model/
// reference.ts), which reads the model's logit shift and attention on its own:
//   - the logit shift (Dream): the loss of a masked token is read where inference reads it;
//   - BD3-LM's vectorized [x_t ; x_0] trainer (with complementary masks, Fast-dLLM v2) equals the
//     loss of running every block separately after its clean predecessors;
//   - DiffuLLaMA's attention-mask annealing, from causal to full;
//   - TiDAR's one-model drafting: the [x_0 ; masks] trainer equals the next-token loss plus each
//     mask block run as the one-model decoder runs it (src/diffusion/speculative.ts).

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { oneModelBias } from "../src/diffusion/speculative.js";
import type { ModelConfig, Weights } from "../src/model/config.js";
import { Rng, randomWeights } from "../src/model/random.js";
import { ReferenceModel } from "../src/model/reference.js";
import { defaultAttentionBias } from "../src/model/request.js";
import {
  annealMask,
  annealRatio,
  blockDiffusionBatch,
  blockDualMask,
  draftBatch,
  draftMask,
  maskedDiffusionBatch,
} from "../src/train/objective.js";
import { createTrainStep, type LossBatch, parameterLayout } from "../src/train/step.js";
import { assertGradientsMatch } from "./finite-differences.js";
import { tinyModelConfig } from "./tiny-config.js";

const V = 23;
const MASK = 0;

const tiny = (over: Record<string, unknown>): ModelConfig =>
  tinyModelConfig({ mask_token_id: MASK, ...over });

/** −log softmax(row)[target] in float64. */
function crossEntropy(row: Float64Array, target: number): number {
  const max = Math.max(...row);
  const logZ = max + Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0));
  return logZ - row[target];
}

/** Clean rows of tokens 1..V−1 (never the mask). */
function cleanRows(rows: number, length: number, seed: number): Int32Array {
  const rng = new Rng(seed);
  return Int32Array.from({ length: rows * length }, () => 1 + rng.int(V - 1));
}

/** Runs the ONNX training step on a batch; returns its loss and gradient. */
async function stepLoss(config: ModelConfig, weights: Weights, batch: LossBatch) {
  const step = await createTrainStep(config, { threads: 1 });
  try {
    const params = new Float32Array(step.parameterCount);
    for (const p of parameterLayout(config)) {
      params.set(weights.get(p.name) as Float32Array, p.offset);
    }
    const grad = new Float32Array(step.parameterCount);
    const loss = await step.run(params, batch, grad);
    return { loss, grad, params };
  } finally {
    await step.dispose();
  }
}

describe("logit shift in training (Dream)", () => {
  for (const attention of ["full", "block_causal"] as const) {
    it(`${attention}: the loss is the reference's cross-entropy at the masked positions, position 0 excluded`, async () => {
      const config = tiny({ attention_mask: attention, block_size: 3, logit_shift: true });
      const weights = randomWeights(config, 4, 0.3);
      const rows = 3;
      const L = 6;
      const clean = cleanRows(rows, L, 2);
      const rates = [0.99, 0.6, 0.4];
      const make = (rng: Rng) =>
        attention === "full"
          ? maskedDiffusionBatch(clean, rows, L, rng, { maskId: MASK, rates, shift: true })
          : blockDiffusionBatch(clean, rows, L, rng, {
              maskId: MASK,
              rates,
              blockSize: 3,
              shift: true,
            });
      const batch = make(new Rng(8));
      const { loss } = await stepLoss(config, weights, batch);

      // The reference reads logits at a masked position i from the hidden state at i − 1 itself.
      const reference = new ReferenceModel(config, weights);
      let expected = 0;
      let items = 0;
      const blocks = attention === "full" ? 1 : L / 3;
      for (let r = 0; r < rows; r++) {
        const row = batch.tokens.subarray(r * L, (r + 1) * L);
        const at = [...row.keys()].filter((i) => row[i] === MASK && i > 0);
        if (at.length === 0) continue;
        const out = reference.forward64({ tokens: row, rows: 1, logitsAt: Int32Array.from(at) });
        at.forEach((i, s) => {
          const w = blocks / (rates[r] * rows * L);
          expected += w * crossEntropy(out.logits.subarray(s * V, (s + 1) * V), clean[r * L + i]);
          items++;
        });
      }
      assert.equal(batch.lossIndex.length, items);
      assert.ok(items > 4, `${items} loss positions`);
      assert.ok(Math.abs(loss - expected) < 1e-4, `step ${loss}, reference ${expected}`);
    });
  }
});

describe("BD3-LM vectorized trainer over [x_t ; x_0] (context dual)", () => {
  it("the block-diffusion mask is BD3-LM's block_diff_mask", () => {
    // L = 4, S = 2: rows are queries x_t0..x_t3, x_00..x_03; 1 = visible
    const expected = [
      [1, 1, 0, 0, 0, 0, 0, 0],
      [1, 1, 0, 0, 0, 0, 0, 0],
      [0, 0, 1, 1, 1, 1, 0, 0],
      [0, 0, 1, 1, 1, 1, 0, 0],
      [0, 0, 0, 0, 1, 1, 0, 0],
      [0, 0, 0, 0, 1, 1, 0, 0],
      [0, 0, 0, 0, 1, 1, 1, 1],
      [0, 0, 0, 0, 1, 1, 1, 1],
    ];
    const bias = blockDualMask(4, 2);
    assert.deepEqual(
      [...bias].map((b) => (b === 0 ? 1 : 0)),
      expected.flat(),
    );
  });

  it("with a clean prompt (from): the noisy copies cover the response blocks only", () => {
    // L = 4, S = 1, from 2: queries x_t2, x_t3, x_00..x_03; 1 = visible
    const expected = [
      [1, 0, 1, 1, 0, 0],
      [0, 1, 1, 1, 1, 0],
      [0, 0, 1, 0, 0, 0],
      [0, 0, 1, 1, 0, 0],
      [0, 0, 1, 1, 1, 0],
      [0, 0, 1, 1, 1, 1],
    ];
    assert.deepEqual(
      [...blockDualMask(4, 1, 2)].map((b) => (b === 0 ? 1 : 0)),
      expected.flat(),
    );
  });

  for (const [name, shift, complementary, from] of [
    ["no shift", false, false, 0],
    ["logit shift", true, false, 0],
    ["logit shift, complementary masks", true, true, 0],
    ["logit shift, a clean prompt of 2 (distillation rows)", true, false, 2],
    ["no shift, complementary masks, a clean prompt of 4", false, true, 4],
  ] as const) {
    it(`${name}: the loss equals running each block after its clean predecessors (float64)`, async () => {
      const S = 2;
      const L = 6;
      const rows = 2;
      const noisy = L - from; // x_t tokens per batch row
      const stride = noisy + L;
      const config = tiny({ attention_mask: "block_causal", block_size: S, logit_shift: shift });
      const weights = randomWeights(config, 6, 0.3);
      const clean = cleanRows(rows, L, 3);
      const blocks = L / S;
      const first = from / S;
      const trained = blocks - first;
      const rates = Float64Array.from({ length: rows * trained }, (_, i) => 0.2 + (0.75 * i) / 6);
      const batch = blockDiffusionBatch(clean, rows, L, new Rng(9), {
        maskId: MASK,
        rates,
        blockSize: S,
        context: "dual",
        shift,
        complementary,
        from,
      });
      const copies = complementary ? 2 : 1;
      assert.equal(batch.rows, copies * rows);
      assert.equal(batch.tokens.length, copies * rows * stride);
      const { loss } = await stepLoss(config, weights, batch);

      // Each noisy block b, run alone after clean blocks 0..b−1 under block-causal attention.
      const reference = new ReferenceModel(config, weights);
      const normalizer = copies * rows * noisy;
      let expected = 0;
      let items = 0;
      for (let row = 0; row < copies * rows; row++) {
        const r = row % rows;
        const xt = batch.tokens.subarray(row * stride, row * stride + noisy);
        assert.deepEqual(
          batch.tokens.subarray(row * stride + noisy, (row + 1) * stride),
          clean.subarray(r * L, (r + 1) * L),
        );
        for (let b = first; b < blocks; b++) {
          const tokens = Int32Array.from([
            ...clean.subarray(r * L, r * L + b * S),
            ...xt.subarray(b * S - from, (b + 1) * S - from),
          ]);
          const at = [...tokens.keys()].filter(
            (i) => i >= b * S && tokens[i] === MASK && !(shift && i === 0),
          );
          if (at.length === 0) continue;
          const rate = rates[r * trained + b - first];
          const p = row < rows ? rate : Math.max(1 - rate, 1e-3);
          const out = reference.forward64({ tokens, rows: 1, logitsAt: Int32Array.from(at) });
          at.forEach((i, s) => {
            const ce = crossEntropy(out.logits.subarray(s * V, (s + 1) * V), clean[r * L + i]);
            expected += ce / (p * normalizer);
            items++;
          });
        }
      }
      if (complementary) {
        // the copies mask complementary positions of each clean row's trained part
        for (let r = 0; r < rows; r++) {
          for (let i = 0; i < noisy; i++) {
            const a = batch.tokens[r * stride + i] === MASK;
            const b = batch.tokens[(rows + r) * stride + i] === MASK;
            assert.notEqual(a, b, `row ${r} position ${from + i}`);
          }
        }
      }
      assert.equal(batch.lossIndex.length, items);
      assert.ok(items > 2, `${items} loss positions`);
      assert.ok(Math.abs(loss - expected) < 1e-4, `step ${loss}, per-block reference ${expected}`);
    });
  }

  it("gradients through the [x_t ; x_0] mask match finite differences of the reference loss", async () => {
    const S = 2;
    const L = 4;
    const config = tiny({ attention_mask: "block_causal", block_size: S, logit_shift: true });
    const weights = randomWeights(config, 7, 0.3);
    const clean = cleanRows(1, L, 5);
    const batch = blockDiffusionBatch(clean, 1, L, new Rng(2), {
      maskId: MASK,
      rates: [0.9, 0.9],
      blockSize: S,
      context: "dual",
      shift: true,
    });
    const { grad, params } = await stepLoss(config, weights, batch);
    const layout = parameterLayout(config);
    // the reference over the same 2L tokens, positions and bias
    const referenceLoss = (flat: Float32Array) => {
      const w = new Map(layout.map((p) => [p.name, flat.slice(p.offset, p.offset + p.size)]));
      const out = new ReferenceModel(config, w).forward64({
        tokens: batch.tokens,
        rows: 1,
        positions: batch.positions,
        attentionBias: batch.attentionBias,
        // the reference applies the shift itself: ask for the position after each hidden state
        logitsAt: Int32Array.from(batch.lossIndex, (i) => i + 1),
      });
      let sum = 0;
      batch.lossIndex.forEach((_, k) => {
        sum +=
          batch.weights[k] *
          crossEntropy(out.logits.subarray(k * V, (k + 1) * V), batch.targets[k]);
      });
      return sum;
    };
    assertGradientsMatch(layout, params, grad, referenceLoss, { seed: 11 });
  });
});

describe("attention-mask annealing (DiffuLLaMA)", () => {
  const L = 24;
  const causal = defaultAttentionBias(
    tiny({ attention_mask: "causal" }),
    1,
    L,
    0,
    Int32Array.from({ length: L }, (_, i) => i),
  );

  it("follows the reference schedule min(1, (step + 1) / N)", () => {
    assert.equal(annealRatio(0, 4), 0.25);
    assert.equal(annealRatio(2, 4), 0.75);
    assert.equal(annealRatio(3, 4), 1);
    assert.equal(annealRatio(100, 4), 1);
  });

  it("ratio 0 is the causal mask, ratio 1 is no mask (full attention)", () => {
    assert.deepEqual(annealMask(L, 0, new Rng(1)), causal);
    assert.equal(annealMask(L, 1, new Rng(1)), undefined);
  });

  it("in between, every earlier key stays visible and each later key is visible with probability ratio", () => {
    for (const ratio of [0.25, 0.5, 0.75]) {
      const bias = annealMask(L, ratio, new Rng(3)) as Float32Array;
      let open = 0;
      for (let q = 0; q < L; q++) {
        for (let k = 0; k < L; k++) {
          if (k <= q) assert.equal(bias[q * L + k], 0, `query ${q} key ${k}`);
          else if (bias[q * L + k] === 0) open++;
          else assert.equal(bias[q * L + k], Number.NEGATIVE_INFINITY);
        }
      }
      const pairs = (L * (L - 1)) / 2;
      const sd = Math.sqrt(ratio * (1 - ratio) * pairs);
      assert.ok(
        Math.abs(open - ratio * pairs) < 4 * sd,
        `ratio ${ratio}: ${open} of ${pairs} open`,
      );
    }
  });

  it("a batch under the annealed mask trains the loss the reference computes under the same mask", async () => {
    const config = tiny({ logit_shift: true });
    const weights = randomWeights(config, 5, 0.3);
    const rows = 2;
    const n = 8;
    const clean = cleanRows(rows, n, 4);
    const batch = maskedDiffusionBatch(clean, rows, n, new Rng(1), {
      maskId: MASK,
      rates: [0.7, 0.5],
      shift: true,
    });
    batch.attentionBias = annealMask(n, 0.5, new Rng(6));
    const { loss } = await stepLoss(config, weights, batch);
    const bias = new Float32Array(rows * n * n);
    bias.set(batch.attentionBias as Float32Array);
    bias.set(batch.attentionBias as Float32Array, n * n);
    const out = new ReferenceModel(config, weights).forward64({
      tokens: batch.tokens,
      rows,
      attentionBias: bias,
    });
    let expected = 0;
    batch.lossIndex.forEach((hidden, k) => {
      // hidden state h predicts position h + 1 under the shift; the reference's logit row for
      // position i comes from hidden i − 1
      const row = out.logits.subarray((hidden + 1) * V, (hidden + 2) * V);
      expected += batch.weights[k] * crossEntropy(row, batch.targets[k]);
    });
    assert.ok(Math.abs(loss - expected) < 1e-4, `step ${loss}, reference ${expected}`);
  });
});

describe("certainty forcing (dParallel)", () => {
  it("adds weight × the mean entropy at temperature T over the positions already predicted right; gradients match finite differences", async () => {
    const config = tiny({});
    const W = 2;
    const T = 0.5;
    const weights = randomWeights(config, 9, 1);
    const layout = parameterLayout(config);
    const tokens = cleanRows(2, 6, 8);
    tokens[1] = tokens[4] = tokens[8] = tokens[9] = MASK;
    const lossIndex = Int32Array.from([1, 4, 8, 9]);
    const reference = (flat: Float32Array) =>
      new ReferenceModel(
        config,
        new Map(layout.map((p) => [p.name, flat.slice(p.offset, p.offset + p.size)])),
      ).forward64({ tokens, rows: 2, logitsAt: undefined });
    const initial = reference(
      Float32Array.from(layout.flatMap((p) => [...(weights.get(p.name) as Float32Array)])),
    );
    // targets: the model's own argmax at positions 4 and 8 (right, clear of ties), something
    // else at 1 and 9
    const argmax = (i: number) => {
      const row = initial.logits.subarray(i * V, (i + 1) * V);
      return row.indexOf(Math.max(...row));
    };
    const targets = Int32Array.from([
      (argmax(1) + 1) % V,
      argmax(4),
      argmax(8),
      (argmax(9) + 3) % V,
    ]);
    const batch: LossBatch = {
      tokens,
      rows: 2,
      lossIndex,
      targets,
      weights: Float32Array.from([0.5, 0.25, 1, 0.5]),
      certaintyWeight: W,
    };
    const step = await createTrainStep(config, { threads: 1 }, { certainty: { temperature: T } });
    const params = new Float32Array(step.parameterCount);
    for (const p of layout) params.set(weights.get(p.name) as Float32Array, p.offset);
    const grad = new Float32Array(step.parameterCount);
    const loss = await step.run(params, batch, grad);
    // without a weight (held-out evaluation) the term is off: the loss is the cross-entropy
    const plain = await step.run(
      params,
      { ...batch, certaintyWeight: undefined },
      new Float32Array(step.parameterCount),
    );
    await step.dispose();

    const referenceLoss = (flat: Float32Array) => {
      const out = reference(flat);
      let ce = 0;
      let entropy = 0;
      let right = 0;
      lossIndex.forEach((i, k) => {
        const row = out.logits.subarray(i * V, (i + 1) * V);
        ce += batch.weights[k] * crossEntropy(row, targets[k]);
        if (row.indexOf(Math.max(...row)) !== targets[k]) return;
        const z = Array.from(row, (v) => v / T);
        const m = Math.max(...z);
        const logZ = m + Math.log(z.reduce((s, v) => s + Math.exp(v - m), 0));
        entropy -= z.reduce((s, v) => s + Math.exp(v - logZ) * (v - logZ), 0);
        right++;
      });
      assert.equal(right, 2, "two positions predicted right");
      return ce + (W * entropy) / right;
    };
    const out = reference(params);
    const ce = [...lossIndex].reduce(
      (sum, i, k) =>
        sum + batch.weights[k] * crossEntropy(out.logits.subarray(i * V, (i + 1) * V), targets[k]),
      0,
    );
    assert.ok(Math.abs(plain - ce) < 1e-4, `without a weight ${plain}, cross-entropy ${ce}`);
    assert.ok(
      Math.abs(loss - referenceLoss(params)) < 1e-4,
      `step ${loss}, reference ${referenceLoss(params)}`,
    );

    assertGradientsMatch(layout, params, grad, referenceLoss, { seed: 12 });
  });
});

describe("TiDAR's one-model drafting over [x_0 ; masks] (train --draft)", () => {
  it("the mask: x_0 causal; a mask block sees the clean tokens before it and itself", () => {
    // L = 5, blocks of 2, from 1: queries x_00..x_04, then masks of positions 1..4; 1 = visible
    const expected = [
      [1, 0, 0, 0, 0, 0, 0, 0, 0],
      [1, 1, 0, 0, 0, 0, 0, 0, 0],
      [1, 1, 1, 0, 0, 0, 0, 0, 0],
      [1, 1, 1, 1, 0, 0, 0, 0, 0],
      [1, 1, 1, 1, 1, 0, 0, 0, 0],
      [1, 0, 0, 0, 0, 1, 1, 0, 0],
      [1, 0, 0, 0, 0, 1, 1, 0, 0],
      [1, 1, 1, 0, 0, 0, 0, 1, 1],
      [1, 1, 1, 0, 0, 0, 0, 1, 1],
    ];
    assert.deepEqual(
      [...draftMask(5, 2, 1)].map((b) => (b === 0 ? 1 : 0)),
      expected.flat(),
    );
  });

  for (const [S, from, weight] of [
    [2, 0, 1],
    [3, 2, 0.5],
  ] as const) {
    it(`blocks of ${S}, drafts from ${from}, weight ${weight}: the loss is the next-token loss plus each block as the decoder runs it (float64)`, async () => {
      const L = 7;
      const rows = 2;
      const config = tiny({ attention_mask: "causal" });
      const weights = randomWeights(config, 7, 0.3);
      const clean = cleanRows(rows, L, 5);
      const batch = draftBatch(clean, rows, L, { blockSize: S, maskId: MASK, weight, from });
      const { loss } = await stepLoss(config, weights, batch);

      const reference = new ReferenceModel(config, weights);
      const first = 1;
      let next = 0; // the next-token loss at every position: causal logits at i − 1 for target i
      let draft = 0; // each mask block after the clean tokens before it, under oneModelBias
      let drafted = 0;
      for (let r = 0; r < rows; r++) {
        const row = clean.subarray(r * L, (r + 1) * L);
        const at = Int32Array.from({ length: L - first }, (_, i) => first - 1 + i);
        const out = reference.forward64({ tokens: row, rows: 1, logitsAt: at });
        at.forEach((i, s) => {
          next += crossEntropy(out.logits.subarray(s * V, (s + 1) * V), row[i + 1]);
        });
        for (let start = from; start < L - 1; start += S) {
          const masks = Math.min(S, L - start);
          const tokens = Int32Array.from([...row.subarray(0, start), ...Array(masks).fill(MASK)]);
          const q = Array.from({ length: Math.min(masks, L - 1 - start) }, (_, i) => start + i);
          const o = reference.forward64({
            tokens,
            rows: 1,
            attentionBias: oneModelBias(0, start, masks),
            logitsAt: Int32Array.from(q),
          });
          q.forEach((p, s) => {
            draft += crossEntropy(o.logits.subarray(s * V, (s + 1) * V), row[p + 1]);
            drafted++;
          });
        }
      }
      assert.equal(drafted, rows * (L - 1 - from));
      const expected = next / (rows * (L - first)) + (weight * draft) / drafted;
      assert.ok(Math.abs(loss - expected) < 1e-4, `step ${loss}, reference ${expected}`);
    });
  }
});
