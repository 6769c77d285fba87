// Every model family from a tiny random checkpoint written in that checkpoint's own layout (file
// names, config keys, tensor names, tokenizer files, as the published repositories have them; the
// sources are cited in src/model/families.ts): it loads, its logits from the ONNX Runtime engine
// agree with the float64 reference, and a sampler (or AR decoding) gives the reference's tokens.

import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { complete, streamInfillAr } from "../src/diffusion/api.js";
import { decodeAr } from "../src/diffusion/ar.js";
import { denoise } from "../src/diffusion/denoise.js";
import type { DecodeResult, StepEvent } from "../src/diffusion/types.js";
import { type Checkpoint, loadCheckpoint } from "../src/format/checkpoint.js";
import { f32ToBF16 } from "../src/format/half.js";
import { type TensorEntry, writeSafetensors } from "../src/format/safetensors.js";
import { fimTokens } from "../src/format/template.js";
import { planInfill, settle, supervise } from "../src/host/decode.js";
import { WrongModelError } from "../src/host/errors.js";
import { loadModel } from "../src/host/models.js";
import {
  ConfigError,
  configToJson,
  endTokenIds,
  parameterShapes,
  parseModelConfig,
} from "../src/model/config.js";
import { OnnxModel } from "../src/model/engine.js";
import { type FamilyName, familyByName } from "../src/model/families.js";
import { ReferenceModel } from "../src/model/reference.js";
import type { LanguageModel } from "../src/model/types.js";
import { seededWeights, tinyTokenizerJson, withTempDir } from "./format-helpers.js";
import { relativeError } from "./tiny-config.js";

const models: LanguageModel[] = [];
after(async () => {
  for (const m of models) await m.dispose();
});

interface Layout {
  family: FamilyName;
  /** config.json exactly as the family spells it (tiny sizes). */
  config: Record<string, unknown>;
  generation?: Record<string, unknown>;
  tokenizerConfig: Record<string, unknown>;
  /** Special tokens of the tokenizer, ids 0, 1, ... (then a, b, c, Ġ, Ċ, ab: 10 ids in all). */
  specials: string[];
  /** Shard file names: one is model.safetensors; more are written with the index. */
  shards: string[];
  dtype: "F32" | "BF16";
  /** Passed to loadCheckpoint where the config cannot tell the family. */
  asked?: FamilyName;
  /** tokenizer.json's post_processor (none: null). */
  postProcessor?: Record<string, unknown>;
}

const VOCAB = 16; // tokenizer ids 0..9, padded to 16 as the real ones pad to multiples of 64/128

/** LLaDA-8B-Instruct's config.json keys (model_type "llada"), tiny sizes. */
const lladaConfig = {
  activation_type: "silu",
  alibi: false,
  alibi_bias_max: 8.0,
  architectures: ["LLaDAModelLM"],
  attention_dropout: 0.0,
  attention_layer_norm: false,
  attention_layer_norm_with_affine: true,
  auto_map: {
    AutoConfig: "configuration_llada.LLaDAConfig",
    AutoModelForCausalLM: "modeling_llada.LLaDAModelLM",
    AutoModel: "modeling_llada.LLaDAModelLM",
  },
  bias_for_layer_norm: false,
  block_group_size: 1,
  block_type: "llama",
  d_model: 16,
  embedding_dropout: 0.0,
  embedding_size: VOCAB,
  eos_token_id: 1,
  flash_attention: false,
  include_bias: false,
  include_qkv_bias: false,
  init_cutoff_factor: null,
  init_device: "meta",
  init_fn: "mitchell",
  init_std: 0.02,
  input_emb_norm: false,
  layer_norm_type: "rms",
  layer_norm_with_affine: true,
  mask_token_id: 3,
  max_sequence_length: 64,
  mlp_hidden_size: 24,
  mlp_ratio: 4,
  model_type: "llada",
  multi_query_attention: null,
  n_heads: 4,
  n_kv_heads: 4,
  n_layers: 2,
  pad_token_id: 1,
  precision: "amp_bf16",
  residual_dropout: 0.0,
  rms_norm_eps: 1e-5,
  rope: true,
  rope_full_precision: true,
  rope_theta: 500000.0,
  scale_logits: false,
  transformers_version: "4.46.3",
  use_cache: false,
  vocab_size: VOCAB,
  weight_tying: false,
};

/** The Qwen2 keys that Qwen2.5(-Coder), Dream and Open-dCoder configs share, tiny sizes. */
const qwen2Keys = {
  attention_dropout: 0.0,
  bos_token_id: 0,
  eos_token_id: 0,
  hidden_act: "silu",
  hidden_size: 16,
  initializer_range: 0.02,
  intermediate_size: 24,
  max_position_embeddings: 64,
  max_window_layers: 2,
  num_attention_heads: 4,
  num_hidden_layers: 2,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-6,
  rope_scaling: null,
  rope_theta: 1000000.0,
  sliding_window: 64,
  torch_dtype: "bfloat16",
  transformers_version: "4.46.2",
  use_cache: true,
  use_sliding_window: false,
  vocab_size: VOCAB,
};

