import assert from "node:assert/strict";
import { test } from "node:test";
import { denoise } from "../src/diffusion/denoise.js";
import { DecodeAbortedError, DecodeOptionError } from "../src/diffusion/errors.js";
import { type DiffusionOptions, type PresetName, presetNames } from "../src/diffusion/options.js";
import type { CanvasSpec, DecodeResult, StepEvent } from "../src/diffusion/types.js";
import type { ModelConfig } from "../src/model/config.js";
import {
  EOS,
  FakeModel,
  fakeConfig,
  logitFor,
  MASK,
  maskedIn,
  oracle,
  type Predictor,
  promptCanvas,
  targetSequence,
  VOCAB,
} from "./fake-models.js";

async function collect(
  gen: AsyncGenerator<StepEvent, DecodeResult, undefined>,
): Promise<{ events: StepEvent[]; result: DecodeResult }> {
  const events: StepEvent[] = [];
  for (;;) {
    const next = await gen.next();
    if (next.done) return { events, result: next.value };
    events.push(next.value);
  }
}

const PROMPT = [3, 1, 4, 1, 5];

/** The config each preset needs (block diffusion: a block_causal model). */
function configFor(preset: PresetName, overrides: Partial<ModelConfig> = {}): ModelConfig {
  return preset === "block-diffusion"
    ? fakeConfig({ attention: "block_causal", blockSize: 8, ...overrides })
    : fakeConfig(overrides);
}

async function run(
  config: ModelConfig,
  predict: Predictor,
  spec: CanvasSpec,
  options: DiffusionOptions,
  signal?: AbortSignal,
) {
  const model = new FakeModel(config, predict);
  const out = await collect(denoise(model, spec, options, signal));
  return { ...out, model };
}

test("every preset reconstructs an oracle's target exactly, with and without logit shift", async () => {
  const L = PROMPT.length + 32;
  const target = targetSequence(L);
  target.set(PROMPT);
  for (const logitShift of [false, true]) {
    for (const preset of presetNames) {
      const { result, events } = await run(
        configFor(preset, { logitShift }),
        oracle(target),
        { tokens: promptCanvas(PROMPT, 32), openEnded: true },
        { preset },
      );
      assert.deepEqual(
        Array.from(result.canvas),
        Array.from(target),
        `${preset} shift=${logitShift}`,
      );
      assert.equal(result.stopReason, "complete");
      assert.equal(events.length, result.steps);
      assert.equal(events.at(-1)!.masked, 0);
      for (const e of events) {
        for (let i = 0; i < PROMPT.length; i++)
          assert.equal(e.canvas[i], PROMPT[i], `${preset}: prompt changed`);
      }
    }
  }
});

test("forward passes: LLaDA uses exactly `steps`; threshold decoding far fewer than the length", async () => {
  const L = PROMPT.length + 64;
  const target = targetSequence(L);
  const canvas = promptCanvas(PROMPT, 64);
  const llada = await run(
    fakeConfig(),
    oracle(target),
    { tokens: canvas },
    { preset: "llada", steps: 16, blockLength: 16 },
  );
  assert.equal(llada.result.forwards, 16);
  assert.equal(llada.model.calls.length, 16);
  // 4 blocks of 4 steps, 4 tokens each (get_num_transfer_tokens of 16 masks over 4 steps)
  for (const e of llada.events) assert.equal(e.revealed.length, 4);
  assert.deepEqual(
    llada.events.map((e) => e.block),
    [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3],
  );

  // every masked position is 0.99 sure: one pass per block of 32
  const fast = await run(
    fakeConfig(),
    oracle(target),
    { tokens: canvas },
    { preset: "fast-dllm", blockLength: 32, cache: "none" },
  );
  assert.equal(fast.result.forwards, 2);
  assert.deepEqual(Array.from(fast.result.canvas.subarray(5)), Array.from(target.subarray(5)));

  // Dream's timestep schedule: exactly `steps` passes
  const dream = await run(
    fakeConfig(),
    oracle(target),
    { tokens: canvas },
    { preset: "dream-entropy", steps: 10 },
  );
  assert.equal(dream.result.forwards, 10);
});

