/**
 * Byte-level BPE: a trainer, a fast encoder/decoder for training data, and a writer/reader for
 * the standard Hugging Face `tokenizer.json` that `@huggingface/tokenizers` loads.
 *
 * Vocabulary layout (fixed, independent of the vocabulary size):
 *
 *   ids 0..6     special tokens, in the order of `SPECIAL_TOKENS`: [MASK]=0, [PAD]=1, [BOS]=2,
 *                [EOS]=3, [FIM_PREFIX]=4, [FIM_MIDDLE]=5, [FIM_SUFFIX]=6
 *   ids 7..262   the 256 bytes, id = 7 + byte value
 *   ids 263..    one token per merge, in merge order (merge i creates id 263 + i)
 *
 * Byte level: token strings in tokenizer.json use the GPT-2 byte→unicode map, and every string
 * round-trips, `decode(encode(s)) === s`, for any well-formed UTF-16 string. Lone surrogates
 * cannot be encoded as UTF-8: they become U+FFFD (in our encoder and in tokenizers.js alike).
 *
 * Special tokens in text: tokenizers.js (like the Rust library) matches added tokens anywhere in
 * the input, so the literal string "[MASK]" in source code encodes to the [MASK] id. `encode`
 * does the same, so the two agree; training text must instead go through `encodeOrdinary`,
 * which never produces a special id ("[MASK]" becomes the tokens of "[", "MASK", "]"). The
 * trainer likewise never counts special-token strings as text.
 *
 * Training is the classic algorithm (Sennrich et al. 2016; byte level as in GPT-2, Radford et
 * al. 2019): count pre-token frequencies, then repeatedly merge the most frequent adjacent pair,
 * with incremental pair counts, an index from pair to the words that hold it, and a lazy
 * max-heap. Ties break deterministically: higher count first, then the smaller (left id,
 * right id).
 */
import { CODE_SPLIT_PATTERN, forEachPreToken } from "./pretokenize.js";

/** Special tokens, ids 0..6 in this order. */
export const SPECIAL_TOKENS = [
  "[MASK]",
  "[PAD]",
  "[BOS]",
  "[EOS]",
  "[FIM_PREFIX]",
  "[FIM_MIDDLE]",
  "[FIM_SUFFIX]",
] as const;

/** Ids of the special tokens (the vocabulary layout fixes them). */
export const SPECIAL_IDS = {
  mask: 0,
  pad: 1,
  bos: 2,
  eos: 3,
  fimPrefix: 4,
  fimMiddle: 5,
  fimSuffix: 6,
} as const;

/** The first byte token's id. */
export const BYTE_OFFSET = SPECIAL_TOKENS.length;
/** The first merged token's id. */
export const FIRST_MERGE_ID = BYTE_OFFSET + 256;

/** A trained byte-level BPE: the merges are the whole model; everything else is derived. */
export interface BpeModel {
  /** Merge i joins tokens `[left, right]` into token id `FIRST_MERGE_ID + i`. */
  readonly merges: readonly (readonly [number, number])[];
}

export interface TrainProgress {
  phase: "count" | "merge";
  /** count: characters (UTF-16 units) of text read so far; merge: merges done. */
  done: number;
  /** merge: merges wanted; count: 0 (unknown). */
  total: number;
}

export interface TrainBpeOptions {
  /** Total vocabulary size, special and byte tokens included (default 8192). */
  vocabSize?: number;
  /** Stop early when the most frequent pair occurs fewer times than this (default 2). */
  minFrequency?: number;
  onProgress?: (p: TrainProgress) => void;
}

/** Pair keys pack two ids below 2^21 into one float64-exact integer. */
const KEY = 2 ** 21;
const MAX_VOCAB = KEY;

// ---------------------------------------------------------------------------------------------
// GPT-2 byte ↔ unicode map

function buildByteToUnicode(): string[] {
  const map: string[] = new Array(256);
  let n = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || b >= 0xae;
    map[b] = String.fromCharCode(printable ? b : 256 + n++);
  }
  return map;
}

