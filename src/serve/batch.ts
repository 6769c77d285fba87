// Continuous batching for concurrent decodes: a LanguageModel that queues the forward calls of
// every run going on and, whenever the engine is free, runs the compatible ones — equal fresh
// length n, the same outputs asked for (K/V, logits, statistics of the same k and excluded ids)
// — as rows of ONE forward call, then hands each caller its own rows back. The denoise loop and
// the AR decoder do not change: each still awaits its own forward(). Calls with different logit
// counts share a call too (the shorter lists are padded with a repeat and cut off again), and so
// do calls with cached contexts of different lengths (AR decodes of different prompts, dual-cache
// blocks at different places): each context is padded to the longest, the padding hidden from
// every query by the attention bias, and each caller's K/V cut back to its own length.

import type { ModelConfig } from "../model/config.js";
import { defaultAttentionBias, resolveForwardRequest } from "../model/request.js";
import type { ForwardRequest, ForwardResult, KvCache, LanguageModel } from "../model/types.js";

interface Pending {
  request: ForwardRequest;
  resolve(result: ForwardResult): void;
  reject(error: unknown): void;
}

export interface BatchStats {
  /** Forward calls asked for. */
  calls: number;
  /** Engine calls made for them. */
  batches: number;
}

export class BatchingModel implements LanguageModel {
  private queue: Pending[] = [];
  private running = false;
  readonly stats: BatchStats = { calls: 0, batches: 0 };

  /** `maxRows`: rows of one engine call at most. */
  constructor(
    readonly inner: LanguageModel,
    private readonly maxRows = 16,
  ) {}

  get config() {
    return this.inner.config;
  }

  forward(request: ForwardRequest): Promise<ForwardResult> {
    this.stats.calls++;
    return new Promise((resolve, reject) => {
      this.queue.push({ request, resolve, reject });
      this.pump();
    });
  }

  /** Starts the next engine call when none is running (after the current turn of the event loop, so that calls made together share it). */
  private pump(): void {
    if (this.running || this.queue.length === 0) return;
    this.running = true;
    setImmediate(() => {
      this.runNext().finally(() => {
        this.running = false;
        this.pump();
      });
    });
  }

  /** One engine call for the first queued request and every compatible one behind it. */
  private async runNext(): Promise<void> {
    const first = this.queue[0];
    const key = keyOf(first.request);
    const group: Pending[] = [];
    let rows = 0;
    const rest: Pending[] = [];
    for (const p of this.queue) {
      if (
        keyOf(p.request) === key &&
        (group.length === 0 || rows + p.request.rows <= this.maxRows)
      ) {
        group.push(p);
        rows += p.request.rows;
      } else {
        rest.push(p);
      }
    }
    this.queue = rest;
    this.stats.batches++;
    if (group.length === 1) {
      await this.inner.forward(first.request).then(first.resolve, first.reject);
      return;
    }
    let merged: Merged;
    try {
      merged = merge(this.inner, group);
    } catch {
      // a request that does not resolve: each runs alone and gets its own error
      for (const p of group) await this.inner.forward(p.request).then(p.resolve, p.reject);
      return;
    }
    try {
      const out = await this.inner.forward(merged.request);
      split(out, group, merged, this.config);
    } catch (error) {
      for (const p of group) p.reject(error);
    }
  }

  dispose(): Promise<void> {
    return this.inner.dispose();
  }
}

/** What must be equal for requests to share an engine call. */
function keyOf(r: ForwardRequest): string {
  const n = r.tokens.length / r.rows;
  const s = r.stats;
  const stats =
    s === undefined
      ? "-"
      : `${s.topK}:${Array.from(s.exclude ?? []).join(",")}:${s.scoreTokens !== undefined}:${s.temperature ?? 1}`;
  return `${n}/${r.context === undefined ? "-" : "kv"}/${r.returnKv === true}/${r.logits !== false}/${stats}`;
}

interface Merged {
  request: ForwardRequest;
  /** Logit positions per row of the merged call (the longest list). */
  p: number;
  /** Each request's own logit positions per row. */
  ps: number[];
  /** Each request's own context length. */
  contexts: number[];
  /** The merged call's context length (the longest). */
  width: number;
}

