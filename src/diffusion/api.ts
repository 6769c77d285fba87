// The library's face: generate, infill, edit and fix code with a diffusion model (and generate
// with an AR model, the baseline), each streaming (an async generator of StepEvents returning the
// result) or not (a promise of the result). Options are validated when called, before any forward
// pass, with DecodeOptionError naming the parameter. Text needs a tokenizer; token ids do not.
//
// Variable-length infill — the choice made here: a hole is given its maximum length and the
// model may end it early with end tokens (EOS or pad), which are trimmed from the fill
// (`holeLength: "trim"`). This is LLaDA's convention (its SFT data pads answers with EOS, which
// the sampler strips) and costs nothing over fixed-length infill: one run, no extra forward
// passes. The alternative — one run per candidate length, kept by likelihood — multiplies the
// cost by the number of candidates for every hole. A model never trained to pad fills the whole
// hole; then fixed length (`holeLength: "fixed"`, the default, with end tokens suppressed) is
// the honest mode.

import { endTokenIds } from "../model/config.js";
import type { LanguageModel } from "../model/types.js";
import { type ArOptions, decodeAr } from "./ar.js";
import { denoise, renderCanvas } from "./denoise.js";
import { DecodeAbortedError, DecodeOptionError } from "./errors.js";
import { checkInteger, type DiffusionOptions, resolveOptions } from "./options.js";
import { decodeSpeculative, type SpeculativeOptions } from "./speculative.js";
import type { CanvasSpec, DecodeResult, FimTokens, StepEvent, TextCodec } from "./types.js";

/** What every call takes besides the decoding options. */
export interface CallOptions {
  /** Needed to pass text and to get text back. */
  tokenizer?: TextCodec;
  /** Stops the run before its next forward pass (DecodeAbortedError). */
  signal?: AbortSignal;
  /** How a mask renders in event text; default "░". */
  maskText?: string;
}

export interface GenerateOptions extends DiffusionOptions, CallOptions {
  /** Tokens of the canvas after the prompt; default 128. */
  genLength?: number;
}

export interface GenerateResult extends DecodeResult {
  /** The generated ids, cut at the first end token (EOS or pad). */
  tokens: number[];
}

export type Run<R> = AsyncGenerator<StepEvent, R, undefined>;

/** Drains a run: the promise of its result. */
export async function complete<R>(run: Run<R>): Promise<R> {
  for (;;) {
    const next = await run.next();
    if (next.done) return next.value;
  }
}

function encode(what: string, input: string | ArrayLike<number>, tokenizer?: TextCodec): number[] {
  if (typeof input !== "string") return Array.from(input);
  if (tokenizer === undefined) {
    throw new DecodeOptionError("tokenizer", `${what} is text: pass a tokenizer (or token ids)`);
  }
  return tokenizer.encode(input);
}

function decodeFn(tokenizer?: TextCodec) {
  return tokenizer === undefined ? undefined : (ids: ArrayLike<number>) => tokenizer.decode(ids);
}

/** Splits the diffusion options from the call's own. */
function split<T extends CallOptions>(options: T, own: readonly string[]) {
  const diffusion: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(options)) {
    if (!["tokenizer", "signal", "maskText", ...own].includes(k)) diffusion[k] = v;
  }
  return diffusion as DiffusionOptions;
}

function maskIdOf(model: LanguageModel): number {
  const id = model.config.maskTokenId;
  if (id === null) {
    throw new DecodeOptionError(
      "model",
      "the model's config has no mask_token_id: it cannot denoise",
    );
  }
  return id;
}

