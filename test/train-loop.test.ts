import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { loadCheckpoint } from "../src/format/checkpoint.js";
import type { ModelConfig } from "../src/model/config.js";
import { parameterShapes } from "../src/model/config.js";
import { Rng } from "../src/model/random.js";
import {
  exportModel,
  latestCheckpoint,
  listCheckpoints,
  loadTrainingCheckpoint,
} from "../src/train/checkpoint.js";
import { PackedRows } from "../src/train/data.js";
import {
  initParameters,
  type ParameterLayout,
  type TrainHooks,
  type TrainOptions,
  type TrainStep,
  train,
} from "../src/train/loop.js";
import type { LossBatch } from "../src/train/objective.js";

const V = 12;
const MASK = 0;

/**
 * A fake training step with an analytic gradient: a bigram softmax model. The logits at
 * position i are W[tokens[i]] + b (W: [V, V], b: [V]); the loss is the batch's weighted
 * cross-entropy, exactly the contract of src/train/step.ts. Deterministic, float64 inside.
 */
class BigramStep implements TrainStep {
  readonly layout: ParameterLayout[] = [
    { name: "bigram.weight", shape: [V, V], offset: 0, size: V * V },
    { name: "bigram.bias", shape: [V], offset: V * V, size: V },
  ];
  readonly parameterCount = V * V + V;
  calls = 0;

  constructor(readonly config: ModelConfig) {}

  async run(params: Float32Array, batch: LossBatch, grad: Float32Array): Promise<number> {
    this.calls++;
    grad.fill(0);
    const z = new Float64Array(V);
    let loss = 0;
    for (let k = 0; k < batch.lossIndex.length; k++) {
      const input = batch.tokens[batch.lossIndex[k]];
      let max = -Infinity;
      for (let j = 0; j < V; j++) {
        z[j] = params[input * V + j] + params[V * V + j];
        max = Math.max(max, z[j]);
      }
      let sum = 0;
      for (let j = 0; j < V; j++) sum += Math.exp(z[j] - max);
      const lse = max + Math.log(sum);
      const w = batch.weights[k];
      loss += w * (lse - z[batch.targets[k]]);
      for (let j = 0; j < V; j++) {
        const d = w * (Math.exp(z[j] - lse) - (j === batch.targets[k] ? 1 : 0));
        grad[input * V + j] += d;
        grad[V * V + j] += d;
      }
    }
    await new Promise((resolve) => setImmediate(resolve)); // a real step is asynchronous
    return loss;
  }

  async dispose(): Promise<void> {}
}

function config(attention: ModelConfig["attention"]): ModelConfig {
  return {
    modelType: "unmask",
    vocabSize: V,
    hiddenSize: 4,
    numLayers: 1,
    numHeads: 1,
    numKvHeads: 1,
    headDim: 4,
    intermediateSize: 8,
    ropeTheta: 10000,
    rmsNormEps: 1e-6,
    maxPositions: 64,
    tieWordEmbeddings: false,
    qkvBias: false,
    attention,
    blockSize: attention === "block_causal" ? 4 : 0,
    logitShift: false,
    maskTokenId: MASK,
    padTokenId: null,
    bosTokenId: null,
    eosTokenId: null,
  };
}

/** A corpus with structure a bigram model can learn: runs of 1 2 3 … 11 with noise. */
function stream(n: number, seed: number): Uint16Array {
  const out = new Uint16Array(n);
  const rng = new Rng(seed);
  let t = 1;
  for (let i = 0; i < n; i++) {
    t = rng.int(10) === 0 ? 1 + rng.int(11) : (t % 11) + 1;
    out[i] = t;
  }
  return out;
}

const root = mkdtempSync(join(tmpdir(), "unmask-train-loop-"));
after(() => rmSync(root, { recursive: true, force: true }));
let runs = 0;

function options(
  over: Partial<TrainOptions> = {},
  attention: ModelConfig["attention"] = "full",
): TrainOptions & {
  step: BigramStep;
  data: { train: PackedRows; valid: PackedRows; validBytesPerToken: number };
} {
  return {
    runDir: join(root, `run-${runs++}`),
    objective: { kind: "diffusion", maskId: MASK },
    batchRows: 4,
    accumulation: 2,
    maxSteps: 12,
    lr: 0.3,
    warmupSteps: 2,
    seed: 7,
    evalEvery: 4,
    checkpointEvery: 5,
    step: new BigramStep(config(attention)),
    data: {
      train: new PackedRows(stream(16 * 40, 1), 16),
      valid: new PackedRows(stream(16 * 6, 2), 16),
      validBytesPerToken: 2,
    },
    ...over,
  };
}

