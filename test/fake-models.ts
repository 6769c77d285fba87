// Fake LanguageModels whose right answers are known, for the decoder tests. Each one validates
// every request against the interface's contract (src/model/types.ts), records it, and sees the canvas the way a real
// model would: the fresh tokens plus whatever the K/V context holds. Its K/V encodes, for every
// position, [absolute position, token id] (one layer, one head, head dim 2), so a fake can tell
// what a cache really contains — a stale token, a duplicated position, a missing one.

import type { ModelConfig } from "../src/model/config.js";
import { hostStepStats } from "../src/model/stats.js";
import type { ForwardRequest, ForwardResult, KvCache, LanguageModel } from "../src/model/types.js";

export const VOCAB = 32;
export const MASK = 31;
export const EOS = 30;
export const PAD = 29;

export function fakeConfig(overrides: Partial<ModelConfig> = {}): ModelConfig {
  return {
    modelType: "fake",
    vocabSize: VOCAB,
    hiddenSize: 2,
    numLayers: 1,
    numHeads: 1,
    numKvHeads: 1,
    headDim: 2,
    intermediateSize: 2,
    ropeTheta: 10000,
    rmsNormEps: 1e-6,
    maxPositions: 512,
    tieWordEmbeddings: true,
    qkvBias: false,
    attention: "full",
    blockSize: 0,
    logitShift: false,
    maskTokenId: MASK,
    padTokenId: PAD,
    bosTokenId: null,
    eosTokenId: EOS,
    ...overrides,
  };
}

/** What one row of one forward pass could see: absolute position → token. */
export interface View {
  tokens: Map<number, number>;
  row: number;
}

/** Writes the logits of `position` into `out` (zero-filled, length vocabSize). */
export type Predictor = (position: number, view: View, out: Float32Array) => void;

export interface RecordedCall {
  rows: number;
  /** Fresh positions per row. */
  n: number;
  contextLength: number;
  /** Absolute positions of row 0's fresh tokens. */
  positions: number[];
  /** Absolute positions held by row 0's context. */
  contextPositions: number[];
  /** Absolute positions at which logits were returned (row 0). */
  queried: number[];
  returnKv: boolean;
  /** Row 0's view. */
  view: Map<number, number>;
  /** Row 1's view, under guidance. */
  view1?: Map<number, number>;
}

/** The request's shapes checked against the contract, with its defaults filled in. */
function checkRequest(cfg: ModelConfig, request: ForwardRequest) {
  const { rows, tokens, context } = request;
  const fail = (field: string, message: string): never => {
    throw new Error(`fake model: bad request: ${field}: ${message}`);
  };
  if (!Number.isInteger(rows) || rows < 1) fail("rows", String(rows));
  if (tokens.length === 0 || tokens.length % rows !== 0) fail("tokens", `length ${tokens.length}`);
  const n = tokens.length / rows;
  for (const t of tokens) if (t < 0 || t >= cfg.vocabSize) fail("tokens", `id ${t}`);
  const C = context?.length ?? 0;
  if (context !== undefined) {
    if (context.rows !== rows) fail("context.rows", `${context.rows} ≠ ${rows}`);
    const size = rows * cfg.numKvHeads * C * cfg.headDim;
    for (const a of [...context.keys, ...context.values]) {
      if (a.length !== size) fail("context", `layer of ${a.length} values, expected ${size}`);
    }
    if (context.keys.length !== cfg.numLayers) fail("context.keys", "layers");
  }
  const positions =
    request.positions ?? Int32Array.from({ length: rows * n }, (_, i) => C + (i % n));
  if (positions.length !== rows * n) fail("positions", `length ${positions.length}`);
  for (const q of positions) if (q < 0 || q >= cfg.maxPositions) fail("positions", `${q}`);
  const logitsAt = request.logitsAt ?? Int32Array.from({ length: rows * n }, (_, i) => i % n);
  if (logitsAt.length % rows !== 0) fail("logitsAt", `length ${logitsAt.length}`);
  for (const i of logitsAt) if (i < 0 || i >= n) fail("logitsAt", `index ${i}`);
  // a row sees its whole view whatever the bias says (only the one-model speculative decoder
  // sends one); its shape is checked
  const bias = request.attentionBias;
  if (bias !== undefined && bias.length !== rows * n * (C + n)) fail("attentionBias", "shape");
  return { rows, n, contextLength: C, positions, logitsAt, p: logitsAt.length / rows };
}

/** The logit that gives `token` probability p when the other V − 1 logits are 0. */
export function logitFor(p: number, vocab = VOCAB): number {
  return Math.log((p * (vocab - 1)) / (1 - p));
}

