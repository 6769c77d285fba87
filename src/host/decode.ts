// The decode service: a request (diffusion strategy or AR, options, a prompt or a canvas of fixed
// text and holes) becomes a stream of step events and an outcome. It defaults lengths against
// the model's context, refuses what does not fit, runs the decoder under an AbortSignal and a
// time limit, and reports the result in one shape. The CLI, the server and the page call it.

import {
  type FixOptions,
  type FixResult,
  fimParts,
  fimPrompt,
  fixBounds,
  type GenerateResult,
  type InfillPart,
  type InfillResult,
  type Run,
  streamFix,
  streamGenerate,
  streamGenerateAr,
  streamInfill,
  streamInfillAr,
} from "../diffusion/api.js";
import { DecodeAbortedError, DecodeOptionError } from "../diffusion/errors.js";
import type { DecodeResult, FimTokens, StepEvent, StopReason } from "../diffusion/types.js";
import { fimTokens } from "../format/template.js";
import { IgnoredOptionError, WrongModelError } from "./errors.js";
import type { LoadedModel } from "./models.js";
import {
  arOptions,
  checkModelFor,
  checkSettings,
  type DecodeSettings,
  diffusionOptions,
} from "./options.js";

/** Why a run ended: the decoder's reason, an abort by the caller, or the time limit. */
export type Stop = StopReason | "interrupted" | "max_time";

export interface Outcome<R extends DecodeResult = DecodeResult> {
  result: R;
  stop: Stop;
  decodeMs: number;
}

export interface Control {
  /** Aborts the run at its next step ("interrupted"). */
  signal?: AbortSignal;
  /** Stops the run at its next step after this long ("max_time"). */
  maxTimeMs?: number;
}

class OutOfTime extends Error {
  override name = "OutOfTime";
}

/**
 * Runs a decoder under `control`: yields its step events and returns the outcome. `start` makes
 * the event stream with the signal that the caller's signal and the time limit abort; an aborted
 * run hands back its partial canvas. Ending the iteration early stops the decoder.
 */
export async function* supervise<R extends DecodeResult>(
  start: (signal: AbortSignal) => Run<R>,
  control: Control = {},
): AsyncGenerator<StepEvent, Outcome<R>, undefined> {
  const controller = new AbortController();
  const outer = control.signal;
  const onAbort = () => controller.abort(outer?.reason);
  if (outer?.aborted) onAbort();
  else outer?.addEventListener("abort", onAbort, { once: true });
  const timer =
    control.maxTimeMs === undefined
      ? undefined
      : setTimeout(() => controller.abort(new OutOfTime()), control.maxTimeMs);
  const t0 = performance.now();
  let events: Run<R> | undefined;
  try {
    events = start(controller.signal);
    for (;;) {
      const next = await events.next();
      if (next.done === true) {
        return {
          result: next.value,
          stop: next.value.stopReason,
          decodeMs: performance.now() - t0,
        };
      }
      yield next.value;
    }
  } catch (error) {
    if (error instanceof DecodeAbortedError) {
      const stop = controller.signal.reason instanceof OutOfTime ? "max_time" : "interrupted";
      // the library's streams hand back their own result type as the partial result
      return { result: error.partial as R, stop, decodeMs: performance.now() - t0 };
    }
    throw error;
  } finally {
    clearTimeout(timer);
    outer?.removeEventListener("abort", onAbort);
    await events?.return(undefined as unknown as R);
  }
}

/** Drains a supervised run (calling `onStep` for each event): the promise of its outcome. */
export async function settle<R extends DecodeResult>(
  run: AsyncGenerator<StepEvent, Outcome<R>, undefined>,
  onStep?: (event: StepEvent) => void,
): Promise<Outcome<R>> {
  for (;;) {
    const next = await run.next();
    if (next.done === true) return next.value;
    onStep?.(next.value);
  }
}

