// `unmask bench sizes`: where diffusion can win on this CPU, by model size. For random-weight
// models from the embedded shape up to the Qwen2.5 shapes, one AR decoding step (one fresh token
// against a cached context, K/V out, the greedy statistics) and one dual-cache diffusion step (a
// block of B fresh tokens against the same context, statistics at every one of them) are timed
// side by side, and set beside a roofline: a step costs at least the time to read every weight
// once (the bandwidth of a matrix-vector product over 256 MB of weights, measured here) and the
// time of its FLOPs at the MatMul peak (measured here). Diffusion beats AR when a step reveals
// more tokens than step_ms ÷ ar_ms (the break-even): bounded by the call overhead for a model in
// the cache, by the weight reads for a large one (there a block of 32 costs about one AR token).

import { Graph } from "../graph/graph.js";
import * as op from "../graph/ops.js";
import {
  layerMatmulParameters,
  type ModelConfig,
  parameterCount,
  parseModelConfig,
} from "../model/config.js";
import { OnnxModel } from "../model/engine.js";
import type { ForwardRequest } from "../model/types.js";
import { floatTensor, Session } from "../runtime/session.js";
import {
  bench110M,
  benchQwen05B,
  benchWeightReader,
  compareMs,
  inTurn,
  matmulPeakRunner,
  type Progress,
} from "./forward.js";

/** The embedded model's shape (configs/unmask-code.json). */
const embeddedShape = parseModelConfig({
  model_type: "unmask",
  vocab_size: 8192,
  hidden_size: 256,
  num_hidden_layers: 4,
  num_attention_heads: 4,
  intermediate_size: 768,
  max_position_embeddings: 1024,
  tie_word_embeddings: true,
});

/** The shape of Qwen2.5-1.5B (Qwen2.5-Coder-1.5B): 6.2 GB of float32 weights. */
const qwen15B = parseModelConfig({
  model_type: "qwen2",
  vocab_size: 151936,
  hidden_size: 1536,
  num_hidden_layers: 28,
  num_attention_heads: 12,
  num_key_value_heads: 2,
  intermediate_size: 8960,
  max_position_embeddings: 32768,
  rope_theta: 1000000,
  tie_word_embeddings: true,
});

/** The shapes `bench sizes` knows, smallest first. */
export const sizeShapes: Readonly<Record<string, { config: ModelConfig; about: string }>> = {
  embedded: { config: embeddedShape, about: "the embedded models' shape (5.5M)" },
  "110M": { config: bench110M, about: "hidden 768, 12 layers, vocab 32k" },
  "0.5B": { config: benchQwen05B, about: "Qwen2.5-0.5B / Open-dCoder 0.5B shape" },
  "1.5B": { config: qwen15B, about: "Qwen2.5-1.5B shape (6.2 GB of float32 weights)" },
};

export const defaultSizes = ["embedded", "110M", "0.5B"];

export interface BlockPoint {
  block: number;
  /** Median time of one diffusion step of `block` fresh tokens. */
  step_ms: number;
  /** step_ms ÷ ar_ms: tokens a step must reveal for diffusion to match AR's speed. */
  break_even_tokens_per_step: number;
  /** The roofline's step time and its ratio to the roofline's AR token. */
  roofline_step_ms: number;
  roofline_break_even: number;
}

export interface SizePoint {
  name: string;
  about: string;
  parameters: number;
  weight_mb: number;
  /** Median time of one AR step (one fresh token, K/V out). */
  ar_ms: number;
  roofline_ar_ms: number;
  blocks: BlockPoint[];
}

export interface SizesBenchResult {
  /** Cached context of every step (the prompt and the text so far). */
  context: number;
  matmul_peak_gflops: number;
  /** Weights read per second by a matrix-vector product over 256 MB of float32 weights. */
  weight_read_gbs: number;
  sizes: SizePoint[];
}

export interface SizesBenchOptions {
  sizes?: string[];
  blocks?: number[];
  context?: number;
  runs?: number;
  progress?: Progress;
}

/**
 * FLOPs of one step of n fresh tokens against `context` cached ones, statistics at p of them, as
 * the engine runs it: the last layer's queries, attention output and MLP only at the p rows.
 */
export function stepFlops(config: ModelConfig, n: number, context: number, p: number): number {
  const { hiddenSize: h, headDim: d, numHeads, numKvHeads, vocabSize: v } = config;
  const attention = (q: number) => 4 * q * (context + n) * numHeads * d; // scores and weighted sum
  const layer = layerMatmulParameters(config);
  const keysValues = 2 * h * numKvHeads * d;
  const last = 2 * n * keysValues + 2 * p * (layer - keysValues) + attention(p);
  const layers =
    config.numLayers > 0 ? (config.numLayers - 1) * (2 * n * layer + attention(n)) + last : 0;
  return layers + 2 * p * h * v;
}

