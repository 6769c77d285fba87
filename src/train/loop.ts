// The training loop: objective → training step → gradient accumulation → clipping → AdamW at the
// scheduled learning rate; periodic held-out evaluation, checkpoints and a loss plot; resume
// from the newest checkpoint of the run folder; SIGINT saves a checkpoint and returns.
//
// Exact resume: the step's inputs are a pure function of (parameters, Adam moments, step,
// objective RNG state, data position), and a checkpoint stores exactly those, bit for bit
// (float32 tensors, the PCG32 state, the sampler's (epoch, index)). With a deterministic
// training step, a run stopped at step k and resumed ends with the same bits as a run that
// never stopped.

import { configToJson, type ModelConfig, type Weights } from "../model/config.js";
import { Rng } from "../model/random.js";
import {
  type EvalPoint,
  latestCheckpoint,
  loadTrainingCheckpoint,
  saveTrainingCheckpoint,
  type TrainHistory,
  type TrainState,
} from "./checkpoint.js";
import { type PackedRows, RowSampler } from "./data.js";
import {
  annealMask,
  annealRatio,
  applyFim,
  blockDiffusionBatch,
  defaultMaskEps,
  draftBatch,
  type FimOptions,
  maskedDiffusionBatch,
  nextTokenBatch,
  sampleMaskRates,
} from "./objective.js";
import { AdamW, type AdamWOptions, clipGradNorm, decayMask, defaultAdamW } from "./optimizer.js";
import { writePlot } from "./plot.js";
import { learningRate, type ScheduleOptions } from "./schedule.js";
import type { LossBatch, ParameterLayout, TrainStep } from "./step.js";

export type { ParameterLayout, TrainStep };

/** Which loss the run trains; it must match the config's attention (checked). */
/**
 * Which loss the run trains; it must match the config's attention (checked). The diffusion
 * objectives read the config's logit shift. `complementary`: Fast-dLLM v2's complementary masks
 * (each row twice, see maskedDiffusionBatch). `annealSteps`: DiffuLLaMA's attention-mask
 * annealing from causal to full over that many optimizer steps (see annealMask). `certainty`:
 * the weight of dParallel's certainty-forcing term (the step must be built with
 * StepLoss.certainty; see src/train/step.ts).
 */
export type ObjectiveSpec =
  | {
      kind: "diffusion";
      maskId: number;
      eps?: number;
      lowDiscrepancy?: boolean;
      complementary?: boolean;
      annealSteps?: number;
      certainty?: number;
    }
  | {
      kind: "block";
      maskId: number;
      eps?: number;
      lowDiscrepancy?: boolean;
      context?: "clean" | "noisy" | "dual";
      complementary?: boolean;
      certainty?: number;
      /** Distillation rows: positions before it are a clean prompt without loss (see blockDiffusionBatch). */
      from?: number;
    }
  | {
      kind: "ar";
      fim?: FimOptions;
      /** Distillation rows: positions before it are a clean prompt without loss. */
      from?: number;
      /** TiDAR's drafting blocks beside the next-token loss (see draftBatch). */
      draft?: { blockSize: number; maskId: number; weight?: number };
    };

export interface TrainData {
  train: PackedRows;
  /** Held-out rows, same length; evaluated in order. */
  valid?: PackedRows;
  /** UTF-8 bytes per token of the held-out split, for bits per byte. */
  validBytesPerToken?: number;
}