/** Byte → the character that stands for it in tokenizer.json (GPT-2's `bytes_to_unicode`). */
export const BYTE_TO_UNICODE: readonly string[] = buildByteToUnicode();

// ---------------------------------------------------------------------------------------------
// Special-token splitting: leftmost, longest match, as tokenizers.js's DictionarySplitter.

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

const SPECIAL_RE = new RegExp(
  [...SPECIAL_TOKENS]
    .sort((a, b) => b.length - a.length)
    .map(escapeRegExp)
    .join("|"),
  "g",
);
const SPECIAL_ID_OF = new Map<string, number>(SPECIAL_TOKENS.map((t, i) => [t, i]));

/** Calls `onText` for each stretch of plain text and `onSpecial` for each special token. */
function splitSpecial(
  text: string,
  onText: (s: string) => void,
  onSpecial: (id: number) => void,
): void {
  if (!text.includes("[")) {
    if (text.length > 0) onText(text);
    return;
  }
  SPECIAL_RE.lastIndex = 0;
  let prev = 0;
  for (let m = SPECIAL_RE.exec(text); m !== null; m = SPECIAL_RE.exec(text)) {
    if (m.index > prev) onText(text.slice(prev, m.index));
    onSpecial(SPECIAL_ID_OF.get(m[0])!);
    prev = m.index + m[0].length;
  }
  if (prev < text.length) onText(text.slice(prev));
}

// ---------------------------------------------------------------------------------------------
// Training

/** A max-heap of pair keys ordered by count (desc), then key (asc): lazy, entries may be stale. */
class PairHeap {
  private counts: number[] = [];
  private keys: number[] = [];

  get size(): number {
    return this.keys.length;
  }

  private above(i: number, j: number): boolean {
    const ci = this.counts[i];
    const cj = this.counts[j];
    return ci > cj || (ci === cj && this.keys[i] < this.keys[j]);
  }

  private swap(i: number, j: number): void {
    const c = this.counts[i];
    this.counts[i] = this.counts[j];
    this.counts[j] = c;
    const k = this.keys[i];
    this.keys[i] = this.keys[j];
    this.keys[j] = k;
  }

  push(count: number, key: number): void {
    this.counts.push(count);
    this.keys.push(key);
    let i = this.keys.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.above(i, parent)) break;
      this.swap(i, parent);
      i = parent;
    }
  }

  topCount(): number {
    return this.counts[0];
  }

  topKey(): number {
    return this.keys[0];
  }

  pop(): void {
    const last = this.keys.length - 1;
    this.swap(0, last);
    this.counts.pop();
    this.keys.pop();
    const n = this.keys.length;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let best = i;
      if (l < n && this.above(l, best)) best = l;
      if (r < n && this.above(r, best)) best = r;
      if (best === i) break;
      this.swap(i, best);
      i = best;
    }
  }
}

const utf8 = new TextEncoder();

/**
 * Trains a byte-level BPE on `texts` (each item a document; special-token strings in them are
 * skipped, never learned). Resolves to fewer merges than asked when the text runs out of pairs
 * occurring at least `minFrequency` times.
 */
