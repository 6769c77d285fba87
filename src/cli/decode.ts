// What generate, infill, edit and fix share: the decoding options of the command line, the run
// of a decoder's event stream (live canvas on a terminal, Ctrl-C and --max-time through one
// AbortSignal), and the result as a summary line or as JSON.

import { DecodeAbortedError, DecodeOptionError } from "../diffusion/errors.js";
import {
  type DiffusionOptions,
  type PresetName,
  presetNames,
  presets,
  resolveOptions,
} from "../diffusion/options.js";
import type { DecodeResult, StepEvent, StopReason } from "../diffusion/types.js";
import {
  flag,
  intOption,
  numberOption,
  type OptionSpec,
  type Parsed,
  stringOption,
  UsageError,
  wrap,
} from "./args.js";
import { Interrupted } from "./command.js";
import { type LoadedModel, loadModel, resolveModelDir } from "./model.js";
import {
  type CanvasLook,
  formatSeconds,
  isLiveTerminal,
  LiveCanvas,
  sanitize,
} from "./terminal.js";

export const modelOption: OptionSpec = {
  name: "model",
  type: "string",
  short: "m",
  value: "DIR",
  description:
    "checkpoint folder in the Hugging Face layout (config.json, model.safetensors, tokenizer.json); default: the embedded model models/unmask-code",
};

/** The options of every decoding command; `length` describes what --length means there. */
export function decodeOptions(length: string): OptionSpec[] {
  return [
    modelOption,
    {
      name: "strategy",
      type: "string",
      short: "s",
      value: "NAME",
      description: "decoding strategy, one of the presets listed below (default: llada)",
    },
    {
      name: "steps",
      type: "string",
      value: "N",
      description:
        "forward passes for the whole canvas, ≥ 1 (default: one per masked token; threshold strategies run until the canvas is clean)",
    },
    { name: "length", type: "string", short: "n", value: "N", description: length },
    {
      name: "block-length",
      type: "string",
      value: "N",
      description: "semi-autoregressive blocks of N tokens, decoded left to right",
    },
    {
      name: "threshold",
      type: "string",
      value: "P",
      description: "confidence bound of threshold strategies (fast-dllm), in (0, 1]",
    },
    {
      name: "temperature",
      type: "string",
      short: "t",
      value: "T",
      description: "sampling temperature, ≥ 0 (0: greedy)",
    },
    {
      name: "seed",
      type: "string",
      value: "N",
      description: "seed of every random draw (default 0)",
    },
    {
      name: "max-time",
      type: "string",
      value: "SECONDS",
      description: "stop decoding after this long and print what is there",
    },
    {
      name: "json",
      type: "boolean",
      description: "print one JSON object (result, token counts, steps, timings) instead of text",
    },
  ];
}

/** Options of the commands that can also decode with the autoregressive twin. */
export const arOptions: OptionSpec[] = [
  {
    name: "ar",
    type: "boolean",
    description:
      "decode left to right with the autoregressive twin (models/unmask-code-ar), for comparison",
  },
  {
    name: "ar-model",
    type: "string",
    value: "DIR",
    description: "the autoregressive checkpoint folder for --ar (implies --ar)",
  },
];

/** The "Strategies" help section: every preset with its description. */
export function strategiesSection(): [string, string] {
  const width = Math.max(...presetNames.map((n) => n.length)) + 4;
  const lines: string[] = [];
  for (const name of presetNames) {
    const text = wrap(presets[name].description, 100 - width);
    lines.push(`  ${name.padEnd(width - 2)}${text[0]}`);
    for (const more of text.slice(1)) lines.push(" ".repeat(width) + more);
  }
  return ["Strategies", lines.join("\n")];
}

export interface DecodeFlags {
  modelDir: string | undefined;
  /** The AR twin's folder when --ar-model was given. */
  arModelDir: string | undefined;
  ar: boolean;
  strategy: PresetName;
  steps: number | undefined;
  length: number | undefined;
  blockLength: number | undefined;
  threshold: number | undefined;
  temperature: number | undefined;
  seed: number | undefined;
  maxTimeMs: number | undefined;
  json: boolean;
}

/** The flags behind each option of the diffusion library, for its errors. */
const flagOf: Record<string, string> = {
  preset: "--strategy",
  cache: "--strategy",
  genLength: "--length",
  maxTokens: "--length",
  steps: "--steps",
  blockLength: "--block-length",
  threshold: "--threshold",
  temperature: "--temperature",
  seed: "--seed",
};