export interface TrainOptions {
  /** The run folder: checkpoints/, loss.svg, loss.png. */
  runDir: string;
  objective: ObjectiveSpec;
  /** Rows per micro-batch (the row length is the data's). */
  batchRows: number;
  /** Micro-batches per optimizer step (default 1). */
  accumulation?: number;
  /** The budget: optimizer steps, or tokens (rounded up to whole steps). */
  maxSteps?: number;
  maxTokens?: number;
  /** Peak learning rate; cosine decay to minLr (default lr / 10) over the budget. */
  lr: number;
  minLr?: number;
  warmupSteps?: number;
  adam?: Partial<AdamWOptions>;
  /** Clip the global gradient norm to this (default 1; 0: no clipping). */
  clip?: number;
  /** Seeds the initial weights, the data order and the objective's masks (default 0). */
  seed?: number;
  /** Standard deviation of the initial weights (default 0.02, as GPT-2). */
  initStd?: number;
  /** Steps between evaluations / checkpoints (0: only at the end). */
  evalEvery?: number;
  checkpointEvery?: number;
  /** Held-out rows per evaluation (default all). */
  evalRows?: number;
  /** Checkpoints kept (default 3). */
  keepCheckpoints?: number;
  /** Steps per point of the train-loss history (default 10). */
  logEvery?: number;
  /** Continue from the newest checkpoint in runDir when there is one (default true). */
  resume?: boolean;
  /**
   * Start from these weights (e.g. an exported model's, to train it further) instead of a random
   * initialisation; a checkpoint in runDir still takes precedence when resuming.
   */
  initialWeights?: Weights;
}

export interface TrainProgress {
  step: number;
  totalSteps: number;
  tokens: number;
  totalTokens: number;
  loss: number;
  lr: number;
  /** The gradient's global norm before clipping. */
  gradNorm: number;
  tokensPerSecond: number;
  etaSeconds: number;
  elapsedSeconds: number;
}

export interface TrainHooks {
  onProgress?: (p: TrainProgress) => void;
  onEval?: (e: EvalPoint) => void;
  onCheckpoint?: (dir: string, step: number) => void;
  /**
   * Installs the interrupt handler and returns its remover. Default: `process.once("SIGINT")`,
   * so a second Ctrl-C, arriving after the first was taken, ends the process as usual.
   */
  onInterrupt?: (handler: () => void) => () => void;
  /** Clock in milliseconds (tests inject one). */
  now?: () => number;
}

export interface TrainResult {
  step: number;
  tokens: number;
  params: Float32Array;
  layout: ParameterLayout[];
  /** True when stopped by an interrupt (a checkpoint was saved) before the budget. */
  interrupted: boolean;
  resumedFrom: string | null;
  /** The last checkpoint written. */
  checkpoint: string | null;
  history: TrainHistory;
}

export class TrainError extends Error {
  override name = "TrainError";
}

const sigint = (handler: () => void) => {
  process.once("SIGINT", handler);
  return () => {
    process.off("SIGINT", handler);
  };
};

/** RNG streams of one seed: independent sequences for each use. */
const STREAM_INIT = 1;
const STREAM_OBJECTIVE = 2;
const STREAM_EVAL = 3;

export async function train(
  options: TrainOptions & TrainInputs,
  hooks: TrainHooks = {},
): Promise<TrainResult> {
  return new Trainer(options, hooks).run();
}

/** What `train` needs besides the serialisable options. */
export interface TrainInputs {
  /** The training step, built for the model config being trained (src/train/step.ts). */
  step: TrainStep;
  data: TrainData;
}

class Trainer {
  private readonly o: TrainOptions;
  private readonly step: TrainStep;
  private readonly data: TrainData;
  private readonly now: () => number;
  private readonly length: number;
  private readonly accumulation: number;
  private readonly params: Float32Array;
  private readonly grad: Float32Array;
  private readonly scratch: Float32Array;
  private readonly rows: Int32Array;
  private readonly adam: AdamW;
  private readonly rng: Rng;
  private readonly sampler: RowSampler;
  private tokens = 0;
  private history: TrainHistory = { train: [], valid: [] };
  private elapsedBefore = 0;
  private pending = { sum: 0, count: 0 };