export class FakeModel implements LanguageModel {
  readonly calls: RecordedCall[] = [];
  disposed = false;
  constructor(
    readonly config: ModelConfig,
    private readonly predict: Predictor,
  ) {}

  async forward(request: ForwardRequest): Promise<ForwardResult> {
    const cfg = this.config;
    const { rows, n, contextLength: C, positions, logitsAt, p } = checkRequest(cfg, request);
    const V = cfg.vocabSize;
    const views: Map<number, number>[] = [];
    const contextPositions: number[] = [];
    for (let r = 0; r < rows; r++) {
      const view = new Map<number, number>();
      for (let j = 0; j < C; j++) {
        const at = (r * C + j) * 2; // [rows, 1 head, C, 2]
        const position = request.context!.keys[0][at];
        if (view.has(position)) throw new Error(`context holds position ${position} twice`);
        view.set(position, request.context!.keys[0][at + 1]);
        if (r === 0) contextPositions.push(position);
      }
      for (let i = 0; i < n; i++) {
        const position = positions[r * n + i];
        if (view.has(position)) throw new Error(`position ${position} is both cached and fresh`);
        view.set(position, request.tokens[r * n + i]);
      }
      views.push(view);
    }
    const logits = new Float32Array(rows * p * V);
    const queried: number[] = [];
    for (let r = 0; r < rows; r++) {
      for (let s = 0; s < p; s++) {
        const i = logitsAt[r * p + s];
        const position = positions[r * n + i];
        if (r === 0) queried.push(position);
        // under logit shift the engine reads index i from the hidden state at i − 1; the first
        // fresh index has none in the window, so its logits are not the position's prediction
        if (cfg.logitShift && i === 0 && position > 0) continue;
        this.predict(
          position,
          { tokens: views[r], row: r },
          logits.subarray((r * p + s) * V, (r * p + s + 1) * V),
        );
      }
    }
    const call: RecordedCall = {
      rows,
      n,
      contextLength: C,
      positions: Array.from(positions.subarray(0, n)),
      contextPositions,
      queried,
      returnKv: request.returnKv === true,
      view: views[0],
    };
    if (rows > 1) call.view1 = views[1];
    this.calls.push(call);
    const result: ForwardResult = {
      logits: request.logits === false ? new Float32Array(0) : logits,
      positions: p,
    };
    if (request.stats !== undefined)
      result.stats = hostStepStats(logits, rows * p, V, request.stats);
    if (request.returnKv) result.kv = this.kv(request, rows, n, C, positions);
    return result;
  }

  private kv(
    request: ForwardRequest,
    rows: number,
    n: number,
    C: number,
    positions: Int32Array,
  ): KvCache {
    const L = C + n;
    const keys = new Float32Array(rows * L * 2);
    for (let r = 0; r < rows; r++) {
      for (let j = 0; j < C; j++) {
        keys[(r * L + j) * 2] = request.context!.keys[0][(r * C + j) * 2];
        keys[(r * L + j) * 2 + 1] = request.context!.keys[0][(r * C + j) * 2 + 1];
      }
      for (let i = 0; i < n; i++) {
        keys[(r * L + C + i) * 2] = positions[r * n + i];
        keys[(r * L + C + i) * 2 + 1] = request.tokens[r * n + i];
      }
    }
    return { rows, length: L, keys: [keys], values: [keys.slice()] };
  }

  async dispose(): Promise<void> {
    this.disposed = true;
  }
}

/**
 * An oracle: at every position it puts probability `confidence(position, view)` (default 0.99)
 * on `target[position]`, the rest spread evenly.
 */
export function oracle(
  target: ArrayLike<number>,
  confidence: (position: number, view: View) => number = () => 0.99,
): Predictor {
  return (position, view, out) => {
    out[target[position]] = logitFor(confidence(position, view), out.length);
  };
}

/** Prompt tokens followed by `length` masks. */
export function promptCanvas(prompt: readonly number[], length: number): Int32Array {
  const x = new Int32Array(prompt.length + length).fill(MASK);
  x.set(prompt);
  return x;
}

/** A target sequence of ordinary tokens (never mask, EOS or pad): 1 + (i·7 mod 25). */
export function targetSequence(length: number): Int32Array {
  const t = new Int32Array(length);
  for (let i = 0; i < length; i++) t[i] = 1 + ((i * 7) % 25);
  return t;
}

/** Number of masked positions in a view. */
export function maskedIn(view: Map<number, number>): number {
  let m = 0;
  for (const t of view.values()) if (t === MASK) m++;
  return m;
}
