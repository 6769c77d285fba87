// The denoise loop: a canvas of fixed tokens and masks becomes text over a number of steps, each
// one forward pass. A step is
//   schedule (how many to reveal) × confidence (how sure of each masked position)
//   × selection (which to reveal) × constraints (fixed tokens, the current block),
// then, when asked, self-correction (re-masking revealed tokens the model no longer believes).
// The loop is an async generator of StepEvents returning a DecodeResult; it checks its
// AbortSignal before every forward pass and throws DecodeAbortedError (name "AbortError",
// carrying the partial canvas) when it fires, dropping the caches it holds.
//
// Block structure and caches:
//   - blocks (LLaDA semi-autoregressive): the masked region is cut into blocks decoded left to
//     right; a step only reveals positions of the current block (LLaDA sets the confidence of
//     later positions to −∞).
//   - prefix / dual cache (Fast-dLLM, arXiv:2505.22618): the first step of a block runs the whole
//     canvas and keeps the K/V of the positions before the block (prefix) or before and after it
//     (dual); the block's other steps run only the block (and, for prefix, what follows it).
//     The cache is approximate — it was computed with a still-masked future — and refreshed per
//     block, as in the reference.
//   - block (BD3-LM, arXiv:2503.09573): on a block_causal model the K/V of finished blocks never
//     change, so each block's steps run only the block against an exact cache. The finished block
//     rides along with the next block's first step to extend the cache (no extra forward pass).
// Models with logit shift (Dream family) predict position i from the hidden state at i − 1, so
// a cached window starts one position before the block: its first logits are then exact too.

import { endTokenIds, type ModelConfig } from "../model/config.js";
import { Rng } from "../model/random.js";
import type {
  ForwardRequest,
  ForwardResult,
  KvCache,
  LanguageModel,
  StatsRequest,
} from "../model/types.js";
import { DecodeAbortedError, DecodeOptionError } from "./errors.js";
import { sliceKv } from "./kv.js";
import {
  type DiffusionOptions,
  type ResolvedOptions,
  resolveOptions,
  runsUntilClean,
} from "./options.js";
import {
  dreamTimesteps,
  dreamTransferCount,
  dreamTransferProbability,
  filterTopK,
  filterTopP,
  gumbelArgmax,
  logSumExp,
  marginConfidence,
  marginFromStats,
  negativeEntropy,
  numTransferTokens,
  rankByConfidence,
  sampleCategorical,
  sampleNucleus,
  selectBernoulli,
  selectEntropyBounded,
  selectFactor,
  selectSampled,
  selectThreshold,
  selectTopK,
  softmax,
} from "./sampling.js";
import type {
  CanvasSpec,
  DecodeResult,
  DecodeText,
  PositionChange,
  StepEvent,
  StopReason,
} from "./types.js";

/**
 * Candidates the statistics bring for Dream's top-p draw: the nucleus of a sharpened (T < 1)
 * distribution is nearly always among them; when it is not, the step falls back to the whole row.
 */
const nucleusCandidates = 64;

interface Block {
  start: number;
  end: number;
  /** Steps given to the block (step-count selections). */
  steps: number;
}

/** Everything about a canvas that is fixed before the first step, validated. */
export interface CanvasPlan {
  maskId: number;
  canvas: Int32Array;
  /** 1 where the token is a constraint (never changes). */
  fixed: Uint8Array;
  regionStart: number;
  regionEnd: number;
  blocks: Block[];
  /** EOS and pad ids (distinct, present in the config). */
  endTokens: number[];
  view: readonly [number, number];
}

