// The yardstick of the seed's claim ("diffusion writes code several times faster than AR at
// similar quality", issue 9): every decoding setting of the diffusion model(s) and the AR twin's
// greedy decoding, measured side by side in one run on the same held-out files, seeded, on
// measures neither decoder grades itself on:
//
//   line completion  CodeXGLUE's line-level task: a held-out file's prefix (as much as fits,
//                    ending on the token boundary after the line's indentation, see
//                    infill-tasks.ts), the model writes `lineTokens` tokens, its first line is
//                    scored — exact match (the same words) and edit similarity (fuzz.ratio / 100).
//   infill           single-line holes of held-out files at their true token length, filled by
//                    the setting (diffusion only): exact match and edit similarity.
//   parse rate       continuations of file beginnings (`sampleTokens` tokens) that parse up to
//                    their end (src/eval/evaluate.ts).
//   AR judge         the continuation's mean negative log-likelihood under the AR twin, and its
//                    distinct-token share (low: repetition). The judge favours the AR twin's own
//                    text (greedy AR writes its own most likely tokens): a secondary measure.
//   speed            generated tokens (up to the first end token) per second and forward passes
//                    per token, over the line completions and the continuations. The settings
//                    take turns task by task, so that a change of the (shared) machine's load
//                    moves them all alike.
//
// `speedupAtMatchedQuality` is the tokens/s of the fastest non-AR setting whose line-completion
// edit similarity is within 0.02 (absolute) of the AR twin's and whose parse rate is within 5
// points of it, divided by the AR twin's tokens/s.

import { generate, generateAr, generateSpeculative } from "../diffusion/api.js";
import type { DiffusionOptions } from "../diffusion/options.js";
import type { TextCodec } from "../diffusion/types.js";
import type { LanguageModel } from "../model/types.js";
import { type Series, writePlot } from "../train/plot.js";
import { mean, type Prompt, sampleOutcome, samplePrompts, scoreInfill } from "./evaluate.js";
import { buildInfillTasks, type InfillTask, type SourceDocument } from "./infill-tasks.js";
import { type LineMatch, matchLine } from "./score.js";

/**
 * How a setting decodes: the AR twin greedy, a diffusion model with options, or speculative
 * decoding (a diffusion model drafts blocks, the AR twin verifies: AR's text exactly; `self`:
 * a causal model trained to draft drafts and verifies in one pass, TiDAR's form: its own greedy
 * text exactly).
 */
export type ClaimDecoder =
  | { kind: "ar" }
  | { kind: "speculative"; model: number; blockLength: number; self?: boolean }
  | {
      kind: "diffusion";
      /** Index into `ClaimOptions.models`. */
      model: number;
      options: DiffusionOptions;
      /** Tokens per forward pass for step-count rules: steps = ⌈masked / tokensPerStep⌉. */
      tokensPerStep?: number;
    };

export interface ClaimSetting {
  name: string;
  decoder: ClaimDecoder;
}

export interface ClaimOptions {
  /** The diffusion models, named. */
  models: readonly { name: string; model: LanguageModel }[];
  /** The AR twin: the baseline, and the judge of continuations. */
  ar: LanguageModel;
  tokenizer: TextCodec;
  /** Held-out files. */
  documents: readonly SourceDocument[];
  /** Default: claimSettings(models.length). */
  settings?: readonly ClaimSetting[];
  /** Line-completion tasks, and continuations for the parse rate (default 40 each). */
  tasks?: number;
  /** Single-line infill tasks (default 40). */
  infillTasks?: number;
  /** Tokens written per line completion (default 32). */
  lineTokens?: number;
  /** Tokens per continuation (default 64) after a prompt of at most `promptTokens` (default 64). */
  sampleTokens?: number;
  promptTokens?: number;
  /** Default 0. */
  seed?: number;
  signal?: AbortSignal;
  /** `setting` is "all" while the settings take turns on the line completions and continuations. */
  onProgress?: (setting: string, phase: string, done: number, total: number) => void;
}