const qwenSpecials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|mask|>"];
/** DeepSeek-Coder's special tokens (ids 32013-32021 there) that FIM and its ends use. */
const deepseekSpecials = [
  "<｜begin▁of▁sentence｜>",
  "<｜end▁of▁sentence｜>",
  "<｜fim▁hole｜>",
  "<｜fim▁begin｜>",
  "<｜fim▁end｜>",
  "<|EOT|>",
];
const qwenFim = [
  "<|fim_prefix|>",
  "<|fim_middle|>",
  "<|fim_suffix|>",
  "<|fim_pad|>",
  "<|repo_name|>",
  "<|file_sep|>",
];

/** Dream-v0-Instruct-7B's config.json (model_type "Dream", DreamModel), tiny sizes. */
const dreamConfig = {
  ...qwen2Keys,
  architectures: ["DreamModel"],
  auto_map: {
    AutoConfig: "configuration_dream.DreamConfig",
    AutoModel: "modeling_dream.DreamModel",
  },
  mask_token_id: 3,
  model_type: "Dream",
  pad_token_id: 0,
  tie_word_embeddings: false,
};

/** Fast_dLLM_v2_7B's config.json (model_type "Fast_dLLM_Qwen"), tiny sizes, bd_size 4 (32 there). */
const fastDllmConfig = {
  ...qwen2Keys,
  architectures: ["Fast_dLLM_QwenForCausalLM"],
  auto_map: {
    AutoConfig: "configuration.Fast_dLLM_QwenConfig",
    AutoModel: "modeling.Fast_dLLM_QwenModel",
    AutoModelForCausalLM: "modeling.Fast_dLLM_QwenForCausalLM",
  },
  bd_size: 4,
  bos_token_id: 0,
  conplemenrary_mask: true,
  eos_token_id: 2,
  layer_types: ["full_attention", "full_attention"],
  model_type: "Fast_dLLM_Qwen",
  pad_token_id: 2,
  tie_word_embeddings: false,
};

/** SDAR-4B-Chat's config.json (model_type "sdar", Qwen3 layers), tiny sizes; head_dim ≠ H / heads. */
const sdarConfig = {
  architectures: ["SDARForCausalLM"],
  auto_map: {
    AutoConfig: "configuration_sdar.SDARConfig",
    AutoModel: "modeling_sdar.SDARModel",
    AutoModelForCausalLM: "modeling_sdar.SDARForCausalLM",
  },
  attention_bias: false,
  attention_dropout: 0.0,
  attn_implementation: "flex_attention",
  bos_token_id: 0,
  debug: false,
  eos_token_id: 0,
  block_size: 4,
  mask_token_id: 3,
  ep_size: 1,
  fuse_cross_entropy: true,
  head_dim: 8,
  hidden_act: "silu",
  hidden_size: 16,
  initializer_range: 0.02,
  intermediate_size: 24,
  max_position_embeddings: 64,
  max_window_layers: 2,
  micro_forward: false,
  model_type: "sdar",
  num_attention_heads: 4,
  num_hidden_layers: 2,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-6,
  rope_scaling: null,
  rope_theta: 1000000,
  skip_checkpoint: false,
  sliding_window: null,
  tie_word_embeddings: false,
  torch_dtype: "bfloat16",
  transformers_version: "4.52.4",
  use_cache: false,
  use_deepep: false,
  use_sliding_window: false,
  vocab_size: VOCAB,
};