test("Dream's transfer counts follow int(masked · (1 − s/t)) with the last step taking the rest", async () => {
  const target = targetSequence(21);
  const { events } = await run(
    fakeConfig(),
    oracle(target),
    { tokens: promptCanvas([1], 20) },
    { preset: "dream-maskgit-plus", steps: 4 },
  );
  // timesteps linspace(1, 1e-3, 5) = 1, .75025, .5005, .25075, .001
  // step 0: int(20 · (1 − .75025)) = 4; step 1: int(16 · (1 − .5005/.75025)) = 5;
  // step 2: int(11 · (1 − .25075/.5005)) = 5; step 3: the remaining 6
  assert.deepEqual(
    events.map((e) => e.revealed.length),
    [4, 5, 5, 6],
  );
});

test("threshold decoding reveals the surest always and the rest only at or above the threshold", async () => {
  const target = targetSequence(12);
  // positions 4..7 are sure (0.95), the others below 0.5, less so further right
  const conf = (p: number) => (p >= 4 && p < 8 ? 0.95 : 0.5 - p / 100);
  const { events } = await run(
    fakeConfig(),
    oracle(target, conf),
    { tokens: promptCanvas([1, 2], 10) },
    { preset: "fast-dllm", cache: "none", threshold: 0.9 },
  );
  assert.deepEqual(
    events[0].revealed.map((r) => r.position),
    [4, 5, 6, 7],
  );
  // afterwards nothing reaches 0.9: one per step, the surest first
  assert.deepEqual(
    events.slice(1).map((e) => e.revealed.map((r) => r.position)),
    [[2], [3], [8], [9], [10], [11]],
  );
});

test("a seeded run is bit-for-bit reproducible; another seed differs where randomness matters", async () => {
  const target = targetSequence(29);
  // an unsure oracle: sampling at temperature 1 draws other tokens too
  const conf = () => 0.4;
  const spec = { tokens: promptCanvas(PROMPT, 24) };
  for (const options of [
    { preset: "llada", temperature: 1 },
    { preset: "llada-random" },
    { preset: "dream", temperature: 1 },
    { preset: "dream-origin", temperature: 0.5 },
    { preset: "dream-maskgit-plus", selection: "sampled", algTemperature: 0.5 },
  ] as DiffusionOptions[]) {
    const a = await run(fakeConfig(), oracle(target, conf), spec, { ...options, seed: 7 });
    const b = await run(fakeConfig(), oracle(target, conf), spec, { ...options, seed: 7 });
    const c = await run(fakeConfig(), oracle(target, conf), spec, { ...options, seed: 8 });
    assert.deepEqual(a.events, b.events, `${options.preset} same seed`);
    assert.notDeepEqual(
      a.events.map((e) => e.canvas),
      c.events.map((e) => e.canvas),
      `${options.preset} other seed`,
    );
  }
});

test("an aborted run stops before its next forward pass and hands back the partial canvas", async () => {
  const target = targetSequence(37);
  const controller = new AbortController();
  const model = new FakeModel(fakeConfig(), oracle(target));
  const gen = denoise(model, { tokens: promptCanvas(PROMPT, 32) }, { steps: 8 }, controller.signal);
  const first = await gen.next();
  assert.equal(first.done, false);
  controller.abort(new Error("user went away"));
  await assert.rejects(gen.next(), (e: unknown) => {
    assert.ok(e instanceof DecodeAbortedError);
    assert.equal(e.name, "AbortError");
    assert.equal(e.partial.forwards, 1);
    assert.equal(e.partial.steps, 1);
    assert.equal(maskedIn(new Map([...e.partial.canvas.entries()])), 28);
    assert.match(String((e.cause as Error).message), /went away/);
    return true;
  });
  assert.equal(model.calls.length, 1);
  // aborted before it starts: no forward pass at all
  const early = new FakeModel(fakeConfig(), oracle(target));
  await assert.rejects(
    collect(denoise(early, { tokens: promptCanvas(PROMPT, 32) }, {}, AbortSignal.abort())),
    DecodeAbortedError,
  );
  assert.equal(early.calls.length, 0);
});