/** Validates a canvas against a model and options; throws DecodeOptionError naming the parameter. */
export function planCanvas(model: LanguageModel, spec: CanvasSpec, o: ResolvedOptions): CanvasPlan {
  const cfg = model.config;
  const maskId = cfg.maskTokenId;
  if (maskId === null) {
    throw new DecodeOptionError(
      "model",
      "the model's config has no mask_token_id: it cannot denoise",
    );
  }
  const L = spec.tokens.length;
  if (L === 0) throw new DecodeOptionError("tokens", "the canvas is empty");
  if (L > cfg.maxPositions) {
    throw new DecodeOptionError(
      "length",
      `a canvas of ${L} tokens exceeds the model's context of ${cfg.maxPositions} positions`,
    );
  }
  const canvas = Int32Array.from(spec.tokens);
  const fixed = new Uint8Array(L);
  let regionStart = -1;
  let regionEnd = -1;
  for (let i = 0; i < L; i++) {
    const t = canvas[i];
    if (!Number.isInteger(t) || t < 0 || t >= cfg.vocabSize) {
      throw new DecodeOptionError(
        "tokens",
        `token ${t} at ${i} is outside the vocabulary (${cfg.vocabSize})`,
      );
    }
    if (t === maskId) {
      if (regionStart < 0) regionStart = i;
      regionEnd = i + 1;
    } else {
      fixed[i] = 1;
    }
  }
  const view = spec.view ?? ([0, L] as const);
  if (!(view[0] >= 0 && view[0] <= view[1] && view[1] <= L)) {
    throw new DecodeOptionError(
      "view",
      `[${view[0]}, ${view[1]}) is not a range of the ${L}-token canvas`,
    );
  }
  const endTokens = endTokenIds(cfg);

  if ((o.cache === "prefix" || o.cache === "dual") && cfg.attention !== "full") {
    throw new DecodeOptionError(
      "cache",
      `the ${o.cache} cache needs a bidirectional ("full" attention) model; this one is ${cfg.attention}`,
    );
  }
  if (o.cache === "block") {
    if (cfg.attention !== "block_causal") {
      throw new DecodeOptionError(
        "cache",
        `the block cache needs a block_causal model (block diffusion); this one is ${cfg.attention}`,
      );
    }
    if (o.blockLength !== undefined && o.blockLength !== cfg.blockSize) {
      throw new DecodeOptionError(
        "blockLength",
        `block diffusion decodes the model's blocks of ${cfg.blockSize}, not ${o.blockLength}`,
      );
    }
  }

  const blocks: Block[] = [];
  if (regionStart >= 0) {
    const regionLength = regionEnd - regionStart;
    if (o.cache === "block") {
      // block boundaries at multiples of the model's block size (its attention is by absolute position)
      const size = cfg.blockSize;
      for (let a = regionStart; a < regionEnd; ) {
        const b = Math.min(regionEnd, (Math.floor(a / size) + 1) * size);
        blocks.push({ start: a, end: b, steps: 0 });
        a = b;
      }
    } else {
      const size = Math.min(o.blockLength ?? regionLength, regionLength);
      if (spec.openEnded && o.blockLengthGiven && regionLength % size !== 0) {
        throw new DecodeOptionError(
          "blockLength",
          `${o.blockLength} does not divide the generation length ${regionLength} (LLaDA and Fast-dLLM require it)`,
        );
      }
      for (let a = regionStart; a < regionEnd; a += size) {
        blocks.push({ start: a, end: Math.min(a + size, regionEnd), steps: 0 });
      }
    }
    const withMasks = blocks.filter((b) => countMasked(canvas, maskId, b.start, b.end) > 0);
    if (o.steps === undefined) {
      for (const b of withMasks) b.steps = countMasked(canvas, maskId, b.start, b.end);
    } else {
      if (o.steps < withMasks.length && !runsUntilClean(o.selection)) {
        throw new DecodeOptionError(
          "steps",
          `${o.steps} steps cannot cover ${withMasks.length} blocks: at least one step per block`,
        );
      }
      // LLaDA: steps // num_blocks per block; a remainder goes to the first blocks
      const base = Math.floor(o.steps / withMasks.length);
      withMasks.forEach((b, i) => {
        b.steps = base + (i < o.steps! % withMasks.length ? 1 : 0);
      });
    }
  }
  return { maskId, canvas, fixed, regionStart, regionEnd, blocks, endTokens, view };
}

function countMasked(x: Int32Array, maskId: number, a: number, b: number): number {
  let n = 0;
  for (let i = a; i < b; i++) if (x[i] === maskId) n++;
  return n;
}

/**
 * Renders a canvas range as text: runs of tokens decoded as they stand, each mask as `maskText`.
 */
export function renderCanvas(
  canvas: ArrayLike<number>,
  start: number,
  end: number,
  decode: DecodeText,
  maskId: number,
  maskText = "░",
): string {
  let text = "";
  let run: number[] = [];
  for (let i = start; i < end; i++) {
    if (canvas[i] === maskId) {
      if (run.length > 0) text += decode(run);
      run = [];
      text += maskText;
    } else {
      run.push(canvas[i]);
    }
  }
  if (run.length > 0) text += decode(run);
  return text;
}

