// `unmask bench forward`: the forward pass's speed as a share of the engine's own MatMul peak,
// measured side by side in one run, and the gain of computing logits only where they are needed.
// Sessions timed in turn are built without thread spinning: onnxruntime's idle workers otherwise
// spin on the cores the other session needs (measured: the peak MatMul fell from ~430 to ~270
// GFLOP/s when timed in turn with a spinning model session).

import { Graph } from "../graph/graph.js";
import * as op from "../graph/ops.js";
import {
  layerMatmulParameters,
  type ModelConfig,
  parameterShapes,
  parseModelConfig,
  type WeightReader,
  type Weights,
} from "../model/config.js";
import { OnnxModel } from "../model/engine.js";
import { floatTensor, Session } from "../runtime/session.js";

export type Progress = (message: string) => void;

/** Options of every session a benchmark times in turn with another (see the header). */
export const inTurn = { spinning: false } as const;

/** ~110M parameters: hidden 768, 12 layers, 12 heads, SwiGLU 2048, vocab 32k, tied head. */
export const bench110M = parseModelConfig({
  model_type: "unmask",
  vocab_size: 32000,
  hidden_size: 768,
  num_hidden_layers: 12,
  num_attention_heads: 12,
  intermediate_size: 2048,
  max_position_embeddings: 1024,
  tie_word_embeddings: true,
});

/** The shape of Open-dCoder 0.5B (Qwen2.5-0.5B): random weights, same work per token. */
export const benchQwen05B = parseModelConfig({
  model_type: "unmask",
  attention_bias: true,
  logit_shift: true,
  vocab_size: 151936,
  hidden_size: 896,
  num_hidden_layers: 24,
  num_attention_heads: 14,
  num_key_value_heads: 2,
  intermediate_size: 4864,
  max_position_embeddings: 32768,
  rope_theta: 1000000,
  tie_word_embeddings: true,
});

/**
 * Uniform random weights with standard deviation `std` (norm weights around 1), made on demand
 * one tensor at a time (each from its own seed): cheap to draw for billions of parameters, never
 * all held when streamed into the engine, and timing does not depend on the distribution.
 */
export function benchWeightReader(config: ModelConfig, std = 0.02): WeightReader {
  const shapes = parameterShapes(config);
  const index = new Map(shapes.map((p, k) => [p.name, k]));
  const amplitude = std * Math.sqrt(3);
  return {
    has: (name) => index.has(name),
    read(name) {
      const k = index.get(name);
      if (k === undefined) throw new RangeError(`${name}: not a parameter of this config`);
      const values = new Float32Array(shapes[k].shape.reduce((a, b) => a * b, 1));
      const mean = name.endsWith("norm.weight") ? 1 : 0;
      let state = (0x9e3779b9 + k) >>> 0;
      for (let i = 0; i < values.length; i++) {
        state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
        values[i] = mean + amplitude * (state / 2 ** 31 - 1);
      }
      return values;
    },
  };
}

/** benchWeightReader's weights, all read into memory. */
export function benchWeights(config: ModelConfig, std = 0.02): Weights {
  const reader = benchWeightReader(config, std);
  return new Map(parameterShapes(config).map(({ name }) => [name, reader.read(name)]));
}

/** Floating-point operations of one forward pass over n tokens with logits at p of them. */
export function forwardFlops(config: ModelConfig, n: number, p = n): number {
  const { hiddenSize: h, headDim: d, numHeads, vocabSize: v } = config;
  const attention = 2 * n * numHeads * d; // scores and weighted sum, per query
  return (
    config.numLayers * (2 * n * layerMatmulParameters(config) + 2 * n * attention) + 2 * p * h * v
  );
}

/** The median of some times. */
export const medianOf = (times: readonly number[]): number =>
  [...times].sort((x, y) => x - y)[Math.floor(times.length / 2)];

/** Median of the timings of `runs` calls after one warm-up. */
export async function medianMs(fn: () => Promise<unknown>, runs: number): Promise<number> {
  await fn();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    await fn();
    times.push(performance.now() - start);
  }
  return medianOf(times);
}

/**
 * The times of two alternatives timed in turns (after `warmup` calls of each), so that a shared
 * machine's load falls on both alike: `perTurn` runs of one, then of the other (default 1: run by
 * run); with more, each turn starts with an untimed run, in which the idle session's sleeping
 * threads wake up.
 */
