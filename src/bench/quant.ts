// `unmask bench quant`: what int8 and int4 weights (src/model/quant.ts) cost in answers and gain
// in speed. Agreement: the embedded diffusion model on held-out canvases (rows of the corpus's
// valid split, a seeded half of each row's positions masked), the share of masked positions
// whose top-1 token under quantized weights is float32's, and its standard error over canvases:
// 256 canvases by default (~32,500 positions; on 16, the former default, int8 read 99.12% where
// 256 read 98.79%, the standard error ~0.2%). Speed: one forward pass of the 110M
// benchmark shape (random weights) at a 256-token canvas, float32 and quantized timed in turn;
// also at 32 tokens (`block_32`: the block a block-diffusion step runs). The sessions keep
// onnxruntime's default thread spinning, what `OnnxModel.create` gives a user (without it, the
// int8 forward's many short parallel sections each waited for a sleeping worker, and its runs
// alternated between ~100 and ~220 ms), and take turns of 5 runs, as a decoder's forwards follow
// each other. Each form's median and fastest run are reported: on the shared VM this was
// measured on, 30–40% of either form's runs took 1.6–2× as long, alike for both forms.

import { readFile } from "node:fs/promises";
import type { Checkpoint } from "../format/checkpoint.js";
import { OnnxModel } from "../model/engine.js";
import { type QuantType, quantTypes } from "../model/quant.js";
import { Rng } from "../model/random.js";
import { bench110M, benchWeights, medianOf, timeInTurns } from "./forward.js";

type Progress = (message: string) => void;

/** float32_ms, quant_ms and speedup (QuantSpeed's): the 256-token canvas. */
export interface QuantBenchResult extends QuantSpeed {
  model: string;
  canvases: number;
  masked_positions: number;
  /** Per quant type: top-1 agreement with float32 at masked positions. */
  agreement: Record<QuantType, number>;
  /**
   * Its standard error over canvases (a canvas's positions move together: the ratio estimator's
   * √(Σ (same_k − p·n_k)² · K/(K−1)) / Σ n_k for K canvases of n_k positions, same_k agreeing).
   */
  agreement_se: Record<QuantType, number>;
  speed_model: string;
  /** The same at a 32-token canvas. */
  block_32: QuantSpeed;
}

/** One forward pass of the speed model, float32 and quantized timed in turn: medians. */
export interface QuantSpeed extends SpeedOf {
  /** The same from the fastest of each form's runs, the ones the machine disturbed least. */
  fastest: SpeedOf;
}

export interface SpeedOf {
  float32_ms: number;
  quant_ms: Record<QuantType, number>;
  /** float32_ms / quant_ms */
  speedup: Record<QuantType, number>;
}

/** The first `rows` rows of `length` tokens of the valid split's documents, tokens end to end. */
async function heldOutCanvases(corpus: string, ckpt: Checkpoint, rows: number, length: number) {
  const ids: number[] = [];
  for (const line of (await readFile(corpus, "utf8")).split("\n")) {
    if (ids.length >= rows * length) break;
    if (line.trim() === "") continue;
    ids.push(...ckpt.tokenizer.encode((JSON.parse(line) as { text: string }).text));
  }
  const out: Int32Array[] = [];
  for (let r = 0; r < rows && (r + 1) * length <= ids.length; r++) {
    out.push(Int32Array.from(ids.slice(r * length, (r + 1) * length)));
  }
  return out;
}

const argmax = (x: Float32Array, at: number, v: number) => {
  let best = 0;
  for (let i = 1; i < v; i++) if (x[at * v + i] > x[at * v + best]) best = i;
  return best;
};

