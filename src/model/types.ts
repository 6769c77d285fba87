// The engine's interface to everything that consumes a model: samplers, training evaluation,
// CLI, server. Implemented by the ONNX Runtime engine (src/model/engine.ts) and by the float64
// reference (src/model/reference.ts); tests use small fakes of it.

import type { ModelConfig } from "./config.js";

/**
 * Keys and values of some positions of some canvases, per layer, with rotary embeddings already
 * applied at their absolute positions. `keys[l]` and `values[l]` are [rows, numKvHeads, length,
 * headDim]. Positions need not be contiguous: a dual cache holds a prefix and a suffix.
 */
export interface KvCache {
  rows: number;
  length: number;
  keys: Float32Array[];
  values: Float32Array[];
}

export interface ForwardRequest {
  /** Token ids of the fresh positions, [rows, n]. */
  tokens: Int32Array;
  rows: number;
  /** Absolute position of each fresh token, [rows, n]; default context length + 0..n-1. */
  positions?: Int32Array;
  /** Cached keys/values the fresh tokens also attend to. */
  context?: KvCache;
  /**
   * Additive attention bias [rows, n, contextLength + n] (0 = attend, -Infinity = not), context
   * columns first. Default: derived from the config's attention kind (full: none; causal and
   * block_causal: by absolute position).
   */
  attentionBias?: Float32Array;
  /** Indices into the n fresh tokens at which to return logits, [rows, p]; default all. */
  logitsAt?: Int32Array;
  /** Also return the keys/values of context + fresh tokens (context first). */
  returnKv?: boolean;
}

export interface ForwardResult {
  /** [rows, p, vocabSize]; logits at index i are the model's distribution of token i. */
  logits: Float32Array;
  /** p: the number of positions per row that logits holds. */
  positions: number;
  kv?: KvCache;
}

export interface LanguageModel {
  readonly config: ModelConfig;
  forward(request: ForwardRequest): Promise<ForwardResult>;
  /** Releases native resources (sessions). Safe to call twice. */
  dispose(): Promise<void>;
}