const layouts: Record<string, Layout> = {
  "LLaDA 8B": {
    family: "llada",
    config: lladaConfig,
    generation: { bos_token_id: 0, eos_token_id: 1, pad_token_id: 1 },
    tokenizerConfig: { bos_token: "<|startoftext|>", eos_token: "<|endoftext|>" },
    specials: ["<|startoftext|>", "<|endoftext|>", "<|eot_id|>", "<|mdm_mask|>"],
    shards: ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"],
    dtype: "BF16",
  },
  "Dream 7B / Dream-Coder 7B": {
    family: "dream",
    config: dreamConfig,
    generation: { bos_token_id: 0, eos_token_id: 0, pad_token_id: 0 },
    tokenizerConfig: { eos_token: "<|endoftext|>", pad_token: "<|endoftext|>" },
    specials: qwenSpecials,
    shards: ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"],
    dtype: "BF16",
  },
  "DiffuCoder 7B (Dream layout, <|dlm_pad|> padding)": {
    family: "dream",
    config: dreamConfig,
    tokenizerConfig: { eos_token: "<|endoftext|>", pad_token: "<|dlm_pad|>" },
    specials: [...qwenSpecials, "<|dlm_pad|>"],
    shards: ["model.safetensors"],
    dtype: "F32",
  },
  "Open-dCoder 0.5B (Qwen2ForCausalLM run bidirectionally)": {
    family: "open-dcoder",
    config: {
      ...qwen2Keys,
      architectures: ["Qwen2ForCausalLM"],
      model_type: "qwen2",
      tie_word_embeddings: true,
    },
    tokenizerConfig: { eos_token: "<|endoftext|>", mask_token: "<M>" },
    specials: ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<M>"],
    shards: ["model.safetensors"],
    dtype: "F32",
    asked: "open-dcoder",
  },
  "Fast-dLLM v2 (block diffusion on Qwen2.5, |<MASK>| from the tokenizer)": {
    family: "fast-dllm-v2",
    config: fastDllmConfig,
    generation: { bos_token_id: 0, eos_token_id: 2, pad_token_id: 2 },
    // Qwen2.5-Instruct's tokenizer_config.json with Fast-dLLM v2's added "|<MASK>|"
    tokenizerConfig: { eos_token: "<|im_end|>", pad_token: "<|endoftext|>" },
    specials: ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "|<MASK>|"],
    shards: ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"],
    dtype: "BF16",
  },
  "SDAR (block diffusion on Qwen3, q/k norms)": {
    family: "sdar",
    config: sdarConfig,
    generation: {
      bos_token_id: 0,
      do_sample: true,
      eos_token_id: [2, 0],
      pad_token_id: 0,
      temperature: 0.6,
      top_k: 20,
      top_p: 0.95,
    },
    tokenizerConfig: {
      add_bos_token: false,
      bos_token: null,
      eos_token: "<|endoftext|>",
      mask_token: "<|MASK|>",
      pad_token: "<|endoftext|>",
    },
    specials: ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|MASK|>"],
    shards: ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"],
    dtype: "BF16",
  },
  "Qwen2.5-Coder (AR baseline)": {
    family: "qwen2",
    config: {
      ...qwen2Keys,
      architectures: ["Qwen2ForCausalLM"],
      model_type: "qwen2",
      tie_word_embeddings: true,
    },
    generation: { bos_token_id: 0, eos_token_id: 0, max_new_tokens: 2048 },
    tokenizerConfig: { eos_token: "<|endoftext|>" },
    // Qwen2.5-Coder's added tokens in their order (ids 151643-151664 there), those around FIM
    specials: [...qwenSpecials.slice(0, 3), ...qwenFim],
    shards: ["model.safetensors"],
    dtype: "BF16",
  },
  "Qwen3 (AR baseline, q/k norms)": {
    family: "qwen3",
    config: {
      architectures: ["Qwen3ForCausalLM"],
      attention_bias: false,
      attention_dropout: 0.0,
      bos_token_id: 0,
      eos_token_id: 2,
      head_dim: 8,
      hidden_act: "silu",
      hidden_size: 16,
      initializer_range: 0.02,
      intermediate_size: 24,
      max_position_embeddings: 64,
      max_window_layers: 2,
      model_type: "qwen3",
      num_attention_heads: 4,
      num_hidden_layers: 2,
      num_key_value_heads: 2,
      rms_norm_eps: 1e-6,
      rope_scaling: null,
      rope_theta: 1000000,
      sliding_window: null,
      tie_word_embeddings: true,
      torch_dtype: "bfloat16",
      transformers_version: "4.51.0",
      use_cache: true,
      use_sliding_window: false,
      vocab_size: VOCAB,
    },
    tokenizerConfig: { eos_token: "<|im_end|>", pad_token: "<|endoftext|>" },
    specials: qwenSpecials.slice(0, 3),
    shards: ["model.safetensors"],
    dtype: "BF16",
  },
  "DeepSeek-Coder (LLaMA layout, linear RoPE scaling, FIM tokens, BOS added)": {
    family: "llama",
    // deepseek-coder-1.3b-base's config.json, tiny sizes
    config: {
      architectures: ["LlamaForCausalLM"],
      bos_token_id: 0,
      eos_token_id: 1,
      hidden_act: "silu",
      hidden_size: 16,
      initializer_range: 0.02,
      intermediate_size: 24,
      max_position_embeddings: 64,
      model_type: "llama",
      num_attention_heads: 4,
      num_hidden_layers: 2,
      num_key_value_heads: 4,
      pretraining_tp: 1,
      rms_norm_eps: 1e-6,
      rope_scaling: { factor: 4.0, type: "linear" },
      rope_theta: 100000,
      tie_word_embeddings: false,
      torch_dtype: "bfloat16",
      transformers_version: "4.33.1",
      use_cache: true,
      vocab_size: VOCAB,
    },
    tokenizerConfig: {
      add_bos_token: true,
      bos_token: "<｜begin▁of▁sentence｜>",
      eos_token: "<｜end▁of▁sentence｜>",
    },
    specials: deepseekSpecials,
    shards: ["model.safetensors"],
    dtype: "BF16",
    postProcessor: {
      type: "TemplateProcessing",
      single: [
        { SpecialToken: { id: "<｜begin▁of▁sentence｜>", type_id: 0 } },
        { Sequence: { id: "A", type_id: 0 } },
      ],
      pair: [
        { SpecialToken: { id: "<｜begin▁of▁sentence｜>", type_id: 0 } },
        { Sequence: { id: "A", type_id: 0 } },
        { Sequence: { id: "B", type_id: 1 } },
      ],
      special_tokens: {
        "<｜begin▁of▁sentence｜>": {
          id: "<｜begin▁of▁sentence｜>",
          ids: [0],
          tokens: ["<｜begin▁of▁sentence｜>"],
        },
      },
    },
  },
  "LLaMA (AR baseline)": {
    family: "llama",
    config: {
      architectures: ["LlamaForCausalLM"],
      attention_bias: false,
      attention_dropout: 0.0,
      bos_token_id: 0,
      eos_token_id: 1,
      head_dim: 4,
      hidden_act: "silu",
      hidden_size: 16,
      initializer_range: 0.02,
      intermediate_size: 24,
      max_position_embeddings: 64,
      mlp_bias: false,
      model_type: "llama",
      num_attention_heads: 4,
      num_hidden_layers: 2,
      num_key_value_heads: 2,
      pretraining_tp: 1,
      rms_norm_eps: 1e-5,
      rope_scaling: null,
      rope_theta: 500000.0,
      tie_word_embeddings: false,
      torch_dtype: "bfloat16",
      transformers_version: "4.45.0",
      use_cache: true,
      vocab_size: VOCAB,
    },
    tokenizerConfig: { bos_token: "<|begin_of_text|>", eos_token: "<|end_of_text|>" },
    specials: ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"],
    shards: ["model.safetensors"],
    dtype: "F32",
  },
};

