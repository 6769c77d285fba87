// Cutting a K/V cache down to some of its positions: the prefix a Fast-dLLM prefix cache keeps,
// the prefix and suffix of its dual cache, the finished blocks of block diffusion, the tokens an
// AR decoder has really seen.

import type { ModelConfig } from "../model/config.js";
import type { KvCache } from "../model/types.js";

/**
 * The positions [start, end) of each range, in order, of every row, layer, keys and values.
 * Keys and values are [rows, numKvHeads, length, headDim] per layer.
 */
export function sliceKv(
  config: ModelConfig,
  kv: KvCache,
  ranges: readonly (readonly [number, number])[],
): KvCache {
  const { numKvHeads: heads, headDim: d } = config;
  const kept = ranges.filter(([a, b]) => b > a);
  let length = 0;
  for (const [a, b] of kept) {
    if (a < 0 || b > kv.length) {
      throw new RangeError(`sliceKv: range [${a}, ${b}) is outside the cache of ${kv.length}`);
    }
    length += b - a;
  }
  const cut = (layer: Float32Array): Float32Array => {
    const out = new Float32Array(kv.rows * heads * length * d); // [rows, heads, length, d]
    let o = 0;
    for (let rh = 0; rh < kv.rows * heads; rh++) {
      const from = rh * kv.length * d; // first position of (row, head)
      for (const [a, b] of kept) {
        out.set(layer.subarray(from + a * d, from + b * d), o);
        o += (b - a) * d;
      }
    }
    return out;
  };
  return { rows: kv.rows, length, keys: kv.keys.map(cut), values: kv.values.map(cut) };
}
