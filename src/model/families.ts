// The model families as data: how each published checkpoint spells its config keys, names its
// tensors and picks its special tokens, translated into the project's own config keys (the ones
// parseModelConfig reads, which our own checkpoints use: the `unmask` family) and parameter
// names (parameterShapes, the LLaMA/Qwen2 names). No forward-pass code branches on a family: a
// family only decides the ModelConfig fields (attention kind, logit shift, biases, token ids) and
// the tensor names. Sources, looked up rather than guessed:
//   LLaDA    ML-GSAI/LLaDA configuration_llada.py / modeling_llada.py (as vendored in
//            QuentinFitteRey/LLada-Reasoning modeling_llada.py): LLaDAModelLM wraps LLaDAModel
//            as `model`, whose ModuleDict `transformer` holds wte, blocks.N, ln_f and (without
//            weight_tying) ff_out; LLaDALlamaBlock computes ff_out(act(ff_proj(x)) * up_proj(x))
//            and is never causal. Config of GSAI-ML/LLaDA-8B-Instruct: model_type "llada",
//            d_model/n_layers/n_heads/n_kv_heads/mlp_hidden_size/max_sequence_length,
//            mask_token_id 126336, eos_token_id = pad_token_id = 126081 (<|endoftext|>); its
//            generate.py also ends a turn on <|eot_id|> (126348).
//   Dream    Dream-org/Dream-v0-Instruct-7B configuration_dream.py (model_type "Dream",
//            mask_token_id 151666, pad_token_id 151643, rope_scaling, use_sliding_window) and
//            modeling_dream.py (Qwen2 layers: q/k/v with bias, full attention); its
//            generation_utils shifts logits: logits = cat([logits[:, :1], logits[:, :-1]]).
//            Dream-Coder-v0-Instruct-7B and apple/DiffuCoder-7B-Instruct ship the same config
//            class and modeling file (DreamModel); DiffuCoder's tokenizer pads with <|dlm_pad|>.
//   Open-dCoder  pengzhangzhi/Open-dLLM veomni/models/transformers/qwen2: a Qwen2ForCausalLM
//            (model_type "qwen2") whose generation_utils.py runs it with is_causal=False and the
//            same logit shift; the mask token is the tokenizer's `mask_token`. Its config.json
//            cannot be told from an AR Qwen2 one, so this family is chosen by name, never guessed.
//   Fast-dLLM v2 (arXiv 2509.26328) Efficient-Large-Model/Fast_dLLM_v2_7B and _1.5B on the Hub:
//            config.json (model_type "Fast_dLLM_Qwen", architectures
//            ["Fast_dLLM_QwenForCausalLM"], bd_size 32, the Qwen2 keys, a training-only
//            "conplemenrary_mask" flag, layer_types all "full_attention") and modeling.py (read as
//            vendored in Satgoy152/DualDiffusion FastDLLM_inferencing/Fast_dLLM_v2_7B/modeling.py):
//            Qwen2 layers with q/k/v bias hard-coded True and o_proj bias False whatever the
//            config says; at inference (eval_block_diff_mask) query i sees key j iff
//            ⌊j / b⌋ ≤ ⌊i / b⌋ by absolute position, bidirectional inside a block, b being
//            generate()'s block_size (default 32: the bd_size the model was trained with);
//            generate() shifts logits (cat([logits[:, :1], logits[:, :-1]])), uses mask_id 151665
//            (the tokenizer's "|<MASK>|", which config.json does not name), stop_token 151645
//            (<|im_end|>), block_size 32, small_block_size 8, threshold 0.9 (NVlabs/Fast-dLLM
//            v2/run_chatbot.py).
//   SDAR (arXiv 2510.06303) JetAstra/SDAR training/model/SDAR-4B-Chat and SDAR-8B-Chat:
//            config.json (model_type "sdar", SDARForCausalLM, block_size 4, mask_token_id 151669,
//            head_dim, training switches such as fuse_cross_entropy and attn_implementation),
//            modeling_sdar.py (Qwen3 layers: q_norm / k_norm, RMSNorm over head_dim before RoPE;
//            attention_bias on q, k, v and o_proj alike; logits unshifted) and generate.py
//            (block_diffusion_generate: the mask is tril over blocks of absolute positions from 0,
//            bidirectional inside a block; the mask token is the tokenizer's mask_token <|MASK|>
//            when --mask_id is not given; block_length 4, denoising_steps 4, low_confidence_dynamic
//            with threshold 0.85; stop at generation_config.json's eos_token_id).
//   Qwen3 as an AR baseline: transformers' Qwen3Attention (q_norm / k_norm = Qwen3RMSNorm over
//            head_dim, applied before RoPE; attention_bias on q, k, v and o_proj alike), the layer
//            SDAR's modeling_sdar.py copies, with the same config keys.
//   Qwen2 / Qwen2.5(-Coder) and LLaMA as AR baselines: transformers' Qwen2Config/LlamaConfig
//            (Qwen2 q/k/v projections always carry a bias; LLaMA's attention_bias also adds one
//            to o_proj, which this engine does not have).