/** Reads and checks the decoding flags; the diffusion library validates their ranges. */
export function decodeFlags(parsed: Parsed): DecodeFlags {
  const strategy = stringOption(parsed, "strategy") ?? "llada";
  if (!(presetNames as string[]).includes(strategy)) {
    throw new UsageError(
      `--strategy: unknown strategy ${JSON.stringify(strategy)} (valid: ${presetNames.join(", ")})`,
    );
  }
  const maxTime = numberOption(parsed, "max-time", (v) => (v > 0 ? null : "expected seconds > 0"));
  const arModelDir = stringOption(parsed, "ar-model");
  const ar = flag(parsed, "ar") || arModelDir !== undefined;
  if (ar && arModelDir === undefined && stringOption(parsed, "model") !== undefined) {
    throw new UsageError(
      "--ar decodes with the autoregressive twin: name its folder with --ar-model DIR (--model names the diffusion model)",
    );
  }
  const flags: DecodeFlags = {
    modelDir: stringOption(parsed, "model"),
    arModelDir,
    ar,
    strategy: strategy as PresetName,
    steps: intOption(parsed, "steps", Number.MIN_SAFE_INTEGER),
    length: intOption(parsed, "length", 1),
    blockLength: intOption(parsed, "block-length", Number.MIN_SAFE_INTEGER),
    threshold: numberOption(parsed, "threshold"),
    temperature: numberOption(parsed, "temperature"),
    seed: intOption(parsed, "seed", Number.MIN_SAFE_INTEGER),
    maxTimeMs: maxTime === undefined ? undefined : maxTime * 1000,
    json: flag(parsed, "json"),
  };
  diffusionOptions(flags); // validate now, before a model is loaded
  return flags;
}

/** The diffusion library's options of the flags; its DecodeOptionError becomes a UsageError. */
export function diffusionOptions(flags: DecodeFlags): DiffusionOptions {
  const options: DiffusionOptions = { preset: flags.strategy };
  if (flags.steps !== undefined) options.steps = flags.steps;
  if (flags.blockLength !== undefined) options.blockLength = flags.blockLength;
  if (flags.threshold !== undefined) options.threshold = flags.threshold;
  if (flags.temperature !== undefined) options.temperature = flags.temperature;
  if (flags.seed !== undefined) options.seed = flags.seed;
  try {
    resolveOptions(options);
  } catch (error) {
    throw asUsageError(error);
  }
  return options;
}

/**
 * A DecodeOptionError about an option the user set by flag, as a UsageError naming the flag (and
 * input too long for the context as a UsageError too); other errors unchanged.
 */
export function asUsageError(error: unknown): unknown {
  if (error instanceof DecodeOptionError) {
    const message = error.message.slice(error.parameter.length + 2);
    // the input is longer than the model's context
    if (error.parameter === "length") return new UsageError(message, { cause: error });
    const name = flagOf[error.parameter];
    if (name !== undefined) return new UsageError(`${name}: ${message}`, { cause: error });
  }
  return error;
}

/** Loads the model the flags name (the AR twin with --ar). */
export async function loadForFlags(flags: DecodeFlags): Promise<LoadedModel> {
  return loadModel(resolveModelDir(flags.ar ? flags.arModelDir : flags.modelDir, flags.ar));
}

/** Why a run ended: the decoder's reason, or ours. */
export type Stop = StopReason | "interrupted" | "max_time";

export interface Outcome<R extends DecodeResult = DecodeResult> {
  result: R;
  stop: Stop;
  decodeMs: number;
}

class OutOfTime extends Error {
  override name = "OutOfTime";
}

/**
 * Runs a decoder to its end: `start` makes the event stream with the signal that Ctrl-C
 * (`interrupt`) and --max-time abort; `live`, when given, draws every step. An aborted run hands
 * back the partial canvas.
 */
export async function drive<R extends DecodeResult>(
  start: (signal: AbortSignal) => AsyncGenerator<StepEvent, R, undefined>,
  interrupt: AbortSignal,
  maxTimeMs: number | undefined,
  live: LiveCanvas | null,
): Promise<Outcome<R>> {
  const controller = new AbortController();
  const onInterrupt = () => controller.abort(new Interrupted());
  if (interrupt.aborted) onInterrupt();
  else interrupt.addEventListener("abort", onInterrupt, { once: true });
  const timer =
    maxTimeMs === undefined
      ? undefined
      : setTimeout(() => controller.abort(new OutOfTime()), maxTimeMs);
  const t0 = performance.now();
  try {
    const events = start(controller.signal);
    for (;;) {
      const next = await events.next();
      if (next.done === true) {
        return {
          result: next.value,
          stop: next.value.stopReason,
          decodeMs: performance.now() - t0,
        };
      }
      live?.step(next.value);
    }
  } catch (error) {
    if (error instanceof DecodeAbortedError) {
      const stop = controller.signal.reason instanceof OutOfTime ? "max_time" : "interrupted";
      // the library's streams hand back their own result type as the partial result
      return { result: error.partial as R, stop, decodeMs: performance.now() - t0 };
    }
    throw asUsageError(error);
  } finally {
    clearTimeout(timer);
    interrupt.removeEventListener("abort", onInterrupt);
    live?.finish();
  }
}