export async function timeInTurns(
  a: () => Promise<unknown>,
  b: () => Promise<unknown>,
  runs: number,
  warmup = 2,
  perTurn = 1,
): Promise<[number[], number[]]> {
  for (let i = 0; i < warmup; i++) {
    await a();
    await b();
  }
  const ta: number[] = [];
  const tb: number[] = [];
  const turn = async (fn: () => Promise<unknown>, times: number[], count: number) => {
    if (perTurn > 1) await fn();
    for (let i = 0; i < count; i++) {
      const start = performance.now();
      await fn();
      times.push(performance.now() - start);
    }
  };
  while (ta.length < runs) {
    const count = Math.min(perTurn, runs - ta.length);
    await turn(a, ta, count);
    await turn(b, tb, count);
  }
  return [ta, tb];
}

/** Medians of two alternatives timed in alternation (timeInTurns, run by run). */
export async function compareMs(
  a: () => Promise<unknown>,
  b: () => Promise<unknown>,
  runs: number,
  warmup = 2,
): Promise<[number, number]> {
  const [ta, tb] = await timeInTurns(a, b, runs, warmup);
  return [medianOf(ta), medianOf(tb)];
}

/**
 * One fp32 MatMul of size³ (constant right-hand side, as model weights): the engine's peak,
 * timed in alternation with the workload it is compared against; `threads` intra-op threads
 * (default: the session default).
 */
export async function matmulPeakRunner(
  size = 2048,
  threads?: number,
): Promise<{
  run: () => Promise<unknown>;
  gflops: (ms: number) => number;
  release: () => Promise<void>;
}> {
  const g = new Graph("matmul-peak");
  const a = g.input("a", "float32", [size, size]);
  const b = new Float32Array(size * size).map((_, i) => ((i * 7919) % 1000) / 1000 - 0.5);
  g.output(op.matmul(a, g.initializer("b", "float32", [size, size], b)), "c");
  const session = await Session.fromGraph(g, { ...inTurn, threads });
  const feed = { a: floatTensor(new Float32Array(size * size).fill(0.5), [size, size]) };
  return {
    run: () => session.run(feed),
    gflops: (ms) => (2 * size ** 3) / (ms * 1e6),
    release: () => session.release(),
  };
}

export interface ForwardBenchResult {
  model: string;
  canvas: number;
  batch: number;
  forward_ms: number;
  forward_gflops: number;
  matmul_peak_gflops: number;
  peak_fraction: number;
  positions_model: string;
  positions_full_ms: number;
  positions_subset_ms: number;
  positions_requested: number;
  positions_speedup: number;
}

export async function benchForward(
  options: { canvas?: number; runs?: number; positions?: number; progress?: Progress } = {},
): Promise<ForwardBenchResult> {
  const canvas = options.canvas ?? 256;
  const runs = options.runs ?? 7;
  const subset = options.positions ?? 32;
  const say = options.progress ?? (() => {});

  say("110M model: building…");
  const model = await OnnxModel.create(bench110M, benchWeights(bench110M), inTurn);
  const peak = await matmulPeakRunner();
  const tokens = Int32Array.from({ length: canvas }, (_, i) => (i * 31) % bench110M.vocabSize);
  say("110M model: timing against the MatMul peak…");
  const [ms, peakMs] = await compareMs(() => model.forward({ tokens, rows: 1 }), peak.run, runs);
  await model.dispose();
  await peak.release();
  const peakGflops = peak.gflops(peakMs);
  const gflops = forwardFlops(bench110M, canvas) / (ms * 1e6);

  say("0.5B model (Qwen2.5 shape): building…");
  const big = await OnnxModel.create(benchQwen05B, benchWeights(benchQwen05B), inTurn);
  const bigTokens = Int32Array.from({ length: canvas }, (_, i) => (i * 31) % 1000);
  const at = Int32Array.from({ length: subset }, (_, i) => canvas - subset + i);
  say("0.5B model: timing full logits and logits at a subset…");
  const [fullMs, subsetMs] = await compareMs(
    () => big.forward({ tokens: bigTokens, rows: 1 }),
    () => big.forward({ tokens: bigTokens, rows: 1, logitsAt: at }),
    5,
  );
  await big.dispose();

  return {
    model: "110M (hidden 768, 12 layers, 12 heads, vocab 32000)",
    canvas,
    batch: 1,
    forward_ms: ms,
    forward_gflops: gflops,
    matmul_peak_gflops: peakGflops,
    peak_fraction: gflops / peakGflops,
    positions_model: "Qwen2.5-0.5B shape (hidden 896, 24 layers, 14/2 heads, vocab 151936)",
    positions_full_ms: fullMs,
    positions_subset_ms: subsetMs,
    positions_requested: subset,
    positions_speedup: fullMs / subsetMs,
  };
}
