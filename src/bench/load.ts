// `unmask bench load`: the memory a checkpoint costs to load. A synthetic checkpoint of at least
// 2 GB of float32 weights is written (tensor by tensor, never whole in memory) in float32 and in
// BF16; each is loaded by a fresh process the way every command loads a model (validated, weights
// streamed into the session) and its peak resident memory is divided by the bytes of the weights
// as the engine holds them (float32; for the BF16 checkpoint quantized to int4 and to int4-lean
// while loading, the int4 layers' packed bytes). Before weights were streamed, the JavaScript copy, the serialised
// graph and onnxruntime's copy were alive together: about 3×. With `with7b`, the 7B shape is
// built in int4 from weights made on demand and one 32-token forward pass is timed.

import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { saveCheckpoint } from "../format/checkpoint.js";
import {
  type ModelConfig,
  parameterCount,
  parameterShapes,
  parseModelConfig,
  type WeightReader,
} from "../model/config.js";
import { buildInferenceGraph } from "../model/engine.js";
import type { QuantType } from "../model/quant.js";
import { benchWeightReader, type Progress } from "./forward.js";
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

/** The shape of Qwen2.5-Coder-7B (Dream 7B, DiffuCoder 7B: the same layers): 7.6B parameters. */
export const qwen7BShape = parseModelConfig({
  model_type: "qwen2",
  vocab_size: 152064,
  hidden_size: 3584,
  num_hidden_layers: 28,
  num_attention_heads: 28,
  num_key_value_heads: 4,
  intermediate_size: 18944,
  max_position_embeddings: 32768,
  rope_theta: 1000000,
  tie_word_embeddings: false,
});

export interface LoadMeasure {
  /** How the checkpoint is stored, and how the engine holds its linear layers. */
  dtype: "F32" | "BF16";
  quant: QuantType | null;
  /** The weights as the engine holds them (float32, or the quantized layers' packed form). */
  weight_bytes: number;
  file_bytes: number;
  rss_before_bytes: number;
  peak_rss_bytes: number;
  /** Peak RSS ÷ weight_bytes. */
  peak_rss_ratio: number;
  load_s: number;
  forward_s: number;
  forward_again_s: number;
}

export interface LoadBenchResult {
  parameters: number;
  /** The weights as the engine holds them in float32 (with the graph's few constants). */
  weight_bytes: number;
  float32: LoadMeasure;
  bf16: LoadMeasure;
  /** The BF16 checkpoint quantized to int4 while loading. */
  int4: LoadMeasure;
  /** The same as int4-lean (float32 arithmetic: less memory while loading, slower). */
  int4_lean: LoadMeasure;
  peak_rss_ratio: number;
  bf16_peak_rss_ratio: number;
  int4_peak_rss_ratio: number;
  int4_lean_peak_rss_ratio: number;
  /** One 32-token forward pass of the 7B shape in int4 (null unless asked for: it takes minutes). */
  forward_7b_int4_s: number | null;
  load_7b_int4: LoadChildReport | null;
}

/** Bytes of the weights as the engine holds them: the graph's initializers (read without data). */
export function engineWeightBytes(config: ModelConfig, quant?: QuantType): number {
  const shapes = new Set(parameterShapes(config).map((p) => p.name));
  const none: WeightReader = {
    has: (name) => shapes.has(name),
    read: () => {
      throw new Error("engineWeightBytes reads no weight");
    },
  };
  return buildInferenceGraph(config, none, "float32", quant).initializers.reduce(
    (n, i) => n + i.byteLength,
    0,
  );
}

const child = fileURLToPath(new URL("./load-child.js", import.meta.url));
const tokenizerFile = fileURLToPath(
  new URL("../../../models/unmask-code/tokenizer.json", import.meta.url),
);

/** Runs load-child.js with `args` in a fresh process and returns its report. */
async function inChild(args: string[]): Promise<LoadChildReport> {
  const { stdout } = await promisify(execFile)(process.execPath, [child, ...args], {
    maxBuffer: 1 << 20,
  });
  return JSON.parse(stdout) as LoadChildReport;
}

export async function benchLoad(
  options: { config?: ModelConfig; with7b?: boolean; progress?: Progress } = {},
): Promise<LoadBenchResult> {
  const config = options.config ?? loadBenchConfig;
  const say = options.progress ?? (() => {});
  const parameters = parameterCount(config);
  const dir = await mkdtemp(join(tmpdir(), "unmask-bench-load-"));
  try {
    const write = async (dtype: "F32" | "BF16") => {
      const folder = join(dir, dtype);
      say(`writing a ${((4 * parameters) / 1e9).toFixed(1)} GB (float32) checkpoint as ${dtype}…`);
      await saveCheckpoint(
        folder,
        {
          config,
          weights: benchWeightReader(config),
          tokenizerJson: readFileSync(tokenizerFile, "utf8"),
        },
        { dtype },
      );
      return folder;
    };
    const measure = async (
      folder: string,
      dtype: "F32" | "BF16",
      quant: QuantType | null,
    ): Promise<LoadMeasure> => {
      say(`loading the ${dtype} checkpoint${quant ? ` as ${quant}` : ""} in a fresh process…`);
      const r = await inChild(quant === null ? [folder] : [folder, "--quant", quant]);
      const weightBytes = engineWeightBytes(config, quant ?? undefined);
      return {
        dtype,
        quant,
        weight_bytes: weightBytes,
        file_bytes: (dtype === "F32" ? 4 : 2) * parameters,
        ...r,
        peak_rss_ratio: r.peak_rss_bytes / weightBytes,
      };
    };
    const f32Folder = await write("F32");
    const float32 = await measure(f32Folder, "F32", null);
    await rm(f32Folder, { recursive: true, force: true });
    const bf16Folder = await write("BF16");
    const bf16 = await measure(bf16Folder, "BF16", null);
    const int4 = await measure(bf16Folder, "BF16", "int4");
    const int4Lean = await measure(bf16Folder, "BF16", "int4-lean");
    await rm(bf16Folder, { recursive: true, force: true });
    let load7b: LoadChildReport | null = null;
    if (options.with7b === true) {
      say("building the 7B shape in int4 from weights made on demand (minutes)…");
      load7b = await inChild(["--synthetic", "7b", "--quant", "int4"]);
    }
    return {
      parameters,
      weight_bytes: float32.weight_bytes,
      float32,
      bf16,
      int4,
      int4_lean: int4Lean,
      peak_rss_ratio: float32.peak_rss_ratio,
      bf16_peak_rss_ratio: bf16.peak_rss_ratio,
      int4_peak_rss_ratio: int4.peak_rss_ratio,
      int4_lean_peak_rss_ratio: int4Lean.peak_rss_ratio,
      forward_7b_int4_s: load7b?.forward_s ?? null,
      load_7b_int4: load7b,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
