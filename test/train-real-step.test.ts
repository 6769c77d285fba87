// The loop on the real training step (src/train/step.ts, ONNX Runtime): a tiny model's loss falls
// on a tiny corpus, a resumed run ends with the same bits as an uninterrupted one, and the
// trained weights score better held-out bits per byte than the initial ones.

import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import {
  configToJson,
  type ModelConfig,
  parseModelConfig,
  type Weights,
} from "../src/model/config.js";
import { Rng, randomWeights } from "../src/model/random.js";
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

/** Hooks that interrupt a run (as Ctrl-C does) once it has finished optimizer step `step`. */
function interruptAt(step: number): TrainHooks {
  let handler = () => {};
  return {
    onInterrupt: (h) => {
      handler = h;
      return () => {};
    },
    onProgress: (p) => {
      if (p.step === step) handler();
    },
  };
}
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
      const o = options("ar-split");
      const first = await train(o, interruptAt(7));
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

describe("recipes for parallel decoding on the real step", () => {
  const shifted = (attention: string, over: Record<string, unknown> = {}) =>
    parseModelConfig({
      ...configToJson(config("full")),
      attention_mask: attention,
      logit_shift: true,
      ...over,
    });

  it("an AR checkpoint starts a logit-shifted diffusion model where its head already predicts", async () => {
    const ar = config("causal");
    const arStep = await createTrainStep(ar, { threads: 1 });
    let arWeights: Weights;
    try {
      const trained = await train(
        {
          ...base("ar-twin"),
          maxSteps: 60,
          evalEvery: 0,
          objective: { kind: "ar" },
          step: arStep,
          data,
        },
        noSignal,
      );
      arWeights = weightsFromFlat(arStep.layout, trained.params);
    } finally {
      await arStep.dispose();
    }
    // the first step's loss from the AR weights, with and without the shift
    const firstLoss = async (cfg: ModelConfig) => {
      const step = await createTrainStep(cfg, { threads: 1 });
      try {
        const losses: number[] = [];
        await train(
          {
            ...base(`init-${cfg.logitShift}`),
            maxSteps: 1,
            lr: 1e-30,
            evalEvery: 0,
            resume: false,
            objective: { kind: "diffusion", maskId: MASK },
            step,
            data,
            initialWeights: arWeights,
          },
          { ...noSignal, onProgress: (p) => losses.push(p.loss) },
        );
        return losses[0];
      } finally {
        await step.dispose();
      }
    };
    const withShift = await firstLoss(shifted("full"));
    const without = await firstLoss(config("full"));
    assert.ok(withShift < 0.8 * without, `shifted ${withShift}, unshifted ${without}`);
  });

  it("--init refuses weights whose shapes differ, naming the tensor", async () => {
    const target = shifted("block_causal", { block_size: 4 });
    const step = await createTrainStep(target, { threads: 1 });
    try {
      const options = (initialWeights: Weights) => ({
        ...base("refuse"),
        maxSteps: 1,
        objective: { kind: "block" as const, maskId: MASK },
        step,
        data,
        initialWeights,
      });
      const tied = parseModelConfig({
        ...configToJson(config("causal")),
        tie_word_embeddings: true,
      });
      await assert.rejects(
        train(options(randomWeights(tied, 1)), noSignal),
        /initial weights: lm_head\.weight is missing/,
      );
      const wider = parseModelConfig({ ...configToJson(config("causal")), intermediate_size: 48 });
      await assert.rejects(
        train(options(randomWeights(wider, 1)), noSignal),
        /initial weights: model\.layers\.0\.mlp\.gate_proj\.weight has 1536 values, expected \[64,32\]/,
      );
    } finally {
      await step.dispose();
    }
  });

  it("block diffusion over [x_t ; x_0] with complementary masks learns, and annealing resumes exactly", async () => {
    const bd = shifted("block_causal", { block_size: 4 });
    const step = await createTrainStep(bd, { threads: 1 });
    try {
      const losses: number[] = [];
      const result = await train(
        {
          ...base("dual"),
          maxSteps: 120,
          objective: { kind: "block", maskId: MASK, context: "dual", complementary: true },
          step,
          data,
        },
        { ...noSignal, onProgress: (p) => losses.push(p.loss) },
      );
      const head = losses.slice(0, 5).reduce((a, b) => a + b) / 5;
      const tail = losses.slice(-10).reduce((a, b) => a + b) / 10;
      assert.ok(tail < 0.75 * head, `loss ${head} → ${tail}`);
      const [first, last] = result.history.valid;
      assert.ok(last.loss < first.loss, `valid ${first.loss} → ${last.loss}`);
    } finally {
      await step.dispose();
    }

    const full = shifted("full");
    const annealed = await createTrainStep(full, { threads: 1 });
    try {
      const options = (name: string) => ({
        ...base(name),
        maxSteps: 12,
        evalEvery: 0,
        objective: { kind: "diffusion" as const, maskId: MASK, annealSteps: 8 },
        step: annealed,
        data,
      });
      const whole = await train(options("anneal-whole"), noSignal);
      const o = options("anneal-split");
      await train(o, interruptAt(5));
      const resumed = await train(o, noSignal);
      assert.deepEqual(resumed.params, whole.params);
      await assert.rejects(
        train(
          {
            ...options("anneal-bad"),
            objective: { kind: "diffusion", maskId: MASK, annealSteps: 0 },
          },
          noSignal,
        ),
        /annealSteps must be a positive integer, got 0/,
      );
    } finally {
      await annealed.dispose();
    }
  });
});
