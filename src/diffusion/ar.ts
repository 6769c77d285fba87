// The autoregressive decoder on the same engine: the baseline every diffusion speed claim is
// measured against. A causal model, a K/V cache carried between calls through `context` /
// `returnKv`, one forward pass per token (the prompt's pass yields the first), greedy or sampled
// with temperature, top-k and top-p (Dream's filters, same order), seeded. It yields the same
// StepEvents as the denoise loop, one token per step, and stops at EOS or after maxTokens.
//
// Which logits hold the next token depends on the model's data, never its name:
//   - logitShift false (the Hugging Face causal-LM convention): the hidden state of position i
//     predicts token i + 1, so the next token comes from the last fed position;
//   - logitShift true (the engine already aligns index i with token i): the next position must
//     be a fresh query, so each call also feeds a placeholder there (it cannot influence earlier
//     positions under causal attention) and its K/V is cut from the cache afterwards.

import { Rng } from "../model/random.js";
import type { ForwardRequest, KvCache, LanguageModel } from "../model/types.js";
import { DecodeAbortedError, DecodeOptionError } from "./errors.js";
import { sliceKv } from "./kv.js";
import { checkInteger, type DiffusionOptions, resolveOptions } from "./options.js";
import { filterTopK, filterTopP, sampleCategorical, softmax } from "./sampling.js";
import type { DecodeResult, DecodeText, StepEvent, StopReason } from "./types.js";

/**
 * The AR decoder's options: the sampling fields of the diffusion options (one options object,
 * validated by the same rules), plus how many tokens to write and how to render them.
 */
export interface ArOptions extends Pick<DiffusionOptions, (typeof samplingNames)[number]> {
  /** Tokens to generate at most; default 128. */
  maxTokens?: number;
  /** Token ids that end the text as EOS does (under `stopAtEos`), e.g. FIM sentinels; default none. */
  stopTokens?: readonly number[];
  /** Renders the generated tokens as text in each event and in the result. */
  decode?: DecodeText;
}

/** The diffusion options the AR decoder reads: temperature (0: argmax, lowest id on ties), top-k, top-p, seed, and stopping after EOS. */
const samplingNames = ["temperature", "topK", "topP", "seed", "stopAtEos"] as const;

type ResolvedAr = Required<Omit<ArOptions, "decode">>;

/** Validates AR options (the sampling ones by resolveOptions); an option it does not read is an error. */
export function resolveArOptions(options: ArOptions): ResolvedAr {
  const sampling: DiffusionOptions = {};
  for (const [key, value] of Object.entries(options)) {
    if (key === "maxTokens" || key === "decode" || key === "stopTokens") continue;
    if (!(samplingNames as readonly string[]).includes(key)) {
      throw new DecodeOptionError(
        key,
        `not an option of the autoregressive decoder (valid: maxTokens, ${samplingNames.join(", ")}, stopTokens, decode)`,
      );
    }
    (sampling as Record<string, unknown>)[key] = value;
  }
  const o = resolveOptions(sampling);
  const stopTokens = options.stopTokens ?? [];
  if (!Array.isArray(stopTokens)) throw new DecodeOptionError("stopTokens", "expected token ids");
  stopTokens.forEach((t, i) => {
    checkInteger(`stopTokens[${i}]`, t, 0);
  });
  return {
    maxTokens: checkInteger("maxTokens", options.maxTokens ?? 128, 1),
    stopTokens,
    temperature: o.temperature,
    topK: o.topK,
    topP: o.topP,
    seed: o.seed,
    stopAtEos: o.stopAtEos,
  };
}

/**
 * Decodes left to right from `prompt` (token ids, at least one; a model with a BOS id accepts an
 * empty prompt and starts from BOS). Throws DecodeOptionError on bad options or a model that is
 * not causal, DecodeAbortedError when `signal` fires (checked before every forward pass).
 */
export function decodeAr(
  model: LanguageModel,
  prompt: ArrayLike<number>,
  options: ArOptions = {},
  signal?: AbortSignal,
): AsyncGenerator<StepEvent, DecodeResult, undefined> {
  const o = resolveArOptions(options);
  const cfg = model.config;
  if (cfg.attention !== "causal") {
    throw new DecodeOptionError(
      "model",
      `autoregressive decoding with a K/V cache needs a causal model; this one is ${cfg.attention}`,
    );
  }
  let start = Array.from(prompt);
  if (start.length === 0) {
    if (cfg.bosTokenId === null) {
      throw new DecodeOptionError("prompt", "empty, and the model has no BOS token to start from");
    }
    start = [cfg.bosTokenId];
  }
  for (const t of start) {
    if (!Number.isInteger(t) || t < 0 || t >= cfg.vocabSize) {
      throw new DecodeOptionError(
        "prompt",
        `token ${t} is outside the vocabulary (${cfg.vocabSize})`,
      );
    }
  }
  const shift = cfg.logitShift;
  const room = cfg.maxPositions - start.length - (shift ? 1 : 0);
  if (o.maxTokens > room) {
    throw new DecodeOptionError(
      "maxTokens",
      `${start.length} prompt tokens + ${o.maxTokens} exceed the model's context of ${cfg.maxPositions}`,
    );
  }
  return arLoop(model, start, o, options.decode, signal);
}

