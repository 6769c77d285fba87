// Lossless speculative decoding with a diffusion drafter (arXiv:2408.05636, "Speculative
// Diffusion Decoding"; TiDAR arXiv:2511.08923 is the one-model form): each round the diffusion
// model drafts a block of `blockLength` tokens after the text in ONE forward pass (every mask's
// argmax at once), the causal model checks the whole block in ONE forward pass against its K/V
// cache, and the text keeps the longest prefix of the draft that agrees with the causal model's
// greedy choices plus the causal model's own next token. Every kept token is the causal model's
// argmax given the text before it, so the text equals greedy AR decoding's exactly (the same
// statistics, the lower id on ties); the draft only decides how many tokens a round yields
// (1 to blockLength + 1, for two forward passes).
//
// The verifier's cache keeps the positions whose tokens were kept; its own last token is fed at
// the start of the next round, ahead of the next draft. The drafter, with `draftCache: "prefix"`
// (the default), keeps the K/V of the text from its previous pass (Fast-dLLM's prefix cache,
// approximate: computed while later positions were masks) and runs only the new tokens and the
// masks; "none" runs the whole canvas every round. The cache changes only the drafts, never the
// text.
//
// One model (draft === verifier: TiDAR's form, arXiv:2511.08923): a causal model with a mask
// token, trained to draft (`unmask train --draft K`, src/train/objective.ts draftBatch), drafts
// and verifies in the SAME forward pass. A round feeds the tokens not yet in its cache (the text's
// last token, then the draft being checked) under causal attention, followed by `blockLength`
// masks that see all of them and each other: the causal rows give the greedy tokens (keep the
// longest agreeing prefix of the draft, plus the model's own next token), the masks the next
// draft — made assuming the whole draft is kept, so it is used only when it was; otherwise the
// next round drafts anew after the model's own token, which that round also yields. A round
// yields 1 to blockLength + 1 tokens for ONE forward pass, and the text is exactly the model's
// own greedy AR decoding.

import type { ModelConfig } from "../model/config.js";
import type { ForwardRequest, ForwardResult, KvCache, LanguageModel } from "../model/types.js";
import { DecodeAbortedError, DecodeOptionError } from "./errors.js";
import { sliceKv } from "./kv.js";
import { checkInteger, resolveOptions } from "./options.js";
import type { DecodeResult, DecodeText, PositionChange, StepEvent, StopReason } from "./types.js";

export interface SpeculativeOptions {
  /** Tokens the diffusion model drafts per round, in one forward pass (default 8). */
  blockLength?: number;
  /** Tokens to generate at most (default 128). */
  maxTokens?: number;
  /** `prefix` (default): the drafter reuses the text's K/V between rounds; `none`: whole canvas. */
  draftCache?: "prefix" | "none";
  /** Stop after an EOS (default true). */
  stopAtEos?: boolean;
  /** Renders the generated tokens as text in each event and in the result. */
  decode?: DecodeText;
}

/**
 * Decodes from `prompt` (at least one token): `draft` a full-attention diffusion model, `verifier`
 * a causal model without logit shift, with the same vocabulary. Throws DecodeOptionError naming
 * the parameter on a wrong model or option, DecodeAbortedError when `signal` fires (checked
 * before every round).
 */