export async function trainBpe(
  texts: Iterable<string> | AsyncIterable<string>,
  options: TrainBpeOptions = {},
): Promise<BpeModel> {
  const vocabSize = options.vocabSize ?? 8192;
  const minFrequency = options.minFrequency ?? 2;
  const onProgress = options.onProgress;
  if (!Number.isInteger(vocabSize) || vocabSize < FIRST_MERGE_ID || vocabSize > MAX_VOCAB) {
    throw new RangeError(
      `vocabSize must be an integer in [${FIRST_MERGE_ID}, ${MAX_VOCAB}], got ${vocabSize}`,
    );
  }
  const wantMerges = vocabSize - FIRST_MERGE_ID;

  // 1. Pre-token frequencies.
  const freq = new Map<string, number>();
  const countPiece = (p: string) => freq.set(p, (freq.get(p) ?? 0) + 1);
  const countText = (s: string) => forEachPreToken(s, countPiece);
  const ignoreSpecial = () => {};
  let bytesRead = 0;
  let nextReport = 0;
  for await (const text of texts) {
    splitSpecial(text, countText, ignoreSpecial);
    bytesRead += text.length;
    if (onProgress && bytesRead >= nextReport) {
      onProgress({ phase: "count", done: bytesRead, total: 0 });
      nextReport = bytesRead + (1 << 20);
    }
  }

  // 2. Words as symbol arrays, sorted so that word indices do not depend on Map order quirks.
  const pieces = [...freq.keys()].sort();
  const words: Int32Array[] = new Array(pieces.length);
  const lens = new Int32Array(pieces.length);
  const counts = new Float64Array(pieces.length);
  for (let w = 0; w < pieces.length; w++) {
    const bytes = utf8.encode(pieces[w]);
    const sym = new Int32Array(bytes.length);
    for (let i = 0; i < bytes.length; i++) sym[i] = bytes[i] + BYTE_OFFSET;
    words[w] = sym;
    lens[w] = bytes.length;
    counts[w] = freq.get(pieces[w])!;
  }
  freq.clear();

  // 3. Pair counts and the index pair → words holding it (may hold stale entries).
  const pairCount = new Map<number, number>();
  const where = new Map<number, number[]>();
  const note = (key: number, w: number) => {
    const list = where.get(key);
    if (list === undefined) where.set(key, [w]);
    else if (list[list.length - 1] !== w) list.push(w);
  };
  for (let w = 0; w < words.length; w++) {
    const sym = words[w];
    for (let i = 0; i + 1 < lens[w]; i++) {
      const key = sym[i] * KEY + sym[i + 1];
      pairCount.set(key, (pairCount.get(key) ?? 0) + counts[w]);
      note(key, w);
    }
  }
  const heap = new PairHeap();
  for (const key of [...pairCount.keys()].sort((a, b) => a - b)) {
    heap.push(pairCount.get(key)!, key);
  }

  // 4. Merge loop.
  const merges: [number, number][] = [];
  const seen = new Int32Array(words.length).fill(-1);
  const delta = new Map<number, number>();
  const bump = (key: number, d: number) => delta.set(key, (delta.get(key) ?? 0) + d);
  while (merges.length < wantMerges && heap.size > 0) {
    const key = heap.topKey();
    const stored = heap.topCount();
    const current = pairCount.get(key);
    heap.pop();
    if (current === undefined) continue;
    if (current !== stored) {
      heap.push(current, key); // counts only fall: re-queue at the true count
      continue;
    }
    if (current < minFrequency) break;

    const a = Math.floor(key / KEY);
    const b = key - a * KEY;
    const c = FIRST_MERGE_ID + merges.length;
    const step = merges.length;
    merges.push([a, b]);
    delta.clear();
    for (const w of where.get(key) ?? []) {
      if (seen[w] === step) continue;
      seen[w] = step;
      const sym = words[w];
      const n = lens[w];
      const f = counts[w];
      let j = 0;
      let i = 0;
      while (i < n) {
        if (i + 1 < n && sym[i] === a && sym[i + 1] === b) {
          if (j > 0) {
            const p = sym[j - 1];
            bump(p * KEY + a, -f);
            bump(p * KEY + c, f);
            note(p * KEY + c, w);
          }
          if (i + 2 < n) {
            const nx = sym[i + 2];
            bump(b * KEY + nx, -f);
            bump(c * KEY + nx, f);
            note(c * KEY + nx, w);
          }
          bump(key, -f);
          sym[j++] = c;
          i += 2;
        } else {
          sym[j++] = sym[i++];
        }
      }
      lens[w] = j;
    }
    for (const [k, d] of delta) {
      if (d === 0) continue;
      const next = (pairCount.get(k) ?? 0) + d;
      if (next <= 0) {
        pairCount.delete(k);
        where.delete(k);
      } else {
        pairCount.set(k, next);
        if (d > 0) heap.push(next, k);
      }
    }
    pairCount.delete(key);
    where.delete(key);
    if (onProgress && (merges.length % 100 === 0 || merges.length === wantMerges)) {
      onProgress({ phase: "merge", done: merges.length, total: wantMerges });
    }
  }
  return { merges };
}