const json = (v: unknown) => `${JSON.stringify(v, null, 2)}\n`;

/**
 * Writes `layout` into `dir` with seeded weights under the family's tensor names; returns the
 * weights by our parameter names, rounded to the stored dtype.
 */
async function writeLayout(dir: string, layout: Layout) {
  const family = familyByName(layout.family);
  const config = parseModelConfig(layout.config, "config.json", {}, "", layout.asked);
  const weights = seededWeights(config, 7);
  const tensors = parameterShapes(config).map(({ name, shape }) => {
    const data = weights.get(name)!;
    const entry: TensorEntry =
      layout.dtype === "BF16"
        ? { dtype: "BF16", shape, data: f32ToBF16(data) }
        : { dtype: "F32", shape, data };
    return { name, stored: family.tensorName(name), entry };
  });
  const weightMap: Record<string, string> = {};
  for (const [i, file] of layout.shards.entries()) {
    const part = new Map<string, TensorEntry>();
    tensors.forEach((t, j) => {
      if (j % layout.shards.length !== i) return;
      part.set(t.stored, t.entry);
      weightMap[t.stored] = file;
    });
    await writeSafetensors(join(dir, file), part, { format: "pt" });
  }
  if (layout.shards.length > 1) {
    await writeFile(
      join(dir, "model.safetensors.index.json"),
      json({ metadata: { total_size: 0 }, weight_map: weightMap }),
    );
  }
  await writeFile(join(dir, "config.json"), json(layout.config));
  if (layout.generation)
    await writeFile(join(dir, "generation_config.json"), json(layout.generation));
  const tokenizer = tinyTokenizerJson(layout.specials);
  if (layout.postProcessor) tokenizer.post_processor = layout.postProcessor;
  await writeFile(join(dir, "tokenizer.json"), JSON.stringify(tokenizer));
  await writeFile(join(dir, "tokenizer_config.json"), json(layout.tokenizerConfig));
  return { tensors };
}

async function load(dir: string, layout: Layout): Promise<Checkpoint> {
  return loadCheckpoint(dir, layout.asked ? { family: layout.asked } : {});
}

async function collect(gen: AsyncGenerator<StepEvent, DecodeResult, undefined>) {
  for (;;) {
    const next = await gen.next();
    if (next.done) return next.value;
  }
}