/** Concatenates the group's requests along rows, every default made explicit. */
function merge(model: LanguageModel, group: Pending[]): Merged {
  const { config } = model;
  const resolved = group.map((g) => resolveForwardRequest(config, g.request));
  const rows = resolved.reduce((s, r) => s + r.rows, 0);
  const { n } = resolved[0];
  const contexts = resolved.map((r) => r.contextLength);
  const contextLength = Math.max(...contexts);
  const ragged = contexts.some((c) => c !== contextLength);
  const total = contextLength + n;
  const p = Math.max(...resolved.map((r) => r.p));
  const tokens = new Int32Array(rows * n);
  const positions = new Int32Array(rows * n);
  const logitsAt = new Int32Array(rows * p);
  const stats = group[0].request.stats;
  const scoreTokens = stats?.scoreTokens === undefined ? undefined : new Int32Array(rows * p);
  const withBias = ragged || resolved.some((r) => r.attentionBias !== null);
  const bias = withBias ? new Float32Array(rows * n * total) : undefined;
  let row = 0;
  group.forEach((g, k) => {
    const r = resolved[k];
    tokens.set(g.request.tokens, row * n);
    positions.set(r.positions, row * n);
    if (bias !== undefined) {
      const own =
        r.attentionBias ?? defaultAttentionBias(config, r.rows, n, r.contextLength, r.positions);
      padBias(own, bias.subarray(row * n * total), r.rows * n, r.contextLength, contextLength, n);
    }
    for (let j = 0; j < r.rows; j++) {
      for (let q = 0; q < p; q++) {
        // pad a shorter list with its last index (cut off again in split)
        const from = j * r.p + Math.min(q, r.p - 1);
        logitsAt[(row + j) * p + q] = r.logitsAt[from];
        if (scoreTokens !== undefined)
          scoreTokens[(row + j) * p + q] = g.request.stats!.scoreTokens![from];
      }
    }
    row += r.rows;
  });
  const request: ForwardRequest = { tokens, rows, positions, logitsAt };
  if (bias !== undefined) request.attentionBias = bias;
  if (group[0].request.returnKv === true) request.returnKv = true;
  if (group[0].request.logits === false) request.logits = false;
  if (stats !== undefined) {
    request.stats = { topK: stats.topK };
    if (stats.exclude !== undefined) request.stats.exclude = stats.exclude;
    if (stats.temperature !== undefined) request.stats.temperature = stats.temperature;
    if (scoreTokens !== undefined) request.stats.scoreTokens = scoreTokens;
  }
  if (group[0].request.context !== undefined) {
    request.context = mergeKv(
      group.map((g) => g.request.context!),
      contextLength,
      config,
    );
  }
  return { request, p, ps: resolved.map((r) => r.p), contexts, width: contextLength };
}

/**
 * Writes a request's bias [queries, len + n] (null: attend everywhere) into `out` [queries,
 * width + n]: its context columns first, then −∞ over the padding up to `width`, then its fresh
 * columns.
 */
function padBias(
  own: Float32Array | null,
  out: Float32Array,
  queries: number,
  len: number,
  width: number,
  n: number,
): void {
  for (let q = 0; q < queries; q++) {
    const to = q * (width + n);
    if (own !== null) {
      const from = q * (len + n);
      out.set(own.subarray(from, from + len), to);
      out.set(own.subarray(from + len, from + len + n), to + width);
    }
    out.fill(Number.NEGATIVE_INFINITY, to + len, to + width);
  }
}

/**
 * K/V caches stacked along rows, each padded with zeros to `width` positions ([rows, heads,
 * length, headDim] per layer: rows are contiguous, and so are a head's positions).
 */
function mergeKv(caches: KvCache[], width: number, config: ModelConfig): KvCache {
  const heads = config.numKvHeads;
  const d = config.headDim;
  const rows = caches.reduce((s, c) => s + c.rows, 0);
  const stack = (pick: (c: KvCache) => Float32Array[], l: number) => {
    const out = new Float32Array(rows * heads * width * d);
    let slab = 0; // (row, head) pairs written so far
    for (const c of caches) {
      const a = pick(c)[l];
      const run = c.length * d;
      for (let h = 0; h < c.rows * heads; h++, slab++) {
        out.set(a.subarray(h * run, (h + 1) * run), slab * width * d);
      }
    }
    return out;
  };
  const merged: KvCache = { rows, length: width, keys: [], values: [] };
  for (let l = 0; l < config.numLayers; l++) {
    merged.keys.push(stack((c) => c.keys, l));
    merged.values.push(stack((c) => c.values, l));
  }
  return merged;
}

/** Hands each request its rows of the merged result. */
function split(out: ForwardResult, group: Pending[], merged: Merged, config: ModelConfig): void {
  const V = config.vocabSize;
  const { p } = merged;
  let row = 0;
  group.forEach((g, k) => {
    const rows = g.request.rows;
    const own = merged.ps[k];
    // [rows, p, width] → this request's rows and its own positions
    const take = <A extends Float32Array | Int32Array>(a: A, width: number): A => {
      const out = new (a.constructor as new (n: number) => A)(rows * own * width);
      for (let j = 0; j < rows; j++) {
        const from = (row + j) * p * width;
        out.set(a.subarray(from, from + own * width), j * own * width);
      }
      return out;
    };
    const logits = out.logits.length === 0 ? out.logits : take(out.logits, V);
    const result: ForwardResult = { logits, positions: own };
    if (out.stats !== undefined) {
      const { k, temperature } = out.stats;
      result.stats = {
        k,
        temperature,
        ids: take(out.stats.ids, k),
        logProbs: take(out.stats.logProbs, k),
        logSumExp: take(out.stats.logSumExp, 1),
        entropy: take(out.stats.entropy, 1),
      };
      if (out.stats.scoreLogProbs !== undefined) {
        result.stats.scoreLogProbs = take(out.stats.scoreLogProbs, 1);
      }
    }
    if (out.kv !== undefined) {
      // [rows, heads, width + n, d]: this request's rows, its context columns and the fresh ones
      const { length } = out.kv;
      const len = merged.contexts[k];
      const kept = len + length - merged.width;
      const heads = config.numKvHeads;
      const d = config.headDim;
      const cut = (a: Float32Array) => {
        const b = new Float32Array(rows * heads * kept * d);
        for (let h = 0; h < rows * heads; h++) {
          const from = (row * heads + h) * length * d;
          b.set(a.subarray(from, from + len * d), h * kept * d);
          b.set(a.subarray(from + merged.width * d, from + length * d), (h * kept + len) * d);
        }
        return b;
      };
      result.kv = {
        rows,
        length: kept,
        keys: out.kv.keys.map(cut),
        values: out.kv.values.map(cut),
      };
    }
    row += rows;
    g.resolve(result);
  });
}