/**
 * Denoises a canvas: yields one StepEvent per forward pass and returns the result. Options and
 * canvas are validated when it is called, before anything runs (DecodeOptionError is thrown
 * synchronously). Aborting throws DecodeAbortedError before the next forward pass; returning
 * early from the iteration (`break`) also ends the run and drops its caches.
 */
export function denoise(
  model: LanguageModel,
  spec: CanvasSpec,
  options: DiffusionOptions = {},
  signal?: AbortSignal,
): AsyncGenerator<StepEvent, DecodeResult, undefined> {
  const o = resolveOptions(options);
  const plan = planCanvas(model, spec, o);
  return runLoop(new DenoiseLoop(model, plan, o, spec), signal);
}

async function* runLoop(
  loop: DenoiseLoop,
  signal: AbortSignal | undefined,
): AsyncGenerator<StepEvent, DecodeResult, undefined> {
  try {
    return yield* loop.run(signal);
  } finally {
    loop.release();
  }
}

/** The state of one run: the canvas, the caches, and scratch buffers allocated once. */
class DenoiseLoop {
  private readonly cfg: ModelConfig;
  private readonly x: Int32Array;
  private readonly L: number;
  private readonly V: number;
  private readonly rows: number;
  private readonly rng: Rng;
  /** Step at which the loop revealed a position; −1 for masks and constraints. */
  private readonly revealedAt: Int32Array;
  private forwards = 0;
  private steps = 0;
  private remasks = 0;
  private cache: KvCache | null = null;
  private cacheLength = 0;
  // scratch, allocated once
  private readonly work: Float64Array;
  private readonly probs: Float64Array;
  private readonly sortScratch: Float64Array;
  private readonly vocabOrder: Int32Array;
  private readonly candidates: Int32Array;
  private readonly candidateTokens: Int32Array;
  private readonly candidateConfidence: Float64Array;
  /** Each candidate's entropy (nats), for `entropy-bound` selection. */
  private readonly candidateEntropy: Float64Array;
  private readonly rankOrder: Int32Array;
  private readonly selected: Int32Array;
  private readonly weights: Float64Array;
  private readonly query: Int32Array;
  private readonly tokens: Int32Array;
  private readonly positions: Int32Array;
  private readonly logitsAt: Int32Array;
  /**
   * What the steps ask of the model: step statistics computed where the logits are (greedy
   * decoding; Dream's top-p sampling, whose nucleus is drawn from the candidates), or null when
   * only whole rows will do (Gumbel noise or plain sampling at a temperature, guidance).
   */
  private readonly stats: StatsRequest | null;
  /** Whether the steps fetch whole rows of logits (always without stats; as top-p's fallback). */
  private readonly wholeRows: boolean;
  /** Scratch of the tokens whose probability self-correction reads, with greedy statistics. */
  private readonly scored: Int32Array | null = null;

  constructor(
    private readonly model: LanguageModel,
    private readonly plan: CanvasPlan,
    private readonly o: ResolvedOptions,
    private readonly spec: CanvasSpec,
  ) {
    this.cfg = model.config;
    this.x = plan.canvas;
    this.L = plan.canvas.length;
    this.V = this.cfg.vocabSize;
    this.rows = o.cfgScale > 0 ? 2 : 1;
    this.rng = new Rng(o.seed);
    this.revealedAt = new Int32Array(this.L).fill(-1);
    this.work = new Float64Array(this.V);
    this.probs = new Float64Array(this.V);
    this.sortScratch = new Float64Array(this.V);
    this.vocabOrder = new Int32Array(this.V);
    this.candidates = new Int32Array(this.L);
    this.candidateTokens = new Int32Array(this.L);
    this.candidateConfidence = new Float64Array(this.L);
    this.candidateEntropy = new Float64Array(this.L);
    this.rankOrder = new Int32Array(this.L);
    this.selected = new Int32Array(this.L);
    this.weights = new Float64Array(this.L);
    this.query = new Int32Array(2 * this.L);
    this.tokens = new Int32Array(this.rows * this.L);
    this.positions = new Int32Array(this.rows * this.L);
    this.logitsAt = new Int32Array(this.rows * 2 * this.L);
    const exclude = Int32Array.from([plan.maskId, ...(o.eos === "suppress" ? plan.endTokens : [])]);
    const greedy = o.temperature === 0 && o.topP === 1 && o.topK === 0 && this.rows === 1;
    const nucleus =
      o.sampler === "categorical" && o.temperature > 0 && o.topP < 1 && this.rows === 1;
    this.stats = null;
    this.wholeRows = !greedy;
    if (greedy) {
      this.stats = { topK: o.confidence === "margin" ? 2 : 1, exclude };
      if (o.remaskBelow > 0) this.scored = new Int32Array(2 * this.L);
    } else if (nucleus && o.remaskBelow === 0) {
      const topK = Math.min(nucleusCandidates, this.V);
      this.stats = { topK, exclude, temperature: o.temperature };
    }
  }

