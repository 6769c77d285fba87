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
  /**
   * Return the vocabulary-wide logits at the logitsAt positions (default true). A step that
   * needs only `stats` sets it false: no vocabulary-wide row then leaves the engine.
   */
  logits?: boolean;
  /** Return the step statistics of each logitsAt position (see StepStats). */
  stats?: StatsRequest;
}

/** What a denoising or decoding step asks of each row's distribution besides (or instead of) logits. */
export interface StatsRequest {
  /** How many of the most likely tokens to return, in [1, vocabSize]. */
  topK: number;
  /**
   * Token ids whose logit counts as −∞ before every statistic (the mask token; EOS and pad when
   * a sampler suppresses them). Default none.
   */
  exclude?: Int32Array;
  /** [rows, p]: one token per position whose log-probability to return (self-correction). */
  scoreTokens?: Int32Array;
  /** The statistics are those of softmax(logits / temperature); > 0, default 1. */
  temperature?: number;
}

/**
 * Statistics of the softmax of each requested row (excluded tokens at −∞, divided by the
 * temperature), computed where the logits are (in the graph, in float32, for the ONNX engine).
 */
export interface StepStats {
  /** k of the request. */
  k: number;
  /** The request's temperature (1 when it gave none): a wrapper that drops it shows. */
  temperature: number;
  /** [rows, p, k] the k most likely ids, most likely first; the lower id first on ties. */
  ids: Int32Array;
  /** [rows, p, k] their log-probabilities. */
  logProbs: Float32Array;
  /** [rows, p] log Σ exp(logits / temperature) over the tokens not excluded. */
  logSumExp: Float32Array;
  /**
   * [rows, p] entropy −Σ p·log p (Dream's negative-entropy confidence puts 1e-10 inside the log:
   * a difference below V·1e-10).
   */
  entropy: Float32Array;
  /** [rows, p] log-probability of each scoreTokens entry (when asked for). */
  scoreLogProbs?: Float32Array;
}

export interface ForwardResult {
  /**
   * [rows, p, vocabSize]; logits at index i are the model's distribution of token i. Empty
   * (length 0) when the request set `logits: false`.
   */
  logits: Float32Array;
  /** p: the number of positions per row that logits and stats hold. */
  positions: number;
  kv?: KvCache;
  stats?: StepStats;
  /** Milliseconds spent inside the runtime's run call (engines that have one; for benchmarks). */
  engineMs?: number;
}

export interface LanguageModel {
  readonly config: ModelConfig;
  forward(request: ForwardRequest): Promise<ForwardResult>;
  /** Releases native resources (sessions). Safe to call twice. */
  dispose(): Promise<void>;
}
