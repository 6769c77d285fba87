// Evaluation of a model (DESIGN seam 6), everything seeded and greedy so that a run repeats:
//
//   bits per byte  held-out likelihood (src/train/eval.ts): the masked-diffusion ELBO for a full
//                  or block-causal model (an upper bound, with its Monte Carlo standard error),
//                  the exact likelihood for a causal one.
//   infill         exact match of single-line and multi-line holes in held-out files (and,
//                  optionally, HumanEval-X JS solutions), filled by `infill` with the default
//                  preset (LLaDA low-confidence remasking, one token per step, greedy). The hole
//                  is given the true middle's token count: the "oracle length" setting in which
//                  diffusion models are usually scored on HumanEval-infilling (their canvas has a
//                  fixed length); `holeLength: "trim"` gives the hole 1.5× that and drops the end
//                  tokens the model puts in it (variable length, see src/diffusion/api.ts).
//                  A causal model cannot fill a hole without fill-in-the-middle training: null.
//   syntax         the share of samples that parse: each prompt is the beginning of a held-out
//                  file (whole lines, up to `promptTokens`), continued by `sampleTokens` tokens
//                  (`generate` with the default preset — `block-diffusion` on a block-causal
//                  model — or `generateAr` for a causal one, greedy). A sample is the prompt plus
//                  the completion's complete lines (all of it when the model ended the text), and
//                  counts as valid when the completion adds a non-blank line and TypeScript's
//                  parser finds no error before the end of the text (errors at the very end — a
//                  `}` expected — only say that the file goes on); `complete` counts samples with
//                  no parse error at all. Also the decoding speed: generated tokens (up to the
//                  first end token) per second of decoding.

import { generate, generateAr, infill } from "../diffusion/api.js";
import type { DiffusionOptions } from "../diffusion/options.js";
import type { TextCodec } from "../diffusion/types.js";
import type { AttentionKind } from "../model/config.js";
import { Rng } from "../model/random.js";
import type { LanguageModel } from "../model/types.js";
import { bitsPerByte, type EvalText, type LikelihoodResult } from "../train/eval.js";
import {
  buildInfillTasks,
  type InfillKind,
  type InfillTask,
  type SourceDocument,
} from "./infill-tasks.js";
import { type RerankOptions, rerankFill } from "./rerank.js";
import { checkSyntax, editSimilarity, matchInfill, sampleText } from "./score.js";

export interface EvaluateOptions {
  /** Held-out rows for bits per byte (heldOutRows); omitted: not measured. */
  heldOut?: EvalText;
  /** Held-out files: the infill tasks and the prompts of the samples come from them. */
  documents?: readonly SourceDocument[];
  /** HumanEval-X JS as documents (readHumanEvalX); omitted: no such tasks. */
  humanEval?: readonly SourceDocument[];
  /** Default 50. */
  singleLineTasks?: number;
  /** Default 30. */
  multiLineTasks?: number;
  /** Default 50. */
  humanEvalTasks?: number;
  /** `fixed` (default): the hole is the true length; `trim`: 1.5× it, end tokens dropped. */
  holeLength?: "fixed" | "trim";
  /** Samples for the syntax check (default 20). */
  samples?: number;
  /** Tokens generated per sample (default 64; at most half the context). */
  sampleTokens?: number;
  /** Prompt tokens at most (default 64). */
  promptTokens?: number;
  /** Monte Carlo samples per held-out row for the diffusion bounds (default 16). */
  elboSamples?: number;
  /** Rows per forward pass for bits per byte (default 8). */
  batchRows?: number;
  /** Seed of every draw: task choice, prompts, masks (default 0). */
  seed?: number;
  /** Stops before the next task or sample (and inside a decode) with the signal's reason. */
  signal?: AbortSignal;
}

export type EvalPhase =
  | "bits-per-byte"
  | "infill-single-line"
  | "infill-multi-line"
  | "infill-humaneval-x"
  | "samples";

export type EvalProgress = (phase: EvalPhase, done: number, total: number) => void;

export interface HeldOutScore extends LikelihoodResult {
  rows: number;
  seconds: number;
}