import { ConfigError } from "./config.js";

export type FamilyName =
  | "unmask"
  | "llada"
  | "dream"
  | "open-dcoder"
  | "fast-dllm-v2"
  | "sdar"
  | "qwen3"
  | "qwen2"
  | "llama";

export interface Family {
  name: FamilyName;
  /** config.json `model_type` values that select the family (none: chosen by name only). */
  modelTypes: readonly string[];
  /** config.json `architectures` entries the family accepts. */
  architectures: readonly string[];
  /** config.json (family keys) → the project's own keys, validated; throws ConfigError. */
  toCanonical(raw: Readonly<Record<string, unknown>>, file: string): Record<string, unknown>;
  /** The checkpoint's tensor name of one of our parameters (parameterShapes names). */
  tensorName(name: string): string;
  /** Spellings of tokens that end a turn besides EOS, looked up in the tokenizer. */
  endOfTurn: readonly string[];
  /**
   * Where config.json names no mask token, it comes from the tokenizer: the first of
   * `maskSpellings` in the vocabulary, else the tokenizer's mask (tokenizer_config.json
   * `mask_token`, else the usual spellings).
   */
  maskFromTokenizer: boolean;
  /** The family's own spellings of its mask token, tried before the usual ones. */
  maskSpellings?: readonly string[];
}

const identity = (name: string) => name;

/** HF keys that do not change the forward pass and that every HF family may carry. */
const hfBookkeeping = [
  "architectures",
  "auto_map",
  "model_type",
  "torch_dtype",
  "dtype",
  "transformers_version",
  "use_cache",
  "initializer_range",
  "attention_dropout",
  "_name_or_path",
  "pretraining_tp",
];

/** Copies `raw` without the bookkeeping keys, then applies the family's fixed values. */
function hfCanonical(
  raw: Readonly<Record<string, unknown>>,
  fixed: Record<string, unknown>,
  file: string,
  forbidden: readonly string[] = [],
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(raw)) {
    if (hfBookkeeping.includes(key)) continue;
    if (forbidden.includes(key)) {
      throw new ConfigError(file, key, `not a key of this family's config (${key} is ours)`);
    }
    out[key] = value;
  }
  return { ...out, ...fixed };
}

/** Our keys that a published family's config.json may not set: the family decides them. */
const familyDecided = ["attention_mask", "block_size", "logit_shift", "qk_norm"];

const qwen2Layout = (raw: Readonly<Record<string, unknown>>, file: string) => {
  if (raw.attention_bias !== undefined) {
    // transformers' Qwen2Attention has q/k/v biases whatever the config says
    throw new ConfigError(file, "attention_bias", "Qwen2 layers always have q/k/v biases");
  }
  return raw;
};

const llama: Family = {
  name: "llama",
  modelTypes: ["llama"],
  architectures: ["LlamaForCausalLM"],
  toCanonical(raw, file) {
    if (raw.attention_bias === true) {
      throw new ConfigError(
        file,
        "attention_bias",
        "LLaMA's attention_bias also puts a bias on o_proj, which is not implemented",
      );
    }
    return hfCanonical(raw, { attention_mask: "causal" }, file, familyDecided);
  },
  tensorName: identity,
  endOfTurn: ["<|eot_id|>"],
  maskFromTokenizer: false,
};

