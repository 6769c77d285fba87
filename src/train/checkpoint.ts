// Training checkpoints (resume state, not the model export): everything a run needs to continue
// exactly where it stopped, in one folder per step under `<run>/checkpoints/`:
//
//   step-00001200/state.safetensors   params, adam.m, adam.v: flat F32 [parameterCount]
//   step-00001200/trainer.json        step, tokens, RNG state, data position, config, options,
//                                     parameter layout, loss history
//
// A checkpoint is written into a temporary folder that is renamed into place, so a crash never
// leaves a half-written `step-*` folder; the newest complete one is what `latestCheckpoint` finds.
// The finished model goes out in the Hugging Face layout through `exportModel` (src/format).

import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type SaveOptions, saveCheckpoint } from "../format/checkpoint.js";
import { CheckpointError } from "../format/errors.js";
import { readSafetensors, type TensorEntry, writeSafetensors } from "../format/safetensors.js";
import { configToJson, type ModelConfig, parseModelConfig, type Weights } from "../model/config.js";
import type { RngState } from "../model/random.js";
import type { DataPosition } from "./data.js";

/** A parameter tensor's place in the flat buffer (the training step's layout). */
export interface LayoutEntry {
  name: string;
  shape: number[];
  offset: number;
  size: number;
}

export interface TrainPoint {
  step: number;
  tokens: number;
  loss: number;
  lr: number;
}

export interface EvalPoint {
  step: number;
  tokens: number;
  loss: number;
  bitsPerByte: number | null;
}

export interface TrainHistory {
  train: TrainPoint[];
  valid: EvalPoint[];
}

export interface TrainState {
  /** Optimizer steps done. */
  step: number;
  /** Training tokens consumed. */
  tokens: number;
  params: Float32Array;
  adamM: Float32Array;
  adamV: Float32Array;
  /** The objective's generator (masks, mask rates). */
  rng: RngState;
  data: DataPosition;
  config: ModelConfig;
  layout: LayoutEntry[];
  /** The run's options as JSON (kept for provenance and for the resume check). */
  options: Record<string, unknown>;
  history: TrainHistory;
  /** Training wall time summed over all sessions of the run. */
  elapsedSeconds: number;
}

const STATE = "state.safetensors";
const TRAINER = "trainer.json";
const STEP_DIR = /^step-(\d+)$/;

export const checkpointsDir = (runDir: string) => join(runDir, "checkpoints");

/** Writes a checkpoint atomically; keeps the newest `keep` (default 3). Returns its folder. */
export async function saveTrainingCheckpoint(
  runDir: string,
  state: TrainState,
  keep = 3,
): Promise<string> {
  const root = checkpointsDir(runDir);
  const final = join(root, `step-${String(state.step).padStart(8, "0")}`);
  const temp = `${final}.tmp-${process.pid}`;
  await rm(temp, { recursive: true, force: true });
  await mkdir(temp, { recursive: true });
  const n = state.params.length;
  const flat = (data: Float32Array): TensorEntry => ({ dtype: "F32", shape: [n], data });
  const tensors = new Map([
    ["params", flat(state.params)],
    ["adam.m", flat(state.adamM)],
    ["adam.v", flat(state.adamV)],
  ]);
  await writeSafetensors(join(temp, STATE), tensors, { format: "unmask-train" });
  const { params: _p, adamM: _m, adamV: _v, config, ...rest } = state;
  const trainer = { version: 1, ...rest, config: configToJson(config) };
  await writeFile(join(temp, TRAINER), `${JSON.stringify(trainer)}\n`);
  if (existsSync(final)) {
    const old = `${final}.old-${process.pid}`;
    await rename(final, old);
    await rename(temp, final);
    await rm(old, { recursive: true, force: true });
  } else {
    await rename(temp, final);
  }
  const all = await listCheckpoints(runDir);
  for (const dir of all.slice(0, Math.max(0, all.length - Math.max(1, keep)))) {
    await rm(dir, { recursive: true, force: true });
  }
  return final;
}

/** Complete checkpoint folders of a run, oldest first. */
export async function listCheckpoints(runDir: string): Promise<string[]> {
  const root = checkpointsDir(runDir);
  if (!existsSync(root)) return [];
  const found: [number, string][] = [];
  for (const name of await readdir(root)) {
    const m = STEP_DIR.exec(name);
    if (m && existsSync(join(root, name, TRAINER)) && existsSync(join(root, name, STATE))) {
      found.push([Number(m[1]), join(root, name)]);
    }
  }
  return found.sort((a, b) => a[0] - b[0]).map(([, dir]) => dir);
}

/** The newest complete checkpoint of a run, or null. */
export async function latestCheckpoint(runDir: string): Promise<string | null> {
  return (await listCheckpoints(runDir)).at(-1) ?? null;
}

/** Reads a checkpoint folder written by saveTrainingCheckpoint, validating its parts. */
export async function loadTrainingCheckpoint(dir: string): Promise<TrainState> {
  const trainerFile = join(dir, TRAINER);
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(await readFile(trainerFile, "utf8")) as Record<string, unknown>;
  } catch (cause) {
    throw new CheckpointError(trainerFile, null, `cannot read: ${String(cause)}`, { cause });
  }
  if (raw.version !== 1) {
    throw new CheckpointError(trainerFile, "version", `unknown version ${String(raw.version)}`);
  }
  const { tensors } = await readSafetensors(join(dir, STATE));
  const get = (name: string): Float32Array => {
    const t = tensors.get(name);
    if (!t) throw new CheckpointError(join(dir, STATE), name, "missing");
    return t;
  };
  const params = get("params");
  const adamM = get("adam.m");
  const adamV = get("adam.v");
  if (adamM.length !== params.length || adamV.length !== params.length) {
    throw new CheckpointError(join(dir, STATE), "adam", "moments and parameters differ in size");
  }
  const layout = raw.layout as LayoutEntry[];
  const end = layout.reduce((e, p) => Math.max(e, p.offset + p.size), 0);
  if (end !== params.length) {
    throw new CheckpointError(
      trainerFile,
      "layout",
      `covers ${end} of ${params.length} parameters`,
    );
  }
  return {
    step: raw.step as number,
    tokens: raw.tokens as number,
    params,
    adamM,
    adamV,
    rng: raw.rng as RngState,
    data: raw.data as DataPosition,
    config: parseModelConfig(raw.config, trainerFile),
    layout,
    options: raw.options as Record<string, unknown>,
    history: raw.history as TrainHistory,
    elapsedSeconds: raw.elapsedSeconds as number,
  };
}

/** The flat buffer as Weights by name (copies, in the layout's shapes). */
export function weightsFromFlat(layout: readonly LayoutEntry[], params: Float32Array): Weights {
  return new Map(layout.map((p) => [p.name, params.slice(p.offset, p.offset + p.size)]));
}

export interface ExportContents {
  config: ModelConfig;
  layout: readonly LayoutEntry[];
  params: Float32Array;
  tokenizerJson?: object | string;
  generation?: Record<string, unknown>;
}

/** Writes the trained model as a Hugging Face checkpoint folder (config, safetensors, tokenizer). */
export async function exportModel(
  dir: string,
  c: ExportContents,
  options: SaveOptions = {},
): Promise<void> {
  await saveCheckpoint(
    dir,
    {
      config: c.config,
      weights: weightsFromFlat(c.layout, c.params),
      tokenizerJson: c.tokenizerJson,
      generation: c.generation,
    },
    options,
  );
}