export interface InfillOutcome {
  id: string;
  fill: string;
  exact: boolean;
  normalized: boolean;
  /** CodeXGLUE's edit similarity of the fill and the middle, in [0, 1]. */
  editSimilarity: number;
}

export interface InfillScore {
  tasks: number;
  exact: number;
  normalized: number;
  /** exact / tasks; null with no task. */
  exactShare: number | null;
  normalizedShare: number | null;
  /** Mean edit similarity; null with no task. */
  editSimilarity: number | null;
  /** Σ hole tokens over the tasks. */
  holeTokens: number;
  seconds: number;
  outcomes: InfillOutcome[];
}

export interface SampleOutcome {
  source: string;
  /** Prompt + kept completion, as checked. */
  text: string;
  promptTokens: number;
  /** Generated tokens up to the first end token. */
  tokens: number;
  ended: boolean;
  lines: number;
  valid: boolean;
  complete: boolean;
  firstError?: { position: number; message: string };
}

export interface SyntaxScore {
  /** `generate` with its preset, or `generateAr`. */
  decoder: string;
  samples: number;
  /** Tokens of the canvas after each prompt (the token budget of a sample). */
  sampleTokens: number;
  valid: number;
  complete: number;
  validShare: number | null;
  completeShare: number | null;
  /** Σ generated tokens (up to the first end token). */
  tokens: number;
  seconds: number;
  tokensPerSecond: number | null;
  outcomes: SampleOutcome[];
}

export interface EvalReport {
  attention: AttentionKind;
  seed: number;
  bitsPerByte: HeldOutScore | null;
  infill: {
    holeLength: "fixed" | "trim";
    singleLine: InfillScore | null;
    multiLine: InfillScore | null;
    humanEval: InfillScore | null;
    /** Why there is no infill score (a causal model), else null. */
    note: string | null;
  };
  syntax: SyntaxScore | null;
}

/** Hole tokens per true middle token under `holeLength: "trim"`. */
const TRIM_SCALE = 1.5;

/** Evaluates `model`; see the module comment. Phases with nothing to do report null. */
export async function evaluateModel(
  model: LanguageModel,
  tokenizer: TextCodec,
  options: EvaluateOptions = {},
  onProgress?: EvalProgress,
): Promise<EvalReport> {
  const { attention, maxPositions: context, maskTokenId } = model.config;
  const seed = options.seed ?? 0;
  const signal = options.signal;
  const documents = options.documents ?? [];
  const holeLength = options.holeLength ?? "fixed";
  const progress = (phase: EvalPhase) => (done: number, total: number) =>
    onProgress?.(phase, done, total);

  let heldOut: HeldOutScore | null = null;
  if (options.heldOut !== undefined && options.heldOut.sequences.length > 0) {
    signal?.throwIfAborted();
    const t0 = performance.now();
    const result = await bitsPerByte(model, options.heldOut, {
      samples: options.elboSamples ?? 16,
      batchRows: options.batchRows ?? 8,
      seed,
      onProgress: progress("bits-per-byte"),
    });
    const seconds = (performance.now() - t0) / 1000;
    heldOut = { ...result, rows: options.heldOut.sequences.length, seconds };
  }

  const report: EvalReport = {
    attention,
    seed,
    bitsPerByte: heldOut,
    infill: { holeLength, singleLine: null, multiLine: null, humanEval: null, note: null },
    syntax: null,
  };

  if (attention === "causal") {
    report.infill.note =
      "a causal (AR) model cannot fill a hole without fill-in-the-middle training";
  } else {
    const tasks = (docs: readonly SourceDocument[], kind: InfillKind, count: number) =>
      buildInfillTasks(docs, {
        tokenizer,
        context,
        kind,
        count,
        seed,
        holeScale: holeLength === "trim" ? TRIM_SCALE : 1,
        maskTokenId,
      });
    const run = (list: InfillTask[], phase: EvalPhase) =>
      scoreInfill(model, tokenizer, list, {
        holeLength,
        seed,
        signal,
        onProgress: progress(phase),
      });
    const single = options.singleLineTasks ?? 50;
    const multi = options.multiLineTasks ?? 30;
    if (single > 0 && documents.length > 0) {
      report.infill.singleLine = await run(
        tasks(documents, "single-line", single),
        "infill-single-line",
      );
    }
    if (multi > 0 && documents.length > 0) {
      report.infill.multiLine = await run(
        tasks(documents, "multi-line", multi),
        "infill-multi-line",
      );
    }
    const humanEval = options.humanEvalTasks ?? 50;
    if (options.humanEval !== undefined && humanEval > 0) {
      report.infill.humanEval = await run(
        tasks(options.humanEval, "single-line", humanEval),
        "infill-humaneval-x",
      );
    }
  }

  const samples = options.samples ?? 20;
  if (samples > 0 && documents.length > 0) {
    report.syntax = await scoreSamples(model, tokenizer, documents, {
      count: samples,
      sampleTokens: Math.min(options.sampleTokens ?? 64, Math.floor(context / 2)),
      promptTokens: options.promptTokens ?? 64,
      seed,
      signal,
      onProgress: progress("samples"),
    });
  }
  return report;
}

