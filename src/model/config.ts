// The transformer family's configuration, read from a Hugging Face `config.json`
// (+ `generation_config.json`). Model quirks are data: every difference between LLaDA, Dream,
// DiffuCoder, Open-dCoder and our own models is a field here, never a branch on a model name.

import { detectFamily, type Family, type FamilyName } from "./families.js";

export type AttentionKind = "full" | "causal" | "block_causal";

export interface ModelConfig {
  /** The family the config was read as (src/model/families.ts), for provenance only. */
  modelType: string;
  vocabSize: number;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  intermediateSize: number;
  ropeTheta: number;
  /**
   * Linear RoPE scaling (`rope_scaling: {rope_type: "linear", factor}`, transformers'
   * _compute_linear_scaling_rope_parameters: inv_freq / factor); absent: 1.
   */
  ropeLinearFactor?: number;
  rmsNormEps: number;
  maxPositions: number;
  tieWordEmbeddings: boolean;
  /** Bias on the q, k and v projections (Qwen2 family). */
  qkvBias: boolean;
  /**
   * RMSNorm over each query and key head (weights [headDim]) after the q/k projections, before
   * the rotary embedding (Qwen3, SDAR); absent: none.
   */
  qkNorm?: boolean;
  /** full: bidirectional (diffusion); causal: the AR baseline; block_causal: block diffusion. */
  attention: AttentionKind;
  /** Block size of block-causal attention (BD3-LM); 0 otherwise. */
  blockSize: number;
  /** Dream family: the token at position i is predicted from the hidden state at i-1. */
  logitShift: boolean;
  maskTokenId: number | null;
  padTokenId: number | null;
  bosTokenId: number | null;
  eosTokenId: number | null;
  /** A token that ends a turn besides EOS (LLaDA's <|eot_id|>, Dream's <|im_end|>); absent: none. */
  eotTokenId?: number | null;
}