/** The live canvas when stdout is an animating terminal and JSON was not asked for. */
export function liveCanvasFor(flags: DecodeFlags, look: CanvasLook): LiveCanvas | null {
  if (flags.json || !isLiveTerminal(process.stdout, process.env)) return null;
  return new LiveCanvas(process.stdout, look);
}

/** "64 tokens · 16 steps · 16 forward passes · 812 tokens/s · 79 ms". */
export function summaryLine(tokens: number, outcome: Outcome, strategy: string): string {
  const { result, decodeMs } = outcome;
  const rate = decodeMs > 0 ? tokens / (decodeMs / 1000) : 0;
  const parts = [
    `${tokens} tokens`,
    `${result.steps} steps`,
    `${result.forwards} forward passes`,
    `${rate.toFixed(1)} tokens/s`,
    formatSeconds(decodeMs),
    strategy,
  ];
  if (result.remasks > 0) parts.splice(3, 0, `${result.remasks} re-masked`);
  if (outcome.stop === "interrupted") parts.push("interrupted");
  if (outcome.stop === "max_time") parts.push("stopped at --max-time");
  return parts.join(" · ");
}

export interface Report {
  command: string;
  text: string;
  /** Tokens the run produced (decoded positions, end tokens excluded). */
  tokens: number;
  /** Extra token counts (prompt, canvas...). */
  counts: Record<string, number>;
  /** Extra fields of the command (e.g. the diff of fix). */
  extra?: Record<string, unknown>;
}

/**
 * Prints the result: JSON with --json; else the text on stdout and, on a terminal, the summary
 * line on stderr (off a terminal only the result). Returns the exit code.
 */
export function finish(
  flags: DecodeFlags,
  loaded: LoadedModel,
  outcome: Outcome,
  report: Report,
  loadMs: number,
  printText: string = report.text,
): number {
  const strategy = flags.ar ? "ar" : flags.strategy;
  if (flags.json) {
    const rate = outcome.decodeMs > 0 ? report.tokens / (outcome.decodeMs / 1000) : 0;
    const json = {
      command: report.command,
      model: loaded.dir,
      decoder: flags.ar ? "autoregressive" : "diffusion",
      strategy,
      options: {
        steps: flags.steps ?? null,
        length: flags.length ?? null,
        block_length: flags.blockLength ?? null,
        threshold: flags.threshold ?? null,
        temperature: flags.temperature ?? null,
        seed: flags.seed ?? null,
        max_time: flags.maxTimeMs === undefined ? null : flags.maxTimeMs / 1000,
      },
      text: report.text,
      tokens: { generated: report.tokens, ...report.counts },
      steps: outcome.result.steps,
      forward_passes: outcome.result.forwards,
      remasks: outcome.result.remasks,
      stop_reason: outcome.stop,
      timings: {
        load_ms: round(loadMs),
        decode_ms: round(outcome.decodeMs),
        tokens_per_s: round(rate),
      },
      ...report.extra,
    };
    process.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
  } else {
    const live = isLiveTerminal(process.stdout, process.env);
    const shown = live ? sanitize(printText, false) : printText;
    process.stdout.write(shown.endsWith("\n") || shown === "" ? shown : `${shown}\n`);
    if (process.stderr.isTTY) {
      const line = summaryLine(report.tokens, outcome, strategy);
      const dim = isLiveTerminal(process.stderr, process.env);
      process.stderr.write(dim ? `\x1b[2m${line}\x1b[22m\n` : `${line}\n`);
    }
  }
  return outcome.stop === "interrupted" ? 130 : 0;
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}

/** The "JSON output" help section of a decoding command. */
export function jsonSection(command: string, extra: string): [string, string] {
  return [
    "JSON output (--json)",
    `  One object on stdout: "command" ("${command}"), "model" (its folder), "decoder" ("diffusion" or
  "autoregressive"), "strategy", "options" (steps, length, block_length, threshold, temperature,
  seed, max_time; null where not given), "text" (the result), "tokens" ({ generated, ... }),
  "steps", "forward_passes", "remasks", "stop_reason" ("complete", "eos", "max_tokens",
  "max_time" or "interrupted"), "timings" ({ load_ms, decode_ms, tokens_per_s }), and
  ${extra}.`,
  ];
}
