// Distillation data: a teacher's greedy continuations of prompts cut from the corpus, for training
// a student to decode in parallel (issue 9). This is sequence-level knowledge distillation (Kim &
// Rush 2016, "Sequence-Level Knowledge Distillation"; the data that non-autoregressive translation
// trains on): a greedy teacher's text is a deterministic function of its prompt, so a student can
// learn to be sure of several of its tokens at once, where the corpus's own text leaves it
// unsure. dParallel (arXiv 2509.26488) trains its certainty forcing on such trajectories (the
// model's own); here the teacher is any causal model, the AR twin by default.
//
// A distillation set is a folder:
//   distill.json              { format, prompt, response, train, valid, teacher, seed, ... }
//   train.u16 / valid.u16     rows of prompt + response tokens, little-endian (u32 past 65,536 ids)
// Row r is [stream[c − prompt, c) ; the teacher's `response` greedy tokens after it] for a cut c
// drawn uniformly from the split's token stream; block diffusion then trains on the response
// only, against the clean prompt (`from` in src/train/objective.ts).

import { existsSync } from "node:fs";
import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { Rng } from "../model/random.js";
import type { LanguageModel } from "../model/types.js";
import { DataError, PackedRows, readIds, type TokenArray, writeAtomic } from "./data.js";

const FORMAT = "unmask-distill-v1";
/** The Rng stream of the cut points (the seed is the caller's). */
const STREAM_CUTS = 0x6469_7374;

export interface TeacherRowsOptions {
  /** A causal model without logit shift: the last fed position predicts the next token. */
  teacher: LanguageModel;
  /** The split's tokens, documents joined by EOS (src/train/data.ts). */
  stream: TokenArray;
  rows: number;
  /** Prompt tokens per row (≥ 1), taken from the stream. */
  prompt: number;
  /** Teacher tokens per row (≥ 1), written greedily (argmax, the lower id on ties). */
  response: number;
  seed: number;
  /** Rows per engine call (default 32). */
  batch?: number;
  onProgress?: (done: number, total: number) => void;
}

/**
 * Rows of `prompt + response` tokens: prompts cut from the stream at seeded uniform points, each
 * continued by the teacher's greedy decoding with a K/V cache, `batch` rows per forward pass.
 * Its slow twin is the AR decoder run row by row (test/distill.test.ts).
 */
export async function teacherRows(o: TeacherRowsOptions): Promise<Int32Array> {
  const { teacher, stream, rows, prompt: P, response: R } = o;
  const config = teacher.config;
  if (config.attention !== "causal" || config.logitShift) {
    throw new DataError(
      `distillation teacher: expected a causal model without logit shift, got ${config.attention} attention${config.logitShift ? " with logit shift" : ""}`,
    );
  }
  for (const [name, v] of [
    ["rows", rows],
    ["prompt", P],
    ["response", R],
  ] as const) {
    if (!Number.isInteger(v) || v < 1)
      throw new RangeError(`${name}: expected an integer ≥ 1, got ${v}`);
  }
  if (P + R > config.maxPositions) {
    throw new RangeError(
      `prompt ${P} + response ${R} exceed the teacher's context ${config.maxPositions}`,
    );
  }
  if (stream.length < P)
    throw new DataError(`the token stream (${stream.length}) is shorter than one prompt (${P})`);
  const B = o.batch ?? 32;
  const L = P + R;
  const out = new Int32Array(rows * L);
  const rng = new Rng(o.seed, STREAM_CUTS);
  for (let r = 0; r < rows; r++) {
    const cut = P + rng.int(stream.length - P + 1);
    for (let j = 0; j < P; j++) out[r * L + j] = stream[cut - P + j];
  }
  for (let first = 0; first < rows; first += B) {
    const b = Math.min(B, rows - first);
    const tokens = new Int32Array(b * P);
    for (let i = 0; i < b; i++)
      tokens.set(out.subarray((first + i) * L, (first + i) * L + P), i * P);
    let result = await teacher.forward({
      tokens,
      rows: b,
      logitsAt: new Int32Array(b).fill(P - 1),
      returnKv: true,
      logits: false,
      stats: { topK: 1 },
    });
    for (let t = 0; ; t++) {
      const next = result.stats!.ids; // [b, 1, 1]
      for (let i = 0; i < b; i++) out[(first + i) * L + P + t] = next[i];
      if (t === R - 1) break;
      result = await teacher.forward({
        tokens: Int32Array.from(next),
        rows: b,
        context: result.kv,
        returnKv: true,
        logits: false,
        stats: { topK: 1 },
      });
    }
    o.onProgress?.(first + b, rows);
  }
  return out;
}