  release(): void {
    this.cache = null;
  }

  private result(stopReason: StopReason): DecodeResult {
    const r: DecodeResult = {
      canvas: Int32Array.from(this.x),
      steps: this.steps,
      forwards: this.forwards,
      remasks: this.remasks,
      stopReason,
    };
    const text = this.text();
    if (text !== undefined) r.text = text;
    return r;
  }

  private text(): string | undefined {
    const { decode, maskText } = this.spec;
    if (decode === undefined) return undefined;
    const [a, b] = this.plan.view;
    return renderCanvas(this.x, a, b, decode, this.plan.maskId, maskText);
  }

  async *run(signal?: AbortSignal): AsyncGenerator<StepEvent, DecodeResult, undefined> {
    const { o, plan, x } = this;
    const maskId = plan.maskId;
    const countBased = !runsUntilClean(o.selection);
    for (let b = 0; b < plan.blocks.length; b++) {
      const block = plan.blocks[b];
      const S = block.steps;
      const initialMasked = countMasked(x, maskId, block.start, block.end);
      if (initialMasked === 0) continue;
      const transfer =
        o.schedule === "linear" ? numTransferTokens(initialMasked, Math.max(S, 1)) : null;
      const timesteps = dreamTimesteps(Math.max(S, 1), o.eps);
      let debt = 0; // re-masked positions the linear plan has not yet paid back
      for (let i = 0; ; i++) {
        // the masked candidates of this block
        let m = 0;
        for (let p = block.start; p < block.end; p++) if (x[p] === maskId) this.candidates[m++] = p;
        if (m === 0) break;
        if (i > (countBased ? S : initialMasked) + o.remaskBudget) {
          // every step reveals at least one token and re-masks stay within the budget
          throw new Error(`denoise: block ${b} made no progress in ${i} steps`);
        }
        const lastStep = countBased && i >= S - 1;
        // revealed positions of the block that self-correction may take back
        let r = 0;
        if (o.remaskBelow > 0 && this.remasks < o.remaskBudget && !lastStep) {
          for (let p = block.start; p < block.end; p++) {
            if (this.revealedAt[p] >= 0) this.query[m + r++] = p;
          }
        }
        this.query.set(this.candidates.subarray(0, m), 0);

        if (signal?.aborted) {
          throw new DecodeAbortedError(this.result("complete"), { cause: signal.reason });
        }
        const out = await this.forward(block, i, this.query.subarray(0, m + r));
        this.forwards++;
        const p = m + r; // logits rows per canvas row

        // how many to reveal
        let k = m;
        if (countBased && !lastStep) {
          if (transfer !== null) {
            const planned = transfer[Math.min(i, transfer.length - 1)];
            k = Math.min(m, planned + debt);
            debt = Math.max(0, debt - Math.max(0, k - planned));
          } else {
            k = dreamTransferCount(m, i, S, timesteps);
          }
        }

        // tokens and confidences of the masked candidates, then the selection
        let chosen: Int32Array;
        if (o.selection === "bernoulli") {
          const prob = lastStep ? 1 : dreamTransferProbability(i, S, timesteps);
          chosen = selectBernoulli(m, prob, this.rng, this.selected);
          for (const j of chosen) this.score(out, p, j);
        } else {
          for (let j = 0; j < m; j++) this.score(out, p, j);
          if (o.selection === "sampled") {
            chosen = selectSampled(
              this.candidateConfidence,
              this.candidates,
              m,
              k,
              o.algTemperature,
              this.rng,
              this.weights,
              this.selected,
            );
          } else {
            const ranked = rankByConfidence(
              this.candidateConfidence,
              this.candidates,
              m,
              this.rankOrder,
            );
            chosen =
              o.selection === "threshold"
                ? selectThreshold(ranked, this.candidateConfidence, o.threshold)
                : o.selection === "factor"
                  ? selectFactor(ranked, this.candidateConfidence, o.factor)
                  : o.selection === "entropy-bound"
                    ? selectEntropyBounded(ranked, this.candidateEntropy, o.gamma)
                    : selectTopK(ranked, k);
          }
        }
        const revealed: PositionChange[] = [];
        for (const j of chosen) {
          const position = this.candidates[j];
          x[position] = this.candidateTokens[j];
          this.revealedAt[position] = this.steps;
          revealed.push({
            position,
            token: this.candidateTokens[j],
            confidence: this.candidateConfidence[j],
          });
        }
        revealed.sort((a, c) => a.position - c.position);

        // self-correction: take back revealed tokens the model no longer believes
        const remasked: PositionChange[] = [];
        if (r > 0) {
          const doubts: PositionChange[] = [];
          for (let j = m; j < m + r; j++) {
            const position = this.query[j];
            const prob = this.probabilityOf(out, p, j, x[position]);
            if (prob < o.remaskBelow)
              doubts.push({ position, token: x[position], confidence: prob });
          }
          doubts.sort((a, c) => a.confidence - c.confidence || a.position - c.position);
          const room = Math.min(o.remaskPerStep, o.remaskBudget - this.remasks);
          for (const d of doubts.slice(0, room)) {
            x[d.position] = maskId;
            this.revealedAt[d.position] = -1;
            remasked.push(d);
          }
          remasked.sort((a, c) => a.position - c.position);
          this.remasks += remasked.length;
          debt += remasked.length;
        }

        const stop = this.settleAtEos();
        const event: StepEvent = {
          step: this.steps,
          block: b,
          canvas: Int32Array.from(x),
          revealed,
          remasked,
          masked: countMasked(x, maskId, 0, this.L),
          forwards: this.forwards,
        };
        const text = this.text();
        if (text !== undefined) event.text = text;
        this.steps++;
        yield event;
        if (stop) return this.result("eos");
      }
    }
    return this.result("complete");
  }

