// Validation and defaults of a ForwardRequest, shared by every LanguageModel implementation so
// that all accept and reject exactly the same requests.

import type { ModelConfig } from "./config.js";
import type { ForwardRequest64 } from "./reference.js";
import type { StatsRequest } from "./types.js";

/** A ForwardRequest that does not fit the model; `field` names the offending request field. */
export class ForwardRequestError extends Error {
  override name = "ForwardRequestError";
  constructor(
    readonly field: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${field}: ${message}`, options);
  }
}

/** A weight missing from the map or of the wrong size; `tensor` names it. */
export class WeightsError extends Error {
  override name = "WeightsError";
  constructor(
    readonly tensor: string,
    message: string,
  ) {
    super(`${tensor}: ${message}`);
  }
}

/** A ForwardRequest checked against a config, with its defaults filled in. */
export interface ResolvedRequest {
  rows: number;
  /** Fresh positions per row. */
  n: number;
  contextLength: number;
  /** [rows, n] absolute positions. */
  positions: Int32Array;
  /** [rows, n, contextLength + n] the caller's additive bias; null: the config's mask applies. */
  attentionBias: Float32Array | null;
  /** [rows, p] indices into the fresh positions. */
  logitsAt: Int32Array;
  p: number;
}

/**
 * Validates a request against a config (array lengths, token ids, positions, logit indices, the
 * context's rows, layers and sizes, the bias) and fills in the defaults documented on
 * ForwardRequest. Throws ForwardRequestError naming the field. Shared with the ONNX engine so
 * that both accept and reject exactly the same requests. `contextArrays` false leaves the
 * context's arrays unread (a caller that made them, and knows their sizes).
 */
export function resolveForwardRequest(
  config: ModelConfig,
  request: ForwardRequest64,
  contextArrays = true,
): ResolvedRequest {
  const { rows, tokens, context } = request;
  if (!Number.isInteger(rows) || rows < 1) {
    throw new ForwardRequestError("rows", `expected a positive integer, got ${rows}`);
  }
  if (tokens.length === 0 || tokens.length % rows !== 0) {
    throw new ForwardRequestError(
      "tokens",
      `length ${tokens.length} is not a positive multiple of rows (${rows})`,
    );
  }
  const n = tokens.length / rows;
  for (let i = 0; i < tokens.length; i++) {
    if (tokens[i] < 0 || tokens[i] >= config.vocabSize) {
      throw new ForwardRequestError(
        "tokens",
        `token id ${tokens[i]} at index ${i} is outside the vocabulary (${config.vocabSize})`,
      );
    }
  }

  let contextLength = 0;
  if (context !== undefined) {
    contextLength = context.length;
    if (context.rows !== rows) {
      throw new ForwardRequestError(
        "context.rows",
        `context has ${context.rows} rows, request has ${rows}`,
      );
    }
    if (!Number.isInteger(contextLength) || contextLength < 0) {
      throw new ForwardRequestError(
        "context.length",
        `expected a non-negative integer, got ${contextLength}`,
      );
    }
    const size = rows * config.numKvHeads * contextLength * config.headDim;
    for (const field of contextArrays ? (["keys", "values"] as const) : []) {
      const layers = context[field];
      if (layers.length !== config.numLayers) {
        throw new ForwardRequestError(
          `context.${field}`,
          `has ${layers.length} layers, the model has ${config.numLayers}`,
        );
      }
      layers.forEach((a, l) => {
        if (a.length !== size) {
          throw new ForwardRequestError(
            `context.${field}[${l}]`,
            `length ${a.length}, expected rows × numKvHeads × length × headDim = ${size}`,
          );
        }
      });
    }
  }

  let positions = request.positions;
  if (positions === undefined) {
    positions = new Int32Array(rows * n);
    for (let r = 0; r < rows; r++) {
      for (let i = 0; i < n; i++) positions[r * n + i] = contextLength + i;
    }
  } else if (positions.length !== rows * n) {
    throw new ForwardRequestError(
      "positions",
      `length ${positions.length}, expected rows × n = ${rows * n}`,
    );
  }
  for (let i = 0; i < positions.length; i++) {
    if (positions[i] < 0 || positions[i] >= config.maxPositions) {
      throw new ForwardRequestError(
        "positions",
        `position ${positions[i]} at index ${i} is outside [0, ${config.maxPositions})` +
          (request.positions === undefined ? " (default: context length + index)" : ""),
      );
    }
  }

  const keyCount = contextLength + n;
  const attentionBias = request.attentionBias ?? null;
  if (attentionBias !== null) {
    if (attentionBias.length !== rows * n * keyCount) {
      throw new ForwardRequestError(
        "attentionBias",
        `length ${attentionBias.length}, expected rows × n × (context + n) = ${rows * n * keyCount}`,
      );
    }
    for (let i = 0; i < attentionBias.length; i++) {
      if (Number.isNaN(attentionBias[i]) || attentionBias[i] === Number.POSITIVE_INFINITY) {
        throw new ForwardRequestError(
          "attentionBias",
          `value ${attentionBias[i]} at index ${i}: expected a number or -Infinity`,
        );
      }
    }
  }

  let logitsAt = request.logitsAt;
  if (logitsAt === undefined) {
    logitsAt = new Int32Array(rows * n);
    for (let r = 0; r < rows; r++) for (let i = 0; i < n; i++) logitsAt[r * n + i] = i;
  } else if (logitsAt.length % rows !== 0) {
    throw new ForwardRequestError(
      "logitsAt",
      `length ${logitsAt.length} is not a multiple of rows (${rows})`,
    );
  }
  for (let i = 0; i < logitsAt.length; i++) {
    if (logitsAt[i] < 0 || logitsAt[i] >= n) {
      throw new ForwardRequestError(
        "logitsAt",
        `index ${logitsAt[i]} at ${i} is outside the ${n} fresh positions`,
      );
    }
  }
  const p = logitsAt.length / rows;
  if (request.stats !== undefined) checkStats(config, request.stats, rows * p);
  return {
    rows,
    n,
    contextLength,
    positions,
    attentionBias,
    logitsAt,
    p,
  };
}

function checkStats(config: ModelConfig, stats: StatsRequest, rowCount: number): void {
  const { topK, exclude, scoreTokens, temperature } = stats;
  if (temperature !== undefined && !(temperature > 0 && temperature < Infinity)) {
    throw new ForwardRequestError("stats.temperature", `expected a number > 0, got ${temperature}`);
  }
  if (!Number.isInteger(topK) || topK < 1 || topK > config.vocabSize) {
    throw new ForwardRequestError(
      "stats.topK",
      `expected an integer in [1, ${config.vocabSize}], got ${topK}`,
    );
  }
  for (const [field, ids] of [
    ["stats.exclude", exclude],
    ["stats.scoreTokens", scoreTokens],
  ] as const) {
    if (ids === undefined) continue;
    for (let i = 0; i < ids.length; i++) {
      if (!(ids[i] >= 0 && ids[i] < config.vocabSize)) {
        throw new ForwardRequestError(
          field,
          `token id ${ids[i]} at index ${i} is outside the vocabulary (${config.vocabSize})`,
        );
      }
    }
  }
  if (scoreTokens !== undefined && scoreTokens.length !== rowCount) {
    throw new ForwardRequestError(
      "stats.scoreTokens",
      `length ${scoreTokens.length}, expected rows × positions = ${rowCount}`,
    );
  }
}

/**
 * The attention bias a request gets when it brings none, [rows, n, contextLength + n], context
 * columns first; null for "full" (every key visible). "causal": key position ≤ query position;
 * "block_causal": ⌊key / blockSize⌋ ≤ ⌊query / blockSize⌋. Context key j is taken to sit at
 * absolute position j (a prefix cache); a cache of other positions needs an explicit bias.
 */
export function defaultAttentionBias(
  config: ModelConfig,
  rows: number,
  n: number,
  contextLength: number,
  positions: Int32Array,
): Float32Array | null {
  if (config.attention === "full") return null;
  const keyCount = contextLength + n;
  const bias = new Float32Array(rows * n * keyCount); // [R, n, L]
  const block = config.attention === "block_causal" ? config.blockSize : 1;
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < n; i++) {
      const query = Math.floor(positions[r * n + i] / block);
      for (let j = 0; j < keyCount; j++) {
        const keyPosition = j < contextLength ? j : positions[r * n + j - contextLength];
        if (Math.floor(keyPosition / block) > query) {
          bias[(r * n + i) * keyCount + j] = Number.NEGATIVE_INFINITY;
        }
      }
    }
  }
  return bias;
}
