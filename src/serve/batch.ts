// Continuous batching for concurrent decodes: a LanguageModel that queues the forward calls of
// every run going on and, whenever the engine is free, runs the compatible ones — equal fresh
// length n, the same outputs asked for (K/V, logits, statistics of the same k and excluded ids)
// — as rows of ONE forward call, then hands each caller its own rows back. The denoise loop and
// the AR decoder do not change: each still awaits its own forward(). Calls with different logit
// counts share a call too (the shorter lists are padded with a repeat and cut off again), and so
// do calls with cached contexts of different lengths (AR decodes of different prompts, dual-cache
// blocks at different places): each context is padded to the longest, the padding hidden from
// every query by the attention bias, and each caller handed only its own positions' K/V.
//
// Between calls the batched K/V is kept, not stacked again: each caller gets its K/V as a view of
// the call's output (src/diffusion/kv.ts KvView), and a stacked context is remembered for the
// contexts it holds. When the next call's contexts all lie in one such cache, row for row, that
// cache is fed as it is: the AR decoders' caches grow in the engine's own output, and the dual
// cache of Fast-dLLM blocks decoded together stays one array for the whole block. Positions of the
// cache that are not a row's own (padding, the fresh block a dual cache leaves out) are hidden
// from it by the attention bias. Any other set of contexts is stacked anew.
//
// Which call runs next: the shape with the most rows queued, on a tie the shape just run, so that
// decodes that fell out of step (one at a block's first pass while the others still run its last
// step) meet again; a request passed over `patience` times (default once) goes next whatever its
// shape — a decode kept waiting idles, and what it would wait for, company in a full-canvas pass
// or an AR prompt's pass, saves little: those passes cost about the same per row alone. A free
// engine with fewer rows queued than its last calls had waits up to `gatherMs` for the rest
// (decodes whose clients are between two requests), so that they start in step.

import { composeRanges, copyKv, type KvRanges, KvView } from "../diffusion/kv.js";
import type { ModelConfig } from "../model/config.js";
import { defaultAttentionBias, resolveForwardRequest } from "../model/request.js";
import type { ForwardRequest, ForwardResult, KvCache, LanguageModel } from "../model/types.js";

interface Pending {
  request: ForwardRequest;
  /** What must be equal for requests to share an engine call (keyOf). */
  key: string;
  /** Engine calls made while it waited. */
  waited: number;
  resolve(result: ForwardResult): void;
  reject(error: unknown): void;
}

export interface BatchStats {
  /** Forward calls asked for. */
  calls: number;
  /** Engine calls made for them. */
  batches: number;
  /** Batched calls with a context whose contexts had to be stacked anew (the others fed a kept cache). */
  stacked: number;
}

/** Where a context's positions lie in a batched cache: its rows from `row`, at `columns`. */
interface Placement {
  source: KvCache;
  row: number;
  columns: KvRanges;
}

export class BatchingModel implements LanguageModel {
  private queue: Pending[] = [];
  private running = false;
  /** The stacked cache each context was last put in. */
  private readonly placed = new WeakMap<KvCache, Placement>();
  readonly stats: BatchStats = { calls: 0, batches: 0, stacked: 0 };

  /** Rows of the last two engine calls, the last first. */
  private lastRows = [0, 0];
  /** The shape (keyOf) of the last engine call. */
  private lastKey = "";
  /** The gathering wait in progress, if any. */
  private gathering: ReturnType<typeof setTimeout> | undefined;

  /**
   * `maxRows`: rows of one engine call at most; `patience`: engine calls a request may be passed
   * over for a shape with more rows queued; `gatherMs`: how long the engine, when free, waits
   * for the rows of its last calls to come back (0: never waits).
   */
  constructor(
    readonly inner: LanguageModel,
    private readonly maxRows = 16,
    private readonly patience = 1,
    private readonly gatherMs = 0,
  ) {}

  get config() {
    return this.inner.config;
  }

  forward(request: ForwardRequest): Promise<ForwardResult> {
    this.stats.calls++;
    return new Promise((resolve, reject) => {
      this.queue.push({ request, key: keyOf(request), waited: 0, resolve, reject });
      if (this.gathering !== undefined && !this.short()) {
        clearTimeout(this.gathering);
        this.gathering = undefined;
        setImmediate(() => this.run());
      }
      this.pump();
    });
  }

