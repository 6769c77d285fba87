// The options of the denoise loop: one flat object of enums and numbers (as llama.cpp's
// diffusion params), and the strategies of the literature as named presets of it. Validation is
// up front and names the parameter; an unknown name lists the valid ones.

import { DecodeOptionError } from "./errors.js";

/** How sure the model is of a masked position. */
export const confidenceKinds = ["probability", "margin", "entropy", "random"] as const;
/** Which masked positions a step reveals. */
export const selectionKinds = [
  "topk",
  "threshold",
  "factor",
  "entropy-bound",
  "sampled",
  "bernoulli",
] as const;
/** How many positions a step reveals (for `topk`, `sampled`; `bernoulli` takes its probability). */
export const scheduleKinds = ["linear", "timestep"] as const;
/** How a token is drawn at a position. */
export const samplerKinds = ["gumbel", "categorical"] as const;
/** Which K/V cache the loop keeps between steps. */
export const cacheKinds = ["none", "prefix", "dual", "block"] as const;
/** What the loop does about end tokens (EOS and pad). */
export const eosModes = ["keep", "suppress", "defer"] as const;

export type ConfidenceKind = (typeof confidenceKinds)[number];
export type SelectionKind = (typeof selectionKinds)[number];
export type ScheduleKind = (typeof scheduleKinds)[number];
export type SamplerKind = (typeof samplerKinds)[number];
export type CacheKind = (typeof cacheKinds)[number];
export type EosMode = (typeof eosModes)[number];

/** Selections that reveal as many as their rule allows, at least one, until the block is clean (no step count). */
export function runsUntilClean(selection: SelectionKind): boolean {
  return selection === "threshold" || selection === "factor" || selection === "entropy-bound";
}

export interface DiffusionOptions {
  /** A named strategy whose defaults the other options override; default "llada". */
  preset?: PresetName;
  /**
   * Forward passes for the whole canvas, split evenly over the blocks (the remainder to the first
   * blocks; exactly LLaDA's split when it divides). Default: the number of masked positions (one
   * token per step). Not used by `threshold`, `factor` and `entropy-bound` selection, which run
   * until the block is clean (at least one token per step).
   */
  steps?: number;
  /**
   * Semi-autoregressive blocks over the masked region, decoded left to right. Default: the whole
   * region as one block (the `block` cache takes the model's `blockSize`).
   */
  blockLength?: number;
  /** `linear`: LLaDA's get_num_transfer_tokens; `timestep`: Dream's linspace(1, eps) schedule. */
  schedule?: ScheduleKind;
  /**
   * `probability`: of the chosen token (LLaDA low_confidence, Dream maskgit_plus); `margin`:
   * top-1 − top-2 (Dream topk_margin); `entropy`: negative entropy (Dream entropy); `random`: a
   * uniform draw (LLaDA random remasking).
   */
  confidence?: ConfidenceKind;
  /**
   * `topk`: the k surest (k from the schedule); `threshold`: the surest and every other one at or
   * above `threshold` (Fast-dLLM); `factor`: Fast-dLLM's dynamic 1 − factor/(n+1) rule;
   * `entropy-bound`: EB-sampler's largest surest set whose entropies, less the largest, sum to
   * at most `gamma`;
   * `sampled`: k drawn from softmax(confidence / algTemperature) (Dream alg_temp); `bernoulli`:
   * each with probability 1 − s/t (Dream origin).
   */
  selection?: SelectionKind;
  /**
   * `gumbel`: LLaDA's float64 Gumbel-max on the raw logits, confidence from their softmax;
   * `categorical`: Dream's logits / T → top-p → top-k → softmax → draw, confidence from that.
   */
  sampler?: SamplerKind;
  /**
   * `none`: the whole canvas every step; `prefix`: Fast-dLLM prefix cache (refreshed per block);
   * `dual`: Fast-dLLM dual cache (prefix and suffix); `block`: block diffusion on a block_causal
   * model, an exact cache of the finished blocks (BD3-LM).
   */
  cache?: CacheKind;
  /** Sampling temperature, ≥ 0 (0: greedy). */
  temperature?: number;
  /** Keep the k most likely tokens (0: off). */
  topK?: number;
  /** Nucleus sampling mass in (0, 1] (1: off). */
  topP?: number;
  /** Dream's final timestep, in (0, 1). */
  eps?: number;
  /** Dream's alg_temp for `sampled` selection, > 0. */
  algTemperature?: number;
  /** Confidence bound of `threshold` selection, in (0, 1]. */
  threshold?: number;
  /** Fast-dLLM's factor, > 0. */
  factor?: number;
  /** EB-sampler's entropy budget γ (nats), ≥ 0; 0 reveals one token per step. */
  gamma?: number;
  /** Classifier-free guidance scale (LLaDA cfg_scale), ≥ 0; 0: off. */
  cfgScale?: number;
  /** Self-correction: re-mask a revealed token whose probability fell below this, in [0, 1); 0: off. */
  remaskBelow?: number;
  /** Self-correction: re-masks allowed over the run. */
  remaskBudget?: number;
  /** Self-correction: re-masks allowed per step. */
  remaskPerStep?: number;
  /**
   * `keep`: EOS like any token; `suppress`: never draw EOS or pad (LLaDA logits_eos_inf);
   * `defer`: reveal EOS and pad last (LLaDA confidence_eos_eot_inf).
   */
  eos?: EosMode;
  /** Open-ended canvases: stop once an EOS is revealed with no mask before it. */
  stopAtEos?: boolean;
  /** Seed of every random draw. */
  seed?: number;
}