  constructor(
    options: TrainOptions & TrainInputs,
    private readonly hooks: TrainHooks,
  ) {
    const { step, data, ...rest } = options;
    this.o = rest;
    this.step = step;
    this.data = data;
    this.now = hooks.now ?? (() => performance.now());
    this.length = data.train.length;
    this.accumulation = options.accumulation ?? 1;
    checkObjective(step.config, options.objective, this.length);
    if (data.valid && data.valid.length !== this.length) {
      throw new TrainError(`valid rows have length ${data.valid.length}, train ${this.length}`);
    }
    const n = step.parameterCount;
    this.params = new Float32Array(n);
    this.grad = new Float32Array(n);
    this.scratch = new Float32Array(n);
    this.rows = new Int32Array(options.batchRows * this.length);
    const seed = options.seed ?? 0;
    this.adam = new AdamW(n, decayMask(step.layout, n), { ...defaultAdamW, ...options.adam });
    this.rng = new Rng(seed, STREAM_OBJECTIVE);
    this.sampler = new RowSampler(data.train, seed);
    if (options.initialWeights) {
      // Any config whose tensors have the same shapes may start from them: attention, block
      // size and logit shift change no shape (DiffuLLaMA / Dream adapt an AR checkpoint so).
      const known = new Set(step.layout.map((p) => p.name));
      for (const name of options.initialWeights.keys()) {
        if (!known.has(name)) {
          throw new TrainError(`initial weights: ${name} is not a parameter of this config`);
        }
      }
      for (const p of step.layout) {
        const w = options.initialWeights.get(p.name);
        if (!w || w.length !== p.size) {
          throw new TrainError(
            `initial weights: ${p.name} ${w ? `has ${w.length} values, expected [${p.shape}] = ${p.size}` : "is missing"}`,
          );
        }
        this.params.set(w, p.offset);
      }
    } else {
      initParameters(this.params, step.layout, step.config, seed, options.initStd ?? 0.02);
    }
  }

  private get tokensPerStep(): number {
    return this.o.batchRows * this.length * this.accumulation;
  }

  async run(): Promise<TrainResult> {
    const o = this.o;
    const resumedFrom = o.resume === false ? null : await latestCheckpoint(o.runDir);
    if (resumedFrom) this.restore(await loadTrainingCheckpoint(resumedFrom));
    const totalSteps =
      o.maxSteps ?? (o.maxTokens !== undefined ? Math.ceil(o.maxTokens / this.tokensPerStep) : 0);
    if (totalSteps <= 0) throw new TrainError("set maxSteps or maxTokens to a positive budget");
    const schedule: ScheduleOptions = {
      lr: o.lr,
      minLr: o.minLr ?? o.lr / 10,
      warmupSteps: o.warmupSteps ?? 0,
      decaySteps: totalSteps,
    };

    let interrupted = false;
    const remove = (this.hooks.onInterrupt ?? sigint)(() => {
      interrupted = true;
    });
    let checkpoint: string | null = null;
    const start = this.now();
    const startTokens = this.tokens;
    try {
      while (this.adam.step < totalSteps && !interrupted) {
        const lr = learningRate(this.adam.step, schedule);
        const loss = await this.accumulate();
        const gradNorm = clipGradNorm(this.grad, o.clip ?? 1);
        this.adam.update(this.params, this.grad, lr);
        this.tokens += this.tokensPerStep;
        const step = this.adam.step;
        this.pending.sum += loss;
        this.pending.count++;
        if (step % (o.logEvery ?? 10) === 0) this.flushTrainPoint(lr);

        const seconds = (this.now() - start) / 1000;
        const rate = seconds > 0 ? (this.tokens - startTokens) / seconds : 0;
        this.hooks.onProgress?.({
          step,
          totalSteps,
          tokens: this.tokens,
          totalTokens: totalSteps * this.tokensPerStep,
          loss,
          lr,
          gradNorm,
          tokensPerSecond: rate,
          etaSeconds: rate > 0 ? ((totalSteps - step) * this.tokensPerStep) / rate : Infinity,
          elapsedSeconds: this.elapsedBefore + seconds,
        });
        const last = step === totalSteps;
        if (o.evalEvery && step % o.evalEvery === 0 && !last) await this.evaluate();
        if (o.checkpointEvery && step % o.checkpointEvery === 0 && !last) {
          checkpoint = await this.save(lr, start);
        }
      }
      if (!interrupted) await this.evaluate();
      if (this.adam.step > 0) {
        checkpoint = await this.save(learningRate(this.adam.step, schedule), start);
      }
    } finally {
      remove();
    }
    return {
      step: this.adam.step,
      tokens: this.tokens,
      params: this.params,
      layout: this.step.layout,
      interrupted: interrupted && this.adam.step < totalSteps,
      resumedFrom,
      checkpoint,
      history: this.history,
    };
  }