test("invalid options throw DecodeOptionError naming the parameter", async () => {
  const model = new FakeModel(fakeConfig({ maxPositions: 64 }), oracle(targetSequence(64)));
  const spec = { tokens: promptCanvas(PROMPT, 32), openEnded: true };
  const cases: [DiffusionOptions | CanvasSpec, string, RegExp][] = [
    [{ steps: 0 }, "steps", /integer ≥ 1/],
    [{ steps: 2.5 }, "steps", /integer/],
    [{ threshold: 0 }, "threshold", /\(0, 1\]/],
    [{ threshold: 1.5 }, "threshold", /\(0, 1\]/],
    [{ preset: "nope" as PresetName }, "preset", /valid: llada, llada-random, dream/],
    [{ schedule: "cosine" as "linear" }, "schedule", /valid: linear, timestep/],
    [{ confidence: "vibes" as "margin" }, "confidence", /probability, margin, entropy, random/],
    [{ topP: 0 }, "topP", /\(0, 1\]/],
    [{ temperature: -1 }, "temperature", /\[0, ∞\)/],
    [{ blockLength: 5 }, "blockLength", /does not divide the generation length 32/],
    [{ cache: "block" }, "cache", /block_causal/],
    [{ stepz: 3 } as DiffusionOptions, "stepz", /unknown option/],
    [{ selection: "threshold", confidence: "entropy" }, "confidence", /probability/],
  ];
  for (const [options, parameter, message] of cases) {
    assert.throws(
      () => denoise(model, spec, options as DiffusionOptions),
      (e: unknown) => {
        assert.ok(e instanceof DecodeOptionError, `${parameter}: ${e}`);
        assert.equal(e.parameter, parameter);
        assert.match(e.message, message);
        return true;
      },
    );
  }
  assert.throws(
    () => denoise(model, { tokens: promptCanvas(PROMPT, 60) }),
    (e: unknown) =>
      e instanceof DecodeOptionError && e.parameter === "length" && /context of 64/.test(e.message),
  );
  const causal = new FakeModel(fakeConfig({ attention: "causal" }), oracle(targetSequence(64)));
  assert.throws(
    () => denoise(causal, spec, { preset: "fast-dllm-dual" }),
    (e: unknown) => e instanceof DecodeOptionError && e.parameter === "cache",
  );
  const noMask = new FakeModel(fakeConfig({ maskTokenId: null }), oracle(targetSequence(64)));
  assert.throws(
    () => denoise(noMask, spec),
    (e: unknown) => e instanceof DecodeOptionError && e.parameter === "model",
  );
  assert.equal(model.calls.length, 0);
});

test("classifier-free guidance batches the unconditional canvas (prompt masked) as a second row", async () => {
  const L = PROMPT.length + 8;
  const target = targetSequence(L);
  const distractor = 20;
  // a prior that prefers the distractor everywhere; the prompt, when visible, favours the target
  const predict: Predictor = (position, view, out) => {
    out[distractor] = 1.5;
    if (view.tokens.get(0) !== MASK) out[target[position]] = 1;
  };
  const plain = await run(fakeConfig(), predict, { tokens: promptCanvas(PROMPT, 8) }, {});
  assert.ok(Array.from(plain.result.canvas.subarray(PROMPT.length)).every((t) => t === distractor));
  const guided = await run(
    fakeConfig(),
    predict,
    { tokens: promptCanvas(PROMPT, 8) },
    { cfgScale: 1 },
  );
  assert.deepEqual(
    Array.from(guided.result.canvas.subarray(PROMPT.length)),
    Array.from(target.subarray(PROMPT.length)),
  );
  assert.equal(guided.result.forwards, 8);
  for (const call of guided.model.calls) {
    assert.equal(call.rows, 2);
    for (let i = 0; i < PROMPT.length; i++) assert.equal(call.view1!.get(i), MASK);
  }
});