/** Bytes a step must read at least: every weight once (float32), and the cached K/V. */
export function stepBytes(config: ModelConfig, context: number): number {
  const kv = 2 * config.numLayers * context * config.numKvHeads * config.headDim;
  return 4 * (parameterCount(config) + kv);
}

/**
 * A matrix-vector product over a constant [k, n] float32 matrix: the rate at which the engine
 * streams weights from memory (what bounds an AR token of a model larger than the cache).
 */
async function weightReadRunner(k = 4096, n = 16384) {
  const g = new Graph("weight-read");
  const x = g.input("x", "float32", [1, k]);
  const w = new Float32Array(k * n).map((_, i) => ((i * 7919) % 1000) / 1000 - 0.5);
  g.output(op.matmul(x, g.initializer("w", "float32", [k, n], w)), "y");
  const session = await Session.fromGraph(g, inTurn);
  const feed = { x: floatTensor(new Float32Array(k).fill(0.5), [1, k]) };
  return {
    run: () => session.run(feed),
    gbs: (ms: number) => (4 * k * n) / (ms * 1e6),
    release: () => session.release(),
  };
}

export async function benchSizes(options: SizesBenchOptions = {}): Promise<SizesBenchResult> {
  const names = options.sizes ?? defaultSizes;
  const blocks = options.blocks ?? [8, 16, 32];
  const context = options.context ?? 128;
  const runs = options.runs ?? 5;
  const say = options.progress ?? (() => {});
  for (const name of names) {
    if (sizeShapes[name] === undefined) {
      throw new RangeError(
        `sizes: unknown size ${JSON.stringify(name)} (valid: ${Object.keys(sizeShapes).join(", ")})`,
      );
    }
  }

  say("measuring the MatMul peak and the weight read rate…");
  const peak = await matmulPeakRunner();
  const read = await weightReadRunner();
  const [peakMs, readMs] = await compareMs(peak.run, read.run, runs);
  await peak.release();
  await read.release();
  const gflops = peak.gflops(peakMs);
  const gbs = read.gbs(readMs);
  const roofline = (config: ModelConfig, n: number) =>
    Math.max(
      stepBytes(config, context) / (gbs * 1e6),
      stepFlops(config, n, context, n) / (gflops * 1e6),
    );

  const sizes: SizePoint[] = [];
  for (const name of names) {
    const { about } = sizeShapes[name];
    // one token attending to the context and itself sees what a causal model lets it see, so
    // one bidirectional model times both decoders
    const config: ModelConfig = {
      ...sizeShapes[name].config,
      attention: "full",
      maxPositions: Math.max(sizeShapes[name].config.maxPositions, context + Math.max(...blocks)),
    };
    say(`${name}: building random weights (${(parameterCount(config) / 1e6).toFixed(0)}M)…`);
    const model = await OnnxModel.create(config, benchWeightReader(config), inTurn);
    try {
      const prefix = Int32Array.from({ length: context }, (_, i) => 16 + ((i * 31) % 1000));
      const { kv } = await model.forward({
        tokens: prefix,
        rows: 1,
        logitsAt: Int32Array.of(context - 1),
        logits: false,
        stats: { topK: 1 },
        returnKv: true,
      });
      // the AR decoder's greedy step: one token, its K/V appended, the top-1 statistics
      const arStep: ForwardRequest = {
        tokens: Int32Array.of(17),
        rows: 1,
        context: kv!,
        logitsAt: Int32Array.of(0),
        logits: false,
        stats: { topK: 1 },
        returnKv: true,
      };
      const point: SizePoint = {
        name,
        about,
        parameters: parameterCount(config),
        weight_mb: (4 * parameterCount(config)) / 1e6,
        ar_ms: 0,
        roofline_ar_ms: roofline(config, 1),
        blocks: [],
      };
      const arTimes: number[] = [];
      for (const block of blocks) {
        say(`${name}: an AR step against a diffusion step of ${block} tokens…`);
        // the dual-cache step: the block's tokens against the cached prefix, statistics at all
        const step: ForwardRequest = {
          tokens: Int32Array.from({ length: block }, (_, i) => 16 + i),
          rows: 1,
          context: kv!,
          logits: false,
          stats: { topK: 1 },
        };
        const [arMs, stepMs] = await compareMs(
          () => model.forward(arStep),
          () => model.forward(step),
          runs,
          1,
        );
        arTimes.push(arMs);
        const roofStep = roofline(config, block);
        point.blocks.push({
          block,
          step_ms: stepMs,
          break_even_tokens_per_step: stepMs / arMs,
          roofline_step_ms: roofStep,
          roofline_break_even: roofStep / point.roofline_ar_ms,
        });
      }
      point.ar_ms = arTimes.sort((a, b) => a - b)[Math.floor(arTimes.length / 2)];
      sizes.push(point);
    } finally {
      await model.dispose();
    }
  }
  return { context, matmul_peak_gflops: gflops, weight_read_gbs: gbs, sizes };
}