const qwen2: Family = {
  name: "qwen2",
  modelTypes: ["qwen2"],
  architectures: ["Qwen2ForCausalLM"],
  toCanonical(raw, file) {
    return hfCanonical(
      qwen2Layout(raw, file),
      { attention_bias: true, attention_mask: "causal" },
      file,
      familyDecided,
    );
  },
  tensorName: identity,
  endOfTurn: ["<|im_end|>"],
  maskFromTokenizer: false,
};

const openDCoder: Family = {
  name: "open-dcoder",
  modelTypes: [],
  architectures: ["Qwen2ForCausalLM"],
  toCanonical(raw, file) {
    if (raw.model_type !== undefined && raw.model_type !== "qwen2") {
      throw new ConfigError(
        file,
        "model_type",
        `Open-dCoder is a Qwen2 checkpoint, this config says ${JSON.stringify(raw.model_type)}`,
      );
    }
    return hfCanonical(
      qwen2Layout(raw, file),
      { attention_bias: true, attention_mask: "full", logit_shift: true },
      file,
      familyDecided,
    );
  },
  tensorName: identity,
  endOfTurn: ["<|im_end|>"],
  maskFromTokenizer: true,
};

const dream: Family = {
  name: "dream",
  modelTypes: ["Dream"],
  architectures: ["DreamModel"],
  toCanonical(raw, file) {
    return hfCanonical(
      qwen2Layout(raw, file),
      { attention_bias: true, attention_mask: "full", logit_shift: true },
      file,
      familyDecided,
    );
  },
  tensorName: identity,
  endOfTurn: ["<|im_end|>"],
  maskFromTokenizer: false,
};

/** A positive integer block size from `key` of a block-diffusion config; throws ConfigError. */
function blockSizeOf(raw: Readonly<Record<string, unknown>>, key: string, file: string): number {
  const v = raw[key];
  if (typeof v !== "number" || !Number.isInteger(v) || v < 1) {
    throw new ConfigError(
      file,
      key,
      `expected the block size, a positive integer, got ${JSON.stringify(v)}`,
    );
  }
  return v;
}

const fastDllmV2: Family = {
  name: "fast-dllm-v2",
  modelTypes: ["Fast_dLLM_Qwen"],
  architectures: ["Fast_dLLM_QwenForCausalLM"],
  toCanonical(raw, file) {
    const { bd_size: _, conplemenrary_mask: __, ...rest } = raw; // the flag only shapes training
    return hfCanonical(
      qwen2Layout(rest, file),
      {
        attention_bias: true,
        attention_mask: "block_causal",
        block_size: blockSizeOf(raw, "bd_size", file),
        logit_shift: true,
      },
      file,
      familyDecided,
    );
  },
  tensorName: identity,
  endOfTurn: ["<|im_end|>"],
  maskFromTokenizer: true,
  maskSpellings: ["|<MASK>|"],
};

/** SDAR config keys that only steer training or kernels (modeling_sdar.py reads them there). */
const sdarTraining = [
  "attn_implementation", // flex attention in training; inference runs SDPA with the block mask
  "debug",
  "ep_size",
  "fuse_cross_entropy",
  "micro_forward",
  "skip_checkpoint",
  "use_deepep",
];

/** Qwen3 layers (SDAR's too): attention_bias would also put a bias on o_proj. */
const qwen3Layout = (raw: Readonly<Record<string, unknown>>, file: string) => {
  if (raw.attention_bias === true) {
    throw new ConfigError(
      file,
      "attention_bias",
      "Qwen3's attention_bias also puts a bias on o_proj, which is not implemented",
    );
  }
  return raw;
};

const qwen3: Family = {
  name: "qwen3",
  modelTypes: ["qwen3"],
  architectures: ["Qwen3ForCausalLM"],
  toCanonical(raw, file) {
    return hfCanonical(
      qwen3Layout(raw, file),
      { attention_mask: "causal", qk_norm: true },
      file,
      familyDecided,
    );
  },
  tensorName: identity,
  endOfTurn: ["<|im_end|>"],
  maskFromTokenizer: false,
};

const sdar: Family = {
  name: "sdar",
  modelTypes: ["sdar"],
  architectures: ["SDARForCausalLM"],
  toCanonical(raw, file) {
    qwen3Layout(raw, file);
    const rest = Object.fromEntries(
      Object.entries(raw).filter(([k]) => k !== "block_size" && !sdarTraining.includes(k)),
    );
    return hfCanonical(
      rest,
      {
        attention_mask: "block_causal",
        block_size: blockSizeOf(raw, "block_size", file),
        qk_norm: true,
      },
      file,
      familyDecided,
    );
  },
  tensorName: identity,
  endOfTurn: ["<|im_end|>"],
  maskFromTokenizer: true,
};

