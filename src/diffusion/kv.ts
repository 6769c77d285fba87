// Cutting a K/V cache down to some of its positions: the prefix a Fast-dLLM prefix cache keeps,
// the prefix and suffix of its dual cache, the finished blocks of block diffusion, the tokens an
// AR decoder has really seen, a caller's rows of a batched call.

import type { ModelConfig } from "../model/config.js";
import type { KvCache } from "../model/types.js";

/** Positions [start, end) of a cache, in order. */
export type KvRanges = readonly (readonly [number, number])[];

/**
 * The positions [start, end) of each range, in order, of every row (or of `rows`: [first,
 * count]), layer, keys and values: a copy, or of a KvView a view of the same source. Keys and
 * values are [rows, numKvHeads, length, headDim] per layer.
 */
export function sliceKv(
  config: ModelConfig,
  kv: KvCache,
  ranges: KvRanges,
  rows: readonly [number, number] = [0, kv.rows],
): KvCache {
  const length = rangesLength(ranges, kv.length);
  if (kv instanceof KvView) {
    // a view of a view: the same source, no copy
    return new KvView(
      config,
      kv.source,
      kv.row + rows[0],
      rows[1],
      composeRanges(kv.columns, ranges),
    );
  }
  const { numKvHeads: heads, headDim: d } = config;
  const alloc = () => new Float32Array(rows[1] * heads * length * d);
  const out: KvCache = {
    rows: rows[1],
    length,
    keys: kv.keys.map(alloc),
    values: kv.values.map(alloc),
  };
  copyKv(config, kv, rows, ranges, out, 0);
  return out;
}

/** The positions the ranges hold; a RangeError for a range outside a cache of `length`. */
function rangesLength(ranges: KvRanges, length: number): number {
  let total = 0;
  for (const [a, b] of ranges) {
    if (b <= a) continue;
    if (a < 0 || b > length) {
      throw new RangeError(`sliceKv: range [${a}, ${b}) is outside the cache of ${length}`);
    }
    total += b - a;
  }
  return total;
}

/**
 * Copies the positions of `ranges` of rows [first, first + count) of `kv` into `out`, from its
 * row `to` and its position 0 on (what follows them in each row is left as it is).
 */
export function copyKv(
  config: ModelConfig,
  kv: KvCache,
  [first, count]: readonly [number, number],
  ranges: KvRanges,
  out: KvCache,
  to: number,
): void {
  const { numKvHeads: heads, headDim: d } = config;
  rangesLength(ranges, kv.length);
  const copy = (from: Float32Array, into: Float32Array) => {
    for (let rh = 0; rh < count * heads; rh++) {
      let o = (to * heads + rh) * out.length * d; // first position of (row, head) in out
      const at = (first * heads + rh) * kv.length * d; // and in kv
      for (const [a, b] of ranges) {
        if (b <= a) continue;
        into.set(from.subarray(at + a * d, at + b * d), o);
        o += (b - a) * d;
      }
    }
  };
  for (let l = 0; l < kv.keys.length; l++) {
    copy(kv.keys[l], out.keys[l]);
    copy(kv.values[l], out.values[l]);
  }
}

/**
 * Some rows and positions of another cache, copied out only when its arrays are read: rows
 * [row, row + rows) of `source`, its positions at `columns` of it, in order. A batched call hands
 * each caller its rows this way; a caller that passes the view back as its context lets the
 * batcher feed the source as it is. Sources are never written after they are made.
 */
export class KvView implements KvCache {
  readonly length: number;
  private copied: KvCache | undefined;

  constructor(
    private readonly config: ModelConfig,
    readonly source: KvCache,
    readonly row: number,
    readonly rows: number,
    readonly columns: KvRanges,
  ) {
    this.length = rangesLength(columns, source.length);
  }

  get keys(): Float32Array[] {
    return this.copy().keys;
  }

  get values(): Float32Array[] {
    return this.copy().values;
  }

  /** Whether the arrays were read, and so copied out of the source. */
  get copiedOut(): boolean {
    return this.copied !== undefined;
  }

  private copy(): KvCache {
    this.copied ??= sliceKv(this.config, this.source, this.columns, [this.row, this.rows]);
    return this.copied;
  }
}

/** The source columns that positions `ranges` of a view with `columns` lie at (adjacent ones joined). */
export function composeRanges(columns: KvRanges, ranges: KvRanges): [number, number][] {
  const out: [number, number][] = [];
  const push = (a: number, b: number) => {
    const last = out[out.length - 1];
    if (last !== undefined && last[1] === a) last[1] = b;
    else out.push([a, b]);
  };
  for (const [a, b] of ranges) {
    let offset = 0; // view position of the column range's start
    for (const [c, e] of columns) {
      const from = Math.max(a, offset);
      const to = Math.min(b, offset + e - c);
      if (to > from) push(c + from - offset, c + to - offset);
      offset += e - c;
    }
  }
  return out;
}