  /**
   * Starts the next engine call when none is running: after the current turn of the event loop,
   * so that calls made together share it, and when fewer rows are queued than the last calls
   * had (decodes between two requests of their clients), after up to `gatherMs` more for them.
   */
  private pump(): void {
    if (this.running || this.queue.length === 0) return;
    this.running = true;
    setImmediate(() => {
      if (this.gatherMs > 0 && this.short()) {
        this.gathering = setTimeout(() => {
          this.gathering = undefined;
          this.run();
        }, this.gatherMs);
      } else {
        this.run();
      }
    });
  }

  private run(): void {
    this.runNext().finally(() => {
      this.running = false;
      this.pump();
    });
  }

  /**
   * Whether fewer rows are queued than the larger of the last two calls had (one call cut short
   * by the wait does not lower the mark).
   */
  private short(): boolean {
    const rows = this.queue.reduce((s, p) => s + p.request.rows, 0);
    return rows < Math.min(this.maxRows, Math.max(...this.lastRows));
  }

  /** Takes the next engine call's requests off the queue. */
  private take(): Pending[] {
    let { key } = this.queue[0];
    if (this.queue[0].waited < this.patience) {
      // the shape with the most rows queued; of equal ones the shape of the last call (decodes
      // in step call it again), else the first to reach that count
      const rows = new Map<string, number>();
      let most = 0;
      for (const p of this.queue) {
        const r = Math.min(this.maxRows, (rows.get(p.key) ?? 0) + p.request.rows);
        rows.set(p.key, r);
        if (r > most || (r === most && p.key === this.lastKey)) {
          most = r;
          key = p.key;
        }
      }
    }
    this.lastKey = key;
    const group: Pending[] = [];
    const rest: Pending[] = [];
    let rows = 0;
    for (const p of this.queue) {
      if (p.key === key && (group.length === 0 || rows + p.request.rows <= this.maxRows)) {
        group.push(p);
        rows += p.request.rows;
      } else {
        p.waited++;
        rest.push(p);
      }
    }
    this.queue = rest;
    return group;
  }

  /** One engine call for the requests `take` picks. */
  private async runNext(): Promise<void> {
    const group = this.take();
    this.stats.batches++;
    this.lastRows = [group.reduce((s, p) => s + p.request.rows, 0), this.lastRows[0]];
    if (group.length === 1) {
      await this.inner.forward(group[0].request).then(group[0].resolve, group[0].reject);
      return;
    }
    let merged: Merged;
    try {
      merged = this.merge(group);
    } catch {
      // a request that does not resolve: each runs alone and gets its own error
      for (const p of group) await this.inner.forward(p.request).then(p.resolve, p.reject);
      return;
    }
    try {
      const out = await this.inner.forward(merged.request);
      split(out, merged, this.config);
    } catch (error) {
      for (const p of group) p.reject(error);
    }
  }