export interface SettingScore {
  name: string;
  /** The model's name ("ar" for the twin). */
  model: string;
  decoder: ClaimDecoder["kind"];
  options: DiffusionOptions | null;
  tokensPerSecond: number;
  forwardsPerToken: number;
  /** Σ generated tokens and seconds over line completions and continuations. */
  tokens: number;
  seconds: number;
  lineCompletion: { tasks: number; exactMatch: number; editSimilarity: number };
  /** Null for a decoder that cannot fill a hole (the AR twin, speculative decoding). */
  infill: { tasks: number; exactMatch: number; editSimilarity: number } | null;
  parseRate: number;
  /** Mean negative log-likelihood per token (nats) of the continuations under the AR twin. */
  arNll: number;
  distinctShare: number;
}

export interface ClaimReport {
  seed: number;
  tasks: { lineCompletion: number; continuations: number; infill: number };
  settings: SettingScore[];
  /** Names of the settings on the Pareto front of tokens/s against line-completion edit similarity. */
  pareto: string[];
  speedupAtMatchedQuality: {
    value: number | null;
    setting: string | null;
    forwardsPerToken: number | null;
    editSimilarity: number | null;
    parseRate: number | null;
    arTokensPerSecond: number;
    arEditSimilarity: number;
    arParseRate: number;
    reason: string | null;
  };
  infillExactMatch: { value: number | null; setting: string | null; editSimilarity: number | null };
}

/**
 * The settings measured by default, for each diffusion model. A full-attention model: LLaDA one
 * token per step and four; Fast-dLLM's threshold (0.9, 0.7, 0.5) and factor rules on blocks of 8
 * with the dual cache ("fdllm-…", the fast-dllm-small and fast-dllm-factor presets); EB-sampler
 * with γ 0.1 and 1; speculative decoding with drafts of 4 and 8. A block-causal model (block
 * diffusion, exact block cache, blocks of its block size): one token per step, the threshold
 * rule (0.9, 0.7, 0.5), the factor rule and EB-sampler ("bd-…"). A causal model trained to draft
 * (`train --draft`): the one-model speculative decoder with 1, 2 and 4 masks ("tidar-…"). Names
 * stay short for the plot's legend.
 */
export function claimSettings(
  models: readonly { name: string; model: { config: { attention: string } } }[],
): ClaimSetting[] {
  const out: ClaimSetting[] = [{ name: "ar", decoder: { kind: "ar" } }];
  models.forEach(({ name, model: { config } }, model) => {
    const tag = models.length > 1 ? `${name}:` : "";
    const d = (label: string, options: DiffusionOptions, tokensPerStep?: number): ClaimSetting => ({
      name: tag + label,
      decoder: {
        kind: "diffusion",
        model,
        options,
        ...(tokensPerStep === undefined ? {} : { tokensPerStep }),
      },
    });
    if (config.attention === "causal") {
      for (const blockLength of [1, 2, 4]) {
        out.push({
          name: `${tag}tidar-${blockLength}`,
          decoder: { kind: "speculative", model, blockLength, self: true },
        });
      }
      return;
    }
    if (config.attention === "block_causal") {
      const bd = (label: string, options: DiffusionOptions, tokensPerStep?: number) =>
        d(label, { preset: "block-diffusion", ...options }, tokensPerStep);
      out.push(
        bd("bd-1/step", {}, 1),
        bd("bd-t0.9", { selection: "threshold", threshold: 0.9 }),
        bd("bd-t0.7", { selection: "threshold", threshold: 0.7 }),
        bd("bd-t0.5", { selection: "threshold", threshold: 0.5 }),
        bd("bd-factor", { selection: "factor", factor: 1 }),
        bd("bd-eb-1", { selection: "entropy-bound", gamma: 1 }),
      );
      return;
    }
    out.push(
      d("llada", { preset: "llada" }),
      d("llada-4/step", { preset: "llada", blockLength: 8 }, 4),
      d("fdllm-t0.9", { preset: "fast-dllm-small" }),
      d("fdllm-t0.7", { preset: "fast-dllm-small", threshold: 0.7 }),
      d("fdllm-t0.5", { preset: "fast-dllm-small", threshold: 0.5 }),
      d("fdllm-factor", { preset: "fast-dllm-factor" }),
      d("eb-0.1", { preset: "eb-sampler" }),
      d("eb-1", { preset: "eb-sampler", gamma: 1 }),
      { name: `${tag}spec-4`, decoder: { kind: "speculative", model, blockLength: 4 } },
      { name: `${tag}spec-8`, decoder: { kind: "speculative", model, blockLength: 8 } },
    );
  });
  return out;
}