const share = (n: number, of: number) => (of === 0 ? null : n / of);
/** The mean; null for no value. */
export const mean = (xs: readonly number[]) =>
  xs.length === 0 ? null : xs.reduce((a, b) => a + b, 0) / xs.length;

export interface ScoreInfillOptions {
  holeLength: "fixed" | "trim";
  seed: number;
  signal?: AbortSignal | undefined;
  onProgress?: (done: number, total: number) => void;
  /** The decoding setting for a hole of so many tokens (default: `infill`'s, the llada preset). */
  decoding?: (holeTokens: number) => DiffusionOptions;
  /**
   * A causal model fills the hole by `rerankFill` (src/eval/rerank.ts) with these options
   * instead of diffusion infilling (the true length; `holeLength` and `decoding` are not read).
   */
  rerank?: RerankOptions;
}

/** Fills every task's hole with `infill` (or `rerankFill`) and scores the fills against the middles. */
export async function scoreInfill(
  model: LanguageModel,
  tokenizer: TextCodec,
  tasks: InfillTask[],
  o: ScoreInfillOptions,
): Promise<InfillScore> {
  const outcomes: InfillOutcome[] = [];
  let seconds = 0;
  o.onProgress?.(0, tasks.length);
  for (const task of tasks) {
    o.signal?.throwIfAborted();
    const t0 = performance.now();
    const fill =
      o.rerank === undefined
        ? ((
            await infill(model, [task.prefix, { hole: task.holeTokens }, task.suffix], {
              ...o.decoding?.(task.holeTokens),
              tokenizer,
              holeLength: o.holeLength,
              seed: o.seed,
              ...(o.signal ? { signal: o.signal } : {}),
            })
          ).fillTexts?.[0] ?? "")
        : tokenizer.decode(
            await rerankFill(
              model,
              tokenizer.encode(task.prefix),
              task.holeTokens,
              tokenizer.encode(task.suffix),
              o.rerank,
            ),
          );
    seconds += (performance.now() - t0) / 1000;
    const match = matchInfill(task.middle, fill);
    outcomes.push({
      id: task.id,
      fill,
      ...match,
      editSimilarity: editSimilarity(task.middle, fill),
    });
    o.onProgress?.(outcomes.length, tasks.length);
  }
  const exact = outcomes.filter((o) => o.exact).length;
  const normalized = outcomes.filter((o) => o.normalized).length;
  return {
    tasks: tasks.length,
    exact,
    normalized,
    exactShare: share(exact, tasks.length),
    normalizedShare: share(normalized, tasks.length),
    editSimilarity: mean(outcomes.map((x) => x.editSimilarity)),
    holeTokens: tasks.reduce((n, t) => n + t.holeTokens, 0),
    seconds,
    outcomes,
  };
}

export interface Prompt {
  source: string;
  path: string;
  text: string;
  tokens: number;
}

/**
 * Prompts from the beginnings of `count` documents chosen with the seed: the most whole lines
 * within `budget` tokens, holding some text, never the whole file, never the mask token.
 */