export class ConfigError extends Error {
  override name = "ConfigError";
  constructor(
    readonly file: string,
    readonly field: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${file}: ${field}: ${message}`, options);
  }
}

/** Keys found in HF config files that do not change the forward pass. */
const ignoredKeys = new Set([
  "architectures",
  "auto_map",
  "torch_dtype",
  "transformers_version",
  "use_cache",
  "initializer_range",
  "attention_dropout",
  "pretraining_tp",
  "model_type",
  "_name_or_path",
  "bos_token_id",
  "eos_token_id",
  "pad_token_id",
  "mask_token_id",
  "eot_token_id",
  "dtype",
  // transformers' Qwen2 reads these two only under use_sliding_window, checked below
  "sliding_window",
  "max_window_layers",
]);

/**
 * Keys that change the forward pass unless they hold the one value this engine implements: any
 * other value is a ConfigError, never ignored.
 */
const inertValues: Record<string, (v: unknown) => boolean> = {
  rope_scaling: (v) => v === null || linearRopeFactor(v) !== null,
  use_sliding_window: (v) => v === false,
  mlp_bias: (v) => v === false,
  layer_types: (v) => Array.isArray(v) && v.every((t) => t === "full_attention"),
};

/**
 * The factor of a linear `rope_scaling` ({rope_type, or its older spelling type, "linear" with
 * a factor > 0; or "default" alone: 1}, nothing else); null for any other value.
 */
function linearRopeFactor(v: unknown): number | null {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return null;
  const { rope_type, type, factor, ...rest } = v as Record<string, unknown>;
  const kind = rope_type ?? type;
  if (
    Object.keys(rest).length > 0 ||
    (type !== undefined && rope_type !== undefined && type !== rope_type)
  ) {
    return null;
  }
  if (kind === "default" && factor === undefined) return 1;
  if (kind !== "linear" || typeof factor !== "number" || !(factor > 0 && factor < Infinity)) {
    return null;
  }
  return factor;
}

const knownKeys = new Set([
  "vocab_size",
  "hidden_size",
  "num_hidden_layers",
  "num_attention_heads",
  "num_key_value_heads",
  "head_dim",
  "intermediate_size",
  "rope_theta",
  "rms_norm_eps",
  "max_position_embeddings",
  "tie_word_embeddings",
  "attention_bias",
  "hidden_act",
  "attention_mask",
  "block_size",
  "logit_shift",
  "qk_norm",
]);

const supportedActivations = ["silu"];

/**
 * Parses a config.json object (and optionally generation_config.json) into a ModelConfig. The
 * config may be in any supported family's keys (src/model/families.ts); `family` picks one by
 * name where the config cannot tell (Open-dCoder). Throws ConfigError naming the file and field
 * on a missing field, a wrong type, an unknown key or model type, or an unsupported value.
 */
export function parseModelConfig(
  raw: unknown,
  file = "config.json",
  generation: unknown = {},
  generationFile = "generation_config.json",
  family?: FamilyName,
): ModelConfig {
  return parseFamilyConfig(raw, file, generation, generationFile, family).config;
}

/** parseModelConfig, also returning the family the config was read as. */
export function parseFamilyConfig(
  raw: unknown,
  file = "config.json",
  generation: unknown = {},
  generationFile = "generation_config.json",
  asked?: FamilyName,
): { config: ModelConfig; family: Family } {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new ConfigError(file, "(root)", "expected a JSON object");
  }
  const family = detectFamily(raw as Record<string, unknown>, file, asked);
  const c = family.toCanonical(raw as Record<string, unknown>, file);
  const modelType = family.name;
  for (const [key, value] of Object.entries(c)) {
    const inert = inertValues[key];
    if (inert !== undefined) {
      if (!inert(value)) {
        throw new ConfigError(
          file,
          key,
          `${JSON.stringify(value)} changes the forward pass and is not implemented`,
        );
      }
    } else if (!knownKeys.has(key) && !ignoredKeys.has(key)) {
      throw new ConfigError(file, key, "unknown config key");
    }
  }
  const gen =
    typeof generation === "object" && generation !== null
      ? (generation as Record<string, unknown>)
      : {};

  const int = (key: string, fallback?: number): number => {
    const v = c[key] ?? fallback;
    if (v === undefined) throw new ConfigError(file, key, "missing required field");
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0) {
      throw new ConfigError(file, key, `expected a non-negative integer, got ${JSON.stringify(v)}`);
    }
    return v;
  };
  const num = (key: string, fallback?: number): number => {
    const v = c[key] ?? fallback;
    if (v === undefined) throw new ConfigError(file, key, "missing required field");
    if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) {
      throw new ConfigError(file, key, `expected a positive number, got ${JSON.stringify(v)}`);
    }
    return v;
  };
  const bool = (key: string, fallback: boolean): boolean => {
    const v = c[key] ?? fallback;
    if (typeof v !== "boolean") {
      throw new ConfigError(file, key, `expected true or false, got ${JSON.stringify(v)}`);
    }
    return v;
  };
  /** A token id from generation_config.json, else config.json; lists take their first entry. */
  const tokenId = (key: string): number | null => {
    const fromGen = gen[key] !== undefined;
    let v = fromGen ? gen[key] : c[key];
    if (Array.isArray(v)) v = v[0];
    if (v === undefined || v === null) return null;
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0) {
      throw new ConfigError(
        fromGen ? generationFile : file,
        key,
        `expected a token id, got ${JSON.stringify(v)}`,
      );
    }
    return v;
  };

  const act = c.hidden_act ?? "silu";
  if (typeof act !== "string" || !supportedActivations.includes(act)) {
    throw new ConfigError(
      file,
      "hidden_act",
      `unsupported activation ${JSON.stringify(act)} (supported: ${supportedActivations.join(", ")})`,
    );
  }
  const attention = c.attention_mask ?? "full";
  if (attention !== "full" && attention !== "causal" && attention !== "block_causal") {
    throw new ConfigError(
      file,
      "attention_mask",
      `expected "full", "causal" or "block_causal", got ${JSON.stringify(attention)}`,
    );
  }

  const hiddenSize = int("hidden_size");
  const numHeads = int("num_attention_heads");
  const numKvHeads = int("num_key_value_heads", numHeads);
  if (numHeads === 0 || hiddenSize === 0) {
    throw new ConfigError(file, "num_attention_heads", "heads and hidden size must be positive");
  }
  const headDim = int("head_dim", Math.floor(hiddenSize / numHeads));
  if (c.head_dim === undefined && hiddenSize % numHeads !== 0) {
    throw new ConfigError(
      file,
      "hidden_size",
      `${hiddenSize} is not divisible by ${numHeads} heads`,
    );
  }
  if (numKvHeads === 0 || numHeads % numKvHeads !== 0) {
    throw new ConfigError(
      file,
      "num_key_value_heads",
      `${numKvHeads} does not divide num_attention_heads ${numHeads}`,
    );
  }
  if (headDim % 2 !== 0)
    throw new ConfigError(
      file,
      "head_dim",
      `rotary embeddings need an even head_dim, got ${headDim}`,
    );
  const blockSize = int("block_size", 0);
  if (attention === "block_causal" && blockSize < 1) {
    throw new ConfigError(file, "block_size", "block_causal attention needs block_size >= 1");
  }
  const vocabSize = int("vocab_size");
  const config: ModelConfig = {
    modelType,
    vocabSize,
    hiddenSize,
    numLayers: int("num_hidden_layers"),
    numHeads,
    numKvHeads,
    headDim,
    intermediateSize: int("intermediate_size"),
    ropeTheta: num("rope_theta", 10000),
    rmsNormEps: num("rms_norm_eps", 1e-6),
    maxPositions: int("max_position_embeddings"),
    tieWordEmbeddings: bool("tie_word_embeddings", false),
    qkvBias: bool("attention_bias", false),
    attention,
    blockSize,
    logitShift: bool("logit_shift", false),
    maskTokenId: tokenId("mask_token_id"),
    padTokenId: tokenId("pad_token_id"),
    bosTokenId: tokenId("bos_token_id"),
    eosTokenId: tokenId("eos_token_id"),
  };
  const eot = tokenId("eot_token_id");
  if (eot !== null) config.eotTokenId = eot;
  if (bool("qk_norm", false)) config.qkNorm = true;
  const ropeFactor = c.rope_scaling == null ? 1 : linearRopeFactor(c.rope_scaling)!;
  if (ropeFactor !== 1) config.ropeLinearFactor = ropeFactor;
  checkTokenIds(config, file);
  return { config, family };
}

const tokenFields = {
  maskTokenId: "mask_token_id",
  padTokenId: "pad_token_id",
  bosTokenId: "bos_token_id",
  eosTokenId: "eos_token_id",
  eotTokenId: "eot_token_id",
} as const;

/** Throws ConfigError naming the field of a special-token id outside the vocabulary. */
export function checkTokenIds(config: ModelConfig, file: string): void {
  for (const [key, field] of Object.entries(tokenFields) as [keyof typeof tokenFields, string][]) {
    const id = config[key];
    if (id !== null && id !== undefined && id >= config.vocabSize) {
      throw new ConfigError(
        file,
        field,
        `token id ${id} is outside the vocabulary (vocab_size ${config.vocabSize})`,
      );
    }
  }
}

/**
 * Writes a ModelConfig back as a config.json object in the project's own format (family
 * `unmask`, whatever family it was read from: the weights are saved under our names too).
 */
export function configToJson(config: ModelConfig): Record<string, unknown> {
  return {
    model_type: "unmask",
    vocab_size: config.vocabSize,
    hidden_size: config.hiddenSize,
    num_hidden_layers: config.numLayers,
    num_attention_heads: config.numHeads,
    num_key_value_heads: config.numKvHeads,
    head_dim: config.headDim,
    intermediate_size: config.intermediateSize,
    rope_theta: config.ropeTheta,
    ...(config.ropeLinearFactor === undefined
      ? {}
      : { rope_scaling: { rope_type: "linear", factor: config.ropeLinearFactor } }),
    rms_norm_eps: config.rmsNormEps,
    max_position_embeddings: config.maxPositions,
    tie_word_embeddings: config.tieWordEmbeddings,
    attention_bias: config.qkvBias,
    hidden_act: "silu",
    attention_mask: config.attention,
    block_size: config.blockSize,
    logit_shift: config.logitShift,
    ...(config.qkNorm === true ? { qk_norm: true } : {}),
    mask_token_id: config.maskTokenId,
    pad_token_id: config.padTokenId,
    bos_token_id: config.bosTokenId,
    eos_token_id: config.eosTokenId,
    ...(config.eotTokenId == null ? {} : { eot_token_id: config.eotTokenId }),
  };
}

/** The ids that end a text: EOS and pad, distinct, those the config has and that are not the mask. */
export function endTokenIds(config: ModelConfig): number[] {
  return [...new Set([config.eosTokenId, config.eotTokenId, config.padTokenId])].filter(
    (t): t is number => t !== null && t !== undefined && t !== config.maskTokenId,
  );
}

/** Number of parameters, counting a tied head once. */
export function parameterCount(config: ModelConfig): number {
  return parameterShapes(config).reduce((n, p) => n + p.shape.reduce((a, b) => a * b, 1), 0);
}

/** Weights each token is multiplied by in one layer: q, k, v, o projections and the MLP. */
export function layerMatmulParameters(config: ModelConfig): number {
  const { hiddenSize: h, headDim: d, numHeads, numKvHeads, intermediateSize: m } = config;
  return h * d * (2 * numHeads + 2 * numKvHeads) + 3 * h * m;
}

export interface ParameterShape {
  name: string;
  shape: number[];
}

/**
 * The parameters of the family, by their Hugging Face (LLaMA/Qwen2) names, in a fixed order.
 * Linear weights are [out, in] as in PyTorch.
 */
export function parameterShapes(config: ModelConfig): ParameterShape[] {
  const {
    hiddenSize: h,
    headDim: d,
    numHeads,
    numKvHeads,
    intermediateSize: m,
    vocabSize: v,
  } = config;
  const out: ParameterShape[] = [{ name: "model.embed_tokens.weight", shape: [v, h] }];
  for (let i = 0; i < config.numLayers; i++) {
    const p = `model.layers.${i}.`;
    out.push({ name: `${p}input_layernorm.weight`, shape: [h] });
    out.push({ name: `${p}self_attn.q_proj.weight`, shape: [numHeads * d, h] });
    out.push({ name: `${p}self_attn.k_proj.weight`, shape: [numKvHeads * d, h] });
    out.push({ name: `${p}self_attn.v_proj.weight`, shape: [numKvHeads * d, h] });
    if (config.qkvBias) {
      out.push({ name: `${p}self_attn.q_proj.bias`, shape: [numHeads * d] });
      out.push({ name: `${p}self_attn.k_proj.bias`, shape: [numKvHeads * d] });
      out.push({ name: `${p}self_attn.v_proj.bias`, shape: [numKvHeads * d] });
    }
    if (config.qkNorm === true) {
      out.push({ name: `${p}self_attn.q_norm.weight`, shape: [d] });
      out.push({ name: `${p}self_attn.k_norm.weight`, shape: [d] });
    }
    out.push({ name: `${p}self_attn.o_proj.weight`, shape: [h, numHeads * d] });
    out.push({ name: `${p}post_attention_layernorm.weight`, shape: [h] });
    out.push({ name: `${p}mlp.gate_proj.weight`, shape: [m, h] });
    out.push({ name: `${p}mlp.up_proj.weight`, shape: [m, h] });
    out.push({ name: `${p}mlp.down_proj.weight`, shape: [h, m] });
  }
  out.push({ name: "model.norm.weight", shape: [h] });
  if (!config.tieWordEmbeddings) out.push({ name: "lm_head.weight", shape: [v, h] });
  return out;
}

/** Weights by parameter name, fp32, row-major in the shapes of parameterShapes. */
export type Weights = Map<string, Float32Array>;

/**
 * Weights read on demand, one tensor at a time (a checkpoint streamed into the engine, so that
 * they are never all held in JavaScript at once); same names, shapes and layout as Weights.
 */
export interface WeightReader {
  has(name: string): boolean;
  /** The tensor as a new fp32 array (read synchronously, when the graph is serialised). */
  read(name: string): Float32Array;
}