const noSignal: TrainHooks = { onInterrupt: () => () => {} };

/** Hooks that fire the interrupt handler once step `k` is done. */
function interruptAt(k: number): TrainHooks {
  let handler: () => void = () => {};
  return {
    onInterrupt: (h) => {
      handler = h;
      return () => {};
    },
    onProgress: (p) => {
      if (p.step === k) handler();
    },
  };
}

describe("train (with a fake bigram training step)", () => {
  it("lowers the loss, evaluates, checkpoints and plots", async () => {
    const o = options(
      { objective: { kind: "ar" }, maxSteps: 40, evalEvery: 20, checkpointEvery: 20, lr: 0.5 },
      "causal",
    );
    const losses: number[] = [];
    const evals: number[] = [];
    const result = await train(o, {
      ...noSignal,
      onProgress: (p) => losses.push(p.loss),
      onEval: (e) => evals.push(e.loss),
    });
    assert.equal(result.step, 40);
    assert.equal(result.tokens, 40 * 4 * 2 * 16);
    assert.equal(result.interrupted, false);
    const head = losses.slice(0, 5).reduce((a, b) => a + b) / 5;
    const tail = losses.slice(-5).reduce((a, b) => a + b) / 5;
    assert.ok(tail < head * 0.6, `loss ${head} → ${tail}`);
    assert.equal(evals.length, 2);
    assert.ok(evals[1] < 0.6 * Math.log(V), `valid loss ${evals[1]} vs ln V = ${Math.log(V)}`);
    assert.equal(result.history.valid[1].bitsPerByte, evals[1] / Math.LN2 / 2);
    assert.equal(o.step.calls, 40 * 2 + 2 * 2); // 2 micro-batches a step; 6 valid rows = 2 batches
    assert.ok(existsSync(join(o.runDir, "loss.svg")));
    assert.ok(existsSync(join(o.runDir, "loss.png")));
    assert.equal((await listCheckpoints(o.runDir)).length, 2);
    assert.equal(result.history.train.length, 4);
  });

  it("resumes after k steps to bit-identical parameters", async () => {
    const whole = await train(options(), noSignal);

    // Interrupted after step 3 (a checkpoint at 5 never comes), then resumed in a new trainer.
    const o = options();
    const first = await train(o, interruptAt(3));
    assert.equal(first.interrupted, true);
    assert.equal(first.step, 3);
    const resumed = await train({ ...o, step: new BigramStep(o.step.config) }, noSignal);
    assert.equal(resumed.resumedFrom, first.checkpoint);
    assert.equal(resumed.step, 12);
    assert.deepEqual(resumed.params, whole.params);
    assert.deepEqual(
      resumed.history.valid.map((e) => e.loss),
      whole.history.valid.map((e) => e.loss),
    );
  });

  it("resumes bit-exactly with the AR (with FIM) and block objectives too", async () => {
    for (const [attention, over] of [
      [
        "causal",
        {
          objective: {
            kind: "ar",
            fim: { rate: 0.5, prefixId: 4, middleId: 5, suffixId: 6 },
          },
        },
      ],
      ["block_causal", { objective: { kind: "block", maskId: MASK } }],
      ["block_causal", { objective: { kind: "block", maskId: MASK, context: "noisy" } }],
    ] as const) {
      const whole = await train(options(over, attention), noSignal);
      const o = options(over, attention);
      const first = await train(o, interruptAt(5));
      assert.equal(first.step, 5);
      const resumed = await train({ ...o, step: new BigramStep(o.step.config) }, noSignal);
      assert.equal(resumed.step, 12);
      assert.deepEqual(resumed.params, whole.params, over.objective.kind);
    }
  });

  it("SIGINT (the injected handler) saves a checkpoint and stops cleanly", async () => {
    const o = options({ checkpointEvery: 0, evalEvery: 0 });
    let handler: (() => void) | null = null;
    let removed = false;
    const saved: number[] = [];
    const result = await train(o, {
      onInterrupt: (h) => {
        handler = h;
        return () => {
          removed = true;
        };
      },
      onProgress: (p) => {
        if (p.step === 2) handler?.();
      },
      onCheckpoint: (_dir, step) => saved.push(step),
    });
    assert.equal(result.interrupted, true);
    assert.equal(result.step, 2);
    assert.deepEqual(saved, [2]);
    assert.equal(removed, true);
    const dir = await latestCheckpoint(o.runDir);
    assert.ok(dir);
    const state = await loadTrainingCheckpoint(dir);
    assert.equal(state.step, 2);
    assert.deepEqual(state.params, result.params);
    assert.equal(state.tokens, 2 * 4 * 2 * 16);
    assert.equal(state.data.index, 2 * 4 * 2);
  });

  it("the default interrupt handler listens to SIGINT and is removed afterwards", async () => {
    const before = process.listenerCount("SIGINT");
    const o = options({ maxSteps: 3, checkpointEvery: 0, evalEvery: 0 });
    let during = -1;
    await train(o, {
      onProgress: () => {
        during = process.listenerCount("SIGINT");
      },
    });
    assert.equal(during, before + 1);
    assert.equal(process.listenerCount("SIGINT"), before);
  });

  it("keeps the newest checkpoints and refuses a different config on resume", async () => {
    const o = options({ maxSteps: 12, checkpointEvery: 2, keepCheckpoints: 2, evalEvery: 0 });
    await train(o, noSignal);
    const dirs = await listCheckpoints(o.runDir);
    assert.deepEqual(
      dirs.map((d) => d.slice(-5)),
      ["00010", "00012"],
    );
    await assert.rejects(
      train({ ...o, step: new BigramStep({ ...o.step.config, hiddenSize: 8 }) }, noSignal),
      /config differs/,
    );
  });

  it("rejects an objective that does not fit the attention, and a missing budget", async () => {
    await assert.rejects(
      train(options({ objective: { kind: "ar" } }), noSignal),
      /causal attention/,
    );
    await assert.rejects(train(options({ maxSteps: undefined }), noSignal), /budget/);
  });
});