/** A request made ready: its canvas's shape, and the decoder to start. */
export interface Plan<R extends DecodeResult> {
  /** Tokens on the canvas (prompt and generated region, or fixed text and holes). */
  canvasLength: number;
  /** The part of the canvas that is the answer: [start, end). */
  view: [number, number];
  /** Tokens of fixed input (the prompt, the text around holes). */
  inputTokens: number;
  /** The canvas before the first step: fixed tokens and mask ids (AR: the prompt alone). */
  initial: Int32Array;
  start(signal: AbortSignal): Run<R>;
}

/**
 * The length to generate after `promptLength` tokens: `requested` when it fits the context, else a
 * DecodeOptionError("length") naming both numbers; absent, `fallback` or what the context leaves.
 */
export function generationLength(
  loaded: LoadedModel,
  promptLength: number,
  requested: number | undefined,
  fallback: number,
): number {
  const context = loaded.config.maxPositions;
  const room = context - promptLength;
  if (room < 1) {
    throw new DecodeOptionError(
      "prompt",
      `the prompt is ${promptLength} tokens, longer than the model's context of ${context}: shorten it`,
    );
  }
  if (requested !== undefined && requested > room) {
    throw new DecodeOptionError(
      "length",
      `${requested} tokens do not fit: the prompt's ${promptLength} tokens leave room for ${room} in the model's context of ${context}`,
    );
  }
  return requested ?? Math.min(fallback, room);
}

/** Refuses more steps than masked positions: a step past the last mask would reveal nothing. */
function checkSteps(settings: DecodeSettings, masked: number): void {
  if (settings.steps !== undefined && settings.steps > masked) {
    throw new DecodeOptionError(
      "steps",
      `${settings.steps} steps for ${masked} masked tokens: at most one step per token`,
    );
  }
}

/** Validates settings for the loaded model (`modelParameter`: the caller's name for the model). */
export function checkRequest(
  loaded: LoadedModel,
  settings: DecodeSettings,
  modelParameter: string,
): void {
  checkSettings(settings);
  checkModelFor(loaded.config, settings.decoder, modelParameter);
}

/** A continuation of `prompt` (ids) of `settings.length` tokens (default `fallback`, fitted). */
export function planGenerate(
  loaded: LoadedModel,
  settings: DecodeSettings,
  promptIds: number[],
  fallback = 128,
): Plan<GenerateResult> {
  const length = generationLength(loaded, promptIds.length, settings.length, fallback);
  checkSteps(settings, length);
  const { model } = loaded;
  const ar = settings.decoder === "autoregressive";
  const initial = new Int32Array(ar ? promptIds.length : promptIds.length + length);
  initial.fill(loaded.config.maskTokenId ?? 0).set(promptIds);
  return {
    canvasLength: promptIds.length + length,
    view: [promptIds.length, promptIds.length + length],
    inputTokens: promptIds.length,
    initial,
    start: (signal) =>
      settings.decoder === "autoregressive"
        ? streamGenerateAr(model, promptIds, { ...arOptions(settings, length), signal })
        : streamGenerate(model, promptIds, {
            ...diffusionOptions(settings),
            genLength: length,
            signal,
          }),
  };
}

/**
 * The FIM sentinels of a causal model's tokenizer; a WrongModelError naming `parameter` when it
 * has none (then only a diffusion model can fill the hole).
 */
export function fimOf(loaded: LoadedModel, parameter = "model"): FimTokens {
  const fim = fimTokens(loaded.tokenizer);
  if (fim === null) {
    throw new WrongModelError(
      parameter,
      `${loaded.name} is a causal model, which fills a hole through fill-in-the-middle tokens (<|fim_prefix|>, <|fim_suffix|>, <|fim_middle|> or their spellings), and its tokenizer has none: infill with a diffusion model`,
    );
  }
  return fim;
}

/**
 * Holes filled between fixed pieces (ids). The diffusion decoder fills every hole on one canvas
 * (`holeLength`: to its length, or trimmed at end tokens); the autoregressive one fills a single
 * hole through the model's FIM tokens, left to right until an end token, the hole's length
 * being its budget (`holeLength` is moot: a middle always ends where the model ends it).
 */