/** The ids up to the first end token. */
function cutAtEnd(ids: ArrayLike<number>, end: number[]): number[] {
  const out: number[] = [];
  for (let i = 0; i < ids.length; i++) {
    if (end.includes(ids[i])) break;
    out.push(ids[i]);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// generate

/** Streams a continuation of `prompt` (text or ids) on a canvas of `genLength` masks. */
export function streamGenerate(
  model: LanguageModel,
  prompt: string | ArrayLike<number>,
  options: GenerateOptions = {},
): Run<GenerateResult> {
  const ids = encode("prompt", prompt, options.tokenizer);
  const genLength = checkInteger("genLength", options.genLength ?? 128, 1);
  const L = ids.length + genLength;
  if (L > model.config.maxPositions) {
    throw new DecodeOptionError(
      "genLength",
      `${ids.length} prompt tokens + ${genLength} exceed the model's context of ${model.config.maxPositions}`,
    );
  }
  const canvas = new Int32Array(L).fill(maskIdOf(model));
  canvas.set(ids);
  const decode = decodeFn(options.tokenizer);
  const spec: CanvasSpec = { tokens: canvas, openEnded: true, view: [ids.length, L] };
  if (decode !== undefined) spec.decode = decode;
  if (options.maskText !== undefined) spec.maskText = options.maskText;
  const run = denoise(model, spec, split(options, ["genLength"]), options.signal);
  return finish(run, (r) => generated(r, ids.length, endTokenIds(model.config), decode));
}

/** The promise of a continuation; see streamGenerate. */
export async function generate(
  model: LanguageModel,
  prompt: string | ArrayLike<number>,
  options: GenerateOptions = {},
): Promise<GenerateResult> {
  return complete(streamGenerate(model, prompt, options));
}

function generated(
  r: DecodeResult,
  start: number,
  end: number[],
  decode?: (ids: ArrayLike<number>) => string,
): GenerateResult {
  const tokens = cutAtEnd(r.canvas.subarray(start), end);
  const out: GenerateResult = { ...r, tokens };
  if (decode !== undefined) out.text = decode(tokens);
  return out;
}

/** Maps a run's result (and the partial result of an abort) through `f`. */
async function* finish<R>(run: Run<DecodeResult>, f: (r: DecodeResult) => R): Run<R> {
  try {
    return f(yield* run);
  } catch (e) {
    if (e instanceof DecodeAbortedError) {
      throw new DecodeAbortedError(f(e.partial) as DecodeResult, { cause: e.cause });
    }
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------
// AR baseline

export interface GenerateArOptions extends ArOptions, Omit<CallOptions, "maskText"> {}

/** Streams a continuation from a causal model, one token per step (the AR baseline). */
export function streamGenerateAr(
  model: LanguageModel,
  prompt: string | ArrayLike<number>,
  options: GenerateArOptions = {},
): Run<GenerateResult> {
  const ids = encode("prompt", prompt, options.tokenizer);
  const { tokenizer, signal, ...ar } = options;
  const decode = decodeFn(tokenizer);
  if (decode !== undefined) ar.decode = decode;
  const run = decodeAr(model, ids, ar, signal);
  return finish(run, (r) => generated(r, ids.length, endTokenIds(model.config), decode));
}

export async function generateAr(
  model: LanguageModel,
  prompt: string | ArrayLike<number>,
  options: GenerateArOptions = {},
): Promise<GenerateResult> {
  return complete(streamGenerateAr(model, prompt, options));
}

// ---------------------------------------------------------------------------------------------
// speculative: a diffusion drafter, a causal verifier (text equal to the verifier's greedy AR)

export interface GenerateSpeculativeOptions
  extends Omit<SpeculativeOptions, "decode">,
    Omit<CallOptions, "maskText"> {}

/** Streams a continuation by speculative decoding (src/diffusion/speculative.ts). */
export function streamGenerateSpeculative(
  draft: LanguageModel,
  verifier: LanguageModel,
  prompt: string | ArrayLike<number>,
  options: GenerateSpeculativeOptions = {},
): Run<GenerateResult> {
  const ids = encode("prompt", prompt, options.tokenizer);
  const { tokenizer, signal, ...rest } = options;
  const decode = decodeFn(tokenizer);
  const spec: SpeculativeOptions = decode === undefined ? rest : { ...rest, decode };
  const run = decodeSpeculative(draft, verifier, ids, spec, signal);
  return finish(run, (r) => generated(r, ids.length, endTokenIds(verifier.config), decode));
}

export async function generateSpeculative(
  draft: LanguageModel,
  verifier: LanguageModel,
  prompt: string | ArrayLike<number>,
  options: GenerateSpeculativeOptions = {},
): Promise<GenerateResult> {
  return complete(streamGenerateSpeculative(draft, verifier, prompt, options));
}

// ---------------------------------------------------------------------------------------------
// infill

/** A hole of `hole` tokens (its maximum under `holeLength: "trim"`). */
export interface Hole {
  hole: number;
}

/** Fixed text or ids, and holes, in order. */
export type InfillPart = string | readonly number[] | Hole;

export interface InfillOptions extends DiffusionOptions, CallOptions {
  /**
   * `fixed` (default): every hole is filled to its length, end tokens suppressed (unless `eos`
   * says otherwise); `trim`: a hole may end early — end tokens in it are dropped from its fill.
   */
  holeLength?: "fixed" | "trim";
}

export interface InfillResult extends DecodeResult {
  /** Each hole's ids, end tokens dropped under `trim`. */
  fills: number[][];
  /** Each hole's text, with a tokenizer. */
  fillTexts?: string[];
  /** The whole text with the holes filled (end tokens dropped), with a tokenizer. */
  text?: string;
}

interface Layout {
  canvas: Int32Array;
  /** [start, end) of each hole on the canvas. */
  holes: [number, number][];
  /** Fixed pieces' ids, in order, interleaved with the holes as given. */
  parts: (number[] | number)[];
}

function layout(model: LanguageModel, parts: readonly InfillPart[], tokenizer?: TextCodec): Layout {
  if (!Array.isArray(parts) || parts.length === 0) {
    throw new DecodeOptionError("parts", "expected a list of text, token ids and { hole } parts");
  }
  const maskId = maskIdOf(model);
  const ids: number[] = [];
  const holes: [number, number][] = [];
  const pieces: (number[] | number)[] = [];
  parts.forEach((part, i) => {
    if (typeof part === "object" && part !== null && "hole" in part) {
      const n = checkInteger(`parts[${i}].hole`, part.hole, 1);
      holes.push([ids.length, ids.length + n]);
      pieces.push(holes.length - 1);
      for (let j = 0; j < n; j++) ids.push(maskId);
    } else {
      const piece = encode(`parts[${i}]`, part as string | readonly number[], tokenizer);
      if (piece.includes(maskId)) {
        throw new DecodeOptionError(`parts[${i}]`, "fixed text holds the mask token");
      }
      pieces.push(piece);
      for (const t of piece) ids.push(t);
    }
  });
  if (holes.length === 0) throw new DecodeOptionError("parts", "no { hole } to fill");
  if (ids.length > model.config.maxPositions) {
    throw new DecodeOptionError(
      "length",
      `the canvas of ${ids.length} tokens exceeds the model's context of ${model.config.maxPositions}`,
    );
  }
  return { canvas: Int32Array.from(ids), holes, parts: pieces };
}

/** Streams the filling of the holes between fixed text (prefix, several holes, suffix). */
export function streamInfill(
  model: LanguageModel,
  parts: readonly InfillPart[],
  options: InfillOptions = {},
): Run<InfillResult> {
  const mode = options.holeLength ?? "fixed";
  if (mode !== "fixed" && mode !== "trim") {
    throw new DecodeOptionError(
      "holeLength",
      `unknown value ${JSON.stringify(mode)} (valid: fixed, trim)`,
    );
  }
  const lay = layout(model, parts, options.tokenizer);
  const diffusion = split(options, ["holeLength"]);
  if (diffusion.eos === undefined) diffusion.eos = mode === "fixed" ? "suppress" : "keep";
  const decode = decodeFn(options.tokenizer);
  const spec: CanvasSpec = { tokens: lay.canvas };
  if (decode !== undefined) spec.decode = decode;
  if (options.maskText !== undefined) spec.maskText = options.maskText;
  const end = endTokenIds(model.config);
  const run = denoise(model, spec, diffusion, options.signal);
  return finish(run, (r) => filled(r, lay, mode === "trim" ? end : [], decode));
}

/** The promise of an infill; see streamInfill. */
export async function infill(
  model: LanguageModel,
  parts: readonly InfillPart[],
  options: InfillOptions = {},
): Promise<InfillResult> {
  return complete(streamInfill(model, parts, options));
}

function filled(
  r: DecodeResult,
  lay: Layout,
  drop: number[],
  decode?: (ids: ArrayLike<number>) => string,
): InfillResult {
  const fills = lay.holes.map(([a, b]) =>
    Array.from(r.canvas.subarray(a, b)).filter((t) => !drop.includes(t)),
  );
  const out: InfillResult = { ...r, fills };
  if (decode !== undefined) {
    out.fillTexts = fills.map((f) => decode(f));
    out.text = decode(lay.parts.flatMap((p) => (typeof p === "number" ? fills[p] : p)));
  }
  return out;
}

/**
 * The PSM prompt of Bavarian et al. 2022 ("Efficient Training of Language Models to Fill in the
 * Middle"), as Qwen2.5-Coder's README writes it: `<|fim_prefix|>` prefix `<|fim_suffix|>` suffix
 * `<|fim_middle|>` (after the tokenizer's lead, e.g. a BOS); the model continues with the middle.
 */
export function fimPrompt(
  fim: FimTokens,
  prefix: readonly number[],
  suffix: readonly number[],
): number[] {
  return [...fim.lead, fim.prefix, ...prefix, fim.suffix, ...suffix, fim.middle];
}

/**
 * The ids before and after the one hole of `parts` (text needs the tokenizer) and the hole's
 * size: what a fill-in-the-middle prompt is made of. More or fewer holes are a DecodeOptionError.
 */
export function fimParts(
  parts: readonly InfillPart[],
  tokenizer?: TextCodec,
): { before: number[]; after: number[]; hole: number } {
  if (!Array.isArray(parts)) {
    throw new DecodeOptionError("parts", "expected a list of text, token ids and one { hole }");
  }
  const sides: [number[], number[]] = [[], []];
  let hole = 0;
  parts.forEach((part, i) => {
    if (typeof part === "object" && part !== null && "hole" in part) {
      if (hole > 0) {
        throw new DecodeOptionError(
          `parts[${i}]`,
          "a causal model fills one hole (fill-in-the-middle): use a diffusion model for several",
        );
      }
      hole = checkInteger(`parts[${i}].hole`, part.hole, 1);
    } else {
      sides[hole > 0 ? 1 : 0].push(...encode(`parts[${i}]`, part as string | number[], tokenizer));
    }
  });
  if (hole === 0) throw new DecodeOptionError("parts", "no { hole } to fill");
  return { before: sides[0], after: sides[1], hole };
}

export interface InfillArOptions
  extends Omit<ArOptions, "maxTokens" | "stopTokens">,
    Omit<CallOptions, "maskText"> {
  /** The model's FIM sentinels (src/format/template.ts `fimTokens`). */
  fim: FimTokens;
}

/**
 * Streams the filling of one hole by a causal model through its FIM sentinels (Bavarian et al.
 * 2022, PSM order): the prompt is `fimPrompt` of the parts before the hole and those after it; the
 * model then
 * writes the middle left to right until a FIM stop or an end token of the model (dropped from the
 * fill) or the hole's size in tokens. The result's canvas is the prompt and the middle.
 */
export function streamInfillAr(
  model: LanguageModel,
  parts: readonly InfillPart[],
  options: InfillArOptions,
): Run<InfillResult> {
  const { tokenizer, signal, fim, ...ar } = options;
  const { before, after, hole } = fimParts(parts, tokenizer);
  const prompt = fimPrompt(fim, before, after);
  const stops = [...new Set([...fim.stops, ...endTokenIds(model.config)])];
  const decode = decodeFn(tokenizer);
  const run = decodeAr(model, prompt, { ...ar, maxTokens: hole, stopTokens: stops }, signal);
  return finish(run, (r) => {
    const fill = cutAtEnd(r.canvas.subarray(prompt.length), stops);
    const out: InfillResult = { ...r, fills: [fill] };
    if (decode !== undefined) {
      out.fillTexts = [decode(fill)];
      out.text = decode([...before, ...fill, ...after]);
    }
    return out;
  });
}

// ---------------------------------------------------------------------------------------------
// edit

/** A span of the source to regenerate: characters [start, end), or lines [from, to] (1-based, inclusive). */
export type EditSpan =
  | { start: number; end: number; length?: number }
  | { lines: readonly [number, number]; length?: number };

export interface EditOptions extends InfillOptions {}

export interface EditResult extends InfillResult {
  /** The new text of each span. */
  replacements: string[];
}

/** Character ranges of the spans, checked: inside the source, in order, not overlapping. */
export function spanRanges(source: string, spans: readonly EditSpan[]): [number, number][] {
  const lineStarts = [0];
  for (let i = 0; i < source.length; i++) if (source[i] === "\n") lineStarts.push(i + 1);
  const ranges = spans.map((span, i): [number, number] => {
    if ("lines" in span) {
      const [from, to] = span.lines;
      checkInteger(`spans[${i}].lines[0]`, from, 1, lineStarts.length);
      checkInteger(`spans[${i}].lines[1]`, to, from, lineStarts.length);
      const start = lineStarts[from - 1];
      const end = to < lineStarts.length ? lineStarts[to] - 1 : source.length; // before the newline
      return [start, end];
    }
    checkInteger(`spans[${i}].start`, span.start, 0, source.length);
    checkInteger(`spans[${i}].end`, span.end, span.start, source.length);
    return [span.start, span.end];
  });
  for (let i = 1; i < ranges.length; i++) {
    if (ranges[i][0] < ranges[i - 1][1]) {
      throw new DecodeOptionError(`spans[${i}]`, "spans must be in order and must not overlap");
    }
  }
  return ranges;
}

/**
 * Streams the regeneration of `spans` of `source` with everything else held fixed. Each span
 * becomes a hole of `length` tokens (default: as many as the text it replaces, at least 1).
 */
export function streamEdit(
  model: LanguageModel,
  source: string,
  spans: readonly EditSpan[],
  options: EditOptions = {},
): Run<EditResult> {
  const { tokenizer } = options;
  if (tokenizer === undefined)
    throw new DecodeOptionError("tokenizer", "edit works on text: pass a tokenizer");
  if (typeof source !== "string") throw new DecodeOptionError("source", "expected text");
  if (!Array.isArray(spans) || spans.length === 0) {
    throw new DecodeOptionError("spans", "expected at least one span to regenerate");
  }
  const ranges = spanRanges(source, spans);
  const parts: InfillPart[] = [];
  let at = 0;
  ranges.forEach(([a, b], i) => {
    if (a > at) parts.push(source.slice(at, a));
    const length = spans[i].length ?? Math.max(1, tokenizer.encode(source.slice(a, b)).length);
    parts.push({ hole: checkInteger(`spans[${i}].length`, length, 1) });
    at = b;
  });
  if (at < source.length) parts.push(source.slice(at));
  const run = streamInfill(model, parts, options);
  return finish(run as Run<DecodeResult>, (r) => {
    const result = r as InfillResult;
    return { ...result, replacements: result.fillTexts ?? [] };
  });
}

/** The promise of an edit; see streamEdit. */
export async function edit(
  model: LanguageModel,
  source: string,
  spans: readonly EditSpan[],
  options: EditOptions = {},
): Promise<EditResult> {
  return complete(streamEdit(model, source, spans, options));
}

// ---------------------------------------------------------------------------------------------
// fix

export interface FixOptions extends DiffusionOptions, CallOptions {
  /**
   * Scoring passes, batched as rows of one forward call: row j masks every position ≡ j
   * (mod passes), so each token is scored with most of its neighbours visible. Default 4.
   */
  scorePasses?: number;
  /** Re-mask tokens whose probability is below this, in (0, 1]; default 0.5. */
  below?: number;
  /** Re-mask at most this share of the tokens, in (0, 1]; default 0.1. */
  maxFraction?: number;
}

export interface FixResult extends DecodeResult {
  /** The model's probability of each original token, where it was masked. */
  scores: Float64Array;
  /** The positions re-masked and denoised again. */
  remasked: number[];
  /** The positions whose token changed. */
  changed: number[];
}

/** Fix mode's bounds with their defaults, checked (a DecodeOptionError names the parameter). */
export function fixBounds(options: Pick<FixOptions, "below" | "maxFraction" | "scorePasses">): {
  passes: number;
  below: number;
  maxFraction: number;
} {
  const passes = checkInteger("scorePasses", options.scorePasses ?? 4, 1);
  const share = (name: "below" | "maxFraction", value: unknown) => {
    if (typeof value !== "number" || !(value > 0 && value <= 1)) {
      throw new DecodeOptionError(
        name,
        `expected a number in (0, 1], got ${JSON.stringify(value)}`,
      );
    }
    return value;
  };
  return {
    passes,
    below: share("below", options.below ?? 0.5),
    maxFraction: share("maxFraction", options.maxFraction ?? 0.1),
  };
}

/**
 * Streams "fix" mode: score every token of `source` with the model, re-mask the least likely
 * ones (below `below`, at most `maxFraction` of them) and denoise them again with the rest held
 * fixed. The first event is the scoring pass (its `remasked` lists the chosen positions with
 * their probabilities); the denoising events follow, their steps and forward counts continuing.
 */
export function streamFix(
  model: LanguageModel,
  source: string | ArrayLike<number>,
  options: FixOptions = {},
): Run<FixResult> {
  const ids = encode("source", source, options.tokenizer);
  const maskId = maskIdOf(model);
  const { passes, below, maxFraction } = fixBounds(options);
  if (ids.length === 0) throw new DecodeOptionError("source", "nothing to fix");
  if (ids.length > model.config.maxPositions) {
    throw new DecodeOptionError(
      "length",
      `a source of ${ids.length} tokens exceeds the model's context of ${model.config.maxPositions}`,
    );
  }
  if (ids.includes(maskId)) throw new DecodeOptionError("source", "holds the mask token");
  const diffusion = split(options, ["scorePasses", "below", "maxFraction"]);
  resolveOptions(diffusion); // validate up front
  return fixLoop(model, ids, {
    passes: Math.min(passes, ids.length),
    below,
    maxFraction,
    diffusion,
    options,
  });
}

/** The promise of a fix; see streamFix. */
export async function fix(
  model: LanguageModel,
  source: string | ArrayLike<number>,
  options: FixOptions = {},
): Promise<FixResult> {
  return complete(streamFix(model, source, options));
}

async function* fixLoop(
  model: LanguageModel,
  ids: number[],
  f: {
    passes: number;
    below: number;
    maxFraction: number;
    diffusion: DiffusionOptions;
    options: FixOptions;
  },
): Run<FixResult> {
  const maskId = maskIdOf(model);
  const L = ids.length;
  const { passes } = f;
  const decode = decodeFn(f.options.tokenizer);
  const signal = f.options.signal;
  const original = Int32Array.from(ids);
  const base: DecodeResult = {
    canvas: original,
    steps: 0,
    forwards: 0,
    remasks: 0,
    stopReason: "complete",
  };
  if (signal?.aborted) {
    throw new DecodeAbortedError(base, { cause: signal.reason });
  }

  // one forward call, `passes` rows: row j masks the positions ≡ j (mod passes)
  const per = Math.ceil(L / passes);
  const tokens = new Int32Array(passes * L);
  const logitsAt = new Int32Array(passes * per);
  for (let j = 0; j < passes; j++) {
    tokens.set(original, j * L);
    let k = 0;
    for (let i = j; i < L; i += passes) {
      tokens[j * L + i] = maskId;
      logitsAt[j * per + k++] = i;
    }
    for (; k < per; k++) logitsAt[j * per + k] = logitsAt[j * per + k - 1]; // pad with a repeat
  }
  // each masked position's probability of its original token, computed in the graph
  const scoreTokens = Int32Array.from(logitsAt, (i) => original[i]);
  const out = await model.forward({
    tokens,
    rows: passes,
    logitsAt,
    logits: false,
    stats: { topK: 1, scoreTokens },
  });
  const scoreLogProbs = out.stats?.scoreLogProbs;
  if (scoreLogProbs === undefined) throw new Error("the model returned no score log-probabilities");
  const scores = new Float64Array(L);
  for (let r = 0; r < logitsAt.length; r++) scores[logitsAt[r]] = Math.exp(scoreLogProbs[r]);

  // the least likely tokens, lowest first (ties by position)
  const limit = Math.max(1, Math.floor(f.maxFraction * L));
  const chosen = Array.from({ length: L }, (_, i) => i)
    .filter((i) => scores[i] < f.below)
    .sort((a, b) => scores[a] - scores[b] || a - b)
    .slice(0, limit)
    .sort((a, b) => a - b);
  const canvas = Int32Array.from(original);
  for (const i of chosen) canvas[i] = maskId;
  const scoring: StepEvent = {
    step: 0,
    block: 0,
    canvas: Int32Array.from(canvas),
    revealed: [],
    remasked: chosen.map((position) => ({
      position,
      token: original[position],
      confidence: scores[position],
    })),
    masked: chosen.length,
    forwards: 1,
  };
  if (decode !== undefined) {
    scoring.text = renderCanvas(canvas, 0, L, decode, maskId, f.options.maskText);
  }
  yield scoring;

  const result = (r: DecodeResult): FixResult => {
    const changed: number[] = [];
    for (let i = 0; i < L; i++) if (r.canvas[i] !== original[i]) changed.push(i);
    return {
      ...r,
      steps: r.steps + 1,
      forwards: r.forwards + 1,
      scores,
      remasked: chosen,
      changed,
    };
  };
  if (chosen.length === 0) {
    const r: DecodeResult = { ...base, canvas: Int32Array.from(original) };
    if (decode !== undefined) r.text = decode(original);
    return result(r);
  }
  const spec: CanvasSpec = { tokens: canvas };
  if (decode !== undefined) spec.decode = decode;
  if (f.options.maskText !== undefined) spec.maskText = f.options.maskText;
  const run = denoise(model, spec, f.diffusion, signal);
  try {
    for (;;) {
      const next = await run.next();
      if (next.done) return result(next.value);
      yield { ...next.value, step: next.value.step + 1, forwards: next.value.forwards + 1 };
    }
  } catch (e) {
    if (e instanceof DecodeAbortedError) {
      throw new DecodeAbortedError(result(e.partial), { cause: e.cause });
    }
    throw e;
  }
}
