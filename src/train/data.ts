// Training data: the corpus JSONL (src/train/corpus.ts) tokenized once with the project's BPE
// (src/train/bpe.ts) into one token stream, documents joined by EOS (doc₁ EOS doc₂ EOS …),
// cached as a raw little-endian binary file so that later runs start at once; the stream cut
// into rows of `length` tokens; and a deterministic shuffled order of rows whose position is
// saved and restored exactly.
//
// Cache layout, beside the corpus by default (`<corpus dir>/tokens/`):
//   <split>-<key>.u16 (or .u32)   the token ids, little-endian, no header
//   <split>-<key>.json            { tokens, documents, bytes, eosId, … }, written last
// where key hashes the format version, the tokenizer's merges, the EOS id and the corpus bytes:
// a changed corpus or tokenizer gets a new file, never a stale one.

import { createHash } from "node:crypto";
import { createReadStream, existsSync } from "node:fs";
import { mkdir, readFile, rename, stat, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { Rng } from "../model/random.js";
import { type BpeTokenizer, SPECIAL_IDS } from "./bpe.js";

export type TokenArray = Uint16Array | Uint32Array | Int32Array;

export interface TokenStream {
  tokens: TokenArray;
  documents: number;
  /** UTF-8 bytes of the documents' text (EOS separators not counted). */
  bytes: number;
  /** The cache file holding the tokens. */
  file: string;
  /** True when read from the cache rather than tokenized now. */
  cached: boolean;
}

export interface TokenizeProgress {
  /** Bytes of the JSONL file read so far, of `fileBytes`. */
  done: number;
  fileBytes: number;
  documents: number;
  tokens: number;
}

export interface TokenizeOptions {
  /** A corpus JSONL file: one JSON object with a "text" string per line. */
  corpus: string;
  tokenizer: BpeTokenizer;
  /** Separator after every document (default the vocabulary's [EOS]). */
  eosId?: number;
  /** Where the cache goes (default `<dirname(corpus)>/tokens`). */
  cacheDir?: string;
  onProgress?: (p: TokenizeProgress) => void;
}

export class DataError extends Error {
  override name = "DataError";
}

const FORMAT = "unmask-tokens-v1";

/** Tokenizes a corpus JSONL file, or reads its tokens from the cache. */
export async function tokenizeCorpus(o: TokenizeOptions): Promise<TokenStream> {
  const eosId = o.eosId ?? SPECIAL_IDS.eos;
  const wide = o.tokenizer.vocabSize > 65536;
  const key = await cacheKey(o.corpus, o.tokenizer, eosId);
  const dir = o.cacheDir ?? join(dirname(o.corpus), "tokens");
  const stem = join(dir, `${basename(o.corpus).replace(/\.jsonl$/, "")}-${key}`);
  const file = `${stem}.${wide ? "u32" : "u16"}`;
  const meta = `${stem}.json`;
  if (existsSync(meta) && existsSync(file)) {
    const info = JSON.parse(await readFile(meta, "utf8")) as Record<string, number>;
    const tokens = await readIds(file, wide);
    if (tokens.length !== info.tokens) {
      throw new DataError(`${file}: holds ${tokens.length} tokens, ${meta} says ${info.tokens}`);
    }
    return { tokens, documents: info.documents, bytes: info.bytes, file, cached: true };
  }

  const fileBytes = (await stat(o.corpus)).size;
  let tokens: Uint16Array | Uint32Array = wide
    ? new Uint32Array(1 << 20)
    : new Uint16Array(1 << 20);
  let n = 0;
  let documents = 0;
  let bytes = 0;
  let done = 0;
  const push = (id: number) => {
    if (n === tokens.length) {
      const grown: Uint16Array | Uint32Array = wide
        ? new Uint32Array(tokens.length * 2)
        : new Uint16Array(tokens.length * 2);
      grown.set(tokens);
      tokens = grown;
    }
    tokens[n++] = id;
  };
  const lines = createInterface({ input: createReadStream(o.corpus, "utf8"), crlfDelay: Infinity });
  let lineNo = 0;
  for await (const line of lines) {
    lineNo++;
    done += Buffer.byteLength(line) + 1;
    if (line.length === 0) continue;
    let text: unknown;
    try {
      text = (JSON.parse(line) as { text?: unknown }).text;
    } catch (cause) {
      throw new DataError(`${o.corpus}:${lineNo}: not JSON`, { cause });
    }
    if (typeof text !== "string") {
      throw new DataError(`${o.corpus}:${lineNo}: expected an object with a "text" string`);
    }
    for (const id of o.tokenizer.encodeOrdinary(text)) push(id);
    push(eosId);
    documents++;
    bytes += Buffer.byteLength(text);
    if (o.onProgress && documents % 64 === 0) {
      o.onProgress({ done, fileBytes, documents, tokens: n });
    }
  }
  o.onProgress?.({ done: fileBytes, fileBytes, documents, tokens: n });
  const out = tokens.slice(0, n);
  await mkdir(dir, { recursive: true });
  await writeAtomic(file, new Uint8Array(out.buffer));
  const info = { format: FORMAT, tokens: n, documents, bytes, eosId, corpus: o.corpus };
  await writeAtomic(meta, `${JSON.stringify(info, null, 2)}\n`);
  return { tokens: out, documents, bytes, file, cached: false };
}

async function cacheKey(corpus: string, tokenizer: BpeTokenizer, eosId: number): Promise<string> {
  const hash = createHash("sha256");
  hash.update(`${FORMAT}\n${eosId}\n${JSON.stringify(tokenizer.model.merges)}\n`);
  for await (const chunk of createReadStream(corpus)) hash.update(chunk as Buffer);
  return hash.digest("hex").slice(0, 16);
}

/** A file of little-endian token ids, u32 when `wide`, else u16 (no header). */
export async function readIds(file: string, wide: boolean): Promise<Uint16Array | Uint32Array> {
  const raw = await readFile(file);
  const copy = raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength);
  return wide ? new Uint32Array(copy) : new Uint16Array(copy);
}