/** Options with every default filled in; `steps` and `blockLength` stay open until a canvas is known. */
export interface ResolvedOptions
  extends Required<Omit<DiffusionOptions, "steps" | "blockLength" | "preset">> {
  preset: PresetName;
  steps?: number;
  blockLength?: number;
  /** Whether blockLength came from the caller (then it must divide an open-ended region). */
  blockLengthGiven: boolean;
}

/**
 * The defaults under every preset: LLaDA's (linear schedule, low-confidence top-k, float64
 * Gumbel-max at temperature 0, no guidance), Dream's eps 1e-3, Fast-dLLM's threshold 0.9 and
 * factor 1, EB-sampler's γ 0.1, self-correction off, EOS kept but ending open-ended runs, seed 0.
 */
const base: Required<Omit<DiffusionOptions, "steps" | "blockLength" | "preset">> = {
  schedule: "linear",
  confidence: "probability",
  selection: "topk",
  sampler: "gumbel",
  cache: "none",
  temperature: 0,
  topK: 0,
  topP: 1,
  eps: 1e-3,
  algTemperature: 1,
  threshold: 0.9,
  factor: 1,
  gamma: 0.1,
  cfgScale: 0,
  remaskBelow: 0,
  remaskBudget: 0,
  remaskPerStep: 1,
  eos: "keep",
  stopAtEos: true,
  seed: 0,
};

interface Preset {
  description: string;
  options: Omit<DiffusionOptions, "preset">;
}

/** Fast-dLLM's parallel decoding (arXiv:2505.22618), shared by its two cache variants. */
const fastDllm = {
  confidence: "probability",
  selection: "threshold",
  threshold: 0.9,
  sampler: "gumbel",
  blockLength: 32,
} as const;

/**
 * The strategies of the literature as presets. Every preset defaults to one token per step
 * (`steps` = masked count) and greedy decoding unless its reference says otherwise.
 */