for (const [label, layout] of Object.entries(layouts)) {
  describe(label, () => {
    test("loads from its own layout; engine logits agree with the float64 reference; it decodes", async () => {
      await withTempDir(async (dir) => {
        const { tensors } = await writeLayout(dir, layout);
        const ckpt = await load(dir, layout);
        // every parameter came from the tensor of the family's name
        const family = familyByName(layout.family);
        for (const { name, stored } of tensors) {
          if (layout.family === "llada" && name === "mlp.gate_proj.weight") {
            assert.match(stored, /\.ff_proj\.weight$/);
          }
          assert.equal(stored, family.tensorName(name));
          assert.ok(ckpt.weights.has(name), name);
        }
        const { config } = ckpt;
        const causal = ["qwen2", "qwen3", "llama"].includes(layout.family);
        const blocks = layout.family === "fast-dllm-v2" || layout.family === "sdar";
        assert.equal(config.attention, causal ? "causal" : blocks ? "block_causal" : "full");
        assert.equal(config.blockSize, blocks ? 4 : 0);
        assert.equal(
          config.logitShift,
          ["dream", "open-dcoder", "fast-dllm-v2"].includes(layout.family),
        );
        assert.equal(
          config.qkvBias,
          ["dream", "open-dcoder", "fast-dllm-v2", "qwen2"].includes(layout.family),
        );
        assert.equal(config.qkNorm === true, ["sdar", "qwen3"].includes(layout.family));
        assert.equal(config.maskTokenId, causal ? null : 3);
        assert.equal(config.modelType, layout.family);
        // the end-of-turn token joins EOS where the tokenizer has one
        const eot = ckpt.tokenizer.tokenToId(
          layout.family === "llada" ? "<|eot_id|>" : "<|im_end|>",
        );
        if (layout.family !== "llama" && eot !== null) {
          assert.ok(endTokenIds(config).includes(eot));
        }

        const engine = await OnnxModel.create(config, ckpt.weights, { threads: 1 });
        const reference = new ReferenceModel(config, ckpt.weights);
        models.push(engine, reference);
        const tokens = Int32Array.from([0, 4, 5, 6, 7, 8, 9, 4, 5, 6, 7, 8]);
        if (!causal) tokens.fill(3, 6);
        const request = { tokens, rows: 1 };
        const a = await engine.forward(request);
        const b = await reference.forward(request);
        assert.ok(relativeError(a.logits, b.logits) < 1e-4, label);

        if (causal) {
          const run = () => decodeAr(engine, [0, 4, 5], { maxTokens: 8, stopAtEos: false });
          const refRun = decodeAr(reference, [0, 4, 5], { maxTokens: 8, stopAtEos: false });
          const [x, y] = [await collect(run()), await collect(refRun)];
          assert.deepEqual(Array.from(x.canvas), Array.from(y.canvas));
          assert.equal(x.canvas.length, 11);
        } else {
          const spec = () => ({ tokens: Int32Array.from(tokens), openEnded: true });
          // block diffusion decodes the model's own blocks against the exact cache of the
          // finished ones; the others in semi-autoregressive blocks of 6
          const options = blocks
            ? { preset: "block-diffusion" as const, temperature: 0 }
            : { blockLength: 6, temperature: 0 };
          const [x, y] = [
            await collect(denoise(engine, spec(), options)),
            await collect(denoise(reference, spec(), options)),
          ];
          assert.deepEqual(Array.from(x.canvas), Array.from(y.canvas));
          assert.ok(!Array.from(x.canvas).includes(3), "masks left");
        }
      });
    });
  });
}

/** The ConfigError thrown by parsing `config` (as `family` where given). */
function configError(config: Record<string, unknown>, family?: FamilyName): ConfigError {
  try {
    parseModelConfig(config, "config.json", {}, "generation_config.json", family);
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    return e;
  }
  assert.fail("no ConfigError");
}

test("an unknown model_type or architecture is a ConfigError listing the supported ones", () => {
  const e = configError({ ...qwen2Keys, model_type: "mistral" });
  assert.equal(e.field, "model_type");
  assert.match(e.message, /llada.*Dream.*qwen2.*llama/);
  const a = configError({ ...qwen2Keys, architectures: ["MistralForCausalLM"] });
  assert.equal(a.field, "architectures");
  assert.match(a.message, /LLaDAModelLM/);
  const b = configError({
    ...qwen2Keys,
    model_type: "qwen2",
    architectures: ["Qwen2ForSequenceClassification"],
  });
  assert.equal(b.field, "architectures");
  // without model_type, the architecture decides
  assert.equal(
    parseModelConfig({ ...qwen2Keys, architectures: ["DreamModel"], mask_token_id: 3 }).modelType,
    "dream",
  );
});