test("logits are asked only at the positions a step needs", async () => {
  const target = targetSequence(45);
  const { model } = await run(
    fakeConfig(),
    oracle(target),
    { tokens: promptCanvas(PROMPT, 40) },
    { steps: 8, blockLength: 10 },
  );
  // only the current block's masks: 10, then the 5 left
  assert.deepEqual(model.calls[0].queried, [5, 6, 7, 8, 9, 10, 11, 12, 13, 14]);
  assert.equal(model.calls[1].queried.length, 5);
  assert.deepEqual(model.calls[6].queried, [35, 36, 37, 38, 39, 40, 41, 42, 43, 44]);
});

test("Fast-dLLM caches: prefix and dual windows, refreshed on each block's first step", async () => {
  const target = targetSequence(5 + 32);
  const conf = (p: number) => (p % 2 === 0 ? 0.95 : 0.6); // two passes per block
  for (const logitShift of [false, true]) {
    const s = logitShift ? 1 : 0;
    const prefix = await run(
      fakeConfig({ logitShift }),
      oracle(target, conf),
      { tokens: promptCanvas(PROMPT, 32) },
      { preset: "fast-dllm", blockLength: 16 },
    );
    assert.deepEqual(Array.from(prefix.result.canvas.subarray(5)), Array.from(target.subarray(5)));
    const calls = prefix.model.calls;
    assert.ok(calls.length >= 4);
    for (const c of calls) {
      if (c.returnKv) {
        assert.equal(c.n, 37); // the whole canvas
        assert.equal(c.contextLength, 0);
      } else {
        const blockStart = c.queried[0] >= 21 ? 21 : 5;
        assert.equal(c.contextLength, blockStart - s);
        assert.equal(c.n, 37 - blockStart + s);
      }
    }
    const dual = await run(
      fakeConfig({ logitShift }),
      oracle(target, conf),
      { tokens: promptCanvas(PROMPT, 32) },
      { preset: "fast-dllm-dual", blockLength: 16 },
    );
    assert.deepEqual(Array.from(dual.result.canvas.subarray(5)), Array.from(target.subarray(5)));
    for (const c of dual.model.calls.filter((c) => !c.returnKv)) {
      assert.equal(c.n, 16 + s);
      assert.equal(c.contextLength, 37 - 16 - s);
    }
    assert.ok(dual.model.calls.filter((c) => c.returnKv).length === 2);
  }
});

test("block diffusion keeps an exact cache: finished blocks only, never a mask", async () => {
  const target = targetSequence(5 + 24);
  const config = fakeConfig({ attention: "block_causal", blockSize: 8 });
  const { result, model, events } = await run(
    config,
    oracle(target),
    { tokens: promptCanvas(PROMPT, 24), openEnded: true },
    { preset: "block-diffusion" },
  );
  assert.deepEqual(Array.from(result.canvas.subarray(5)), Array.from(target.subarray(5)));
  // blocks are the model's: [5, 8), [8, 16), [16, 24), [24, 29)
  assert.deepEqual([...new Set(events.map((e) => e.block))], [0, 1, 2, 3]);
  assert.equal(result.forwards, 24);
  for (const c of model.calls) {
    for (const p of c.contextPositions)
      assert.notEqual(c.view.get(p), MASK, `masked position ${p} cached`);
    // the window starts at a block boundary and covers the block being decoded
    assert.equal(c.positions[0] % 8, 0);
    assert.equal(c.contextLength, c.positions[0]);
  }
});