export const presets = {
  llada: {
    description:
      "LLaDA generate.py: low_confidence remasking, linear transfer counts per block, " +
      "float64 Gumbel-max (temperature 0), cfg_scale 0, one block",
    options: {
      schedule: "linear",
      confidence: "probability",
      selection: "topk",
      sampler: "gumbel",
    },
  },
  "llada-random": {
    description: "LLaDA generate.py with remasking='random'",
    options: { schedule: "linear", confidence: "random", selection: "topk", sampler: "gumbel" },
  },
  dream: {
    description:
      "Dream's README example: alg='entropy', temperature 0.2, top_p 0.95, eps 1e-3, timestep schedule",
    options: {
      schedule: "timestep",
      confidence: "entropy",
      selection: "topk",
      sampler: "categorical",
      temperature: 0.2,
      topP: 0.95,
    },
  },
  "dream-origin": {
    description: "Dream alg='origin': each mask revealed with probability 1 − s/t",
    options: { schedule: "timestep", selection: "bernoulli", sampler: "categorical" },
  },
  "dream-maskgit-plus": {
    description: "Dream alg='maskgit_plus': top-1 probability",
    options: {
      schedule: "timestep",
      confidence: "probability",
      selection: "topk",
      sampler: "categorical",
    },
  },
  "dream-topk-margin": {
    description: "Dream alg='topk_margin': top-1 − top-2 probability",
    options: {
      schedule: "timestep",
      confidence: "margin",
      selection: "topk",
      sampler: "categorical",
    },
  },
  "dream-entropy": {
    description: "Dream alg='entropy': negative entropy",
    options: {
      schedule: "timestep",
      confidence: "entropy",
      selection: "topk",
      sampler: "categorical",
    },
  },
  "fast-dllm": {
    description:
      "Fast-dLLM: confidence-threshold parallel decoding (threshold 0.9), blocks of 32, prefix cache",
    options: { ...fastDllm, cache: "prefix" },
  },
  "fast-dllm-dual": {
    description: "Fast-dLLM with the dual cache (prefix and suffix), threshold 0.9, blocks of 32",
    options: { ...fastDllm, cache: "dual" },
  },
  "fast-dllm-small": {
    description:
      "Fast-dLLM's threshold rule (0.9) on small blocks of 8 with the dual cache: a block's " +
      "canvas is short, so a step costs little more than an AR token",
    options: { ...fastDllm, blockLength: 8, cache: "dual" },
  },
  "fast-dllm-factor": {
    description:
      "Fast-dLLM's factor rule (get_transfer_index_dynamic, factor 1: reveal the n surest " +
      "while (n + 1)·(1 − c_n) ≤ factor) on blocks of 8 with the dual cache",
    options: { ...fastDllm, selection: "factor", factor: 1, blockLength: 8, cache: "dual" },
  },
  "eb-sampler": {
    description:
      "EB-sampler (Ben-Hamu et al. 2025, arXiv:2505.24857): masked positions ranked by " +
      "confidence, the largest prefix whose entropies less the largest sum to ≤ gamma (0.1) " +
      "revealed per step; blocks of 8 with the dual cache",
    options: {
      confidence: "probability",
      selection: "entropy-bound",
      gamma: 0.1,
      sampler: "gumbel",
      blockLength: 8,
      cache: "dual",
    },
  },
  "self-correct": {
    description:
      "LLaDA low-confidence decoding with ReMDM-style self-correction: a revealed token whose " +
      "probability falls below 0.25 is re-masked, at most 2 per step and 16 per run",
    options: {
      schedule: "linear",
      confidence: "probability",
      selection: "topk",
      sampler: "gumbel",
      remaskBelow: 0.25,
      remaskPerStep: 2,
      remaskBudget: 16,
    },
  },
  "block-diffusion": {
    description:
      "BD3-LM block diffusion on a block_causal model: blocks of the model's block size, " +
      "decoded left to right with an exact K/V cache, low-confidence inside a block",
    options: {
      schedule: "linear",
      confidence: "probability",
      selection: "topk",
      sampler: "categorical",
      cache: "block",
    },
  },
} satisfies Record<string, Preset>;

export type PresetName = keyof typeof presets;
export const presetNames = Object.keys(presets) as PresetName[];

const optionNames = [
  "preset",
  "steps",
  "blockLength",
  ...Object.keys(base),
] as (keyof DiffusionOptions)[];

function oneOf<T extends string>(parameter: string, value: unknown, valid: readonly T[]): T {
  if (typeof value !== "string" || !(valid as readonly string[]).includes(value)) {
    throw new DecodeOptionError(
      parameter,
      `unknown value ${JSON.stringify(value)} (valid: ${valid.join(", ")})`,
    );
  }
  return value as T;
}

/** An integer in [min, max]. */
export function checkInteger(
  parameter: string,
  value: unknown,
  min: number,
  max = Infinity,
): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    const range = max === Infinity ? `≥ ${min}` : `in [${min}, ${max}]`;
    throw new DecodeOptionError(
      parameter,
      `expected an integer ${range}, got ${JSON.stringify(value)}`,
    );
  }
  return value;
}

