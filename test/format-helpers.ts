// Small fixtures for the format tests: a tiny config, seeded weights, a tiny tokenizer.json.

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type ModelConfig,
  parameterShapes,
  parseModelConfig,
  type Weights,
} from "../src/model/config.js";

/** vocab 16, hidden 8, 2 layers, 2 heads, 1 kv head, MLP 16, 32 positions. */
export function tinyConfigJson(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    model_type: "unmask",
    vocab_size: 16,
    hidden_size: 8,
    num_hidden_layers: 2,
    num_attention_heads: 2,
    num_key_value_heads: 1,
    intermediate_size: 16,
    max_position_embeddings: 32,
    hidden_act: "silu",
    mask_token_id: 1,
    ...extra,
  };
}

export function tinyConfig(extra: Record<string, unknown> = {}): ModelConfig {
  return parseModelConfig(tinyConfigJson(extra));
}

/** Weights with seeded pseudo-random values (mulberry32), in [-1, 1). */
export function seededWeights(config: ModelConfig, seed = 1): Weights {
  let s = seed >>> 0;
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 31 - 1;
  };
  const weights: Weights = new Map();
  for (const { name, shape } of parameterShapes(config)) {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < data.length; i++) data[i] = next();
    weights.set(name, data);
  }
  return weights;
}

const special = [
  "[PAD]",
  "[MASK]",
  "[BOS]",
  "[EOS]",
  "[FIM_PREFIX]",
  "[FIM_MIDDLE]",
  "[FIM_SUFFIX]",
];

/**
 * A byte-level BPE tokenizer.json over "a", "b", "c", space, newline, with one merge "ab", after
 * the special tokens `specials` (ids 0, 1, ...).
 */
export function tinyTokenizerJson(specials: readonly string[] = special): Record<string, unknown> {
  const vocab: Record<string, number> = {};
  specials.forEach((t, i) => {
    vocab[t] = i;
  });
  for (const t of ["a", "b", "c", "Ġ", "Ċ", "ab"]) vocab[t] = Object.keys(vocab).length;
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: specials.map((content, id) => ({
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: null,
    pre_tokenizer: {
      type: "ByteLevel",
      add_prefix_space: false,
      trim_offsets: true,
      use_regex: true,
    },
    post_processor: null,
    decoder: { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: [["a", "b"]],
    },
  };
}

/** Runs `body` with a fresh temporary folder, removed afterwards. */
export async function withTempDir<T>(body: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), "unmask-format-"));
  try {
    return await body(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
