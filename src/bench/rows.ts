// `unmask bench rows`: a forward pass's time against the number of query rows it carries, with
// and without a cached K/V context, with the statistics (LM head) at every row or at one, for 1
// and all intra-op threads, beside its FLOPs and the engine's own MatMul peak. A straight line
// through the times reads as a fixed cost per call (what batching and bigger blocks share) plus
// a cost per row (what they cannot share): whether a step of many rows (a dual-cache block, a
// batched full-canvas pass) is at the machine's limit is the per-row cost against the peak.
// Random weights of the embedded models' shape: timing does not depend on their values. The cases
// run interleaved, a short burst each (its weights warm in the cache, as in a decode loop), so
// that a shared machine's load falls on all of them alike; the fastest tenth is reported.

import { availableParallelism } from "node:os";
import { OnnxModel } from "../model/engine.js";
import type { ForwardRequest } from "../model/types.js";
import { benchWeightReader, matmulPeakRunner, type Progress } from "./forward.js";
import { sizeShapes, stepFlops } from "./sizes.js";

/** Query rows the sweep times by default. */
export const defaultRowCounts = [1, 2, 4, 8, 16, 32, 64, 128, 256, 440];

/** The cached context of the "context" cases: a 23-token prompt and a 32-token block. */
const contextLength = 55;

/** Fresh positions per canvas at most (more rows are that many canvases: 440 = 8 × 55). */
const maxFresh = 64;

export interface RowsPoint {
  /** Query rows of the call: canvases × fresh positions. */
  rows: number;
  canvases: number;
  fresh: number;
  /** Cached positions each canvas attends to besides its fresh ones. */
  context: number;
  /** Rows with the LM head and the step statistics: every row, or one per canvas. */
  stats_rows: number;
  threads: number;
  /** The fastest tenth of the timed calls, and their median. */
  ms: number;
  median_ms: number;
  mflop: number;
  gflops: number;
}

/**
 * Least-squares line through one series' times over one canvas of 2 to 64 rows (the sizes of a
 * step): ms = fixed + rows × per_row.
 */
export interface RowsFit {
  threads: number;
  context: number;
  stats: "every row" | "one per canvas";
  fixed_ms: number;
  per_row_ms: number;
  /** The per-row FLOPs (the FLOP line's slope) over per_row_ms. */
  per_row_gflops: number;
}

export interface RowsBenchResult {
  model: string;
  /** Per thread count: the MatMul peak (1024³, constant right-hand side) measured in the same run. */
  matmul_peak_gflops: Record<string, number>;
  points: RowsPoint[];
  fits: RowsFit[];
}

/** Canvases × fresh positions of a call of `rows` query rows: one canvas up to 64, else the fewest canvases of equal length ≤ 64. */
export function rowsLayout(rows: number): [canvases: number, fresh: number] {
  if (!Number.isInteger(rows) || rows < 1) {
    throw new RangeError(`rows: expected a positive integer, got ${rows}`);
  }
  for (let canvases = Math.ceil(rows / maxFresh); ; canvases++) {
    if (rows % canvases === 0) return [canvases, rows / canvases];
  }
}

/** Least squares y = a + b·x; [a, b]. */
export function fitLine(xs: readonly number[], ys: readonly number[]): [number, number] {
  const n = xs.length;
  const mx = xs.reduce((s, x) => s + x, 0) / n;
  const my = ys.reduce((s, y) => s + y, 0) / n;
  let sxy = 0;
  let sxx = 0;
  for (let i = 0; i < n; i++) {
    sxy += (xs[i] - mx) * (ys[i] - my);
    sxx += (xs[i] - mx) ** 2;
  }
  const b = sxy / sxx;
  return [my - b * mx, b];
}

const fastestTenth = (ms: number[]) => [...ms].sort((a, b) => a - b)[Math.floor(ms.length / 10)];
const median = (ms: number[]) => [...ms].sort((a, b) => a - b)[Math.floor(ms.length / 2)];

