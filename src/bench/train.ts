// `unmask bench train`: training throughput of the default model's shape, as a share of the
// engine's own MatMul peak measured in the same run.

import { readFileSync } from "node:fs";
import { layerMatmulParameters, type ModelConfig, parseModelConfig } from "../model/config.js";
import { Rng } from "../model/random.js";
import { createTrainStep } from "../train/step.js";
import { compareMs, inTurn, matmulPeakRunner, type Progress } from "./forward.js";

export interface TrainBenchResult {
  model: string;
  parameters: number;
  batch: string;
  step_ms: number;
  tokens_per_s: number;
  train_gflops: number;
  matmul_peak_gflops: number;
  peak_fraction: number;
}

/**
 * FLOPs of one training step: 6 per parameter per token for the body (forward + both backward
 * products), the LM head only at the K positions that carry loss, and attention.
 */
export function trainFlops(config: ModelConfig, rows: number, length: number, k: number): number {
  const { hiddenSize: h, headDim: d, numHeads, vocabSize: v } = config;
  const perLayer = layerMatmulParameters(config);
  const tokens = rows * length;
  const attention = 3 * 2 * 2 * tokens * length * numHeads * d;
  return config.numLayers * (6 * tokens * perLayer + attention) + 6 * k * h * v;
}

export async function benchTrain(
  options: {
    configFile?: string;
    rows?: number;
    length?: number;
    runs?: number;
    progress?: Progress;
  } = {},
): Promise<TrainBenchResult> {
  const file =
    options.configFile ?? new URL("../../../configs/unmask-code.json", import.meta.url).pathname;
  const config = parseModelConfig(JSON.parse(readFileSync(file, "utf8")), file);
  const rows = options.rows ?? 16;
  const length = options.length ?? Math.min(256, config.maxPositions);
  const say = options.progress ?? (() => {});
  say("building the training step…");
  const step = await createTrainStep(config, inTurn);
  const rng = new Rng(1);
  const params = new Float32Array(step.parameterCount);
  for (let i = 0; i < params.length; i++) params[i] = 0.02 * rng.normal();
  const grad = new Float32Array(step.parameterCount);
  const n = rows * length;
  // A masked-diffusion batch masks half the tokens on average: loss at every other position.
  const k = Math.floor(n / 2);
  const batch = {
    tokens: Int32Array.from({ length: n }, () => rng.int(config.vocabSize)),
    rows,
    lossIndex: Int32Array.from({ length: k }, (_, i) => 2 * i),
    targets: Int32Array.from({ length: k }, () => rng.int(config.vocabSize)),
    weights: new Float32Array(k).fill(1 / n),
  };
  const peakRunner = await matmulPeakRunner();
  say("timing training steps against the MatMul peak…");
  const [ms, peakMs] = await compareMs(
    () => step.run(params, batch, grad),
    peakRunner.run,
    options.runs ?? 7,
  );
  await step.dispose();
  await peakRunner.release();
  const peak = peakRunner.gflops(peakMs);
  const gflops = trainFlops(config, rows, length, k) / (ms * 1e6);
  return {
    model: file,
    parameters: step.parameterCount,
    batch: `${rows} × ${length} tokens, loss at ${k}`,
    step_ms: ms,
    tokens_per_s: (n / ms) * 1000,
    train_gflops: gflops,
    matmul_peak_gflops: peak,
    peak_fraction: gflops / peak,
  };
}
