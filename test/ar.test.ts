import assert from "node:assert/strict";
import { test } from "node:test";
import { complete, fimPrompt, streamInfillAr } from "../src/diffusion/api.js";
import { decodeAr } from "../src/diffusion/ar.js";
import { DecodeAbortedError, DecodeOptionError } from "../src/diffusion/errors.js";
import type { DecodeResult, StepEvent } from "../src/diffusion/types.js";
import {
  EOS,
  FakeModel,
  fakeConfig,
  logitFor,
  type Predictor,
  targetSequence,
} from "./fake-models.js";

async function collect(gen: AsyncGenerator<StepEvent, DecodeResult, undefined>) {
  const events: StepEvent[] = [];
  for (;;) {
    const next = await gen.next();
    if (next.done) return { events, result: next.value };
    events.push(next.value);
  }
}

/**
 * An AR oracle over `target`. Without logit shift the last fed position i predicts token i + 1
 * (the causal-LM convention); with it, the queried position predicts itself. `confidence` is the
 * probability it gives the target token.
 */
function arOracle(target: ArrayLike<number>, shift: boolean, confidence = 0.9): Predictor {
  return (position, view, out) => {
    const next = shift ? position : position + 1;
    // causal: the fake must only ever be asked about what it can see
    for (const p of view.tokens.keys()) assert.ok(p <= position, `position ${position} sees ${p}`);
    out[target[next]] = logitFor(confidence);
  };
}

const PROMPT = [2, 7, 1, 8];

test("greedy AR decoding reproduces the oracle's argmax with one forward pass per token", async () => {
  for (const logitShift of [false, true]) {
    const target = targetSequence(40);
    target.set(PROMPT);
    const model = new FakeModel(
      fakeConfig({ attention: "causal", logitShift }),
      arOracle(target, logitShift),
    );
    const { events, result } = await collect(decodeAr(model, PROMPT, { maxTokens: 20 }));
    assert.deepEqual(Array.from(result.canvas), Array.from(target.subarray(0, 24)));
    assert.equal(result.stopReason, "max_tokens");
    assert.equal(result.forwards, 20);
    assert.equal(events.length, 20);
    events.forEach((e, i) => {
      assert.equal(e.step, i);
      assert.equal(e.forwards, i + 1);
      assert.deepEqual(
        e.revealed.map((r) => r.position),
        [PROMPT.length + i],
      );
      assert.ok(Math.abs(e.revealed[0].confidence - 0.9) < 1e-6);
    });
    // the cache: the prompt once, then one new token per call (plus the placeholder under shift)
    const s = logitShift ? 1 : 0;
    assert.equal(model.calls[0].n, PROMPT.length + s);
    assert.equal(model.calls[0].contextLength, 0);
    model.calls.slice(1).forEach((c, i) => {
      assert.equal(c.n, 1 + s);
      assert.equal(c.contextLength, PROMPT.length + i);
      assert.deepEqual(
        c.contextPositions,
        Array.from({ length: PROMPT.length + i }, (_, j) => j),
      );
      assert.equal(c.queried.length, 1);
    });
  }
});

test("AR decoding stops at EOS", async () => {
  const target = targetSequence(40);
  target.set(PROMPT);
  target[10] = EOS;
  const model = new FakeModel(fakeConfig({ attention: "causal" }), arOracle(target, false));
  const { result } = await collect(decodeAr(model, PROMPT, { maxTokens: 30 }));
  assert.equal(result.stopReason, "eos");
  assert.equal(result.canvas.length, 11);
  assert.equal(result.forwards, 7);
  const noStop = await collect(
    decodeAr(new FakeModel(fakeConfig({ attention: "causal" }), arOracle(target, false)), PROMPT, {
      maxTokens: 12,
      stopAtEos: false,
    }),
  );
  assert.equal(noStop.result.canvas.length, 16);
});

