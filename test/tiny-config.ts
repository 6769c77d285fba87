// The tiny model shape the engine tests build random models of (GQA: 4 query heads, 2 kv heads).

import { type ModelConfig, parseModelConfig } from "../src/model/config.js";

export function tinyModelConfig(over: Record<string, unknown> = {}): ModelConfig {
  return parseModelConfig({
    model_type: "unmask",
    vocab_size: 23,
    hidden_size: 16,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    intermediate_size: 24,
    max_position_embeddings: 64,
    rope_theta: 100,
    ...over,
  });
}