interface Continuation {
  /** Generated ids up to the first end token. */
  tokens: number[];
  text: string;
}

/** Runs every setting on the same tasks; see the module comment. */
export async function benchClaim(o: ClaimOptions): Promise<ClaimReport> {
  const { tokenizer, ar } = o;
  const seed = o.seed ?? 0;
  const count = o.tasks ?? 40;
  const lineTokens = o.lineTokens ?? 32;
  const sampleTokens = o.sampleTokens ?? 64;
  const context = Math.min(
    ar.config.maxPositions,
    ...o.models.map((m) => m.model.config.maxPositions),
  );
  const mask = o.models[0]?.model.config.maskTokenId ?? null;
  const lines = buildInfillTasks(o.documents, {
    tokenizer,
    context: context - lineTokens,
    kind: "single-line",
    count,
    seed: seed + 1,
    // a line longer than the tokens written cannot match
    maxHoleShare: lineTokens / (context - lineTokens),
    maskTokenId: mask,
    suffix: false,
  });
  const budget = Math.min(o.promptTokens ?? 64, context - sampleTokens);
  const prompts = samplePrompts(o.documents, count, budget, tokenizer, seed, mask);
  const holes = buildInfillTasks(o.documents, {
    tokenizer,
    context,
    kind: "single-line",
    count: o.infillTasks ?? 40,
    seed,
    maskTokenId: mask,
  });

  // task by task, every setting in turn: a change of the machine's load between settings
  // (this machine is shared) then moves them all alike, not one setting's speed
  const n = { seed, lineTokens, sampleTokens };
  const tallies = (o.settings ?? claimSettings(o.models)).map((s) => new Tally(o, s, n));
  for (const [i, task] of lines.entries()) {
    for (const t of tallies) t.line(task, await t.write(task.prefix, lineTokens));
    o.onProgress?.("all", "line completion", i + 1, lines.length);
  }
  for (const [i, p] of prompts.entries()) {
    for (const t of tallies) await t.continuation(p, await t.write(p.text, sampleTokens));
    o.onProgress?.("all", "continuations", i + 1, prompts.length);
  }
  const settings: SettingScore[] = [];
  for (const t of tallies) settings.push(await t.score(holes));
  return {
    seed,
    tasks: { lineCompletion: lines.length, continuations: prompts.length, infill: holes.length },
    settings,
    pareto: paretoFront(settings),
    speedupAtMatchedQuality: matchedSpeedup(settings),
    infillExactMatch: bestInfill(settings),
  };
}

/** One setting's decoder and what it has written so far. */
class Tally {
  private tokens = 0;
  private seconds = 0;
  private forwards = 0;
  private readonly lines: LineMatch[] = [];
  private continuations = 0;
  private valid = 0;
  private nll = 0;
  private judged = 0;
  private readonly distinct: number[] = [];

  constructor(
    private readonly o: ClaimOptions,
    private readonly s: ClaimSetting,
    private readonly n: { seed: number; lineTokens: number; sampleTokens: number },
  ) {}

  /** The diffusion options for a canvas of `masked` masks. */
  private optionsFor(masked: number): DiffusionOptions {
    const d = this.s.decoder;
    if (d.kind !== "diffusion") return {};
    return d.tokensPerStep === undefined
      ? d.options
      : { ...d.options, steps: Math.ceil(masked / d.tokensPerStep) };
  }

  /** Writes `length` tokens after `prompt`, timed; counts them. */
  async write(prompt: string, length: number): Promise<Continuation> {
    const { tokenizer, ar, signal, models } = this.o;
    const d = this.s.decoder;
    signal?.throwIfAborted();
    const call = { tokenizer, ...(signal ? { signal } : {}) };
    const t0 = performance.now();
    const r =
      d.kind === "ar"
        ? await generateAr(ar, prompt, { ...call, seed: this.n.seed, maxTokens: length })
        : d.kind === "speculative"
          ? await generateSpeculative(
              models[d.model].model,
              d.self ? models[d.model].model : ar,
              prompt,
              {
                ...call,
                blockLength: d.blockLength,
                maxTokens: length,
              },
            )
          : await generate(models[d.model].model, prompt, {
              ...this.optionsFor(length),
              ...call,
              seed: this.n.seed,
              genLength: length,
            });
    const seconds = (performance.now() - t0) / 1000;
    this.tokens += r.tokens.length;
    this.seconds += seconds;
    this.forwards += r.forwards;
    return { tokens: r.tokens, text: r.text ?? "" };
  }