  /**
   * Open-ended generation: once an EOS stands with no mask before it in the region, the text is
   * settled; the masks after it become EOS (LLaDA pads answers with EOS) and the run stops.
   */
  private settleAtEos(): boolean {
    const { o, plan, x } = this;
    const eos = this.cfg.eosTokenId;
    if (!this.spec.openEnded || !o.stopAtEos || eos === null) return false;
    for (let p = plan.regionStart; p < plan.regionEnd; p++) {
      if (x[p] === plan.maskId) return false;
      if (x[p] === eos && !plan.fixed[p]) {
        for (let q = p + 1; q < this.L; q++) if (x[q] === plan.maskId) x[q] = eos;
        return true;
      }
    }
    return false;
  }

  /**
   * One forward pass for a step, under the cache mode; returns logits [rows, p, V] or the step
   * statistics at the query positions (absolute), in query order.
   */
  private async forward(
    block: Block,
    stepInBlock: number,
    query: Int32Array,
  ): Promise<ForwardResult> {
    const { o, L } = this;
    const shift = this.cfg.logitShift;
    // the first position of a cached window: one early under logit shift (see the header)
    const windowStart = Math.max(0, shift ? block.start - 1 : block.start);
    if (o.cache === "prefix" || o.cache === "dual") {
      if (stepInBlock === 0 || this.cache === null) {
        const out = await this.call(0, L, query, undefined, true);
        const kv = out.kv!;
        this.cache = sliceKv(
          this.cfg,
          kv,
          o.cache === "prefix"
            ? [[0, windowStart]]
            : [
                [0, windowStart],
                [block.end, L],
              ],
        );
        return out;
      }
      const end = o.cache === "prefix" ? L : block.end;
      return this.call(windowStart, end, query, this.cache, false);
    }
    if (o.cache === "block") {
      // the cache holds [0, cacheLength); extend it on a block's first step to the block's
      // aligned start (or one before the block under logit shift)
      const size = this.cfg.blockSize;
      const aligned = Math.floor(block.start / size) * size;
      const target = shift && aligned === block.start ? Math.max(0, block.start - 1) : aligned;
      const extend = stepInBlock === 0 && target > this.cacheLength;
      const out = await this.call(
        this.cacheLength,
        block.end,
        query,
        this.cache ?? undefined,
        extend,
      );
      if (extend) {
        this.cache = sliceKv(this.cfg, out.kv!, [[0, target]]);
        this.cacheLength = target;
      }
      return out;
    }
    return this.call(0, L, query, undefined, false);
  }