/** A number in the interval given, written like "(0, 1]". */
function checkNumber(
  parameter: string,
  value: unknown,
  lo: number,
  hi: number,
  interval: string,
): number {
  const loOpen = interval.startsWith("(");
  const hiOpen = interval.endsWith(")");
  if (
    typeof value !== "number" ||
    Number.isNaN(value) ||
    (loOpen ? value <= lo : value < lo) ||
    (hiOpen ? value >= hi : value > hi)
  ) {
    throw new DecodeOptionError(
      parameter,
      `expected a number in ${interval}, got ${JSON.stringify(value)}`,
    );
  }
  return value;
}

/**
 * Merges a preset's defaults with the caller's options and validates every value, throwing
 * DecodeOptionError naming the parameter. What depends on the canvas and the model (length,
 * blocks, caches) is checked when the loop starts.
 */
export function resolveOptions(options: DiffusionOptions = {}): ResolvedOptions {
  if (typeof options !== "object" || options === null) {
    throw new DecodeOptionError("options", "expected an object");
  }
  for (const key of Object.keys(options)) {
    if (!optionNames.includes(key as keyof DiffusionOptions)) {
      throw new DecodeOptionError(key, `unknown option (valid: ${optionNames.join(", ")})`);
    }
  }
  const preset = oneOf("preset", options.preset ?? "llada", presetNames);
  const given = Object.fromEntries(
    Object.entries(options).filter(([, v]) => v !== undefined),
  ) as DiffusionOptions;
  const o = { ...base, ...presets[preset].options, ...given };
  const resolved: ResolvedOptions = {
    preset,
    steps: o.steps === undefined ? undefined : checkInteger("steps", o.steps, 1),
    blockLength:
      o.blockLength === undefined ? undefined : checkInteger("blockLength", o.blockLength, 1),
    blockLengthGiven: given.blockLength !== undefined,
    schedule: oneOf("schedule", o.schedule, scheduleKinds),
    confidence: oneOf("confidence", o.confidence, confidenceKinds),
    selection: oneOf("selection", o.selection, selectionKinds),
    sampler: oneOf("sampler", o.sampler, samplerKinds),
    cache: oneOf("cache", o.cache, cacheKinds),
    temperature: checkNumber("temperature", o.temperature, 0, Infinity, "[0, ∞)"),
    topK: checkInteger("topK", o.topK, 0),
    topP: checkNumber("topP", o.topP, 0, 1, "(0, 1]"),
    eps: checkNumber("eps", o.eps, 0, 1, "(0, 1)"),
    algTemperature: checkNumber("algTemperature", o.algTemperature, 0, Infinity, "(0, ∞)"),
    threshold: checkNumber("threshold", o.threshold, 0, 1, "(0, 1]"),
    factor: checkNumber("factor", o.factor, 0, Infinity, "(0, ∞)"),
    gamma: checkNumber("gamma", o.gamma, 0, Infinity, "[0, ∞)"),
    cfgScale: checkNumber("cfgScale", o.cfgScale, 0, Infinity, "[0, ∞)"),
    remaskBelow: checkNumber("remaskBelow", o.remaskBelow, 0, 1, "[0, 1)"),
    remaskBudget: checkInteger("remaskBudget", o.remaskBudget, 0),
    remaskPerStep: checkInteger("remaskPerStep", o.remaskPerStep, 1),
    eos: oneOf("eos", o.eos, eosModes),
    stopAtEos: checkBoolean("stopAtEos", o.stopAtEos),
    seed: checkInteger("seed", o.seed, Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER),
  };
  if (
    resolved.confidence !== "probability" &&
    resolved.confidence !== "margin" &&
    (resolved.selection === "threshold" || resolved.selection === "factor")
  ) {
    throw new DecodeOptionError(
      "confidence",
      `${resolved.selection} selection compares a probability with a bound: use "probability" or "margin", not ${JSON.stringify(resolved.confidence)}`,
    );
  }
  return resolved;
}

function checkBoolean(parameter: string, value: unknown): boolean {
  if (typeof value !== "boolean") {
    throw new DecodeOptionError(parameter, `expected true or false, got ${JSON.stringify(value)}`);
  }
  return value;
}