  /** Concatenates the group's requests along rows, every default made explicit. */
  private merge(unordered: Pending[]): Merged {
    const { config } = this;
    const resolvedOf = new Map(
      unordered.map((g) => {
        // a view's arrays are read only when copied out: its sizes are right by construction
        const view = g.request.context instanceof KvView;
        return [g, resolveForwardRequest(config, g.request, !view)] as const;
      }),
    );
    const cache =
      unordered[0].request.context === undefined ? undefined : this.placeContexts(unordered);
    const group = cache?.group ?? unordered;
    const resolved = group.map((g) => resolvedOf.get(g)!);
    const width = cache?.source.length ?? 0;
    const columns = cache?.columns ?? group.map(() => []);
    const rows = resolved.reduce((s, r) => s + r.rows, 0);
    const { n } = resolved[0];
    const total = width + n;
    const p = Math.max(...resolved.map((r) => r.p));
    const tokens = new Int32Array(rows * n);
    const positions = new Int32Array(rows * n);
    const logitsAt = new Int32Array(rows * p);
    const stats = group[0].request.stats;
    const scoreTokens = stats?.scoreTokens === undefined ? undefined : new Int32Array(rows * p);
    const withBias =
      resolved.some((r) => r.attentionBias !== null) ||
      columns.some((c) => c.length !== 1 || c[0][0] !== 0 || c[0][1] !== width);
    const bias = withBias ? new Float32Array(rows * n * total) : undefined;
    let row = 0;
    group.forEach((g, k) => {
      const r = resolved[k];
      tokens.set(g.request.tokens, row * n);
      positions.set(r.positions, row * n);
      if (bias !== undefined) {
        const own =
          r.attentionBias ?? defaultAttentionBias(config, r.rows, n, r.contextLength, r.positions);
        spreadBias(
          own,
          bias.subarray(row * n * total),
          r.rows * n,
          r.contextLength,
          columns[k],
          width,
          n,
        );
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
    if (cache !== undefined) request.context = cache.source;
    if (bias !== undefined) request.attentionBias = bias;
    if (group[0].request.returnKv === true) request.returnKv = true;
    if (group[0].request.logits === false) request.logits = false;
    if (stats !== undefined) {
      request.stats = { topK: stats.topK };
      if (stats.exclude !== undefined) request.stats.exclude = stats.exclude;
      if (stats.temperature !== undefined) request.stats.temperature = stats.temperature;
      if (scoreTokens !== undefined) request.stats.scoreTokens = scoreTokens;
    }
    return { request, group, p, ps: resolved.map((r) => r.p), columns, width };
  }

  /**
   * One cache holding every context of the group, and the group in its row order: the cache the
   * contexts already lie in when they fill it row for row, else a new stack of them (each padded
   * to the longest).
   */
  private placeContexts(group: Pending[]): {
    source: KvCache;
    group: Pending[];
    columns: KvRanges[];
  } {
    const contexts = group.map((g) => g.request.context!);
    const places = contexts.map((c) => this.placed.get(c) ?? (c instanceof KvView ? c : undefined));
    const source = places[0]?.source;
    if (source !== undefined && places.every((at) => at?.source === source)) {
      const order = group.map((_, k) => k).sort((a, b) => places[a]!.row - places[b]!.row);
      let row = 0;
      for (const k of order) {
        if (places[k]!.row !== row) break;
        row += contexts[k].rows;
      }
      if (row === source.rows) {
        return {
          source,
          group: order.map((k) => group[k]),
          columns: order.map((k) => places[k]!.columns),
        };
      }
    }
    this.stats.stacked++;
    const { config } = this;
    const width = Math.max(...contexts.map((c) => c.length));
    const rows = contexts.reduce((s, c) => s + c.rows, 0);
    const alloc = () => new Float32Array(rows * config.numKvHeads * width * config.headDim);
    const stack: KvCache = { rows, length: width, keys: [], values: [] };
    for (let l = 0; l < config.numLayers; l++) {
      stack.keys.push(alloc());
      stack.values.push(alloc());
    }
    const columns: KvRanges[] = [];
    let row = 0;
    contexts.forEach((c, k) => {
      // a view is copied from its source (never cut out first)
      const at = places[k];
      if (at === undefined) copyKv(config, c, [0, c.rows], [[0, c.length]], stack, row);
      else copyKv(config, at.source, [at.row, c.rows], at.columns, stack, row);
      const own: KvRanges = [[0, c.length]];
      this.placed.set(c, { source: stack, row, columns: own });
      columns.push(own);
      row += c.rows;
    });
    return { source: stack, group, columns };
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
  /** The requests, in the merged call's row order. */
  group: Pending[];
  /** Logit positions per row of the merged call (the longest list). */
  p: number;
  /** Each request's own logit positions per row. */
  ps: number[];
  /** Where each request's context lies in the merged call's context. */
  columns: KvRanges[];
  /** The merged call's context length. */
  width: number;
}

/**
 * Writes a request's bias [queries, len + n] (null: attend everywhere) into `out` [queries,
 * width + n]: its context columns where its context lies (`columns`), −∞ over the context's other
 * columns, then its fresh columns.
 */
function spreadBias(
  own: Float32Array | null,
  out: Float32Array,
  queries: number,
  len: number,
  columns: KvRanges,
  width: number,
  n: number,
): void {
  for (let q = 0; q < queries; q++) {
    const to = q * (width + n);
    out.fill(Number.NEGATIVE_INFINITY, to, to + width);
    let from = q * (len + n);
    for (const [a, b] of columns) {
      if (own === null) out.fill(0, to + a, to + b);
      else out.set(own.subarray(from, from + b - a), to + a);
      from += b - a;
    }
    if (own !== null) out.set(own.subarray(from, from + n), to + width);
  }
}

/** Hands each request its rows of the merged result (its K/V as a view of the call's). */
function split(out: ForwardResult, merged: Merged, config: ModelConfig): void {
  const V = config.vocabSize;
  const { p } = merged;
  let row = 0;
  merged.group.forEach((g, k) => {
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
      const fresh: KvRanges = [[merged.width, out.kv.length]];
      const columns = composeRanges([[0, out.kv.length]], [...merged.columns[k], ...fresh]);
      result.kv = new KvView(config, out.kv, row, rows, columns);
    }
    row += rows;
    g.resolve(result);
  });
}