  line(task: InfillTask, c: Continuation): void {
    this.lines.push(matchLine(task.middle, c.text));
  }

  async continuation(p: Prompt, c: Continuation): Promise<void> {
    this.continuations++;
    if (sampleOutcome(p, c.text, c.tokens.length, this.n.sampleTokens).valid) this.valid++;
    if (c.tokens.length > 0) {
      this.nll += await continuationNll(this.o.ar, this.o.tokenizer.encode(p.text), c.tokens);
      this.judged += c.tokens.length;
      this.distinct.push(new Set(c.tokens).size / c.tokens.length);
    }
  }

  /** Fills the holes (a diffusion setting) and returns the setting's scores. */
  async score(holes: InfillTask[]): Promise<SettingScore> {
    const { o, s } = this;
    const d = s.decoder;
    let infill: SettingScore["infill"] = null;
    if (d.kind === "diffusion") {
      const r = await scoreInfill(o.models[d.model].model, o.tokenizer, holes, {
        holeLength: "fixed",
        seed: this.n.seed,
        signal: o.signal,
        onProgress: (done, total) => o.onProgress?.(s.name, "infill", done, total),
        decoding: (masked) => this.optionsFor(masked),
      });
      infill = {
        tasks: r.tasks,
        exactMatch: r.exactShare ?? 0,
        editSimilarity: r.editSimilarity ?? 0,
      };
    }
    const { tokens, seconds, forwards } = this;
    return {
      name: s.name,
      model: d.kind === "ar" ? "ar" : o.models[d.model].name,
      decoder: d.kind,
      options: d.kind === "diffusion" ? d.options : null,
      tokensPerSecond: seconds > 0 ? tokens / seconds : 0,
      forwardsPerToken: tokens > 0 ? forwards / tokens : 0,
      tokens,
      seconds,
      lineCompletion: {
        tasks: this.lines.length,
        exactMatch: mean(this.lines.map((l) => (l.exact ? 1 : 0))) ?? 0,
        editSimilarity: mean(this.lines.map((l) => l.editSimilarity)) ?? 0,
      },
      infill,
      parseRate: this.continuations > 0 ? this.valid / this.continuations : 0,
      arNll: this.judged > 0 ? this.nll / this.judged : 0,
      distinctShare: mean(this.distinct) ?? 0,
    };
  }
}

/**
 * Σ −log p(continuation | prompt) (nats) under a causal model, in one forward pass: the logits of
 * the position before each continuation token (the position itself under logit shift).
 */
export async function continuationNll(
  model: LanguageModel,
  prompt: readonly number[],
  continuation: readonly number[],
): Promise<number> {
  const shift = model.config.logitShift;
  const all = [...prompt, ...continuation];
  const fed = Int32Array.from(shift ? all : all.slice(0, -1));
  const at = Int32Array.from(continuation, (_, j) => prompt.length + j - (shift ? 0 : 1));
  const out = await model.forward({
    tokens: fed,
    rows: 1,
    logitsAt: at,
    logits: false,
    stats: { topK: 1, scoreTokens: Int32Array.from(continuation) },
  });
  let sum = 0;
  for (const lp of out.stats!.scoreLogProbs!) sum -= lp;
  return sum;
}

/** Settings no other beats on both tokens/s and line-completion edit similarity, fastest first. */
export function paretoFront(settings: readonly SettingScore[]): string[] {
  const sorted = [...settings].sort(
    (a, b) =>
      b.tokensPerSecond - a.tokensPerSecond ||
      b.lineCompletion.editSimilarity - a.lineCompletion.editSimilarity,
  );
  const front: string[] = [];
  let best = Number.NEGATIVE_INFINITY;
  for (const s of sorted) {
    if (s.lineCompletion.editSimilarity > best) {
      front.push(s.name);
      best = s.lineCompletion.editSimilarity;
    }
  }
  return front;
}

/** Edit similarity within this (absolute) of the AR twin's counts as matched quality. */
export const matchedEditSimilarity = 0.02;
/** Parse rate within this of the AR twin's counts as matched quality. */
export const matchedParseRate = 0.05;

