// The training step graph: its loss equals the float64 reference's cross-entropy, and its
// gradients match finite differences of that loss.

import assert from "node:assert/strict";
import { test } from "node:test";
import { parseModelConfig, type Weights } from "../src/model/config.js";
import { randomWeights } from "../src/model/random.js";
import { ReferenceModel } from "../src/model/reference.js";
import { createTrainStep, type LossBatch, parameterLayout } from "../src/train/step.js";
import { assertGradientsMatch } from "./finite-differences.js";

const variants: [string, Record<string, unknown>][] = [
  ["full attention, GQA, tied, qkv bias", { tie_word_embeddings: true, attention_bias: true }],
  ["causal, untied", { attention_mask: "causal" }],
  ["block-causal", { attention_mask: "block_causal", block_size: 3 }],
];

for (const [name, over] of variants) {
  test(`train step (${name}): loss matches the reference, gradients match finite differences`, async () => {
    const config = parseModelConfig({
      vocab_size: 13,
      hidden_size: 8,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      intermediate_size: 12,
      max_position_embeddings: 16,
      ...over,
    });
    const step = await createTrainStep(config, { threads: 1 });
    const layout = parameterLayout(config);
    const weights = randomWeights(config, 5, 0.3);
    const params = new Float32Array(step.parameterCount);
    for (const p of layout) params.set(weights.get(p.name) as Float32Array, p.offset);
    const rows = 2;
    const length = 6;
    const tokens = Int32Array.from({ length: rows * length }, (_, i) => (i * 5 + 1) % 13);
    const batch: LossBatch = {
      tokens,
      rows,
      lossIndex: Int32Array.from([0, 3, 4, 7, 11]),
      targets: Int32Array.from([2, 9, 12, 0, 5]),
      weights: Float32Array.from([0.5, 1, 0.25, 2, 1]),
    };
    const grad = new Float32Array(step.parameterCount);
    const loss = await step.run(params, batch, grad);

    // The reference's loss at the same positions, in float64.
    const toWeights = (flat: Float32Array): Weights =>
      new Map(layout.map((p) => [p.name, flat.slice(p.offset, p.offset + p.size)]));
    const referenceLoss = (flat: Float32Array) => {
      const out = new ReferenceModel(config, toWeights(flat)).forward64({ tokens, rows });
      let sum = 0;
      batch.lossIndex.forEach((flatIndex, k) => {
        const row = out.logits.subarray(flatIndex * 13, (flatIndex + 1) * 13);
        const max = Math.max(...row);
        const logZ = max + Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0));
        sum += batch.weights[k] * (logZ - row[batch.targets[k]]);
      });
      return sum;
    };
    assert.ok(
      Math.abs(loss - referenceLoss(params)) < 1e-4,
      `loss ${loss} vs ${referenceLoss(params)}`,
    );

    // Finite differences (float64 reference) at random coordinates of every parameter.
    assertGradientsMatch(layout, params, grad, referenceLoss, { trials: 2 });
    await step.dispose();
  });
}