test("a config field that changes the forward pass and is not implemented is an error", () => {
  const qwen = { ...qwen2Keys, model_type: "qwen2" };
  assert.equal(
    configError({ ...qwen, rope_scaling: { type: "yarn", factor: 4 } }).field,
    "rope_scaling",
  );
  assert.equal(configError({ ...qwen, use_sliding_window: true }).field, "use_sliding_window");
  assert.equal(
    configError({ ...qwen, layer_types: ["full_attention", "sliding_attention"] }).field,
    "layer_types",
  );
  assert.equal(configError({ ...qwen, attention_bias: false }).field, "attention_bias");
  const llama = { ...layouts["LLaMA (AR baseline)"].config };
  assert.equal(configError({ ...llama, mlp_bias: true }).field, "mlp_bias");
  assert.equal(configError({ ...llama, attention_bias: true }).field, "attention_bias");
  assert.equal(
    configError({ ...llama, rope_scaling: { rope_type: "llama3", factor: 8 } }).field,
    "rope_scaling",
  );
  for (const [key, value] of [
    ["block_type", "sequential"],
    ["include_bias", true],
    ["scale_logits", true],
    ["block_group_size", 2],
    ["layer_norm_type", "default"],
    ["alibi", true],
  ] as const) {
    assert.equal(configError({ ...lladaConfig, [key]: value }).field, key);
  }
  assert.equal(configError({ ...lladaConfig, something_new: 1 }).field, "something_new");
  // a published family's config may not set the keys its family decides
  assert.equal(configError({ ...dreamConfig, attention_mask: "causal" }).field, "attention_mask");
});

test("special-token ids outside the vocabulary are ConfigErrors naming the field", () => {
  assert.equal(configError({ ...dreamConfig, mask_token_id: 151666 }).field, "mask_token_id");
  assert.equal(configError({ ...lladaConfig, eos_token_id: 126081 }).field, "eos_token_id");
  assert.equal(configError({ ...lladaConfig, pad_token_id: VOCAB }).field, "pad_token_id");
});

test("Open-dCoder needs its tokenizer's mask token, and a Qwen2 config", async () => {
  const layout = layouts["Open-dCoder 0.5B (Qwen2ForCausalLM run bidirectionally)"];
  await withTempDir(async (dir) => {
    await writeLayout(dir, { ...layout, tokenizerConfig: { eos_token: "<|endoftext|>" } });
    // "<M>" is not one of the mask spellings the tokenizer knows without tokenizer_config.json
    await assert.rejects(load(dir, layout), (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.equal(e.field, "mask_token");
      return true;
    });
  });
  assert.equal(configError({ ...dreamConfig }, "open-dcoder").field, "architectures");
  const { architectures: _, ...noArchitectures } = dreamConfig;
  assert.equal(configError(noArchitectures, "open-dcoder").field, "model_type");
  assert.equal(configError({ ...qwen2Keys }, "bogus" as FamilyName).field, "(family)");
});

test("our own format still loads without a model_type, and saves as family unmask", () => {
  const config = parseModelConfig({
    vocab_size: VOCAB,
    hidden_size: 8,
    num_hidden_layers: 1,
    num_attention_heads: 2,
    intermediate_size: 8,
    max_position_embeddings: 16,
  });
  assert.equal(config.modelType, "unmask");
  assert.equal(config.attention, "full");
  const llada = parseModelConfig(lladaConfig);
  assert.equal(llada.hiddenSize, 16);
  assert.equal(llada.intermediateSize, 24);
  assert.equal(llada.maxPositions, 64);
  // a LLaDA config written back is in our keys (saveCheckpoint writes our tensor names too)
  const saved = configToJson(llada);
  assert.equal(saved.model_type, "unmask");
  assert.deepEqual({ ...parseModelConfig(saved), modelType: "llada" }, llada);
});

test("block-diffusion families attend to whole blocks of absolute positions, never a later one", async () => {
  for (const raw of [fastDllmConfig, sdarConfig]) {
    const config = parseModelConfig(raw);
    const reference = new ReferenceModel(config, seededWeights(config, 3));
    const base = [0, 4, 5, 6, 7, 8, 9, 4, 5, 6, 7, 8];
    const logits = async (changes: Record<number, number>) => {
      const tokens = Int32Array.from(base);
      for (const [i, t] of Object.entries(changes)) tokens[Number(i)] = t;
      return (await reference.forward({ tokens, rows: 1 })).logits;
    };
    const row = (l: Float32Array, i: number) => Array.from(l.subarray(i * VOCAB, (i + 1) * VOCAB));
    const [same, later, inside] = [
      await logits({}),
      await logits({ 9: 5 }),
      await logits({ 7: 6 }),
    ];
    // position 5 is in block 1 (positions 4-7; under Fast-dLLM's logit shift its row is the
    // hidden state of position 4, in the same block): blind to block 2, sees all of its own
    assert.deepEqual(row(later, 5), row(same, 5), config.modelType);
    assert.notDeepEqual(row(inside, 5), row(same, 5), config.modelType);
  }
});