  /** Runs the optimizer batch's micro-batches; leaves the summed gradient in `grad`. */
  private async accumulate(): Promise<number> {
    const { batchRows, objective } = this.o;
    const A = this.accumulation;
    const normalizer = A * batchRows * this.lossPositions;
    const perRow = this.ratesPerRow;
    // Mask rates for the whole optimizer batch, stratified across all its rows (MDLM).
    const rates =
      objective.kind === "ar"
        ? null
        : sampleMaskRates(
            A * batchRows * perRow,
            this.rng,
            objective.lowDiscrepancy ?? true,
            objective.eps ?? defaultMaskEps,
          );
    let loss = 0;
    for (let a = 0; a < A; a++) {
      this.sampler.next(batchRows, this.rows);
      const part = rates?.subarray(a * batchRows * perRow, (a + 1) * batchRows * perRow);
      const batch = this.buildBatch(this.rows, batchRows, normalizer, this.rng, part ?? null, true);
      const target = a === 0 ? this.grad : this.scratch;
      const l = await this.step.run(this.params, batch, target);
      if (!Number.isFinite(l)) {
        throw new TrainError(`loss is ${l} at step ${this.adam.step + 1} (micro-batch ${a})`);
      }
      loss += l;
      if (a > 0) for (let i = 0; i < this.grad.length; i++) this.grad[i] += this.scratch[i];
    }
    return loss;
  }

  /** Mask rates per row: one per noised block when every block is noised (BD3-LM), else one. */
  private get ratesPerRow(): number {
    const o = this.o.objective;
    return o.kind === "block" && (o.context === "noisy" || o.context === "dual")
      ? this.lossPositions / this.step.config.blockSize
      : 1;
  }

  /** Positions of a row that can carry loss: the losses are means over them. */
  private get lossPositions(): number {
    const o = this.o.objective;
    return o.kind === "ar"
      ? this.length - Math.max(o.draft ? 0 : (o.from ?? 0), 1)
      : this.length - (o.kind === "block" ? (o.from ?? 0) : 0);
  }

  private buildBatch(
    rows: Int32Array,
    n: number,
    normalizer: number,
    rng: Rng,
    rates: Float64Array | null,
    training: boolean,
  ): LossBatch {
    const o = this.o.objective;
    const L = this.length;
    const shift = this.step.config.logitShift;
    // evaluation measures the model itself: no complementary copies, annealed mask or certainty
    let batch: LossBatch;
    switch (o.kind) {
      case "diffusion": {
        batch = maskedDiffusionBatch(rows, n, L, rng, {
          maskId: o.maskId,
          rates: rates!,
          normalizer,
          shift,
          complementary: training && o.complementary,
          eps: o.eps,
        });
        if (training && o.annealSteps !== undefined) {
          batch.attentionBias = annealMask(L, annealRatio(this.adam.step, o.annealSteps), rng);
        }
        break;
      }
      case "block":
        batch = blockDiffusionBatch(rows, n, L, rng, {
          maskId: o.maskId,
          rates: rates!,
          normalizer,
          blockSize: this.step.config.blockSize,
          context: o.context,
          shift,
          complementary: training && o.complementary,
          eps: o.eps,
          from: o.from,
        });
        break;
      case "ar":
        if (o.fim && training) applyFim(rows, n, L, rng, o.fim);
        if (o.draft && training) {
          return draftBatch(rows, n, L, { ...o.draft, from: o.from ?? 0, normalizer });
        }
        // evaluation measures the next-token loss alone (of the responses, on distillation
        // rows): a mean over its own positions, whatever the draft objective's normalizer
        return nextTokenBatch(rows, n, L, o.draft ? undefined : normalizer, o.from ?? 0);
    }
    if (training && o.certainty) batch.certaintyWeight = o.certainty;
    return batch;
  }

