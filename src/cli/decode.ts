// What generate, infill, edit and fix share: the decoding options of the command line, the run
// of a decoder's event stream (live canvas on a terminal, Ctrl-C and --max-time through one
// AbortSignal), and the result as a summary line or as JSON.

import { DecodeOptionError } from "../diffusion/errors.js";
import {
  type DiffusionOptions,
  type PresetName,
  presetNames,
  presets,
} from "../diffusion/options.js";
import type { DecodeResult, StepEvent } from "../diffusion/types.js";
import { type Control, type Outcome, round, runReport, settle, supervise } from "../host/decode.js";
import { IgnoredOptionError } from "../host/errors.js";
import { type LoadedModel, loadModel, resolveModelDir } from "../host/models.js";
import {
  checkModelFor,
  checkSettings,
  type DecodeSettings,
  diffusionOptions as hostDiffusionOptions,
} from "../host/options.js";
import { type FamilyName, familyNames } from "../model/families.js";
import { type QuantType, quantTypes } from "../model/quant.js";
import { cudaInstallHint, type Device, devices } from "../runtime/session.js";
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

/** How a checkpoint is read and where it runs: options of the decoding commands and of serve. */
export const loadOptions: OptionSpec[] = [
  {
    name: "quant",
    type: "string",
    value: "TYPE",
    description: `quantize the model's linear layers while loading: ${quantTypes.join(" or ")} (default: as stored)`,
  },
  {
    name: "device",
    type: "string",
    value: "NAME",
    description: `where the model runs: cpu (default) or cuda (needs onnxruntime-node's CUDA binaries: ${cudaInstallHint})`,
  },
  {
    name: "family",
    type: "string",
    value: "NAME",
    description: `read the checkpoint as this family (${familyNames.join(", ")}; default: from its config.json; open-dcoder must be named)`,
  },
];