test("block diffusion's exact cache: the same tokens as the whole canvas each step, blocks aligned", async () => {
  for (const raw of [fastDllmConfig, sdarConfig]) {
    // Fast-dLLM's mask comes from its tokenizer (3 in the layouts above)
    const config = { ...parseModelConfig(raw), maskTokenId: 3 };
    const weights = seededWeights(config, 5);
    const engine = await OnnxModel.create(config, weights, { threads: 1 });
    const reference = new ReferenceModel(config, weights);
    models.push(engine, reference);
    // the prompt ends on a block boundary: the next block's first token comes, under
    // Fast-dLLM's logit shift, from the prompt's last position (its generate()'s next_token)
    const tokens = Int32Array.from([0, 4, 5, 6, 3, 3, 3, 3, 3, 3, 3, 3]);
    const spec = () => ({ tokens: Int32Array.from(tokens), openEnded: true });
    const cached = await collect(
      denoise(engine, spec(), { preset: "block-diffusion", temperature: 0 }),
    );
    const whole = await collect(
      denoise(reference, spec(), {
        preset: "block-diffusion",
        cache: "none",
        blockLength: 4,
        temperature: 0,
      }),
    );
    assert.deepEqual(Array.from(cached.canvas), Array.from(whole.canvas), config.modelType);
    assert.ok(!Array.from(cached.canvas).includes(3), "masks left");
  }
});

test("block-diffusion configs: the block size is required; Qwen3's and SDAR's o_proj bias is refused", () => {
  const { bd_size: _, ...noBlock } = fastDllmConfig;
  assert.equal(configError(noBlock).field, "bd_size");
  assert.equal(configError({ ...fastDllmConfig, bd_size: 0 }).field, "bd_size");
  assert.equal(configError({ ...sdarConfig, block_size: "4" }).field, "block_size");
  assert.equal(configError({ ...sdarConfig, attention_bias: true }).field, "attention_bias");
  const qwen3 = layouts["Qwen3 (AR baseline, q/k norms)"].config;
  assert.equal(configError({ ...qwen3, attention_bias: true }).field, "attention_bias");
  assert.equal(
    configError({ ...fastDllmConfig, layer_types: ["full_attention", "sliding_attention"] }).field,
    "layer_types",
  );
  assert.equal(
    configError({ ...sdarConfig, use_sliding_window: true }).field,
    "use_sliding_window",
  );
  assert.equal(configError({ ...sdarConfig, something_new: 1 }).field, "something_new");
  // their configs may not set the keys the family decides
  assert.equal(configError({ ...sdarConfig, qk_norm: false }).field, "qk_norm");
  assert.equal(configError({ ...fastDllmConfig, logit_shift: false }).field, "logit_shift");
  // written back in our keys, the q/k norms, block size and logit shift survive
  for (const raw of [fastDllmConfig, sdarConfig]) {
    const config = parseModelConfig(raw);
    assert.deepEqual(
      { ...parseModelConfig(configToJson(config)), modelType: config.modelType },
      config,
    );
  }
});

test("Fast-dLLM v2 needs its tokenizer's |<MASK>|", async () => {
  const layout = layouts["Fast-dLLM v2 (block diffusion on Qwen2.5, |<MASK>| from the tokenizer)"];
  await withTempDir(async (dir) => {
    await writeLayout(dir, {
      ...layout,
      specials: ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
    });
    await assert.rejects(load(dir, layout), (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.equal(e.field, "mask_token");
      return true;
    });
  });
});