export function decodeSpeculative(
  draft: LanguageModel,
  verifier: LanguageModel,
  prompt: ArrayLike<number>,
  options: SpeculativeOptions = {},
  signal?: AbortSignal,
): AsyncGenerator<StepEvent, DecodeResult, undefined> {
  const blockLength = checkInteger("blockLength", options.blockLength ?? 8, 1);
  const maxTokens = checkInteger("maxTokens", options.maxTokens ?? 128, 1);
  const { stopAtEos } = resolveOptions({ stopAtEos: options.stopAtEos ?? true });
  const draftCache = options.draftCache ?? "prefix";
  if (draftCache !== "prefix" && draftCache !== "none") {
    throw new DecodeOptionError(
      "draftCache",
      `unknown value ${JSON.stringify(draftCache)} (valid: prefix, none)`,
    );
  }
  const d = draft.config;
  const v = verifier.config;
  if (draft === verifier) {
    if (v.maskTokenId === null) {
      throw new DecodeOptionError(
        "draft",
        "one model as drafter and verifier needs a mask token (a model trained with --draft)",
      );
    }
  } else if (d.attention !== "full" || d.maskTokenId === null) {
    throw new DecodeOptionError(
      "draft",
      `the drafter must be a full-attention diffusion model with a mask token; this one is ${d.attention}`,
    );
  }
  if (v.attention !== "causal" || v.logitShift) {
    throw new DecodeOptionError(
      "verifier",
      `the verifier must be a causal model without logit shift; this one is ${v.attention}${v.logitShift ? " with logit shift" : ""}`,
    );
  }
  if (d.vocabSize !== v.vocabSize) {
    throw new DecodeOptionError(
      "verifier",
      `vocabularies differ: the drafter has ${d.vocabSize} tokens, the verifier ${v.vocabSize}`,
    );
  }
  const start = Array.from(prompt);
  if (start.length === 0) throw new DecodeOptionError("prompt", "empty: give at least one token");
  for (const t of start) {
    if (!Number.isInteger(t) || t < 0 || t >= v.vocabSize) {
      throw new DecodeOptionError(
        "prompt",
        `token ${t} is outside the vocabulary (${v.vocabSize})`,
      );
    }
  }
  const context = Math.min(d.maxPositions, v.maxPositions);
  if (start.length + maxTokens > context) {
    throw new DecodeOptionError(
      "maxTokens",
      `${start.length} prompt tokens + ${maxTokens} exceed the models' context of ${context}`,
    );
  }
  const o = { blockLength, maxTokens, stopAtEos, draftCache };
  return draft === verifier
    ? oneModelLoop(verifier, start, o, options.decode, signal)
    : loop(draft, verifier, start, o, options.decode, signal);
}

interface LoopOptions {
  blockLength: number;
  maxTokens: number;
  stopAtEos: boolean;
  draftCache: "prefix" | "none";
}

/**
 * The text a speculative decode has written, the verifier's cache of it, and how a round's
 * verification settles: the longest prefix of the draft that agrees with the greedy tokens, then
 * the verifier's own next token.
 */
class Verified {
  readonly sequence: Int32Array;
  length: number;
  /** The verifier's K/V of positions [0, fed). */
  cache: KvCache | null = null;
  fed = 0;
  forwards = 0;
  rounds = 0;

  private readonly start: number;

  constructor(
    private readonly cfg: ModelConfig,
    prompt: readonly number[],
    maxTokens: number,
    private readonly stopAtEos: boolean,
    private readonly decode: DecodeText | undefined,
  ) {
    this.sequence = new Int32Array(prompt.length + maxTokens);
    this.sequence.set(prompt);
    this.start = this.length = prompt.length;
  }

  get written(): number {
    return this.length - this.start;
  }

  private text(): string | undefined {
    return this.decode?.(this.sequence.subarray(this.start, this.length));
  }

  result(stopReason: StopReason): DecodeResult {
    const r: DecodeResult = {
      canvas: this.sequence.slice(0, this.length),
      steps: this.rounds,
      forwards: this.forwards,
      remasks: 0,
      stopReason,
    };
    const t = this.text();
    if (t !== undefined) r.text = t;
    return r;
  }

  /**
   * Runs a verification pass, `request` on `model` from the cache, counts it, and settles it.
   */
  async verify(
    model: LanguageModel,
    request: ForwardRequest,
    drafted: Int32Array,
    m: number,
  ): Promise<{ out: ForwardResult; accepted: number; ended: boolean; event: StepEvent }> {
    if (this.cache !== null) request.context = this.cache;
    const out = await model.forward(request);
    this.forwards++;
    return { out, ...this.settle(out, drafted, m) };
  }

