// The decoding benchmark behind `unmask bench decode`: tokens per second and forward passes per
// token of every preset and of the AR baseline, measured side by side in one run (runs
// interleaved, medians reported) on the same prompt and length. Every run decodes the whole
// length (no early stop at EOS), so the work compared is the same. Each step is timed, and
// inside it the runtime's run call (ForwardResult.engineMs): what is left is host work.

import type { ForwardRequest, ForwardResult, LanguageModel } from "../model/types.js";
import { decodeAr } from "./ar.js";
import { denoise } from "./denoise.js";
import { DecodeOptionError } from "./errors.js";
import { checkInteger, type PresetName, presetNames } from "./options.js";
import type { DecodeResult, StepEvent } from "./types.js";

export interface DecodeBenchOptions {
  /** A bidirectional ("full" attention) model for the diffusion presets. */
  diffusion: LanguageModel;
  /** A block_causal model for the block-diffusion preset; without it that preset is skipped. */
  blockDiffusion?: LanguageModel;
  /** A causal model of the same shape: the AR baseline. */
  ar: LanguageModel;
  prompt: ArrayLike<number>;
  /** Tokens decoded per run; default 64. */
  genLength?: number;
  /** Default: every preset. */
  presets?: readonly PresetName[];
  /** Interleaved repetitions; the median time is reported. Default 1. */
  runs?: number;
  progress?: (message: string) => void;
}

export interface DecodeSpeed {
  tokens_per_s: number;
  forwards_per_token: number;
  /** Median wall time of a run. */
  seconds: number;
  /** Median time of one step (one forward pass and everything the loop does around it). */
  step_ms: number;
  /** Median time inside the runtime's run call, per forward pass (0 for engines without one). */
  engine_ms: number;
  /** 1 − total engine time ÷ total step time, over every run. */
  host_fraction: number;
}

export interface DecodeBenchResult {
  gen_length: number;
  prompt_length: number;
  runs: number;
  presets: ({ name: PresetName } & DecodeSpeed)[];
  ar: DecodeSpeed;
}

/** A LanguageModel that records the engine time of every forward pass. */
class EngineTimer implements LanguageModel {
  readonly engineMs: number[] = [];
  constructor(private readonly inner: LanguageModel) {}
  get config() {
    return this.inner.config;
  }
  async forward(request: ForwardRequest): Promise<ForwardResult> {
    const out = await this.inner.forward(request);
    this.engineMs.push(out.engineMs ?? 0);
    return out;
  }
  async dispose(): Promise<void> {}
}

/** Runs a decoder to the end, timing each step (ms into `steps`). */
async function drain(
  run: AsyncGenerator<StepEvent, DecodeResult, undefined>,
  steps: number[],
): Promise<DecodeResult> {
  for (;;) {
    const t0 = performance.now();
    const next = await run.next();
    if (next.done) return next.value;
    steps.push(performance.now() - t0);
  }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

export async function benchDecode(options: DecodeBenchOptions): Promise<DecodeBenchResult> {
  const genLength = checkInteger("genLength", options.genLength ?? 64, 1);
  const runs = checkInteger("runs", options.runs ?? 1, 1);
  const names = options.presets ?? presetNames;
  for (const name of names) {
    if (!presetNames.includes(name)) {
      throw new DecodeOptionError(
        "presets",
        `unknown preset ${JSON.stringify(name)} (valid: ${presetNames.join(", ")})`,
      );
    }
  }
  if (options.presets?.includes("block-diffusion") && options.blockDiffusion === undefined) {
    throw new DecodeOptionError(
      "presets",
      "block-diffusion needs a block_causal model (blockDiffusion), and none was given",
    );
  }
  const prompt = Array.from(options.prompt);
  // every preset when none was named, block diffusion only with its model
  const selected = names.filter(
    (n) => n !== "block-diffusion" || options.blockDiffusion !== undefined,
  );
  interface Timings {
    seconds: number[];
    steps: number[];
    engine: EngineTimer;
    forwards: number;
  }
  const records = new Map<string, Timings>();
  const record = (name: string, model: LanguageModel): Timings => {
    let r = records.get(name);
    if (r === undefined) {
      r = { seconds: [], steps: [], engine: new EngineTimer(model), forwards: 0 };
      records.set(name, r);
    }
    return r;
  };
  for (let run = 0; run < runs; run++) {
    for (const name of selected) {
      const rec = record(
        name,
        name === "block-diffusion" ? options.blockDiffusion! : options.diffusion,
      );
      const maskId = rec.engine.config.maskTokenId;
      if (maskId === null)
        throw new DecodeOptionError("diffusion", "the model has no mask token id");
      const canvas = new Int32Array(prompt.length + genLength).fill(maskId);
      canvas.set(prompt);
      options.progress?.(`run ${run + 1}/${runs}: ${name}`);
      const t0 = performance.now();
      const r = await drain(
        denoise(
          rec.engine,
          { tokens: canvas, openEnded: true },
          { preset: name, stopAtEos: false },
        ),
        rec.steps,
      );
      rec.seconds.push((performance.now() - t0) / 1000);
      rec.forwards = r.forwards;
    }
    options.progress?.(`run ${run + 1}/${runs}: ar`);
    const rec = record("ar", options.ar);
    const t0 = performance.now();
    const r = await drain(
      decodeAr(rec.engine, prompt, { maxTokens: genLength, stopAtEos: false }),
      rec.steps,
    );
    rec.seconds.push((performance.now() - t0) / 1000);
    rec.forwards = r.forwards;
  }
  const speed = (name: string): DecodeSpeed => {
    const rec = records.get(name)!;
    const seconds = median(rec.seconds);
    const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
    return {
      tokens_per_s: genLength / seconds,
      forwards_per_token: rec.forwards / genLength,
      seconds,
      step_ms: median(rec.steps),
      engine_ms: median(rec.engine.engineMs),
      host_fraction: 1 - sum(rec.engine.engineMs) / sum(rec.steps),
    };
  };
  return {
    gen_length: genLength,
    prompt_length: prompt.length,
    runs,
    presets: selected.map((name) => ({ name, ...speed(name) })),
    ar: speed("ar"),
  };
}
