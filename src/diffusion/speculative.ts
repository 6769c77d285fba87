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
// the start of the next round, ahead of the next draft.

import type { ForwardRequest, KvCache, LanguageModel } from "../model/types.js";
import { DecodeAbortedError, DecodeOptionError } from "./errors.js";
import { sliceKv } from "./kv.js";
import { checkInteger, resolveOptions } from "./options.js";
import type { DecodeResult, DecodeText, PositionChange, StepEvent, StopReason } from "./types.js";

export interface SpeculativeOptions {
  /** Tokens the diffusion model drafts per round, in one forward pass (default 8). */
  blockLength?: number;
  /** Tokens to generate at most (default 128). */
  maxTokens?: number;
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
  const d = draft.config;
  const v = verifier.config;
  if (d.attention !== "full" || d.maskTokenId === null) {
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
  return loop(
    draft,
    verifier,
    start,
    { blockLength, maxTokens, stopAtEos },
    options.decode,
    signal,
  );
}

async function* loop(
  draft: LanguageModel,
  verifier: LanguageModel,
  start: number[],
  o: { blockLength: number; maxTokens: number; stopAtEos: boolean },
  decode: DecodeText | undefined,
  signal: AbortSignal | undefined,
): AsyncGenerator<StepEvent, DecodeResult, undefined> {
  const cfg = verifier.config;
  const maskId = draft.config.maskTokenId!;
  const eos = cfg.eosTokenId;
  const sequence = new Int32Array(start.length + o.maxTokens);
  sequence.set(start);
  let length = start.length;
  let cache: KvCache | null = null;
  let fed = 0; // positions whose K/V the verifier's cache holds
  let forwards = 0;
  let rounds = 0;
  const text = () =>
    decode === undefined ? undefined : decode(sequence.subarray(start.length, length));
  const result = (stopReason: StopReason): DecodeResult => {
    const r: DecodeResult = {
      canvas: sequence.slice(0, length),
      steps: rounds,
      forwards,
      remasks: 0,
      stopReason,
    };
    const t = text();
    if (t !== undefined) r.text = t;
    return r;
  };
  // scratch, allocated once
  const canvas = new Int32Array(start.length + o.maxTokens);
  const draftAt = new Int32Array(o.blockLength);
  const fresh = new Int32Array(start.length + o.blockLength);
  const verifyAt = new Int32Array(o.blockLength + 1);
  try {
    while (length - start.length < o.maxTokens) {
      if (signal?.aborted) {
        throw new DecodeAbortedError(result("complete"), { cause: signal.reason });
      }
      // room for the draft and the verifier's own token
      const k = Math.min(o.blockLength, o.maxTokens - (length - start.length) - 1);
      let drafted: Int32Array = new Int32Array(0);
      if (k > 0) {
        // the draft: the text, then k masks, every mask's argmax from one forward pass
        const x = canvas.subarray(0, length + k);
        x.set(sequence.subarray(0, length));
        x.fill(maskId, length);
        for (let j = 0; j < k; j++) draftAt[j] = length + j;
        const out = await draft.forward({
          tokens: x,
          rows: 1,
          logitsAt: draftAt.subarray(0, k),
          logits: false,
          stats: { topK: 1, exclude: Int32Array.of(maskId) },
        });
        forwards++;
        drafted = out.stats!.ids;
      }
      // the check: the unfed text (at least its last token) and the draft, in one forward pass;
      // logits at the last text position and at every draft position
      const n = length - fed + k;
      const feed = fresh.subarray(0, n);
      feed.set(sequence.subarray(fed, length));
      feed.set(drafted, length - fed);
      for (let j = 0; j <= k; j++) verifyAt[j] = length - 1 - fed + j;
      const request: ForwardRequest = {
        tokens: feed,
        rows: 1,
        logitsAt: verifyAt.subarray(0, k + 1),
        logits: false,
        stats: { topK: 1 },
        returnKv: true,
      };
      if (cache !== null) request.context = cache;
      const out = await verifier.forward(request);
      forwards++;
      const greedy = out.stats!.ids; // greedy[j]: the verifier's token after draft j − 1
      let accepted = 0;
      while (accepted < k && drafted[accepted] === greedy[accepted]) accepted++;
      // keep the cache of the text and the accepted draft; the verifier's own token comes next
      cache = sliceKv(cfg, out.kv!, [[0, length + accepted]]);
      fed = length + accepted;
      const revealed: PositionChange[] = [];
      let ended = false;
      for (let j = 0; j <= accepted && !ended; j++) {
        const token = greedy[j];
        revealed.push({ position: length, token, confidence: Math.exp(out.stats!.logProbs[j]) });
        sequence[length++] = token;
        ended = o.stopAtEos && token === eos;
      }
      const event: StepEvent = {
        step: rounds++,
        block: 0,
        canvas: sequence.slice(0, length),
        revealed,
        remasked: [],
        masked: 0,
        forwards,
      };
      const t = text();
      if (t !== undefined) event.text = t;
      yield event;
      if (ended) return result("eos");
    }
    return result("max_tokens");
  } finally {
    cache = null;
  }
}