/** The speed-up at matched quality (see the module comment), with its reason when none. */
export function matchedSpeedup(
  settings: readonly SettingScore[],
): ClaimReport["speedupAtMatchedQuality"] {
  const ar = settings.find((s) => s.decoder === "ar");
  if (ar === undefined) throw new RangeError("benchClaim: the settings hold no AR baseline");
  const base = {
    arTokensPerSecond: ar.tokensPerSecond,
    arEditSimilarity: ar.lineCompletion.editSimilarity,
    arParseRate: ar.parseRate,
  };
  const matched = settings
    .filter(
      (s) =>
        s.decoder !== "ar" &&
        s.lineCompletion.editSimilarity >=
          ar.lineCompletion.editSimilarity - matchedEditSimilarity &&
        s.parseRate >= ar.parseRate - matchedParseRate,
    )
    .sort((a, b) => b.tokensPerSecond - a.tokensPerSecond);
  const s = matched[0];
  if (s === undefined || ar.tokensPerSecond === 0) {
    return {
      value: null,
      setting: null,
      forwardsPerToken: null,
      editSimilarity: null,
      parseRate: null,
      ...base,
      reason: `no setting reaches line-completion edit similarity ≥ ${(ar.lineCompletion.editSimilarity - matchedEditSimilarity).toFixed(3)} and parse rate ≥ ${(ar.parseRate - matchedParseRate).toFixed(3)} (the AR twin's less ${matchedEditSimilarity} and ${matchedParseRate})`,
    };
  }
  return {
    value: s.tokensPerSecond / ar.tokensPerSecond,
    setting: s.name,
    forwardsPerToken: s.forwardsPerToken,
    editSimilarity: s.lineCompletion.editSimilarity,
    parseRate: s.parseRate,
    ...base,
    reason: null,
  };
}

function bestInfill(settings: readonly SettingScore[]): ClaimReport["infillExactMatch"] {
  let best: SettingScore | null = null;
  for (const s of settings) {
    if (s.infill === null) continue;
    if (
      best === null ||
      s.infill.exactMatch > best.infill!.exactMatch ||
      (s.infill.exactMatch === best.infill!.exactMatch &&
        s.infill.editSimilarity > best.infill!.editSimilarity)
    ) {
      best = s;
    }
  }
  return best === null
    ? { value: null, setting: null, editSimilarity: null }
    : {
        value: best.infill!.exactMatch,
        setting: best.name,
        editSimilarity: best.infill!.editSimilarity,
      };
}

const palette = [
  "#1f77b4",
  "#d62728",
  "#2ca02c",
  "#ff7f0e",
  "#9467bd",
  "#8c564b",
  "#e377c2",
  "#17becf",
  "#bcbd22",
  "#7f7f7f",
  "#393b79",
  "#637939",
];

/**
 * Writes the Pareto picture as `<stem>.svg` and `<stem>.png`: each setting a point (tokens/s,
 * line-completion edit similarity), the front a line through its settings.
 */
export async function writeClaimPlot(report: ClaimReport, stem: string): Promise<string[]> {
  const byName = new Map(report.settings.map((s) => [s.name, s]));
  const point = (s: SettingScore) => [s.tokensPerSecond, s.lineCompletion.editSimilarity] as const;
  const series: Series[] = report.settings.map((s, i) => ({
    name: s.name,
    color: s.decoder === "ar" ? "#000000" : palette[(i - 1 + palette.length) % palette.length],
    points: [point(s)],
  }));
  // the front first, so that the settings' points are drawn over it
  series.unshift({
    name: "Pareto front",
    color: "#aaaaaa",
    points: report.pareto.map((n) => point(byName.get(n)!)),
  });
  // the legend stands in the top right corner: a white point at 2.5× the fastest setting's
  // tokens/s widens the (log) x axis so that no setting lies under it
  const fastest = Math.max(...report.settings.map((s) => s.tokensPerSecond));
  const lowest = Math.min(...report.settings.map((s) => s.lineCompletion.editSimilarity));
  series.push({ name: "", color: "#ffffff", points: [[fastest * 2.5, lowest]] });
  const options = {
    title: "tokens/s against line-completion edit similarity (held-out)",
    xLabel: "tokens/s (log)",
    yLabel: "edit similarity",
    logX: true,
    height: Math.max(480, 60 + 14 * series.length),
  };
  const files = [`${stem}.svg`, `${stem}.png`];
  for (const f of files) await writePlot(f, series, options);
  return files;
}
