// `unmask bench rows`: the layouts, the line fit and the FLOP count it reads its times against,
// and the command's result (its shape, not its timings).

import assert from "node:assert/strict";
import { test } from "node:test";
import { fitLine, rowsLayout } from "../src/bench/rows.js";
import { stepFlops } from "../src/bench/sizes.js";
import { parseModelConfig } from "../src/model/config.js";
import { cli } from "./cli-helpers.js";

test("rowsLayout: one canvas up to 64 rows, else the fewest equal canvases of at most 64", () => {
  assert.deepEqual(rowsLayout(1), [1, 1]);
  assert.deepEqual(rowsLayout(64), [1, 64]);
  assert.deepEqual(rowsLayout(128), [2, 64]);
  assert.deepEqual(rowsLayout(440), [8, 55]);
  assert.deepEqual(rowsLayout(65), [5, 13]);
  assert.deepEqual(rowsLayout(67), [67, 1]); // a prime: canvases of one row
  assert.throws(() => rowsLayout(0), /rows: expected a positive integer, got 0/);
  assert.throws(() => rowsLayout(2.5), RangeError);
});

test("fitLine: the least-squares line, exact on points of a line", () => {
  const xs = [2, 4, 8, 16, 32];
  const [a, b] = fitLine(
    xs,
    xs.map((x) => 0.7 + 0.035 * x),
  );
  assert.ok(Math.abs(a - 0.7) < 1e-12 && Math.abs(b - 0.035) < 1e-12);
  // symmetric noise around a line leaves its slope
  const [, slope] = fitLine([1, 1, 3, 3], [1.9, 2.1, 5.9, 6.1]);
  assert.ok(Math.abs(slope - 2) < 1e-12);
});

test("stepFlops: the last layer's queries, attention output and MLP count at the p rows only", () => {
  const config = parseModelConfig({
    model_type: "unmask",
    vocab_size: 10,
    hidden_size: 8,
    num_hidden_layers: 2,
    num_attention_heads: 2,
    num_key_value_heads: 1,
    intermediate_size: 6,
    max_position_embeddings: 64,
  });
  // hand count: h = 8, d = 4, 2 query heads, 1 kv head, MLP 6; q and o 8·8 each, k and v 8·4
  // each, MLP 3·8·6 = 144: 336 weights a layer, 64 of them k and v
  const n = 5;
  const context = 3;
  const p = 2;
  const attention = (q: number) => 4 * q * (context + n) * 2 * 4;
  const full = 2 * n * 336 + attention(n);
  const last = 2 * n * 64 + 2 * p * (336 - 64) + attention(p);
  assert.equal(stepFlops(config, n, context, p), full + last + 2 * p * 8 * 10);
  // logits everywhere: every layer counts every row
  assert.equal(stepFlops(config, n, context, n), 2 * full + 2 * n * 8 * 10);
});

test("bench rows --json: every case timed against its FLOPs, a fit per series, the MatMul peak", async () => {
  const r = await cli(["bench", "rows", "--rows", "1,2,4", "--runs", "1", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  const threads = Object.keys(out.matmul_peak_gflops);
  assert.ok(threads.includes("1"));
  for (const t of threads) assert.ok(out.matmul_peak_gflops[t] > 0);
  // per thread count: 1 row (one case per context), 2 and 4 rows (statistics at all rows or one)
  assert.equal(out.points.length, threads.length * (2 + 4 + 4));
  for (const p of out.points) {
    assert.equal(p.rows, p.canvases * p.fresh);
    assert.ok(p.ms > 0 && p.median_ms >= p.ms && p.mflop > 0);
    assert.ok(p.stats_rows === p.rows || p.stats_rows === p.canvases);
  }
  // two points of 2+ rows per series: a line through each
  assert.equal(out.fits.length, threads.length * 4);
  for (const f of out.fits) assert.ok(Number.isFinite(f.fixed_ms) && Number.isFinite(f.per_row_ms));

  const bad = await cli(["bench", "rows", "--rows", "4,x"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--rows: expected positive integers up to 1024, got 4,x/);
});