/** LLaDA config keys that do not change the forward pass (dropouts, init, precision, flash). */
const lladaIgnored = new Set([
  ...hfBookkeeping,
  "embedding_dropout",
  "residual_dropout",
  "attention_dropout",
  "flash_attention",
  "init_device",
  "init_fn",
  "init_std",
  "init_cutoff_factor",
  "precision",
  "rope_full_precision",
  "alibi_bias_max",
  "mlp_ratio", // only used when mlp_hidden_size is null (handled below)
  "multi_query_attention", // only used when n_kv_heads is null (handled below)
]);

/** LLaDA options that must have the value LLaDA-8B ships with; any other changes the model. */
const lladaRequired: Record<string, unknown[]> = {
  activation_type: ["silu"],
  block_type: ["llama"],
  layer_norm_type: ["rms"],
  layer_norm_with_affine: [true],
  attention_layer_norm: [false],
  attention_layer_norm_with_affine: [true, false], // moot without attention_layer_norm
  bias_for_layer_norm: [false, null],
  include_bias: [false],
  alibi: [false],
  rope: [true],
  scale_logits: [false],
  input_emb_norm: [false],
  block_group_size: [1],
  clip_qkv: [null],
  rope_scaling: [null],
};

/** LLaDA key → our key, renamed as they are. */
const lladaRenamed: Record<string, string> = {
  d_model: "hidden_size",
  n_layers: "num_hidden_layers",
  n_heads: "num_attention_heads",
  max_sequence_length: "max_position_embeddings",
  rope_theta: "rope_theta",
  rms_norm_eps: "rms_norm_eps",
  vocab_size: "vocab_size",
  weight_tying: "tie_word_embeddings",
  include_qkv_bias: "attention_bias",
  mask_token_id: "mask_token_id",
  eos_token_id: "eos_token_id",
  pad_token_id: "pad_token_id",
  bos_token_id: "bos_token_id",
};

/** Our parameter names → LLaDA's (OLMo-style) names, per layer and global. */
const lladaLayerNames: Record<string, string> = {
  "input_layernorm.weight": "attn_norm.weight",
  "self_attn.q_proj.weight": "q_proj.weight",
  "self_attn.k_proj.weight": "k_proj.weight",
  "self_attn.v_proj.weight": "v_proj.weight",
  "self_attn.q_proj.bias": "q_proj.bias",
  "self_attn.k_proj.bias": "k_proj.bias",
  "self_attn.v_proj.bias": "v_proj.bias",
  "self_attn.o_proj.weight": "attn_out.weight",
  "post_attention_layernorm.weight": "ff_norm.weight",
  "mlp.gate_proj.weight": "ff_proj.weight",
  "mlp.up_proj.weight": "up_proj.weight",
  "mlp.down_proj.weight": "ff_out.weight",
};
const lladaGlobalNames: Record<string, string> = {
  "model.embed_tokens.weight": "model.transformer.wte.weight",
  "model.norm.weight": "model.transformer.ln_f.weight",
  "lm_head.weight": "model.transformer.ff_out.weight",
};

