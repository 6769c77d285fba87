// The one options validator of every front end (CLI flags, HTTP bodies, the page): what a request
// may ask of a decoder, checked for ranges by the diffusion library and for sense here — an
// option that the chosen decoder or strategy would ignore is an IgnoredOptionError, never silence.

import { type ArOptions, resolveArOptions } from "../diffusion/ar.js";
import { DecodeOptionError } from "../diffusion/errors.js";
import {
  checkInteger,
  type DiffusionOptions,
  type PresetName,
  presetNames,
  presets,
  resolveOptions,
  runsUntilClean,
} from "../diffusion/options.js";
import type { ModelConfig } from "../model/config.js";
import { IgnoredOptionError, WrongModelError } from "./errors.js";
import { type Decoder, decoderOf } from "./models.js";

/** A decoding request's options, the same object for diffusion and AR. */
export interface DecodeSettings {
  decoder: Decoder;
  /** Diffusion only: a preset name; default "llada". */
  strategy?: PresetName;
  /** Diffusion only: forward passes for the whole canvas (count-based strategies). */
  steps?: number;
  /** Diffusion only: semi-autoregressive blocks of this many tokens. */
  blockLength?: number;
  /** Diffusion only: the confidence bound of threshold strategies. */
  threshold?: number;
  temperature?: number;
  topK?: number;
  topP?: number;
  seed?: number;
  /** Tokens to generate (or a hole's size); defaulted against the context when absent. */
  length?: number;
}

/** Settings fields that only the diffusion decoder reads. */
const diffusionOnly = ["strategy", "steps", "blockLength", "threshold"] as const;

/** Strategies that reveal by a confidence bound and run until each block is clean. */
function selectionOf(strategy: PresetName): string {
  const o = presets[strategy].options as DiffusionOptions;
  return o.selection ?? "topk";
}

const thresholdStrategies = presetNames.filter((n) => selectionOf(n) === "threshold");

/**
 * Checks settings for a decoder: ranges (the library's messages, naming the parameter), and the
 * rule for options that would be ignored. Returns the settings unchanged.
 */
export function checkSettings(s: DecodeSettings): DecodeSettings {
  if (s.strategy !== undefined && !presetNames.includes(s.strategy)) {
    throw new DecodeOptionError(
      "strategy",
      `unknown strategy ${JSON.stringify(s.strategy)} (valid: ${presetNames.join(", ")})`,
    );
  }
  if (s.length !== undefined) checkInteger("length", s.length, 1);
  if (s.decoder === "autoregressive") {
    for (const name of diffusionOnly) {
      if (s[name] !== undefined) {
        throw new IgnoredOptionError(
          name,
          "the autoregressive decoder writes one token per step and has no strategy, steps, blocks or threshold: drop it, or decode with the diffusion model",
        );
      }
    }
    resolveArOptions(arOptions(s, 1));
    return s;
  }
  const strategy = s.strategy ?? "llada";
  const o = resolveOptions(diffusionOptions(s));
  if (s.threshold !== undefined && o.selection !== "threshold") {
    throw new IgnoredOptionError(
      "threshold",
      `strategy ${strategy} reveals a set number of tokens per step and reads no threshold (threshold strategies: ${thresholdStrategies.join(", ")})`,
    );
  }
  if (s.steps !== undefined && runsUntilClean(o.selection)) {
    throw new IgnoredOptionError(
      "steps",
      `strategy ${strategy} runs each block until it is clean and takes no step count: drop steps, or choose a step-count strategy such as llada`,
    );
  }
  if (s.blockLength !== undefined && o.cache === "block") {
    throw new IgnoredOptionError(
      "blockLength",
      `strategy ${strategy} decodes the model's own blocks (its block_size): drop the block length`,
    );
  }
  return s;
}

/**
 * Refuses a model that cannot run the decoder (`parameter`: the caller's name for the model;
 * `hint`: how the caller chooses the other decoder).
 */
export function checkModelFor(
  config: ModelConfig,
  decoder: Decoder,
  parameter: string,
  hint = "",
): void {
  if (decoderOf(config) === decoder) return;
  const why =
    decoder === "diffusion"
      ? "a causal (autoregressive) model cannot denoise a canvas: decode it with the autoregressive decoder"
      : `a diffusion model (${config.attention} attention) cannot decode left to right: the autoregressive decoder needs a causal model`;
  throw new WrongModelError(parameter, `${why}${hint}`);
}

/** The diffusion library's options of the settings. */
export function diffusionOptions(s: DecodeSettings): DiffusionOptions {
  const o: DiffusionOptions = { preset: s.strategy ?? "llada" };
  if (s.steps !== undefined) o.steps = s.steps;
  if (s.blockLength !== undefined) o.blockLength = s.blockLength;
  if (s.threshold !== undefined) o.threshold = s.threshold;
  if (s.temperature !== undefined) o.temperature = s.temperature;
  if (s.topK !== undefined) o.topK = s.topK;
  if (s.topP !== undefined) o.topP = s.topP;
  if (s.seed !== undefined) o.seed = s.seed;
  return o;
}

/** The AR decoder's options of the settings, generating `maxTokens` at most. */
export function arOptions(s: DecodeSettings, maxTokens: number): ArOptions {
  const o: ArOptions = { maxTokens };
  if (s.temperature !== undefined) o.temperature = s.temperature;
  if (s.topK !== undefined) o.topK = s.topK;
  if (s.topP !== undefined) o.topP = s.topP;
  if (s.seed !== undefined) o.seed = s.seed;
  return o;
}
