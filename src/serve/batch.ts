// Continuous batching for concurrent decodes: a LanguageModel that queues the forward calls of
// every run going on and, whenever the engine is free, runs the compatible ones — equal fresh
// length n, equal cached context length, the same outputs asked for (K/V, logits, statistics
// of the same k and excluded ids) — as rows of ONE forward call,
// then hands each caller its own rows back. The denoise loop and the AR decoder do not change:
// each still awaits its own forward(). Calls with different logit counts share a call too (the
// shorter lists are padded with a repeat and cut off again).

import { resolveForwardRequest } from "../model/request.js";
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
      split(out, group, merged, this.config.vocabSize);
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
  return `${n}/${r.context?.length ?? 0}/${r.returnKv === true}/${r.logits !== false}/${stats}`;
}

interface Merged {
  request: ForwardRequest;
  /** Logit positions per row of the merged call (the longest list). */
  p: number;
  /** Each request's own logit positions per row. */
  ps: number[];
}

/** Concatenates the group's requests along rows, every default made explicit. */
function merge(model: LanguageModel, group: Pending[]): Merged {
  const resolved = group.map((g) => resolveForwardRequest(model.config, g.request));
  const rows = resolved.reduce((s, r) => s + r.rows, 0);
  const { n, contextLength } = resolved[0];
  const total = contextLength + n;
  const p = Math.max(...resolved.map((r) => r.p));
  const tokens = new Int32Array(rows * n);
  const positions = new Int32Array(rows * n);
  const logitsAt = new Int32Array(rows * p);
  const stats = group[0].request.stats;
  const scoreTokens = stats?.scoreTokens === undefined ? undefined : new Int32Array(rows * p);
  const withBias = resolved.some((r) => r.attentionBias !== null);
  const bias = withBias ? new Float32Array(rows * n * total) : undefined;
  let row = 0;
  group.forEach((g, k) => {
    const r = resolved[k];
    tokens.set(g.request.tokens, row * n);
    positions.set(r.positions, row * n);
    if (bias !== undefined && r.attentionBias !== null) bias.set(r.attentionBias, row * n * total);
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
  if (contextLength > 0) request.context = mergeKv(group.map((g) => g.request.context!));
  return { request, p, ps: resolved.map((r) => r.p) };
}

/** K/V caches stacked along rows ([rows, heads, length, headDim] per layer: rows are contiguous). */
function mergeKv(caches: KvCache[]): KvCache {
  const layers = caches[0].keys.length;
  const stack = (pick: (c: KvCache) => Float32Array[], l: number) => {
    const size = caches.reduce((s, c) => s + pick(c)[l].length, 0);
    const out = new Float32Array(size);
    let at = 0;
    for (const c of caches) {
      out.set(pick(c)[l], at);
      at += pick(c)[l].length;
    }
    return out;
  };
  const merged: KvCache = {
    rows: caches.reduce((s, c) => s + c.rows, 0),
    length: caches[0].length,
    keys: [],
    values: [],
  };
  for (let l = 0; l < layers; l++) {
    merged.keys.push(stack((c) => c.keys, l));
    merged.values.push(stack((c) => c.values, l));
  }
  return merged;
}

/** Hands each request its rows of the merged result. */
function split(out: ForwardResult, group: Pending[], merged: Merged, V: number): void {
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
      const perRow = (a: Float32Array) => a.length / out.kv!.rows;
      const cut = (a: Float32Array) => a.slice(row * perRow(a), (row + rows) * perRow(a));
      result.kv = {
        rows,
        length: out.kv.length,
        keys: out.kv.keys.map(cut),
        values: out.kv.values.map(cut),
      };
    }
    row += rows;
    g.resolve(result);
  });
}