const llada: Family = {
  name: "llada",
  modelTypes: ["llada"],
  architectures: ["LLaDAModelLM"],
  toCanonical(raw, file) {
    const out: Record<string, unknown> = { attention_mask: "full", hidden_act: "silu" };
    for (const [key, value] of Object.entries(raw)) {
      if (lladaIgnored.has(key)) continue;
      const allowed = lladaRequired[key];
      if (allowed !== undefined) {
        if (!allowed.includes(value)) {
          throw new ConfigError(
            file,
            key,
            `${JSON.stringify(value)} is not implemented (supported: ${allowed.map((v) => JSON.stringify(v)).join(", ")})`,
          );
        }
        continue;
      }
      if (key === "embedding_size" || key === "n_kv_heads" || key === "mlp_hidden_size") continue;
      const ours = lladaRenamed[key];
      if (ours === undefined) throw new ConfigError(file, key, "unknown LLaDA config key");
      out[ours] = value;
    }
    // The embedding and the head have embedding_size rows (LLaDAModel: `embedding_size or
    // vocab_size`); the logits are that wide.
    if (raw.embedding_size !== undefined && raw.embedding_size !== null) {
      out.vocab_size = raw.embedding_size;
    }
    const heads = raw.n_heads;
    out.num_key_value_heads =
      raw.n_kv_heads ?? (raw.multi_query_attention === true ? 1 : (heads ?? undefined));
    if (raw.mlp_hidden_size !== undefined && raw.mlp_hidden_size !== null) {
      out.intermediate_size = raw.mlp_hidden_size;
    } else {
      const ratio = raw.mlp_ratio ?? 4;
      if (typeof ratio !== "number" || typeof raw.d_model !== "number") {
        throw new ConfigError(file, "mlp_hidden_size", "missing, and no mlp_ratio × d_model");
      }
      out.intermediate_size = ratio * raw.d_model;
    }
    return out;
  },
  tensorName(name) {
    const global = lladaGlobalNames[name];
    if (global !== undefined) return global;
    const m = /^model\.layers\.(\d+)\.(.+)$/.exec(name);
    const local = m ? lladaLayerNames[m[2]] : undefined;
    if (m === null || local === undefined) return name;
    return `model.transformer.blocks.${m[1]}.${local}`;
  },
  endOfTurn: ["<|eot_id|>"],
  maskFromTokenizer: false,
};

/** The project's own format: our keys and our (LLaMA/Qwen2) tensor names, as saveCheckpoint writes. */
const unmask: Family = {
  name: "unmask",
  modelTypes: ["unmask"],
  architectures: [],
  toCanonical: (raw) => ({ ...raw }),
  tensorName: identity,
  endOfTurn: [],
  maskFromTokenizer: false,
};

export const families: readonly Family[] = [
  unmask,
  llada,
  dream,
  openDCoder,
  fastDllmV2,
  sdar,
  qwen3,
  qwen2,
  llama,
];
export const familyNames = families.map((f) => f.name);

export function familyByName(name: FamilyName): Family {
  return families.find((f) => f.name === name)!;
}

/**
 * The family of a config.json: the one asked for, else by `model_type`, else by
 * `architectures`; a config with neither is the project's own format. Throws ConfigError on an
 * unknown model_type or architecture, or on a config the asked-for family cannot read.
 */
export function detectFamily(
  raw: Readonly<Record<string, unknown>>,
  file: string,
  asked?: FamilyName,
): Family {
  const archs = raw.architectures;
  if (archs !== undefined && (!Array.isArray(archs) || archs.some((a) => typeof a !== "string"))) {
    throw new ConfigError(file, "architectures", "expected a list of class names");
  }
  const supportedTypes = families.flatMap((f) => f.modelTypes);
  let family: Family | undefined;
  if (asked !== undefined) {
    family = families.find((f) => f.name === asked);
    if (family === undefined) {
      throw new ConfigError(
        file,
        "(family)",
        `unknown family ${JSON.stringify(asked)} (supported: ${familyNames.join(", ")})`,
      );
    }
  } else if (raw.model_type !== undefined) {
    family = families.find((f) => f.modelTypes.includes(raw.model_type as string));
    if (family === undefined) {
      throw new ConfigError(
        file,
        "model_type",
        `unsupported model type ${JSON.stringify(raw.model_type)} (supported: ${supportedTypes.join(", ")})`,
      );
    }
  } else if (archs !== undefined) {
    family = families.find(
      (f) => f.modelTypes.length > 0 && archs.some((a) => f.architectures.includes(a)),
    );
    if (family === undefined) {
      throw new ConfigError(
        file,
        "architectures",
        `unsupported architecture ${JSON.stringify(archs)} (supported: ${families.flatMap((f) => f.architectures).join(", ")})`,
      );
    }
  } else {
    return unmask;
  }
  if (archs !== undefined && family.architectures.length > 0) {
    const foreign = (archs as string[]).filter((a) => !family.architectures.includes(a));
    if (foreign.length > 0) {
      throw new ConfigError(
        file,
        "architectures",
        `${JSON.stringify(foreign)} is not a ${family.name} architecture (supported: ${family.architectures.join(", ")})`,
      );
    }
  }
  return family;
}