export function samplePrompts(
  documents: readonly SourceDocument[],
  count: number,
  budget: number,
  tokenizer: { encode(text: string): number[] },
  seed: number,
  maskTokenId: number | null = null,
): Prompt[] {
  const order = documents.map((_, i) => i);
  const rng = new Rng(seed, 3);
  for (let i = order.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [order[i], order[j]] = [order[j], order[i]];
  }
  const prompts: Prompt[] = [];
  for (const i of order) {
    if (prompts.length >= count) break;
    const d = documents[i];
    let best: Prompt | null = null;
    for (let end = d.text.indexOf("\n"); end >= 0 && end + 1 < d.text.length; ) {
      const text = d.text.slice(0, end + 1);
      const ids = tokenizer.encode(text);
      if (ids.length > budget || (maskTokenId !== null && ids.includes(maskTokenId))) break;
      if (text.trim() !== "") {
        best = { source: d.source, path: d.path ?? "sample.ts", text, tokens: ids.length };
      }
      end = d.text.indexOf("\n", end + 1);
    }
    if (best !== null) prompts.push(best);
  }
  return prompts;
}

/**
 * A continuation of a prompt as checked: the sample keeps the completion's complete lines (all of
 * it when the model ended the text, i.e. wrote fewer than `sampleTokens` tokens); valid when it
 * adds a non-blank line and parses up to its end.
 */
export function sampleOutcome(
  p: Prompt,
  completion: string,
  tokens: number,
  sampleTokens: number,
): SampleOutcome {
  const ended = tokens < sampleTokens;
  const sample = sampleText(p.text, completion, ended);
  const check = checkSyntax(sample.text, p.path);
  const outcome: SampleOutcome = {
    source: p.source,
    text: sample.text,
    promptTokens: p.tokens,
    tokens,
    ended,
    lines: sample.lines,
    valid: sample.lines > 0 && check.validPrefix,
    complete: sample.lines > 0 && check.complete,
  };
  if (check.firstError) outcome.firstError = check.firstError;
  return outcome;
}

async function scoreSamples(
  model: LanguageModel,
  tokenizer: TextCodec,
  documents: readonly SourceDocument[],
  o: {
    count: number;
    sampleTokens: number;
    promptTokens: number;
    seed: number;
    signal: AbortSignal | undefined;
    onProgress: (done: number, total: number) => void;
  },
): Promise<SyntaxScore> {
  const { attention, maxPositions, maskTokenId } = model.config;
  const budget = Math.min(o.promptTokens, maxPositions - o.sampleTokens);
  const prompts = samplePrompts(documents, o.count, budget, tokenizer, o.seed, maskTokenId);
  const preset = attention === "block_causal" ? "block-diffusion" : "llada";
  const outcomes: SampleOutcome[] = [];
  let seconds = 0;
  o.onProgress(0, prompts.length);
  for (const p of prompts) {
    o.signal?.throwIfAborted();
    const call = { tokenizer, seed: o.seed, ...(o.signal ? { signal: o.signal } : {}) };
    const t0 = performance.now();
    const r =
      attention === "causal"
        ? await generateAr(model, p.text, { ...call, maxTokens: o.sampleTokens })
        : await generate(model, p.text, { ...call, genLength: o.sampleTokens, preset });
    seconds += (performance.now() - t0) / 1000;
    outcomes.push(sampleOutcome(p, r.text ?? "", r.tokens.length, o.sampleTokens));
    o.onProgress(outcomes.length, prompts.length);
  }
  const valid = outcomes.filter((s) => s.valid).length;
  const complete = outcomes.filter((s) => s.complete).length;
  const tokens = outcomes.reduce((n, s) => n + s.tokens, 0);
  return {
    decoder: attention === "causal" ? "generateAr (greedy)" : `generate (${preset})`,
    samples: outcomes.length,
    sampleTokens: o.sampleTokens,
    valid,
    complete,
    validShare: share(valid, outcomes.length),
    completeShare: share(complete, outcomes.length),
    tokens,
    seconds,
    tokensPerSecond: seconds > 0 ? tokens / seconds : null,
    outcomes,
  };
}
