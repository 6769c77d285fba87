// The loop on the real training step (src/train/step.ts, ONNX Runtime): a tiny model's loss falls
// on a tiny corpus, a resumed run ends with the same bits as an uninterrupted one, and the
// trained weights score better held-out bits per byte than the initial ones.

import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { parseModelConfig } from "../src/model/config.js";
import { Rng } from "../src/model/random.js";
import { ReferenceModel } from "../src/model/reference.js";
import { weightsFromFlat } from "../src/train/checkpoint.js";
import { PackedRows } from "../src/train/data.js";
import { bitsPerByte } from "../src/train/eval.js";
import { initParameters, type TrainHooks, type TrainOptions, train } from "../src/train/loop.js";
import { createTrainStep } from "../src/train/step.js";

const root = mkdtempSync(join(tmpdir(), "unmask-train-real-"));
after(() => rmSync(root, { recursive: true, force: true }));

const V = 16;
const MASK = 0;
const L = 16;

/** Counting runs 1, 2, 3, … wrapping at 15, restarting at a random token now and then. */
function corpus(n: number, seed: number): Uint16Array {
  const out = new Uint16Array(n);
  const rng = new Rng(seed);
  let t = 1;
  for (let i = 0; i < n; i++) {
    t = rng.int(16) === 0 ? 1 + rng.int(15) : (t % 15) + 1;
    out[i] = t;
  }
  return out;
}

const config = (attention: string) =>
  parseModelConfig({
    vocab_size: V,
    hidden_size: 32,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    intermediate_size: 64,
    max_position_embeddings: L,
    attention_mask: attention,
    mask_token_id: MASK,
  });

const data = {
  train: new PackedRows(corpus(L * 256, 1), L),
  valid: new PackedRows(corpus(L * 16, 2), L),
  validBytesPerToken: 1,
};
const noSignal: TrainHooks = { onInterrupt: () => () => {} };
const base = (name: string): Omit<TrainOptions, "objective"> => ({
  runDir: join(root, name),
  batchRows: 8,
  accumulation: 2,
  maxSteps: 200,
  lr: 1e-2,
  warmupSteps: 5,
  seed: 3,
  evalEvery: 100,
  checkpointEvery: 0,
});

describe("train on the real ONNX training step", () => {
  it("a tiny diffusion model's loss falls, and its held-out ELBO improves", async () => {
    const cfg = config("full");
    const step = await createTrainStep(cfg, { threads: 1 });
    try {
      const losses: number[] = [];
      const result = await train(
        { ...base("diffusion"), objective: { kind: "diffusion", maskId: MASK }, step, data },
        { ...noSignal, onProgress: (p) => losses.push(p.loss) },
      );
      const head = losses.slice(0, 5).reduce((a, b) => a + b) / 5;
      const tail = losses.slice(-10).reduce((a, b) => a + b) / 10;
      assert.ok(head > 2.4, `initial loss ${head} ≈ ln 16 = 2.77`);
      assert.ok(tail < 0.75 * head, `loss ${head} → ${tail}`);
      const [first, last] = result.history.valid;
      assert.ok(last.loss < first.loss, `valid ${first.loss} → ${last.loss}`);

      const init = new Float32Array(step.parameterCount);
      initParameters(init, step.layout, cfg, 3);
      const valid = {
        sequences: [0, 1, 2, 3].map((i) => corpus(L * 16, 2).slice(i * L, (i + 1) * L)),
        bytes: 4 * L,
      };
      const text = {
        sequences: valid.sequences.map((s) => Int32Array.from(s)),
        bytes: valid.bytes,
      };
      const before = await bitsPerByte(
        new ReferenceModel(cfg, weightsFromFlat(step.layout, init)),
        text,
        { samples: 8 },
      );
      const afterTraining = await bitsPerByte(
        new ReferenceModel(cfg, weightsFromFlat(step.layout, result.params)),
        text,
        { samples: 8 },
      );
      assert.ok(
        afterTraining.bitsPerByte < before.bitsPerByte,
        `bits/byte ${before.bitsPerByte} → ${afterTraining.bitsPerByte}`,
      );
    } finally {
      await step.dispose();
    }
  });

  it("a resumed run ends with the same bits as an uninterrupted one (AR twin)", async () => {
    const cfg = config("causal");
    const step = await createTrainStep(cfg, { threads: 1 });
    try {
      const options = (name: string) => ({
        ...base(name),
        maxSteps: 16,
        evalEvery: 0,
        objective: { kind: "ar" as const },
        step,
        data,
      });
      const whole = await train(options("ar-whole"), noSignal);
      let handler = () => {};
      const o = options("ar-split");
      const first = await train(o, {
        onInterrupt: (h) => {
          handler = h;
          return () => {};
        },
        onProgress: (p) => {
          if (p.step === 7) handler();
        },
      });
      assert.equal(first.step, 7);
      const resumed = await train(o, noSignal);
      assert.equal(resumed.step, 16);
      assert.deepEqual(resumed.params, whole.params);
    } finally {
      await step.dispose();
    }
  });

  it("starts from given weights (an exported model trained further), and names a missing one", async () => {
    const cfg = config("causal");
    const step = await createTrainStep(cfg, { threads: 1 });
    try {
      const start = new Float32Array(step.parameterCount);
      initParameters(start, step.layout, cfg, 42);
      const options = {
        ...base("from-weights"),
        maxSteps: 1,
        lr: 1e-30,
        evalEvery: 0,
        objective: { kind: "ar" as const },
        step,
        data,
        resume: false,
        initialWeights: weightsFromFlat(step.layout, start),
      };
      const result = await train(options, noSignal);
      // A step of 1e-30 leaves the given weights as they were: training began from them.
      assert.deepEqual(result.params, start);
      const missing = weightsFromFlat(step.layout, start);
      missing.delete("model.norm.weight");
      await assert.rejects(
        train({ ...options, initialWeights: missing }, noSignal),
        /initial weights: model\.norm\.weight is missing/,
      );
    } finally {
      await step.dispose();
    }
  });
});