  /**
   * Runs canvas positions [a, b) (both rows under guidance: the second with every constraint
   * masked, LLaDA's unconditional canvas) with `context` holding other positions' K/V.
   */
  private async call(
    a: number,
    b: number,
    query: Int32Array,
    context: KvCache | undefined,
    returnKv: boolean,
  ): Promise<ForwardResult> {
    const { rows, x, plan, stats } = this;
    const n = b - a;
    const p = query.length;
    const tokens = this.tokens.subarray(0, rows * n);
    tokens.set(x.subarray(a, b), 0);
    if (rows === 2) {
      for (let i = 0; i < n; i++) tokens[n + i] = plan.fixed[a + i] ? plan.maskId : x[a + i];
    }
    const positions = this.positions.subarray(0, rows * n);
    for (let r = 0; r < rows; r++) for (let i = 0; i < n; i++) positions[r * n + i] = a + i;
    let all = p === n;
    for (let j = 0; all && j < p; j++) all = query[j] === a + j;
    const request: ForwardRequest = { tokens, rows, positions };
    if (!all) {
      const at = this.logitsAt.subarray(0, rows * p);
      for (let r = 0; r < rows; r++) for (let j = 0; j < p; j++) at[r * p + j] = query[j] - a;
      request.logitsAt = at;
    }
    if (context !== undefined && context.length > 0) request.context = context;
    if (returnKv) request.returnKv = true;
    if (!this.wholeRows) request.logits = false;
    if (stats !== null) request.stats = stats;
    if (stats !== null && this.scored !== null) {
      // self-correction reads the probability of the token standing at each query position
      const scoreTokens = this.scored.subarray(0, p);
      for (let j = 0; j < p; j++) scoreTokens[j] = x[query[j]];
      request.stats = { ...stats, scoreTokens };
    }
    const out = await this.model.forward(request);
    const expected = this.wholeRows ? rows * p * this.V : 0;
    if (out.positions !== p || out.logits.length !== expected) {
      throw new Error(
        `forward returned ${out.positions} positions (${out.logits.length} logits), expected ${p} × ${rows} rows${this.wholeRows ? ` × ${this.V}` : " and no logits"}`,
      );
    }
    if (
      stats !== null &&
      (out.stats?.ids.length !== p * stats.topK ||
        out.stats.temperature !== (stats.temperature ?? 1))
    ) {
      throw new Error("forward did not return the step statistics asked for");
    }
    if (returnKv && out.kv === undefined)
      throw new Error("forward did not return the K/V asked for");
    return out;
  }

  /**
   * Fills `work` with query j's logits in float64: classifier-free guidance applied
   * (un + (s + 1)·(cond − un), LLaDA), the mask token at −∞, EOS and pad too when suppressed.
   */
  private loadRow(logits: Float32Array, p: number, j: number): Float64Array {
    const { V, work, o } = this;
    const cond = j * V;
    if (this.rows === 2) {
      const un = (p + j) * V;
      const s = o.cfgScale + 1;
      for (let v = 0; v < V; v++)
        work[v] = logits[un + v] + s * (logits[cond + v] - logits[un + v]);
    } else {
      for (let v = 0; v < V; v++) work[v] = logits[cond + v];
    }
    // the mask token is never a prediction: revealing it would leave the position masked and
    // the loop without progress (random and undertrained models do rank it first)
    work[this.plan.maskId] = Number.NEGATIVE_INFINITY;
    if (o.eos === "suppress") {
      for (const t of this.plan.endTokens) work[t] = Number.NEGATIVE_INFINITY;
    }
    return work;
  }