  /**
   * Mean loss per token over the held-out rows, with masks from a fresh generator each time
   * (the same masks at every evaluation, so the curve shows the model, not the draw).
   */
  private async evaluate(): Promise<EvalPoint | null> {
    const valid = this.data.valid;
    if (!valid || valid.count === 0) return null;
    const o = this.o.objective;
    const total = Math.min(valid.count, this.o.evalRows ?? valid.count);
    const rng = new Rng(this.o.seed ?? 0, STREAM_EVAL);
    const rows = new Int32Array(this.o.batchRows * this.length);
    let sum = 0;
    for (let first = 0; first < total; first += this.o.batchRows) {
      const n = Math.min(this.o.batchRows, total - first);
      for (let r = 0; r < n; r++) valid.copyRow(first + r, rows, r * this.length);
      const part = rows.subarray(0, n * this.length);
      const perRow = this.ratesPerRow;
      const rates =
        o.kind === "ar" ? null : sampleMaskRates(n * perRow, rng, o.lowDiscrepancy ?? true, o.eps);
      const normalizer = n * this.lossPositions;
      const batch = this.buildBatch(part, n, normalizer, rng, rates, false);
      sum += (await this.step.run(this.params, batch, this.scratch)) * n;
    }
    const loss = sum / total;
    const bpt = this.data.validBytesPerToken;
    const point: EvalPoint = {
      step: this.adam.step,
      tokens: this.tokens,
      loss,
      bitsPerByte: bpt ? loss / Math.LN2 / bpt : null,
    };
    this.history.valid.push(point);
    this.hooks.onEval?.(point);
    return point;
  }

  private flushTrainPoint(lr: number): void {
    if (this.pending.count === 0) return;
    this.history.train.push({
      step: this.adam.step,
      tokens: this.tokens,
      loss: this.pending.sum / this.pending.count,
      lr,
    });
    this.pending = { sum: 0, count: 0 };
  }

  private async save(lr: number, sessionStart: number): Promise<string> {
    this.flushTrainPoint(lr);
    const state: TrainState = {
      step: this.adam.step,
      tokens: this.tokens,
      params: this.params,
      adamM: this.adam.m,
      adamV: this.adam.v,
      rng: this.rng.state(),
      data: this.sampler.position(),
      config: this.step.config,
      layout: this.step.layout,
      options: JSON.parse(JSON.stringify(this.o)),
      history: this.history,
      elapsedSeconds: this.elapsedBefore + (this.now() - sessionStart) / 1000,
    };
    const dir = await saveTrainingCheckpoint(this.o.runDir, state, this.o.keepCheckpoints ?? 3);
    await this.plot();
    this.hooks.onCheckpoint?.(dir, this.adam.step);
    return dir;
  }

  /** loss.svg and loss.png in the run folder. */
  private async plot(): Promise<void> {
    const series = [
      {
        name: "train",
        color: "#1f77b4",
        points: this.history.train.map((p) => [p.tokens, p.loss] as const),
      },
      {
        name: "valid",
        color: "#d62728",
        points: this.history.valid.map((p) => [p.tokens, p.loss] as const),
      },
    ];
    const plot = {
      title: `${this.o.objective.kind} loss`,
      xLabel: "training tokens",
      yLabel: "loss (nats/token)",
      logX: true,
    };
    await writePlot(`${this.o.runDir}/loss.svg`, series, plot);
    await writePlot(`${this.o.runDir}/loss.png`, series, plot);
  }