/** The options of every decoding command; `length` describes what --length means there. */
export function decodeOptions(length: string): OptionSpec[] {
  return [
    modelOption,
    ...loadOptions,
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

/** --quant, --family and --device: how the checkpoint is read and where it runs. */
export interface LoadFlags {
  quant?: QuantType;
  family?: FamilyName;
  device?: Device;
}

export interface DecodeFlags {
  modelDir: string | undefined;
  load: LoadFlags;
  /** The AR twin's folder when --ar-model was given. */
  arModelDir: string | undefined;
  ar: boolean;
  /** The request's options, checked by the decode service's one validator. */
  settings: DecodeSettings;
  maxTimeMs: number | undefined;
  json: boolean;
}

/** The flags behind each option of the decode service, for its errors. */
const flagOf: Record<string, string> = {
  strategy: "--strategy",
  preset: "--strategy",
  cache: "--strategy",
  length: "--length",
  genLength: "--length",
  maxTokens: "--length",
  steps: "--steps",
  blockLength: "--block-length",
  threshold: "--threshold",
  temperature: "--temperature",
  seed: "--seed",
};

/** --quant, --device and --family, each checked against the values it takes. */
export function loadFlags(parsed: Parsed): LoadFlags {
  const load: LoadFlags = {};
  const quant = oneOfOption(parsed, "quant", quantTypes, " or ");
  if (quant !== undefined) load.quant = quant;
  const device = oneOfOption(parsed, "device", devices, " or ");
  if (device !== undefined) load.device = device;
  const family = oneOfOption(parsed, "family", familyNames, ", ", "one of ");
  if (family !== undefined) load.family = family;
  return load;
}

/** A string option that must be one of `values` (a UsageError listing them otherwise). */
function oneOfOption<T extends string>(
  parsed: Parsed,
  name: string,
  values: readonly T[],
  separator: string,
  lead = "",
): T | undefined {
  const value = stringOption(parsed, name);
  if (value === undefined || values.includes(value as T)) return value as T | undefined;
  throw new UsageError(
    `--${name}: expected ${lead}${values.join(separator)}, got ${JSON.stringify(value)}`,
  );
}

/** Reads the decoding flags and checks them with the decode service's validator. */
export function decodeFlags(parsed: Parsed): DecodeFlags {
  const maxTime = numberOption(parsed, "max-time", (v) => (v > 0 ? null : "expected seconds > 0"));
  const arModelDir = stringOption(parsed, "ar-model");
  const ar = flag(parsed, "ar") || arModelDir !== undefined;
  if (ar && arModelDir === undefined && stringOption(parsed, "model") !== undefined) {
    throw new UsageError(
      "--ar decodes with the autoregressive twin: name its folder with --ar-model DIR (--model names the diffusion model)",
    );
  }
  const settings: DecodeSettings = { decoder: ar ? "autoregressive" : "diffusion" };
  const strategy = stringOption(parsed, "strategy");
  if (strategy !== undefined) settings.strategy = strategy as PresetName;
  const numbers = {
    steps: intOption(parsed, "steps", Number.MIN_SAFE_INTEGER),
    length: intOption(parsed, "length", 1),
    blockLength: intOption(parsed, "block-length", Number.MIN_SAFE_INTEGER),
    threshold: numberOption(parsed, "threshold"),
    temperature: numberOption(parsed, "temperature"),
    seed: intOption(parsed, "seed", Number.MIN_SAFE_INTEGER),
  };
  for (const [key, value] of Object.entries(numbers)) {
    if (value !== undefined) settings[key as keyof typeof numbers] = value;
  }
  try {
    checkSettings(settings); // before a model is loaded
  } catch (error) {
    throw asUsageError(error, ar);
  }
  const load = loadFlags(parsed);
  return {
    modelDir: stringOption(parsed, "model"),
    load,
    arModelDir,
    ar,
    settings,
    maxTimeMs: maxTime === undefined ? undefined : maxTime * 1000,
    json: flag(parsed, "json"),
  };
}

/** The diffusion library's options of the flags. */
export function diffusionOptions(flags: DecodeFlags): DiffusionOptions {
  return hostDiffusionOptions(flags.settings);
}

/**
 * A DecodeOptionError as a UsageError naming the flag (an ignored option names --ar too when it
 * was --ar that made it ignored); other errors unchanged.
 */
export function asUsageError(error: unknown, ar = false): unknown {
  if (error instanceof DecodeOptionError) {
    const message = error.message.slice(error.parameter.length + 2);
    if (error.parameter.startsWith("--")) return new UsageError(error.message, { cause: error });
    const name = flagOf[error.parameter];
    if (name === undefined) return new UsageError(message, { cause: error });
    const why = error instanceof IgnoredOptionError && ar ? `${name} with --ar: ` : `${name}: `;
    return new UsageError(why + message, { cause: error });
  }
  return error;
}

/** Loads the model the flags name (the AR twin with --ar), refusing one of the wrong kind. */
export async function loadForFlags(flags: DecodeFlags): Promise<LoadedModel> {
  const parameter = flags.ar ? "--ar-model" : "--model";
  try {
    const given = flags.ar ? flags.arModelDir : flags.modelDir;
    const loaded = await loadModel(
      resolveModelDir(given, flags.settings.decoder, parameter),
      flags.load,
    );
    try {
      const hint = flags.ar ? "" : " (--ar --ar-model DIR)";
      checkModelFor(loaded.config, flags.settings.decoder, parameter, hint);
    } catch (error) {
      await loaded.model.dispose();
      throw error;
    }
    return loaded;
  } catch (error) {
    throw asUsageError(error);
  }
}

export type { Outcome, Stop } from "../host/decode.js";

/**
 * Runs a decoder to its end under the decode service: `start` makes the event stream with the
 * signal that Ctrl-C (`interrupt`) and --max-time abort; `live`, when given, draws every step.
 * An aborted run hands back the partial canvas.
 */
export async function drive<R extends DecodeResult>(
  start: (signal: AbortSignal) => AsyncGenerator<StepEvent, R, undefined>,
  interrupt: AbortSignal,
  maxTimeMs: number | undefined,
  live: LiveCanvas | null,
): Promise<Outcome<R>> {
  const control: Control = { signal: interrupt };
  if (maxTimeMs !== undefined) control.maxTimeMs = maxTimeMs;
  const trace = process.env.UNMASK_DEBUG ? traceStep : undefined;
  try {
    return await settle(supervise(start, control), (event) => {
      live?.step(event);
      trace?.(event);
    });
  } catch (error) {
    throw asUsageError(error);
  } finally {
    live?.finish();
  }
}

/** With UNMASK_DEBUG set, a line on stderr per step (what a script or a test can wait for). */
function traceStep(event: StepEvent): void {
  process.stderr.write(
    `unmask: debug: step ${event.step + 1} · ${event.masked} masked · ${event.forwards} forward passes\n`,
  );
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
  const s = flags.settings;
  const strategy = flags.ar ? "ar" : (s.strategy ?? "llada");
  if (flags.json) {
    const run = runReport(outcome, report.tokens);
    const json = {
      command: report.command,
      model: loaded.dir,
      decoder: s.decoder,
      strategy,
      options: {
        steps: s.steps ?? null,
        length: s.length ?? null,
        block_length: s.blockLength ?? null,
        threshold: s.threshold ?? null,
        temperature: s.temperature ?? null,
        seed: s.seed ?? null,
        max_time: flags.maxTimeMs === undefined ? null : flags.maxTimeMs / 1000,
      },
      text: report.text,
      tokens: { generated: report.tokens, ...report.counts },
      ...run,
      timings: { load_ms: round(loadMs), ...run.timings },
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