// ---------------------------------------------------------------------------------------------
// Encoding and decoding

/** Byte strings of every token (specials as their UTF-8 text), indexed by id. */
function tokenBytesTable(model: BpeModel): Uint8Array[] {
  const table: Uint8Array[] = SPECIAL_TOKENS.map((t) => utf8.encode(t));
  for (let b = 0; b < 256; b++) table.push(Uint8Array.of(b));
  for (const [l, r] of model.merges) {
    const left = table[l];
    const right = table[r];
    if (left === undefined || right === undefined || l < BYTE_OFFSET || r < BYTE_OFFSET) {
      throw new RangeError(`merge ${table.length - FIRST_MERGE_ID} refers to id ${l} or ${r}`);
    }
    const joined = new Uint8Array(left.length + right.length);
    joined.set(left);
    joined.set(right, left.length);
    table.push(joined);
  }
  return table;
}

/**
 * Our fast BPE encoder/decoder, for tokenizing training data. It agrees exactly with
 * tokenizers.js loaded from `bpeToTokenizerJson(model)` (tested), and caches the ids of every
 * pre-token it has seen.
 */
export class BpeTokenizer {
  readonly vocabSize: number;
  private readonly rank = new Map<number, number>();
  private readonly bytes: Uint8Array[];
  private readonly cache = new Map<string, readonly number[]>();
  private readonly decoder = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });
  private static readonly CACHE_LIMIT = 1 << 20;

  constructor(readonly model: BpeModel) {
    this.bytes = tokenBytesTable(model);
    this.vocabSize = this.bytes.length;
    model.merges.forEach(([l, r], i) => {
      this.rank.set(l * KEY + r, i);
    });
  }

  /** Ids of `text`; special-token strings in it become their special ids (as tokenizers.js). */
  encode(text: string): number[] {
    const out: number[] = [];
    splitSpecial(
      text,
      (s) => this.encodePlain(s, out),
      (id) => out.push(id),
    );
    return out;
  }

  /** Ids of `text` with no special token ever produced: the encoder for training data. */
  encodeOrdinary(text: string): number[] {
    const out: number[] = [];
    this.encodePlain(text, out);
    return out;
  }

  /** Text of `ids`; special ids become their strings; invalid UTF-8 becomes U+FFFD. */
  decode(ids: ArrayLike<number>): string {
    let n = 0;
    for (let i = 0; i < ids.length; i++) n += this.token(ids[i]).length;
    const buf = new Uint8Array(n);
    let at = 0;
    for (let i = 0; i < ids.length; i++) {
      const t = this.token(ids[i]);
      buf.set(t, at);
      at += t.length;
    }
    return this.decoder.decode(buf);
  }

  /** The bytes a token stands for (a special token: its UTF-8 text). */
  token(id: number): Uint8Array {
    const t = this.bytes[id];
    if (t === undefined) throw new RangeError(`token id ${id} outside [0, ${this.vocabSize})`);
    return t;
  }

  /** The token's string in tokenizer.json (byte-level characters; specials as themselves). */
  tokenString(id: number): string {
    if (id < BYTE_OFFSET) return SPECIAL_TOKENS[id];
    let s = "";
    for (const b of this.token(id)) s += BYTE_TO_UNICODE[b];
    return s;
  }

  private encodePlain(text: string, out: number[]): void {
    forEachPreToken(text, (piece) => {
      let ids = this.cache.get(piece);
      if (ids === undefined) {
        ids = this.bpe(piece);
        if (this.cache.size >= BpeTokenizer.CACHE_LIMIT) this.cache.clear();
        this.cache.set(piece, ids);
      }
      for (let i = 0; i < ids.length; i++) out.push(ids[i]);
    });
  }

  /**
   * BPE of one pre-token: repeatedly merge every occurrence (left to right) of the adjacent
   * pair of lowest merge rank. This equals tokenizers.js's heap order, since a merge's result
   * only takes part in merges of higher rank. O(n · merges applied): fine for code pre-tokens,
   * slow only for pathological 100 kB pre-tokens.
   */
  private bpe(piece: string): number[] {
    const bytes = utf8.encode(piece);
    const sym: number[] = new Array(bytes.length);
    for (let i = 0; i < bytes.length; i++) sym[i] = bytes[i] + BYTE_OFFSET;
    let n = sym.length;
    while (n > 1) {
      let best = Number.POSITIVE_INFINITY;
      for (let i = 0; i + 1 < n; i++) {
        const r = this.rank.get(sym[i] * KEY + sym[i + 1]);
        if (r !== undefined && r < best) best = r;
      }
      if (best === Number.POSITIVE_INFINITY) break;
      const [a, b] = this.model.merges[best];
      const c = FIRST_MERGE_ID + best;
      let j = 0;
      for (let i = 0; i < n; ) {
        if (i + 1 < n && sym[i] === a && sym[i + 1] === b) {
          sym[j++] = c;
          i += 2;
        } else {
          sym[j++] = sym[i++];
        }
      }
      n = j;
    }
    sym.length = n;
    return sym;
  }
}