  /**
   * Settles a verification pass whose stats hold the greedy token after the text's last token
   * and after each of the m `drafted` tokens (ids[0..m]) and whose K/V runs from the cache on:
   * keeps the agreeing drafts and the verifier's own token, and the cache of the text and the
   * kept drafts. Returns how many drafts were kept, whether an end token came, the round's event.
   */
  private settle(
    out: ForwardResult,
    drafted: Int32Array,
    m: number,
  ): { accepted: number; ended: boolean; event: StepEvent } {
    const greedy = out.stats!.ids;
    let accepted = 0;
    while (accepted < m && drafted[accepted] === greedy[accepted]) accepted++;
    this.cache = sliceKv(this.cfg, out.kv!, [[0, this.length + accepted]]);
    this.fed = this.length + accepted;
    const revealed: PositionChange[] = [];
    let ended = false;
    for (let j = 0; j <= accepted && !ended; j++) {
      const token = greedy[j];
      const confidence = Math.exp(out.stats!.logProbs[j]);
      revealed.push({ position: this.length, token, confidence });
      this.sequence[this.length++] = token;
      ended = this.stopAtEos && token === this.cfg.eosTokenId;
    }
    const event: StepEvent = {
      step: this.rounds++,
      block: 0,
      canvas: this.sequence.slice(0, this.length),
      revealed,
      remasked: [],
      masked: 0,
      forwards: this.forwards,
    };
    const t = this.text();
    if (t !== undefined) event.text = t;
    return { accepted, ended, event };
  }
}

async function* loop(
  draft: LanguageModel,
  verifier: LanguageModel,
  start: number[],
  o: LoopOptions,
  decode: DecodeText | undefined,
  signal: AbortSignal | undefined,
): AsyncGenerator<StepEvent, DecodeResult, undefined> {
  const maskId = draft.config.maskTokenId!;
  const v = new Verified(verifier.config, start, o.maxTokens, o.stopAtEos, decode);
  const sequence = v.sequence;
  let draftKv: KvCache | null = null;
  let draftFed = 0; // positions whose K/V the drafter's cache holds
  // scratch, allocated once
  const canvas = new Int32Array(start.length + o.maxTokens);
  const draftAt = new Int32Array(o.blockLength);
  const fresh = new Int32Array(start.length + o.blockLength);
  const verifyAt = new Int32Array(o.blockLength + 1);
  while (v.written < o.maxTokens) {
    if (signal?.aborted)
      throw new DecodeAbortedError(v.result("complete"), { cause: signal.reason });
    const length = v.length;
    // room for the draft and the verifier's own token
    const k = Math.min(o.blockLength, o.maxTokens - v.written - 1);
    let drafted: Int32Array = new Int32Array(0);
    if (k > 0) {
      // the draft: the text not in the drafter's cache, then k masks; every mask's argmax
      // from one forward pass
      const x = canvas.subarray(0, length - draftFed + k);
      x.set(sequence.subarray(draftFed, length));
      x.fill(maskId, length - draftFed);
      for (let j = 0; j < k; j++) draftAt[j] = length - draftFed + j;
      const request: ForwardRequest = {
        tokens: x,
        rows: 1,
        logitsAt: draftAt.subarray(0, k),
        logits: false,
        stats: { topK: 1, exclude: Int32Array.of(maskId) },
      };
      if (o.draftCache === "prefix") request.returnKv = true;
      if (draftKv !== null) request.context = draftKv;
      const out = await draft.forward(request);
      v.forwards++;
      drafted = out.stats!.ids;
      if (o.draftCache === "prefix") {
        draftKv = sliceKv(draft.config, out.kv!, [[0, length]]);
        draftFed = length;
      }
    }
    // the check: the unfed text (at least its last token) and the draft, in one forward pass;
    // logits at the last text position and at every draft position
    const n = length - v.fed + k;
    const feed = fresh.subarray(0, n);
    feed.set(sequence.subarray(v.fed, length));
    feed.set(drafted, length - v.fed);
    for (let j = 0; j <= k; j++) verifyAt[j] = length - 1 - v.fed + j;
    const request: ForwardRequest = {
      tokens: feed,
      rows: 1,
      logitsAt: verifyAt.subarray(0, k + 1),
      logits: false,
      stats: { topK: 1 },
      returnKv: true,
    };
    const { ended, event } = await v.verify(verifier, request, drafted, k);
    yield event;
    if (ended) return v.result("eos");
  }
  return v.result("max_tokens");
}