  private restore(s: TrainState): void {
    const want = JSON.stringify(configToJson(this.step.config));
    if (JSON.stringify(configToJson(s.config)) !== want) {
      throw new TrainError("the checkpoint's model config differs from this run's");
    }
    const layout = JSON.stringify(this.step.layout.map((p) => [p.name, p.shape, p.offset]));
    if (JSON.stringify(s.layout.map((p) => [p.name, p.shape, p.offset])) !== layout) {
      throw new TrainError("the checkpoint's parameter layout differs from the training step's");
    }
    this.params.set(s.params);
    this.adam.m.set(s.adamM);
    this.adam.v.set(s.adamV);
    this.adam.step = s.step;
    this.rng.setState(s.rng);
    this.sampler.restore(s.data);
    this.tokens = s.tokens;
    this.history = s.history;
    this.elapsedBefore = s.elapsedSeconds;
  }
}

function checkObjective(config: ModelConfig, o: ObjectiveSpec, length: number): void {
  const want = { diffusion: "full", block: "block_causal", ar: "causal" } as const;
  const kind = (o as { kind: unknown }).kind;
  if (kind !== "diffusion" && kind !== "block" && kind !== "ar") {
    throw new TrainError(`unknown objective ${JSON.stringify(kind)} (diffusion, block, ar)`);
  }
  if (config.attention !== want[kind]) {
    throw new TrainError(
      `objective ${kind} trains ${want[kind]} attention, the config has ${config.attention}`,
    );
  }
  const anneal = o.kind === "diffusion" ? o.annealSteps : undefined;
  if (anneal !== undefined && !(Number.isInteger(anneal) && anneal >= 1)) {
    throw new TrainError(`annealSteps must be a positive integer, got ${anneal}`);
  }
  if (kind === "block" && length % config.blockSize !== 0) {
    throw new TrainError(`block size ${config.blockSize} does not divide row length ${length}`);
  }
  const from = o.kind === "block" || o.kind === "ar" ? o.from : undefined;
  const unit = o.kind === "block" ? config.blockSize : 1;
  if (
    from !== undefined &&
    !(Number.isInteger(from) && from >= 0 && from < length && from % unit === 0)
  ) {
    throw new TrainError(
      unit > 1
        ? `from ${from} must be a multiple of the block size ${unit} below the row length ${length}`
        : `from ${from} must be an integer below the row length ${length}`,
    );
  }
  const draft = o.kind === "ar" ? o.draft : undefined;
  if (draft !== undefined) {
    if (!(Number.isInteger(draft.blockSize) && draft.blockSize >= 1 && draft.blockSize < length)) {
      throw new TrainError(
        `draft block size ${draft.blockSize} must be an integer in [1, ${length})`,
      );
    }
    if (o.kind === "ar" && o.fim) throw new TrainError("draft blocks and FIM rows do not combine");
  }
  if (length > config.maxPositions) {
    throw new TrainError(
      `row length ${length} exceeds max_position_embeddings ${config.maxPositions}`,
    );
  }
}

/**
 * Initial weights (GPT-2 / nanoGPT): N(0, std²) for matrices and the embedding, std/√(2·layers)
 * for the projections that write into the residual stream (o_proj, down_proj), 1 for RMSNorm
 * weights, 0 for biases. Drawn in layout order from `Rng(seed, 1)`.
 */
export function initParameters(
  params: Float32Array,
  layout: readonly ParameterLayout[],
  config: ModelConfig,
  seed: number,
  std = 0.02,
): void {
  const rng = new Rng(seed, STREAM_INIT);
  const residualStd = std / Math.sqrt(2 * Math.max(1, config.numLayers));
  for (const p of layout) {
    const view = params.subarray(p.offset, p.offset + p.size);
    if (p.name.endsWith("norm.weight")) view.fill(1);
    else if (p.name.endsWith(".bias")) view.fill(0);
    else {
      const s = /(o_proj|down_proj)\.weight$/.test(p.name) ? residualStd : std;
      for (let i = 0; i < view.length; i++) view[i] = s * rng.normal();
    }
  }
}
