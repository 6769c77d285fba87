// `unmask bench load`: the memory a checkpoint costs to load. A synthetic checkpoint of at least
// 2 GB of float32 weights is written (tensor by tensor, never whole in memory) in float32 and in
// BF16; each is loaded by a fresh process the way every command loads a model (validated, weights
// streamed into the session) and its peak resident memory is divided by the bytes of the weights
// as the engine holds them (float32). Before weights were streamed, the JavaScript copy, the
// serialised graph and onnxruntime's copy were alive together: about 3×.

import { execFile } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { saveCheckpoint } from "../format/checkpoint.js";
import { shapeSize } from "../format/safetensors.js";
import {
  type ModelConfig,
  parameterCount,
  parameterShapes,
  parseModelConfig,
  type WeightReader,
} from "../model/config.js";
import { blockBytes } from "../model/quant.js";
import type { Progress } from "./forward.js";
import type { LoadChildReport } from "./load-child.js";

/** ~580M parameters, 2.3 GB in float32: hidden 2048, 10 layers, SwiGLU 5632, vocab 32k, tied. */
export const loadBenchConfig = parseModelConfig({
  model_type: "unmask",
  vocab_size: 32000,
  hidden_size: 2048,
  num_hidden_layers: 10,
  num_attention_heads: 16,
  intermediate_size: 5632,
  max_position_embeddings: 1024,
  tie_word_embeddings: true,
  mask_token_id: 0,
});

export interface LoadMeasure {
  dtype: "F32" | "BF16";
  /** Quantized while loading (the BF16 file to int4), else absent. */
  quant?: "int4";
  file_bytes: number;
  rss_before_bytes: number;
  peak_rss_bytes: number;
  /** Peak RSS ÷ the weights' bytes as the engine holds them (float32, or int4 blocks). */
  peak_rss_ratio: number;
  load_s: number;
  forward_s: number;
}

export interface LoadBenchResult {
  parameters: number;
  /** The weights as the engine holds them (float32). */
  weight_bytes: number;
  float32: LoadMeasure;
  bf16: LoadMeasure;
  /** The BF16 file quantized to int4 while loading. */
  int4: LoadMeasure;
  /** The weights as the int4 engine holds them (layers' linear weights in 4-bit blocks). */
  int4_weight_bytes: number;
  peak_rss_ratio: number;
  bf16_peak_rss_ratio: number;
  int4_peak_rss_ratio: number;
}

/** Bytes of the weights of an int4 engine: the layers' linear weights in blocks, the rest float32. */
export function int4EngineBytes(config: ModelConfig): number {
  return parameterShapes(config).reduce((n, { name, shape }) => {
    const linear = name.startsWith("model.layers.") && name.endsWith("proj.weight");
    return n + (linear ? blockBytes(shape[0], shape[1], 4) : 4 * shapeSize(shape));
  }, 0);
}

/** Weights made on demand, one tensor at a time: uniform noise (timing and memory need no more). */
export function syntheticWeights(config: ModelConfig): WeightReader {
  const shapes = new Map(parameterShapes(config).map((p) => [p.name, p.shape]));
  return {
    has: (name) => shapes.has(name),
    read(name) {
      const shape = shapes.get(name);
      if (shape === undefined) throw new RangeError(`${name}: not a parameter`);
      const values = new Float32Array(shape.reduce((a, b) => a * b, 1));
      const mean = name.endsWith("norm.weight") ? 1 : 0;
      let state = 0x9e3779b9 ^ name.length;
      for (let i = 0; i < values.length; i++) {
        state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
        values[i] = mean + 0.03 * (state / 2 ** 31 - 1);
      }
      return values;
    },
  };
}

const child = fileURLToPath(new URL("./load-child.js", import.meta.url));
const tokenizerFile = fileURLToPath(
  new URL("../../../models/unmask-code/tokenizer.json", import.meta.url),
);

export async function benchLoad(
  options: { config?: ModelConfig; progress?: Progress } = {},
): Promise<LoadBenchResult> {
  const config = options.config ?? loadBenchConfig;
  const say = options.progress ?? (() => {});
  const parameters = parameterCount(config);
  const weightBytes = 4 * parameters;
  const dir = await mkdtemp(join(tmpdir(), "unmask-bench-load-"));
  try {
    const int4Bytes = int4EngineBytes(config);
    const measure = async (dtype: "F32" | "BF16", quant?: "int4"): Promise<LoadMeasure> => {
      const folder = join(dir, dtype);
      if (!existsSync(folder)) {
        say(`writing a ${(weightBytes / 1e9).toFixed(1)} GB (float32) checkpoint as ${dtype}…`);
        await saveCheckpoint(
          folder,
          {
            config,
            weights: syntheticWeights(config),
            tokenizerJson: readFileSync(tokenizerFile, "utf8"),
          },
          { dtype },
        );
      }
      say(`loading the ${dtype} checkpoint${quant ? ` as ${quant}` : ""} in a fresh process…`);
      const args = quant === undefined ? [child, folder] : [child, folder, quant];
      const { stdout } = await promisify(execFile)(process.execPath, args, {
        maxBuffer: 1 << 20,
      });
      const r = JSON.parse(stdout) as LoadChildReport;
      const fileBytes = (dtype === "F32" ? 4 : 2) * parameters;
      return {
        dtype,
        ...(quant === undefined ? {} : { quant }),
        file_bytes: fileBytes,
        ...r,
        peak_rss_ratio: r.peak_rss_bytes / (quant === undefined ? weightBytes : int4Bytes),
      };
    };
    const float32 = await measure("F32");
    await rm(join(dir, "F32"), { recursive: true, force: true });
    const bf16 = await measure("BF16");
    const int4 = await measure("BF16", "int4");
    return {
      parameters,
      weight_bytes: weightBytes,
      float32,
      bf16,
      int4,
      int4_weight_bytes: int4Bytes,
      peak_rss_ratio: float32.peak_rss_ratio,
      bf16_peak_rss_ratio: bf16.peak_rss_ratio,
      int4_peak_rss_ratio: int4.peak_rss_ratio,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