test("sampled AR decoding is reproducible from its seed", async () => {
  const target = targetSequence(40);
  const config = fakeConfig({ attention: "causal" });
  const sample = (seed: number) =>
    collect(
      decodeAr(new FakeModel(config, arOracle(target, false, 0.3)), PROMPT, {
        maxTokens: 16,
        temperature: 1,
        topP: 0.95,
        seed,
      }),
    );
  const a = await sample(1);
  const b = await sample(1);
  const c = await sample(2);
  assert.deepEqual(a.events, b.events);
  assert.notDeepEqual(Array.from(a.result.canvas), Array.from(c.result.canvas));
  // top-k 1 is greedy whatever the temperature
  const greedy = await collect(
    decodeAr(new FakeModel(config, arOracle(target, false, 0.3)), PROMPT, {
      maxTokens: 8,
      temperature: 2,
      topK: 1,
      seed: 3,
    }),
  );
  assert.deepEqual(
    Array.from(greedy.result.canvas.subarray(4)),
    Array.from(target.subarray(4, 12)),
  );
});

test("AR options and models are validated; an abort stops before the next pass", async () => {
  const target = targetSequence(40);
  const causal = new FakeModel(
    fakeConfig({ attention: "causal", maxPositions: 16 }),
    arOracle(target, false),
  );
  const bad = (options: object, parameter: string, model = causal) =>
    assert.throws(
      () => decodeAr(model, PROMPT, options),
      (e: unknown) => {
        assert.ok(e instanceof DecodeOptionError);
        assert.equal(e.parameter, parameter);
        return true;
      },
    );
  bad({ maxTokens: 13 }, "maxTokens");
  bad({ maxTokens: 0 }, "maxTokens");
  bad({ temperature: -0.5 }, "temperature");
  bad({ topP: 2 }, "topP");
  bad({ maxTokenz: 3 }, "maxTokenz");
  bad({}, "model", new FakeModel(fakeConfig(), arOracle(target, false)));
  assert.equal(causal.calls.length, 0);

  const controller = new AbortController();
  const model = new FakeModel(fakeConfig({ attention: "causal" }), arOracle(target, false));
  const gen = decodeAr(model, PROMPT, { maxTokens: 10 }, controller.signal);
  await gen.next();
  await gen.next();
  controller.abort();
  await assert.rejects(
    gen.next(),
    (e: unknown) => e instanceof DecodeAbortedError && e.partial.steps === 2,
  );
  assert.equal(model.calls.length, 2);
});

test("FIM infill on a model whose answer is known: the PSM prompt, the middle, where it ends", async () => {
  const [PRE, SUF, MID] = [26, 27, 28];
  const fim = { lead: [], prefix: PRE, suffix: SUF, middle: MID, stops: [PRE, SUF, MID] };
  const file = Array.from(targetSequence(14));
  const [before, middle, after] = [file.slice(0, 5), file.slice(5, 9), file.slice(9)];
  const prompt = [PRE, ...before, SUF, ...after, MID];
  assert.deepEqual(fimPrompt(fim, before, after), prompt);
  /** Knows the file: shown exactly the PSM prompt of its cut, writes the middle, then `end`. */
  const fimOracle =
    (end: number): Predictor =>
    (position, view, out) => {
      for (const [i, t] of prompt.entries()) assert.equal(view.tokens.get(i), t, `at ${i}`);
      const k = position + 1 - prompt.length; // the middle's index of the next token
      out[k < middle.length ? middle[k] : end] = logitFor(0.9);
    };
  const model = (end: number) =>
    new FakeModel(fakeConfig({ attention: "causal", maskTokenId: null }), fimOracle(end));
  const parts = [before, { hole: 8 }, after];
  for (const end of [EOS, PRE, MID]) {
    // the model's end token or a FIM sentinel ends the middle, and is not part of it
    const r = await complete(streamInfillAr(model(end), parts, { fim }));
    assert.deepEqual(r.fills, [middle], `end ${end}`);
    assert.equal(r.stopReason, "eos");
    assert.deepEqual(Array.from(r.canvas), [...prompt, ...middle, end]);
  }
  // the hole's size is the budget
  const short = await complete(streamInfillAr(model(EOS), [before, { hole: 2 }, after], { fim }));
  assert.deepEqual(short.fills, [middle.slice(0, 2)]);
  assert.equal(short.stopReason, "max_tokens");
  // one hole only
  assert.throws(
    () => streamInfillAr(model(EOS), [before, { hole: 2 }, after, { hole: 1 }], { fim }),
    (e: unknown) => e instanceof DecodeOptionError && e.parameter === "parts[3]",
  );
  assert.throws(
    () => streamInfillAr(model(EOS), [before], { fim }),
    (e: unknown) => e instanceof DecodeOptionError && e.parameter === "parts",
  );
});