test("Qwen2.5-Coder fills a hole through its FIM tokens; a causal model without them is refused", async () => {
  const layout = layouts["Qwen2.5-Coder (AR baseline)"];
  await withTempDir(async (dir) => {
    await writeLayout(dir, layout);
    const loaded = await loadModel(dir, { threads: 1 });
    models.push(loaded.model);
    const { tokenizer } = loaded;
    const id = (spelling: string) => tokenizer.tokenToId(spelling)!;
    const fim = fimTokens(tokenizer)!;
    // the sentinels, and every token Qwen2.5-Coder's README stops a middle at
    assert.deepEqual(
      [fim.prefix, fim.suffix, fim.middle],
      [id("<|fim_prefix|>"), id("<|fim_suffix|>"), id("<|fim_middle|>")],
    );
    assert.deepEqual([...fim.stops].sort(), qwenFim.map(id).sort());
    const [prefix, suffix] = ["ab a", "c\nb"];
    const settings = { decoder: "autoregressive" as const, temperature: 0 };
    const plan = planInfill(loaded, settings, [prefix, { hole: 6 }, suffix], "trim");
    // <|fim_prefix|> prefix <|fim_suffix|> suffix <|fim_middle|>, as the README writes it
    const prompt = [
      id("<|fim_prefix|>"),
      ...tokenizer.encode(prefix),
      id("<|fim_suffix|>"),
      ...tokenizer.encode(suffix),
      id("<|fim_middle|>"),
    ];
    assert.deepEqual(Array.from(plan.initial), prompt);
    assert.deepEqual(plan.view, [prompt.length, prompt.length + 6]);
    const { result } = await settle(supervise(plan.start));
    // the float64 reference writes the same middle from the same prompt
    const ckpt = await load(dir, layout);
    const reference = new ReferenceModel(ckpt.config, ckpt.weights);
    const parts = [tokenizer.encode(prefix), { hole: 6 }, tokenizer.encode(suffix)];
    const expected = await complete(streamInfillAr(reference, parts, { fim, temperature: 0 }));
    assert.deepEqual(Array.from(result.canvas), Array.from(expected.canvas));
    assert.deepEqual(result.fills, expected.fills);
    assert.ok(result.fills[0].length <= 6);
    assert.deepEqual(Array.from(result.canvas.subarray(0, prompt.length)), prompt);
  });
  // DeepSeek-Coder (a LLaMA): <｜fim▁begin｜> prefix <｜fim▁hole｜> suffix <｜fim▁end｜>, after the
  // BOS its tokenizer adds to any text (its README tokenizes the prompt with special tokens)
  await withTempDir(async (dir) => {
    await writeLayout(
      dir,
      layouts["DeepSeek-Coder (LLaMA layout, linear RoPE scaling, FIM tokens, BOS added)"],
    );
    const loaded = await loadModel(dir, { threads: 1 });
    models.push(loaded.model);
    const { tokenizer } = loaded;
    const id = (spelling: string) => tokenizer.tokenToId(spelling)!;
    const plan = planInfill(
      loaded,
      { decoder: "autoregressive" },
      ["ab", { hole: 3 }, "c"],
      "trim",
    );
    assert.deepEqual(Array.from(plan.initial), [
      id("<｜begin▁of▁sentence｜>"),
      id("<｜fim▁begin｜>"),
      ...tokenizer.encode("ab"),
      id("<｜fim▁hole｜>"),
      ...tokenizer.encode("c"),
      id("<｜fim▁end｜>"),
    ]);
    const { result } = await settle(supervise(plan.start));
    assert.ok(result.fills[0].length <= 3);
  });
  // LLaMA's tokenizer here has no FIM tokens: a typed error naming the model
  await withTempDir(async (dir) => {
    await writeLayout(dir, layouts["LLaMA (AR baseline)"]);
    const loaded = await loadModel(dir, { threads: 1 });
    models.push(loaded.model);
    assert.throws(
      () => planInfill(loaded, { decoder: "autoregressive" }, ["a", { hole: 2 }], "trim"),
      (e: unknown) => e instanceof WrongModelError && e.parameter === "model",
    );
  });
});

test("linear RoPE scaling is position interpolation: factor f at position p is factor 1 at p / f", async () => {
  const base = { ...layouts["LLaMA (AR baseline)"].config };
  const scaled = parseModelConfig({ ...base, rope_scaling: { rope_type: "linear", factor: 2 } });
  const plain = parseModelConfig(base);
  assert.equal(scaled.ropeLinearFactor, 2);
  assert.equal(plain.ropeLinearFactor, undefined);
  const weights = seededWeights(plain, 9);
  const tokens = Int32Array.from([0, 4, 5, 6, 7, 8]);
  const at = (m: ReferenceModel, positions: number[]) =>
    m.forward({ tokens, rows: 1, positions: Int32Array.from(positions) });
  const a = await at(new ReferenceModel(scaled, weights), [0, 2, 4, 6, 8, 10]);
  const b = await at(new ReferenceModel(plain, weights), [0, 1, 2, 3, 4, 5]);
  assert.ok(relativeError(a.logits, b.logits) < 1e-6);
  // the engine's graph agrees with the reference under scaling
  const engine = await OnnxModel.create(scaled, weights, { threads: 1 });
  models.push(engine);
  const c = await engine.forward({ tokens, rows: 1 });
  const d = await new ReferenceModel(scaled, weights).forward({ tokens, rows: 1 });
  assert.ok(relativeError(c.logits, d.logits) < 1e-4);
  // any other scaling is refused, and a "type" that contradicts "rope_type"
  for (const rope_scaling of [
    { rope_type: "dynamic", factor: 2 },
    { type: "linear", rope_type: "yarn", factor: 2 },
    { rope_type: "linear" },
    { rope_type: "linear", factor: 2, original_max_position_embeddings: 64 },
  ]) {
    assert.equal(configError({ ...base, rope_scaling }).field, "rope_scaling");
  }
});
