// The decoding benchmark behind `unmask bench decode`: tokens per second and forward passes per
// token of every preset and of the AR baseline, measured side by side in one run (runs
// interleaved, medians reported) on the same prompt and length. Every run decodes the whole
// length (no early stop at EOS), so the work compared is the same.

import type { LanguageModel } from "../model/types.js";
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
}

export interface DecodeBenchResult {
  gen_length: number;
  prompt_length: number;
  runs: number;
  presets: ({ name: PresetName } & DecodeSpeed)[];
  ar: DecodeSpeed;
}

async function drain(
  run: AsyncGenerator<StepEvent, DecodeResult, undefined>,
): Promise<DecodeResult> {
  for (;;) {
    const next = await run.next();
    if (next.done) return next.value;
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
  const times = new Map<string, number[]>();
  const forwards = new Map<string, number>();
  const record = (name: string, seconds: number, r: DecodeResult) => {
    times.set(name, [...(times.get(name) ?? []), seconds]);
    forwards.set(name, r.forwards);
  };
  for (let run = 0; run < runs; run++) {
    for (const name of selected) {
      const model = name === "block-diffusion" ? options.blockDiffusion! : options.diffusion;
      const maskId = model.config.maskTokenId;
      if (maskId === null)
        throw new DecodeOptionError("diffusion", "the model has no mask token id");
      const canvas = new Int32Array(prompt.length + genLength).fill(maskId);
      canvas.set(prompt);
      options.progress?.(`run ${run + 1}/${runs}: ${name}`);
      const t0 = performance.now();
      const r = await drain(
        denoise(model, { tokens: canvas, openEnded: true }, { preset: name, stopAtEos: false }),
      );
      record(name, (performance.now() - t0) / 1000, r);
    }
    options.progress?.(`run ${run + 1}/${runs}: ar`);
    const t0 = performance.now();
    const r = await drain(decodeAr(options.ar, prompt, { maxTokens: genLength, stopAtEos: false }));
    record("ar", (performance.now() - t0) / 1000, r);
  }
  const speed = (name: string): DecodeSpeed => {
    const seconds = median(times.get(name)!);
    return {
      tokens_per_s: genLength / seconds,
      forwards_per_token: forwards.get(name)! / genLength,
      seconds,
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