export async function benchRows(
  options: { rows?: number[]; runs?: number; progress?: Progress } = {},
): Promise<RowsBenchResult> {
  const counts = options.rows ?? defaultRowCounts;
  const rounds = options.runs ?? 10;
  const say = options.progress ?? (() => {});
  const { config: shape, about } = sizeShapes.embedded;
  const config = { ...shape, attention: "full" as const };
  const threadCounts = [...new Set([1, availableParallelism()])];
  const layouts = counts.map(rowsLayout);
  const maxPositions = Math.max(...layouts.map(([, n]) => n)) + contextLength;
  if (maxPositions > config.maxPositions) {
    throw new RangeError(`rows: a canvas of ${maxPositions} positions exceeds the model's`);
  }

  interface Case {
    run: () => Promise<unknown>;
    times: number[];
    point?: Omit<RowsPoint, "ms" | "median_ms" | "gflops">;
    peakThreads?: number;
  }
  const cases: Case[] = [];
  const release: (() => Promise<void>)[] = [];
  try {
    for (const threads of threadCounts) {
      say(`${threads} thread${threads > 1 ? "s" : ""}: building the model and the MatMul peak…`);
      const model = await OnnxModel.create(config, benchWeightReader(config), {
        threads,
        spinning: false,
      });
      release.push(() => model.dispose());
      const peak = await matmulPeakRunner(1024, threads);
      release.push(peak.release);
      cases.push({ run: peak.run, times: [], peakThreads: threads });
      const { numLayers, numKvHeads, headDim } = config;
      for (const [canvases, fresh] of layouts) {
        for (const context of [0, contextLength]) {
          const cache = () => new Float32Array(canvases * numKvHeads * context * headDim).fill(0.1);
          for (const statsAt of [fresh, 1]) {
            const request: ForwardRequest = {
              tokens: Int32Array.from(
                { length: canvases * fresh },
                (_, i) => 16 + ((i * 31) % 8000),
              ),
              rows: canvases,
              logits: false,
              stats: { topK: 1, exclude: Int32Array.of(0) }, // one excluded id: a mask token
              logitsAt: Int32Array.from({ length: canvases * statsAt }, (_, i) => i % statsAt),
            };
            if (context > 0) {
              request.context = {
                rows: canvases,
                length: context,
                keys: Array.from({ length: numLayers }, cache),
                values: Array.from({ length: numLayers }, cache),
              };
            }
            cases.push({
              run: () => model.forward(request),
              times: [],
              point: {
                rows: canvases * fresh,
                canvases,
                fresh,
                context,
                stats_rows: canvases * statsAt,
                threads,
                mflop: (canvases * stepFlops(config, fresh, context, statsAt)) / 1e6,
              },
            });
            if (fresh === 1) break; // one row: statistics at every row and at one are the same call
          }
        }
      }
    }
    for (let round = 0; round < rounds; round++) {
      say(`round ${round + 1} of ${rounds}…`);
      for (const c of cases) {
        await c.run(); // warm: the burst's weights in the cache
        for (let k = 0; k < 3; k++) {
          const t0 = performance.now();
          await c.run();
          c.times.push(performance.now() - t0);
        }
      }
    }
  } finally {
    for (const r of release) await r();
  }

  const matmul_peak_gflops: Record<string, number> = {};
  const points: RowsPoint[] = [];
  for (const c of cases) {
    const ms = fastestTenth(c.times);
    if (c.peakThreads !== undefined)
      matmul_peak_gflops[c.peakThreads] = (2 * 1024 ** 3) / (ms * 1e6);
    if (c.point !== undefined) {
      points.push({ ...c.point, ms, median_ms: median(c.times), gflops: c.point.mflop / ms });
    }
  }
  const fits: RowsFit[] = [];
  for (const threads of threadCounts) {
    for (const context of [0, contextLength]) {
      for (const stats of ["every row", "one per canvas"] as const) {
        const series = points.filter(
          (p) =>
            p.threads === threads &&
            p.context === context &&
            p.canvases === 1 &&
            p.rows >= 2 &&
            p.stats_rows === (stats === "every row" ? p.rows : p.canvases),
        );
        if (series.length < 2) continue;
        const rows = series.map((p) => p.rows);
        const [fixed, perRow] = fitLine(
          rows,
          series.map((p) => p.ms),
        );
        const [, flopPerRow] = fitLine(
          rows,
          series.map((p) => p.mflop),
        );
        fits.push({
          threads,
          context,
          stats,
          fixed_ms: fixed,
          per_row_ms: perRow,
          per_row_gflops: flopPerRow / perRow,
        });
      }
    }
  }
  return { model: `random weights, ${about}`, matmul_peak_gflops, points, fits };
}
