// The AR twin's infill for the yardstick (src/eval/rerank.ts): a beam of fills from the prefix,
// reranked by the suffix's likelihood — on a model whose answer is known, and against an
// exhaustive search in the float64 reference.

import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { rerankFill } from "../src/eval/rerank.js";
import { OnnxModel } from "../src/model/engine.js";
import { randomWeights } from "../src/model/random.js";
import { ReferenceModel } from "../src/model/reference.js";
import { FakeModel, fakeConfig, logitFor } from "./fake-models.js";
import { tinyModelConfig } from "./tiny-config.js";

const [A, B, END] = [5, 6, 7];

describe("rerankFill", () => {
  const models: OnnxModel[] = [];
  after(async () => {
    for (const m of models) await m.dispose();
  });

  it("the suffix decides: the prefix prefers A, but only B is followed by the suffix", async () => {
    // after the prefix [1, 2]: A 0.6, B 0.3; after A the suffix token END is unlikely, after B sure
    const model = new FakeModel(fakeConfig({ attention: "causal" }), (position, view, out) => {
      if (position === 1) {
        out[A] = logitFor(0.6);
        out[B] = logitFor(0.3);
      } else if (position === 2) out[END] = logitFor(view.tokens.get(2) === B ? 0.99 : 0.01);
    });
    assert.deepEqual(await rerankFill(model, [1, 2], 1, [END], { beam: 1 }), [A]);
    assert.deepEqual(await rerankFill(model, [1, 2], 1, [END], { beam: 2 }), [B]);
    assert.deepEqual(
      await rerankFill(model, [1, 2], 1, [], { beam: 2 }),
      [A],
      "no suffix: the beam's best",
    );
  });

  it("with a beam as wide as the vocabulary, a one-token hole is the exhaustive argmax (float64 reference)", async () => {
    const config = tinyModelConfig({ vocab_size: 23, attention_mask: "causal" });
    for (const seed of [1, 2, 3]) {
      const weights = randomWeights(config, seed, 0.5);
      const model = await OnnxModel.create(config, weights, { threads: 1 });
      models.push(model);
      const reference = new ReferenceModel(config, weights);
      const prefix = [3, 4 + seed, 9];
      const suffix = [11, 12, 2];
      let best = -1;
      let bestScore = Number.NEGATIVE_INFINITY;
      for (let t = 0; t < 23; t++) {
        const tokens = Int32Array.from([...prefix, t, ...suffix]);
        const at = Int32Array.from([2, 3, 4, 5]); // before t and before each suffix token
        const out = reference.forward64({ tokens, rows: 1, logitsAt: at });
        let score = 0;
        [t, ...suffix].forEach((target, i) => {
          const row = out.logits.subarray(i * 23, (i + 1) * 23);
          const max = Math.max(...row);
          score += row[target] - max - Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0));
        });
        if (score > bestScore) [best, bestScore] = [t, score];
      }
      assert.deepEqual(
        await rerankFill(model, prefix, 1, suffix, { beam: 23 }),
        [best],
        `seed ${seed}`,
      );
    }
  });

  it("refuses what it cannot do, naming it", async () => {
    const full = new FakeModel(fakeConfig(), () => {});
    const causal = new FakeModel(fakeConfig({ attention: "causal", bosTokenId: null }), () => {});
    await assert.rejects(rerankFill(full, [1], 1, []), /causal/);
    await assert.rejects(rerankFill(causal, [1], 0, []), /hole/);
    await assert.rejects(rerankFill(causal, [1], 1, [], { beam: 0 }), /beam/);
    await assert.rejects(rerankFill(causal, [], 1, []), /BOS/);
  });
});