async function* arLoop(
  model: LanguageModel,
  start: number[],
  o: ResolvedAr,
  decode: DecodeText | undefined,
  signal: AbortSignal | undefined,
): AsyncGenerator<StepEvent, DecodeResult, undefined> {
  const cfg = model.config;
  const shift = cfg.logitShift;
  const placeholder = cfg.maskTokenId ?? cfg.padTokenId ?? 0;
  const V = cfg.vocabSize;
  const rng = new Rng(o.seed);
  const work = new Float64Array(V);
  const probs = new Float64Array(V);
  const sortScratch = new Float64Array(V);
  const order = new Int32Array(V);
  const sequence = new Int32Array(start.length + o.maxTokens);
  sequence.set(start);
  let length = start.length;
  let cache: KvCache | null = null;
  let forwards = 0;
  const text = () =>
    decode === undefined ? undefined : decode(sequence.subarray(start.length, length));
  const result = (stopReason: StopReason): DecodeResult => {
    const r: DecodeResult = {
      canvas: sequence.slice(0, length),
      steps: length - start.length,
      forwards,
      remasks: 0,
      stopReason,
    };
    const t = text();
    if (t !== undefined) r.text = t;
    return r;
  };

  // scratch, allocated once: the fed tokens (the prompt on the first call, then one token)
  const tokens = new Int32Array(start.length + (shift ? 1 : 0));
  const logitsAt = new Int32Array(1);
  const greedy = o.temperature === 0;
  try {
    let fed = 0; // positions whose K/V the cache holds
    for (;;) {
      if (signal?.aborted)
        throw new DecodeAbortedError(result("complete"), { cause: signal.reason });
      // feed everything not yet cached (the prompt, then the last token), plus the placeholder
      const n = length - fed + (shift ? 1 : 0);
      const fresh = tokens.subarray(0, n);
      fresh.set(sequence.subarray(fed, length));
      if (shift) fresh[n - 1] = placeholder;
      logitsAt[0] = n - 1; // the last fed position, or the placeholder
      const request: ForwardRequest = { tokens: fresh, rows: 1, logitsAt, returnKv: true };
      // greedy needs only the most likely token and its probability, computed in the engine
      if (greedy) {
        request.logits = false;
        request.stats = { topK: 1 };
      }
      if (cache !== null) request.context = cache;
      const out = await model.forward(request);
      forwards++;
      cache = shift ? sliceKv(cfg, out.kv!, [[0, length]]) : out.kv!;
      fed = length;

      // the next token
      let token: number;
      let confidence: number;
      if (greedy) {
        token = out.stats!.ids[0];
        confidence = Math.exp(out.stats!.logProbs[0]);
      } else {
        for (let v = 0; v < V; v++) work[v] = out.logits[v];
        token = sample(work, probs, sortScratch, order, o, rng, V);
        confidence = probs[token];
      }
      sequence[length++] = token;
      const event: StepEvent = {
        step: length - start.length - 1,
        block: 0,
        canvas: sequence.slice(0, length),
        revealed: [{ position: length - 1, token, confidence }],
        remasked: [],
        masked: 0,
        forwards,
      };
      const t = text();
      if (t !== undefined) event.text = t;
      yield event;
      if (o.stopAtEos && (token === cfg.eosTokenId || o.stopTokens.includes(token))) {
        return result("eos");
      }
      if (length - start.length >= o.maxTokens) return result("max_tokens");
    }
  } finally {
    cache = null;
  }
}

/**
 * Dream's order of filters: logits / T → top-p → top-k → softmax (into `probs`, the confidence)
 * → draw.
 */
function sample(
  w: Float64Array,
  probs: Float64Array,
  sortScratch: Float64Array,
  order: Int32Array,
  o: { temperature: number; topK: number; topP: number },
  rng: Rng,
  V: number,
): number {
  for (let v = 0; v < V; v++) w[v] /= o.temperature;
  if (o.topP < 1) filterTopP(w, o.topP, order, sortScratch, V);
  if (o.topK > 0) filterTopK(w, o.topK, sortScratch, V);
  softmax(w, probs, V);
  return sampleCategorical(probs, rng, V);
}