describe("initParameters and exportModel", () => {
  it("initialises norms to 1, biases to 0, residual projections smaller", () => {
    const c = { ...config("full"), numLayers: 8, qkvBias: true, hiddenSize: 32, headDim: 32 };
    let offset = 0;
    const layout = parameterShapes(c).map(({ name, shape }) => {
      const size = shape.reduce((a, b) => a * b, 1);
      const p = { name, shape, offset, size };
      offset += size;
      return p;
    });
    const params = new Float32Array(offset);
    initParameters(params, layout, c, 1);
    const view = (name: string) => {
      const p = layout.find((q) => q.name === name)!;
      return params.subarray(p.offset, p.offset + p.size);
    };
    const std = (a: Float32Array) => Math.sqrt(a.reduce((s, x) => s + x * x, 0) / a.length);
    assert.ok(view("model.norm.weight").every((x) => x === 1));
    assert.ok(view("model.layers.0.self_attn.q_proj.bias").every((x) => x === 0));
    const q = std(view("model.layers.0.self_attn.q_proj.weight"));
    const o = std(view("model.layers.0.self_attn.o_proj.weight"));
    assert.ok(Math.abs(q - 0.02) < 0.003, `q std ${q}`);
    assert.ok(Math.abs(o - 0.02 / 4) < 0.001, `o std ${o}`);
  });

  it("exports the flat parameters as a Hugging Face checkpoint", async () => {
    const c = config("full");
    let offset = 0;
    const layout = parameterShapes(c).map(({ name, shape }) => {
      const size = shape.reduce((a, b) => a * b, 1);
      const p = { name, shape, offset, size };
      offset += size;
      return p;
    });
    const params = Float32Array.from({ length: offset }, (_, i) => i / offset);
    const dir = join(root, "export");
    await exportModel(dir, { config: c, layout, params, generation: { mask_token_id: MASK } });
    const loaded = await loadCheckpoint(dir, { tokenizer: false });
    for (const p of layout) {
      assert.deepEqual(loaded.weights.get(p.name), params.slice(p.offset, p.offset + p.size));
    }
    assert.equal(
      JSON.parse(readFileSync(join(dir, "generation_config.json"), "utf8")).mask_token_id,
      0,
    );
  });
});