// ---------------------------------------------------------------------------------------------
// tokenizer.json

/** The shape of the tokenizer.json we write (a subset of the Hugging Face format). */
export interface TokenizerJson {
  version: "1.0";
  truncation: null;
  padding: null;
  added_tokens: {
    id: number;
    content: string;
    single_word: boolean;
    lstrip: boolean;
    rstrip: boolean;
    normalized: boolean;
    special: boolean;
  }[];
  normalizer: null;
  pre_tokenizer: {
    type: "Sequence";
    pretokenizers: [
      { type: "Split"; pattern: { Regex: string }; behavior: "Isolated"; invert: false },
      { type: "ByteLevel"; add_prefix_space: false; trim_offsets: true; use_regex: false },
    ];
  };
  post_processor: null;
  decoder: { type: "ByteLevel"; add_prefix_space: false; trim_offsets: true; use_regex: false };
  model: {
    type: "BPE";
    dropout: null;
    unk_token: null;
    continuing_subword_prefix: null;
    end_of_word_suffix: null;
    fuse_unk: false;
    byte_fallback: false;
    ignore_merges: false;
    vocab: Record<string, number>;
    merges: string[];
  };
}

/**
 * The standard tokenizer.json of `model`. Merges use the "left right" string form (byte-level
 * token strings never contain a space), which every version of the Rust, Python and JS
 * libraries reads. The vocabulary object has a null prototype so that a token spelled
 * "__proto__" is an ordinary key. Decoding with tokenizers.js needs
 * `clean_up_tokenization_spaces: false` (see `bpeTokenizerConfig`), or it rewrites " ." to ".".
 */
