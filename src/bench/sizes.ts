// `unmask bench sizes`: what a diffusion step costs against an AR token as the model grows
// (issue 9, part 5). For each shape, random weights (timing does not depend on them): an AR token
// is one fresh position against a K/V context, a diffusion step B fresh positions against the
// same context (a small block with a prefix cache), both with only the step statistics leaving
// the engine, as the decoders ask. Timed in alternation (compareMs), beside a roofline estimate
// of the same ratio: time(n) = max(weight bytes / bandwidth, FLOPs(n) / peak), with this
// machine's measured ~28 GB/s read and ~440 GFLOP/s fp32 MatMul (DESIGN.md). The ratio
// step ÷ token is the tokens a step must reveal (at matched quality) to break even with AR.

import { type ModelConfig, parameterShapes } from "../model/config.js";
import { OnnxModel } from "../model/engine.js";
import type { KvCache } from "../model/types.js";
import { benchWeights, compareMs, forwardFlops, inTurn, type Progress } from "./forward.js";

/** Bytes per second this machine reads from memory (measured, DESIGN.md). */
export const memoryBandwidth = 28e9;
/** fp32 MatMul FLOP/s on this machine's two threads (measured, DESIGN.md). */
export const matmulPeak = 440e9;

export interface SizeStep {
  block: number;
  /** The AR token, timed in alternation with this step. */
  ar_ms: number;
  step_ms: number;
  /** step_ms ÷ ar_ms: the tokens a step must reveal to break even with AR. */
  ratio: number;
  /** The same ratio from the roofline estimate. */
  roofline_ratio: number;
}

export interface SizeRow {
  model: string;
  parameters: number;
  /** fp32 weight bytes, in MB. */
  weight_mb: number;
  steps: SizeStep[];
}

export interface SizesBenchOptions {
  shapes: readonly { name: string; config: ModelConfig }[];
  /** Block sizes of the diffusion step (default [8, 32]). */
  blocks?: readonly number[];
  /** Cached positions both attend to (default 128). */
  context?: number;
  /** Timed runs per measurement, the median reported (default 5). */
  runs?: number;
  progress?: Progress;
}

/** Parameters of a config. */
export function parameterCount(config: ModelConfig): number {
  return parameterShapes(config).reduce((n, p) => n + p.shape.reduce((a, b) => a * b, 1), 0);
}

/** The roofline's time (seconds) of a forward pass over n fresh positions with logits at all. */
export function rooflineSeconds(config: ModelConfig, n: number): number {
  return Math.max(
    (4 * parameterCount(config)) / memoryBandwidth,
    forwardFlops(config, n) / matmulPeak,
  );
}

export async function benchSizes(o: SizesBenchOptions): Promise<SizeRow[]> {
  const blocks = o.blocks ?? [8, 32];
  const context = o.context ?? 128;
  const runs = o.runs ?? 5;
  const rows: SizeRow[] = [];
  for (const { name, config } of o.shapes) {
    if (context + Math.max(...blocks) > config.maxPositions) {
      throw new RangeError(`${name}: context ${context} + block exceeds ${config.maxPositions}`);
    }
    const parameters = parameterCount(config);
    o.progress?.(`${name}: building ${(parameters / 1e6).toFixed(0)}M parameters…`);
    const model = await OnnxModel.create(config, benchWeights(config), inTurn);
    try {
      const prefix = Int32Array.from({ length: context }, (_, i) => 3 + (i % 50));
      const kv: KvCache = (
        await model.forward({ tokens: prefix, rows: 1, returnKv: true, logits: false })
      ).kv!;
      const pass = (n: number) => {
        const tokens = Int32Array.from({ length: n }, (_, i) => 5 + i);
        return () =>
          model.forward({ tokens, rows: 1, context: kv, logits: false, stats: { topK: 1 } });
      };
      const steps: SizeStep[] = [];
      for (const block of blocks) {
        o.progress?.(`${name}: an AR token against a step of ${block}…`);
        const [ar, step] = await compareMs(pass(1), pass(block), runs);
        steps.push({
          block,
          ar_ms: ar,
          step_ms: step,
          ratio: step / ar,
          roofline_ratio: rooflineSeconds(config, block) / rooflineSeconds(config, 1),
        });
      }
      rows.push({ model: name, parameters, weight_mb: (4 * parameters) / 1e6, steps });
    } finally {
      await model.dispose();
    }
  }
  return rows;
}