/**
 * The one-model form (see the module comment): each round one forward pass over [the text not in
 * the cache ; the draft ; blockLength masks] under `oneModelBias`.
 */
async function* oneModelLoop(
  model: LanguageModel,
  start: number[],
  o: LoopOptions,
  decode: DecodeText | undefined,
  signal: AbortSignal | undefined,
): AsyncGenerator<StepEvent, DecodeResult, undefined> {
  const maskId = model.config.maskTokenId!;
  const v = new Verified(model.config, start, o.maxTokens, o.stopAtEos, decode);
  let drafted = new Int32Array(0); // the draft of positions length, length + 1, …
  // scratch, allocated once
  const feed = new Int32Array(start.length + 2 * o.blockLength);
  const positions = new Int32Array(feed.length);
  const logitsAt = new Int32Array(2 * o.blockLength + 1);
  while (v.written < o.maxTokens) {
    if (signal?.aborted)
      throw new DecodeAbortedError(v.result("complete"), { cause: signal.reason });
    const room = o.maxTokens - v.written; // tokens still to write, ≥ 1
    const m = Math.min(drafted.length, room - 1); // draft tokens checked (room for the own token)
    const k = Math.min(o.blockLength, room - m - 1); // masks: the next draft, if any room is left
    const text = v.length - v.fed; // causal rows of the text (its last token at least)
    const causal = text + m;
    const n = causal + k;
    const tokens = feed.subarray(0, n);
    tokens.set(v.sequence.subarray(v.fed, v.length));
    tokens.set(drafted.subarray(0, m), text);
    tokens.fill(maskId, causal);
    for (let i = 0; i < n; i++) positions[i] = v.fed + i;
    // the greedy token after the text's last token and after each draft token, then every mask's
    for (let j = 0; j < m + 1 + k; j++) logitsAt[j] = text - 1 + j;
    const request: ForwardRequest = {
      tokens,
      rows: 1,
      positions: positions.subarray(0, n),
      attentionBias: oneModelBias(v.fed, causal, k),
      logitsAt: logitsAt.subarray(0, m + 1 + k),
      logits: false,
      // no exclusions: the causal rows' argmax is greedy AR decoding's exactly
      stats: { topK: 1 },
      returnKv: true,
    };
    const { out, accepted, ended, event } = await v.verify(model, request, drafted, m);
    // the masks drafted the positions after the whole draft and the own token after it
    drafted = accepted === m ? out.stats!.ids.slice(m + 1, m + 1 + k) : new Int32Array(0);
    yield event;
    if (ended) return v.result("eos");
  }
  return v.result("max_tokens");
}

/**
 * The one-model round's attention [1, causal + masks, context + causal + masks] (0 visible, −∞
 * not): the cached context and the causal rows as a causal model sees them; each mask sees the
 * context, every causal row and every mask (one drafting block, as draftMask trains it).
 */
export function oneModelBias(context: number, causal: number, masks: number): Float32Array {
  const n = causal + masks;
  const width = context + n;
  const bias = new Float32Array(n * width).fill(Number.NEGATIVE_INFINITY);
  for (let q = 0; q < n; q++) {
    const visible = q < causal ? context + q + 1 : width;
    bias.fill(0, q * width, q * width + visible);
  }
  return bias;
}