export function bpeToTokenizerJson(model: BpeModel): TokenizerJson {
  const tok = new BpeTokenizer(model);
  const vocab: Record<string, number> = Object.create(null);
  for (let id = 0; id < tok.vocabSize; id++) vocab[tok.tokenString(id)] = id;
  if (Object.keys(vocab).length !== tok.vocabSize) {
    throw new Error("BPE model has two tokens with the same bytes");
  }
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: SPECIAL_TOKENS.map((content, id) => ({
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: null,
    pre_tokenizer: {
      type: "Sequence",
      pretokenizers: [
        {
          type: "Split",
          pattern: { Regex: CODE_SPLIT_PATTERN },
          behavior: "Isolated",
          invert: false,
        },
        { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    post_processor: null,
    decoder: { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: false },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: model.merges.map(([l, r]) => `${tok.tokenString(l)} ${tok.tokenString(r)}`),
    },
  };
}

/** A `tokenizer_config.json` to ship beside tokenizer.json (transformers / tokenizers.js). */
export function bpeTokenizerConfig(model: BpeModel): Record<string, unknown> {
  return {
    tokenizer_class: "PreTrainedTokenizerFast",
    clean_up_tokenization_spaces: false,
    model_max_length: 1_000_000_000,
    vocab_size: FIRST_MERGE_ID + model.merges.length,
    mask_token: SPECIAL_TOKENS[SPECIAL_IDS.mask],
    pad_token: SPECIAL_TOKENS[SPECIAL_IDS.pad],
    bos_token: SPECIAL_TOKENS[SPECIAL_IDS.bos],
    eos_token: SPECIAL_TOKENS[SPECIAL_IDS.eos],
    additional_special_tokens: [
      SPECIAL_TOKENS[SPECIAL_IDS.fimPrefix],
      SPECIAL_TOKENS[SPECIAL_IDS.fimMiddle],
      SPECIAL_TOKENS[SPECIAL_IDS.fimSuffix],
    ],
  };
}

/** Thrown when a tokenizer.json is not one that `bpeToTokenizerJson` could have written. */
export class TokenizerJsonError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(`tokenizer.json: ${message}`, options);
    this.name = "TokenizerJsonError";
  }
}

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

/**
 * Reads back a tokenizer.json written by `bpeToTokenizerJson`, validating every part the
 * encoder depends on (pre-tokenizer pattern, special and byte tokens, merges consistent with
 * the vocabulary), so that our encoder and tokenizers.js cannot silently disagree.
 */
export function bpeFromTokenizerJson(json: unknown): BpeModel {
  if (!isRecord(json) || !isRecord(json.model) || json.model.type !== "BPE") {
    throw new TokenizerJsonError("expected an object with model.type 'BPE'");
  }
  const pre = json.pre_tokenizer;
  const split = isRecord(pre) && Array.isArray(pre.pretokenizers) ? pre.pretokenizers[0] : null;
  if (
    !isRecord(split) ||
    !isRecord(split.pattern) ||
    split.pattern.Regex !== CODE_SPLIT_PATTERN ||
    split.behavior !== "Isolated" ||
    split.invert !== false
  ) {
    throw new TokenizerJsonError("pre_tokenizer is not this project's code Split pattern");
  }
  if (json.normalizer !== null) throw new TokenizerJsonError("normalizer must be null");
  const { vocab, merges } = json.model;
  if (!isRecord(vocab) || !Array.isArray(merges)) {
    throw new TokenizerJsonError("model.vocab must be an object and model.merges an array");
  }
  const idOf = (s: string, where: string): number => {
    const id = Object.hasOwn(vocab, s) ? vocab[s] : undefined;
    if (typeof id !== "number") throw new TokenizerJsonError(`${where}: unknown token ${s}`);
    return id;
  };
  SPECIAL_TOKENS.forEach((t, i) => {
    if (idOf(t, "special tokens") !== i) {
      throw new TokenizerJsonError(`special token ${t} must have id ${i}`);
    }
  });
  for (let b = 0; b < 256; b++) {
    if (idOf(BYTE_TO_UNICODE[b], "byte tokens") !== BYTE_OFFSET + b) {
      throw new TokenizerJsonError(`byte ${b} must have id ${BYTE_OFFSET + b}`);
    }
  }
  const pairs: [number, number][] = merges.map((m: unknown, i: number) => {
    const parts = typeof m === "string" ? m.split(" ") : m;
    if (!Array.isArray(parts) || parts.length !== 2 || parts.some((p) => typeof p !== "string")) {
      throw new TokenizerJsonError(`merge ${i} is not a pair of token strings`);
    }
    const [l, r] = parts as [string, string];
    const made = FIRST_MERGE_ID + i;
    if (idOf(l + r, `merge ${i}`) !== made) {
      throw new TokenizerJsonError(`merge ${i} must create id ${made}`);
    }
    const pair: [number, number] = [idOf(l, `merge ${i}`), idOf(r, `merge ${i}`)];
    if (pair.some((id) => id < BYTE_OFFSET || id >= made)) {
      throw new TokenizerJsonError(`merge ${i} must join byte or earlier merged tokens`);
    }
    return pair;
  });
  if (Object.keys(vocab).length !== FIRST_MERGE_ID + pairs.length) {
    throw new TokenizerJsonError("vocab size must be specials + 256 bytes + merges");
  }
  return { merges: pairs };
}