export async function writeAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const temp = `${path}.tmp-${process.pid}`;
  await writeFile(temp, data);
  await rename(temp, path);
}

/** A token stream cut into rows of `length` tokens (the tail that does not fill a row dropped). */
export class PackedRows {
  readonly count: number;

  constructor(
    readonly tokens: TokenArray,
    readonly length: number,
  ) {
    if (!Number.isInteger(length) || length < 1) throw new RangeError(`bad row length ${length}`);
    this.count = Math.floor(tokens.length / length);
  }

  /** Copies row i into out[at .. at + length). */
  copyRow(i: number, out: Int32Array, at = 0): void {
    if (!Number.isInteger(i) || i < 0 || i >= this.count) {
      throw new RangeError(`row ${i} outside [0, ${this.count})`);
    }
    const src = this.tokens.subarray(i * this.length, (i + 1) * this.length);
    for (let j = 0; j < this.length; j++) out[at + j] = src[j];
  }
}

/** Where a RowSampler stands: row `index` of epoch `epoch`'s permutation comes next. */
export interface DataPosition {
  seed: number;
  epoch: number;
  index: number;
}

/**
 * Rows in a shuffled order: epoch e visits every row once, in the Fisher–Yates permutation drawn
 * from `new Rng(seed, e)`. The position is (seed, epoch, index), so a restored sampler continues
 * with exactly the rows an uninterrupted one would have read.
 */
export class RowSampler {
  private epoch = 0;
  private index = 0;
  private order: Uint32Array;

  constructor(
    readonly rows: PackedRows,
    readonly seed: number,
  ) {
    if (rows.count === 0)
      throw new DataError("no full row: the token stream is shorter than one row");
    this.order = this.permutation(0);
  }

  position(): DataPosition {
    return { seed: this.seed, epoch: this.epoch, index: this.index };
  }

  restore(p: DataPosition): void {
    if (p.seed !== this.seed)
      throw new DataError(`data seed ${p.seed} != sampler seed ${this.seed}`);
    if (!Number.isInteger(p.index) || p.index < 0 || p.index > this.rows.count) {
      throw new DataError(`data index ${p.index} outside [0, ${this.rows.count}]`);
    }
    if (p.epoch !== this.epoch) this.order = this.permutation(p.epoch);
    this.epoch = p.epoch;
    this.index = p.index;
  }

  /** Fills out[0 .. n·length) with the next n rows. */
  next(n: number, out: Int32Array): void {
    for (let r = 0; r < n; r++) {
      if (this.index === this.rows.count) {
        this.epoch++;
        this.index = 0;
        this.order = this.permutation(this.epoch);
      }
      this.rows.copyRow(this.order[this.index++], out, r * this.rows.length);
    }
  }

  private permutation(epoch: number): Uint32Array {
    const rng = new Rng(this.seed, epoch);
    const order = new Uint32Array(this.rows.count);
    for (let i = 0; i < order.length; i++) order[i] = i;
    for (let i = order.length - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      const t = order[i];
      order[i] = order[j];
      order[j] = t;
    }
    return order;
  }
}
