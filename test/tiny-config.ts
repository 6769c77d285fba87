// The tiny model shape the engine tests build random models of (GQA: 4 query heads, 2 kv heads),
// and how far two sets of logits are apart.

import assert from "node:assert/strict";
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

/** max |a - b| / max |b|: the error relative to the reference's scale. */
export function relativeError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, "lengths differ");
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return diff / scale;
}