test("self-correction re-masks a token whose confidence fell, and never a constraint", async () => {
  const L = 16;
  const target = targetSequence(L);
  const wrong = 27;
  const trap = 9;
  // the trap position first looks sure of a wrong token; once most of the canvas is known, the
  // model is sure of the right one and the wrong token's probability falls to ~0
  const predict: Predictor = (position, view, out) => {
    if (position === trap && maskedIn(view.tokens) > 6) {
      out[wrong] = logitFor(0.95);
      return;
    }
    out[target[position]] = logitFor(position === trap ? 0.99 : 0.7);
  };
  const canvas = promptCanvas([target[0], target[1]], L - 2);
  canvas[12] = target[12]; // a fixed token in the middle (an infill constraint)
  const plain = await run(fakeConfig(), predict, { tokens: canvas }, { preset: "llada" });
  assert.equal(plain.result.canvas[trap], wrong);
  const fixed = await run(fakeConfig(), predict, { tokens: canvas }, { preset: "self-correct" });
  assert.deepEqual(Array.from(fixed.result.canvas), Array.from(target));
  const remasked = fixed.events.flatMap((e) => e.remasked);
  assert.deepEqual(
    remasked.map((r) => [r.position, r.token]),
    [[trap, wrong]],
  );
  assert.ok(remasked[0].confidence < 0.25);
  assert.equal(fixed.result.remasks, 1);
  for (const e of fixed.events) {
    for (const p of [0, 1, 12]) assert.equal(e.canvas[p], target[p]);
  }
  // the budget bounds it
  const none = await run(
    fakeConfig(),
    predict,
    { tokens: canvas },
    { preset: "self-correct", remaskBudget: 0 },
  );
  assert.equal(none.result.canvas[trap], wrong);
});

test("EOS: early stop once the text is settled; suppress and defer", async () => {
  const L = PROMPT.length + 24;
  const target = targetSequence(L);
  target.set(PROMPT);
  target.fill(EOS, 12); // 7 tokens of text, then EOS to the end
  const spec = { tokens: promptCanvas(PROMPT, 24), openEnded: true };
  // EOS is the surest everywhere (the trap of long canvases)
  const conf = (p: number) => (p >= 12 ? 0.999 : 0.9);
  const plain = await run(fakeConfig(), oracle(target, conf), spec, { blockLength: 8 });
  assert.equal(plain.result.stopReason, "eos");
  assert.deepEqual(Array.from(plain.result.canvas), Array.from(target));
  assert.ok(plain.result.forwards < 24, `${plain.result.forwards}`);

  const suppressed = await run(fakeConfig(), oracle(target, conf), spec, { eos: "suppress" });
  assert.ok(!Array.from(suppressed.result.canvas).includes(EOS));

  const deferred = await run(fakeConfig(), oracle(target, conf), spec, {
    eos: "defer",
    steps: 24,
    stopAtEos: false,
  });
  const order = deferred.events.flatMap((e) => e.revealed.map((r) => r.position));
  // the text first, EOS last
  assert.deepEqual(
    order.slice(0, 7).sort((a, b) => a - b),
    [5, 6, 7, 8, 9, 10, 11],
  );
  assert.deepEqual(Array.from(deferred.result.canvas), Array.from(target));
});

test("event text renders the view, masks as ░", async () => {
  const target = targetSequence(8);
  const decode = (ids: ArrayLike<number>) =>
    Array.from(ids, (t) => String.fromCharCode(96 + t)).join("");
  const { events, result } = await run(
    fakeConfig(),
    oracle(target),
    { tokens: promptCanvas([1, 2], 6), view: [2, 8], decode },
    { steps: 3 },
  );
  assert.equal(events[0].text!.length, 6);
  assert.equal(events[0].text!.split("░").length - 1, 4);
  assert.equal(result.text, decode(target.subarray(2)));
  assert.equal(VOCAB, 32);
});

test("leaving the iteration early ends the run: no further forward passes", async () => {
  const model = new FakeModel(fakeConfig(), oracle(targetSequence(37)));
  for await (const e of denoise(
    model,
    { tokens: promptCanvas(PROMPT, 32) },
    { preset: "fast-dllm", threshold: 1 },
  )) {
    assert.equal(e.step, 0);
    break;
  }
  assert.equal(model.calls.length, 1);
});