  /** Token and confidence of masked candidate j (query row j) into the candidate arrays. */
  private score(out: ForwardResult, p: number, j: number): void {
    const { o, V, probs, rng } = this;
    let token: number;
    let confidence: number;
    if (out.stats !== undefined && o.temperature > 0) {
      // Dream's top-p draw from the candidates, when the nucleus lies among them
      const { ids, logProbs, k } = out.stats;
      const drawn = sampleNucleus(
        ids,
        logProbs,
        j * k,
        k,
        o.topP,
        o.topK,
        rng,
        probs,
        this.vocabOrder,
      );
      if (drawn !== null) {
        this.candidateEntropy[j] = -negativeEntropy(probs, drawn.kept);
        this.setCandidate(j, drawn.token, this.nucleusConfidence(drawn.index, drawn.kept));
        return;
      }
    } else if (out.stats !== undefined) {
      // greedy, from the step statistics: the same token and, to float32 rounding, confidence
      const { ids, logProbs, entropy, k } = out.stats;
      token = ids[j * k];
      this.candidateEntropy[j] = entropy[j];
      confidence =
        o.confidence === "margin"
          ? marginFromStats(logProbs, j, k)
          : o.confidence === "entropy"
            ? -entropy[j]
            : o.confidence === "random"
              ? rng.next()
              : Math.exp(logProbs[j * k]);
      this.setCandidate(j, token, confidence);
      return;
    }
    const w = this.loadRow(out.logits, p, j);
    if (o.sampler === "gumbel") {
      // LLaDA: x0 = argmax(exp(logits) / (−log u)^T); confidence from softmax(logits)
      this.filter(w);
      token = gumbelArgmax(w, o.temperature, rng, V);
      softmax(w, probs, V);
      confidence = probs[token];
    } else {
      // Dream sample_tokens: logits / T → top_p → top_k → softmax → draw (T > 0) or argmax
      if (o.temperature > 0) for (let v = 0; v < V; v++) w[v] /= o.temperature;
      this.filter(w);
      softmax(w, probs, V);
      token = o.temperature > 0 ? sampleCategorical(probs, rng, V) : argmaxOf(probs, V);
      confidence = probs[token];
    }
    if (o.selection === "entropy-bound") this.candidateEntropy[j] = -negativeEntropy(probs, V);
    if (o.confidence === "margin") confidence = marginConfidence(probs, V);
    else if (o.confidence === "entropy") confidence = negativeEntropy(probs, V);
    else if (o.confidence === "random") confidence = rng.next();
    this.setCandidate(j, token, confidence);
  }

  /** The confidence of the candidate drawn at `index` from the nucleus of `kept` in `probs`. */
  private nucleusConfidence(index: number, kept: number): number {
    const { o, probs } = this;
    if (o.confidence === "margin") return probs[0] - (kept > 1 ? probs[1] : 0);
    if (o.confidence === "entropy") return negativeEntropy(probs, kept);
    if (o.confidence === "random") return this.rng.next();
    return probs[index];
  }

  private setCandidate(j: number, token: number, confidence: number): void {
    if (this.o.eos === "defer" && this.plan.endTokens.includes(token)) {
      confidence = Number.NEGATIVE_INFINITY; // revealed last
    }
    this.candidateTokens[j] = token;
    this.candidateConfidence[j] = confidence;
  }

  private filter(w: Float64Array): void {
    const { o, V } = this;
    if (o.topP < 1) filterTopP(w, o.topP, this.vocabOrder, this.sortScratch, V);
    if (o.topK > 0) filterTopK(w, o.topK, this.sortScratch, V);
  }

  /** The model's probability of `token` at query row j (guidance applied, no temperature). */
  private probabilityOf(out: ForwardResult, p: number, j: number, token: number): number {
    if (out.stats?.scoreLogProbs !== undefined) return Math.exp(out.stats.scoreLogProbs[j]);
    const w = this.loadRow(out.logits, p, j);
    return Math.exp(w[token] - logSumExp(w, this.V));
  }
}

function argmaxOf(x: Float64Array, n: number): number {
  let best = 0;
  for (let i = 1; i < n; i++) if (x[i] > x[best]) best = i;
  return best;
}