export function planInfill(
  loaded: LoadedModel,
  settings: DecodeSettings,
  parts: InfillPart[],
  holeLength: "fixed" | "trim",
): Plan<InfillResult> {
  if (settings.decoder === "autoregressive") return planInfillAr(loaded, settings, parts);
  const ids: number[] = [];
  let inputTokens = 0;
  for (const p of parts) {
    if (typeof p === "object" && "hole" in p) {
      for (let i = 0; i < p.hole; i++) ids.push(loaded.config.maskTokenId ?? 0);
    } else {
      const fixed = typeof p === "string" ? loaded.tokenizer.encode(p) : p;
      ids.push(...fixed);
      inputTokens += fixed.length;
    }
  }
  const canvasLength = ids.length;
  checkSteps(settings, canvasLength - inputTokens);
  const context = loaded.config.maxPositions;
  if (canvasLength > context) {
    throw new DecodeOptionError(
      "length",
      `the canvas of ${canvasLength} tokens (text and holes) exceeds the model's context of ${context}`,
    );
  }
  return {
    canvasLength,
    view: [0, canvasLength],
    inputTokens,
    initial: Int32Array.from(ids),
    start: (signal) =>
      streamInfill(loaded.model, parts, { ...diffusionOptions(settings), holeLength, signal }),
  };
}

/** planInfill by a causal model: one hole, the FIM prompt of the parts around it. */
function planInfillAr(
  loaded: LoadedModel,
  settings: DecodeSettings,
  parts: InfillPart[],
): Plan<InfillResult> {
  const fim = fimOf(loaded);
  const { before, after, hole } = fimParts(parts, loaded.tokenizer);
  const prompt = fimPrompt(fim, before, after);
  const context = loaded.config.maxPositions;
  if (prompt.length + hole > context) {
    throw new DecodeOptionError(
      "length",
      `the FIM prompt of ${prompt.length} tokens and a hole of ${hole} exceed the model's context of ${context}`,
    );
  }
  const { maxTokens: _, ...ar } = arOptions(settings, hole);
  return {
    canvasLength: prompt.length + hole,
    view: [prompt.length, prompt.length + hole],
    inputTokens: before.length + after.length,
    initial: Int32Array.from(prompt),
    start: (signal) =>
      streamInfillAr(loaded.model, [before, { hole }, after], { ...ar, fim, signal }),
  };
}

/** What fix mode re-masks: the library's bounds (defaults there). */
export type FixBounds = Pick<FixOptions, "below" | "maxFraction" | "scorePasses">;

/**
 * Fix mode on `sourceIds`: the model scores every token, re-masks the least likely ones and
 * writes them again; the diffusion decoder only. The canvas is the source; the steps' count is
 * not checked against the masked count, which only the scoring pass decides.
 */
export function planFix(
  loaded: LoadedModel,
  settings: DecodeSettings,
  sourceIds: number[],
  bounds: FixBounds = {},
): Plan<FixResult> {
  if (settings.length !== undefined) {
    throw new IgnoredOptionError(
      "length",
      "fix rewrites tokens of the source in place and generates no new ones: drop the length",
    );
  }
  fixBounds(bounds);
  return {
    canvasLength: sourceIds.length,
    view: [0, sourceIds.length],
    inputTokens: sourceIds.length,
    initial: Int32Array.from(sourceIds),
    start: (signal) =>
      streamFix(loaded.model, sourceIds, { ...diffusionOptions(settings), ...bounds, signal }),
  };
}

/** The run's numbers as every front end reports them (JSON field names). */
export interface RunReport {
  steps: number;
  forward_passes: number;
  remasks: number;
  stop_reason: Stop;
  timings: { decode_ms: number; tokens_per_s: number };
}

/** The report of an outcome that produced `tokens` tokens. */
export function runReport(outcome: Outcome, tokens: number): RunReport {
  const rate = outcome.decodeMs > 0 ? tokens / (outcome.decodeMs / 1000) : 0;
  return {
    steps: outcome.result.steps,
    forward_passes: outcome.result.forwards,
    remasks: outcome.result.remasks,
    stop_reason: outcome.stop,
    timings: { decode_ms: round(outcome.decodeMs), tokens_per_s: round(rate) },
  };
}

export function round(x: number): number {
  return Math.round(x * 100) / 100;
}