/** What distill.json records. */
export interface DistillInfo {
  format: typeof FORMAT;
  prompt: number;
  response: number;
  /** Rows per split. */
  train: number;
  valid: number;
  /** Bytes per id in the row files: 2 (u16) or 4 (u32). */
  bytesPerId: 2 | 4;
  teacher: string;
  corpus: string;
  seed: number;
}

export interface DistillSet {
  info: DistillInfo;
  train: PackedRows;
  valid: PackedRows | null;
}

/** Writes a distillation set's rows and distill.json (written last, so a set is whole or absent). */
export async function writeDistillSet(
  dir: string,
  info: Omit<DistillInfo, "format" | "bytesPerId" | "train" | "valid">,
  splits: { train: Int32Array; valid: Int32Array | null },
  vocabSize: number,
): Promise<DistillInfo> {
  const L = info.prompt + info.response;
  const bytesPerId = vocabSize > 65536 ? 4 : 2;
  await mkdir(dir, { recursive: true });
  const write = async (split: string, rows: Int32Array) => {
    const data = bytesPerId === 4 ? Uint32Array.from(rows) : Uint16Array.from(rows);
    await writeAtomic(join(dir, `${split}.u${bytesPerId * 8}`), new Uint8Array(data.buffer));
  };
  await write("train", splits.train);
  if (splits.valid) await write("valid", splits.valid);
  const full: DistillInfo = {
    format: FORMAT,
    ...info,
    train: splits.train.length / L,
    valid: splits.valid ? splits.valid.length / L : 0,
    bytesPerId,
  };
  await writeAtomic(join(dir, "distill.json"), `${JSON.stringify(full, null, 2)}\n`);
  return full;
}

/** Reads a distillation set written by writeDistillSet; a missing or inconsistent file is a DataError naming it. */
export async function readDistillSet(dir: string): Promise<DistillSet> {
  const meta = join(dir, "distill.json");
  if (!existsSync(meta))
    throw new DataError(`${meta}: not found (write the set with 'unmask distill')`);
  let info: DistillInfo;
  try {
    info = JSON.parse(await readFile(meta, "utf8")) as DistillInfo;
  } catch (cause) {
    throw new DataError(`${meta}: not valid JSON`, { cause });
  }
  if (info.format !== FORMAT) {
    throw new DataError(`${meta}: format ${JSON.stringify(info.format)}, expected ${FORMAT}`);
  }
  for (const key of ["prompt", "response", "train", "valid"] as const) {
    if (!Number.isInteger(info[key]) || info[key] < 0) {
      throw new DataError(
        `${meta}: ${key} must be an integer ≥ 0, got ${JSON.stringify(info[key])}`,
      );
    }
  }
  if (info.bytesPerId !== 2 && info.bytesPerId !== 4) {
    throw new DataError(
      `${meta}: bytesPerId must be 2 or 4, got ${JSON.stringify(info.bytesPerId)}`,
    );
  }
  const L = info.prompt + info.response;
  const read = async (split: "train" | "valid") => {
    const file = join(dir, `${split}.u${info.bytesPerId * 8}`);
    const ids = await readIds(file, info.bytesPerId === 4);
    if (ids.length !== info[split] * L) {
      throw new DataError(
        `${file}: holds ${ids.length} ids, ${meta} says ${info[split]} rows of ${L}`,
      );
    }
    return new PackedRows(ids, L);
  };
  return { info, train: await read("train"), valid: info.valid > 0 ? await read("valid") : null };
}