export async function benchQuant(o: {
  checkpoint: Checkpoint;
  corpus: string;
  rows?: number;
  runs?: number;
  progress?: Progress;
}): Promise<QuantBenchResult> {
  const say = o.progress ?? (() => {});
  const { config, weights } = o.checkpoint;
  const mask = config.maskTokenId;
  if (mask === null) throw new RangeError("bench quant: the model has no mask token");
  const length = Math.min(config.maxPositions, 256);
  const canvases = await heldOutCanvases(o.corpus, o.checkpoint, o.rows ?? 256, length);
  const rng = new Rng(1234);
  const masked = canvases.map((row) => {
    const at = [...row.keys()].filter(() => rng.next() < 0.5);
    const tokens = Int32Array.from(row);
    for (const i of at) tokens[i] = mask;
    return { tokens, at };
  });
  const reference = await OnnxModel.create(config, weights, { threads: 1 });
  const agreement = {} as Record<QuantType, number>;
  const agreementSe = {} as Record<QuantType, number>;
  const positions = masked.reduce((n, m) => n + m.at.length, 0);
  const topFloat: number[][] = [];
  for (const m of masked) {
    const { logits } = await reference.forward({ tokens: m.tokens, rows: 1 });
    topFloat.push(m.at.map((i) => argmax(logits, i, config.vocabSize)));
  }
  await reference.dispose();
  for (const quant of quantTypes) {
    say(`agreement: ${quant}…`);
    const model = await OnnxModel.create(config, weights, { threads: 1, quant });
    const same: number[] = []; // per canvas
    for (const [k, m] of masked.entries()) {
      const { logits } = await model.forward({ tokens: m.tokens, rows: 1 });
      same.push(
        m.at.filter((i, j) => argmax(logits, i, config.vocabSize) === topFloat[k][j]).length,
      );
    }
    await model.dispose();
    const p = same.reduce((a, b) => a + b, 0) / positions;
    const k = masked.length;
    const spread = same.reduce((a, s, c) => a + (s - p * masked[c].at.length) ** 2, 0);
    agreement[quant] = p;
    agreementSe[quant] = Math.sqrt((spread * k) / Math.max(1, k - 1)) / positions;
  }

  const runs = o.runs ?? 15;
  const w = benchWeights(bench110M);
  const float = await OnnxModel.create(bench110M, w);
  const models = new Map<QuantType, OnnxModel>();
  for (const quant of quantTypes) {
    models.set(quant, await OnnxModel.create(bench110M, w, { quant }));
  }
  /** float32 against each quant type, in turn, on a canvas of `length` tokens. */
  const speed = async (length: number): Promise<QuantSpeed> => {
    const tokens = Int32Array.from({ length }, (_, i) => (i * 31) % bench110M.vocabSize);
    const floatTimes: number[][] = [];
    const quantTimes = {} as Record<QuantType, number[]>;
    for (const [quant, model] of models) {
      say(`speed: ${quant} against float32, ${length} tokens…`);
      const [floatRuns, quantRuns] = await timeInTurns(
        () => float.forward({ tokens, rows: 1 }),
        () => model.forward({ tokens, rows: 1 }),
        runs,
        4, // the first runs of a session still grow its memory arena
        5,
      );
      floatTimes.push(floatRuns);
      quantTimes[quant] = quantRuns;
    }
    /** Each form's time by `of` (of its runs); float32's the lower of its turns with the two. */
    const speedOf = (of: (times: number[]) => number): SpeedOf => {
      const float32Ms = Math.min(...floatTimes.map(of));
      const quantMs = {} as Record<QuantType, number>;
      const speedup = {} as Record<QuantType, number>;
      for (const quant of quantTypes) {
        quantMs[quant] = of(quantTimes[quant]);
        speedup[quant] = float32Ms / quantMs[quant];
      }
      return { float32_ms: float32Ms, quant_ms: quantMs, speedup };
    };
    return { ...speedOf(medianOf), fastest: speedOf((times) => Math.min(...times)) };
  };
  const canvas = await speed(256);
  const block = await speed(32);
  for (const model of models.values()) await model.dispose();
  await float.dispose();
  return {
    model: o.checkpoint.dir,
    canvases: masked.length,
    masked_positions: positions,
    agreement,
    agreement_se: agreementSe,
    speed_model:
      "110M (hidden 768, 12 layers, 12 heads, vocab 32000, tied head: int8 quantizes it, int4 keeps it float32), canvas 256",
    ...canvas,
    block_32: block,
  };
}
