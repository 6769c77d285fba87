import assert from "node:assert/strict";
import { test } from "node:test";
import {
  DecodeAbortedError,
  DecodeOptionError,
  edit,
  fix,
  generate,
  generateAr,
  infill,
  type StepEvent,
  streamEdit,
  streamFix,
  streamGenerate,
  streamInfill,
  type TextCodec,
} from "../src/diffusion/index.js";
import {
  EOS,
  FakeModel,
  fakeConfig,
  logitFor,
  MASK,
  oracle,
  type Predictor,
} from "./fake-models.js";

/** A character tokenizer: a–z → 1–26, space 27, newline 28; EOS and pad decode to nothing. */
const chars: TextCodec = {
  encode: (text) =>
    Array.from(text, (c) => (c === " " ? 27 : c === "\n" ? 28 : c.charCodeAt(0) - 96)),
  decode: (ids) =>
    Array.from(ids, (t) =>
      t === 27 ? " " : t === 28 ? "\n" : t >= 1 && t <= 26 ? String.fromCharCode(96 + t) : "",
    ).join(""),
};

async function drain<R>(run: AsyncGenerator<StepEvent, R, undefined>) {
  const events: StepEvent[] = [];
  for (;;) {
    const next = await run.next();
    if (next.done) return { events, result: next.value };
    events.push(next.value);
  }
}

test("generate: text in, text out, cut at EOS; streaming shows the canvas resolving", async () => {
  const prompt = "say ";
  const answer = "hello world";
  const target = [...chars.encode(prompt + answer), ...Array(9).fill(EOS)];
  const model = new FakeModel(fakeConfig(), oracle(target));
  const result = await generate(model, prompt, { tokenizer: chars, genLength: 20 });
  assert.equal(result.text, answer);
  assert.deepEqual(result.tokens, chars.encode(answer));
  assert.equal(result.stopReason, "eos");

  const { events } = await drain(
    streamGenerate(new FakeModel(fakeConfig(), oracle(target)), prompt, {
      tokenizer: chars,
      genLength: 20,
      steps: 4,
      stopAtEos: false,
    }),
  );
  assert.equal(events.length, 4);
  assert.equal(events[0].text!.length, 20);
  assert.ok(events[0].text!.includes("░"));
  assert.equal(events[3].text, answer);
  // ids work without a tokenizer
  const ids = await generate(new FakeModel(fakeConfig(), oracle(target)), chars.encode(prompt), {
    genLength: 20,
  });
  assert.deepEqual(ids.tokens, chars.encode(answer));
  assert.equal(ids.text, undefined);
});

test("infill: several holes between fixed text, the fixed text never changes", async () => {
  const full = "let x be one\nlet y be two\n";
  const target = chars.encode(full);
  const parts = ["let x be ", { hole: 3 }, "\nlet y be ", { hole: 3 }, "\n"];
  const model = new FakeModel(fakeConfig(), oracle(target));
  const { events, result } = await drain(streamInfill(model, parts, { tokenizer: chars }));
  assert.equal(result.text, full);
  assert.deepEqual(result.fillTexts, ["one", "two"]);
  const fixedPositions = [...Array(9).keys(), ...Array.from({ length: 10 }, (_, i) => 12 + i), 25];
  for (const e of events) {
    for (const p of fixedPositions) assert.equal(e.canvas[p], target[p], `position ${p} changed`);
  }
  // fixed length suppresses end tokens: an oracle that wants EOS at the hole's end cannot have it
  const eosTarget = chars.encode("let x be o");
  const wantsEos: Predictor = (p, _v, out) => {
    out[p < eosTarget.length ? eosTarget[p] : EOS] = logitFor(0.99);
    out[15] = logitFor(0.5); // 'o' as a runner-up
  };
  const fixedLen = await infill(
    new FakeModel(fakeConfig(), wantsEos),
    ["let x be ", { hole: 3 }, "\n"],
    { tokenizer: chars },
  );
  assert.deepEqual(fixedLen.fillTexts, ["ooo"]);
});

test("variable-length infill: end tokens the model puts in a hole are trimmed from the fill", async () => {
  // the model fills the 6-token hole with "one" and pads with EOS
  const target = [...chars.encode("let x be one"), EOS, EOS, EOS, ...chars.encode("\n")];
  const model = new FakeModel(fakeConfig(), oracle(target));
  const result = await infill(model, ["let x be ", { hole: 6 }, "\n"], {
    tokenizer: chars,
    holeLength: "trim",
  });
  assert.deepEqual(result.fillTexts, ["one"]);
  assert.equal(result.text, "let x be one\n");
  assert.deepEqual(result.fills, [chars.encode("one")]);
});

test("edit: regenerate character and line spans, the rest held fixed", async () => {
  const src = "a is x\nb is y\nc is z\n";
  const target = chars.encode("a is x\nb is q\nc is z\n");
  const model = new FakeModel(fakeConfig(), oracle(target));
  const { events, result } = await drain(
    streamEdit(model, src, [{ start: 12, end: 13 }], { tokenizer: chars }),
  );
  assert.equal(result.text, chars.decode(target));
  assert.deepEqual(result.replacements, ["q"]);
  for (const e of events) {
    for (let p = 0; p < target.length; p++) if (p !== 12) assert.equal(e.canvas[p], target[p]);
  }
  // a whole line, by number (the newline stays)
  const byLine = await edit(new FakeModel(fakeConfig(), oracle(target)), src, [{ lines: [2, 2] }], {
    tokenizer: chars,
  });
  assert.deepEqual(byLine.replacements, ["b is q"]);
  assert.equal(byLine.text, chars.decode(target));
  await assert.rejects(
    edit(
      model,
      src,
      [
        { start: 4, end: 8 },
        { start: 6, end: 9 },
      ],
      { tokenizer: chars },
    ),
    (e: unknown) => e instanceof DecodeOptionError && e.parameter === "spans[1]",
  );
  await assert.rejects(
    edit(model, src, [{ lines: [2, 9] }], { tokenizer: chars }),
    (e: unknown) => e instanceof DecodeOptionError && e.parameter === "spans[0].lines[1]",
  );
});

test("fix: score every token in one batched pass, re-mask the unlikely ones, denoise them again", async () => {
  const right = "const total is count\n";
  const wrong = "const tatal is cuunt\n"; // two typos
  const target = chars.encode(right);
  const model = new FakeModel(fakeConfig(), oracle(target));
  const { events, result } = await drain(streamFix(model, wrong, { tokenizer: chars }));
  assert.equal(result.text, right);
  assert.deepEqual(result.remasked, [7, 16]);
  assert.deepEqual(result.changed, [7, 16]);
  // the scoring pass: one forward call of 4 rows, each masking every 4th position
  assert.equal(model.calls[0].rows, 4);
  assert.deepEqual(
    events[0].remasked.map((r) => r.position),
    [7, 16],
  );
  assert.ok(events[0].remasked.every((r) => r.confidence < 0.01));
  assert.equal(events[0].forwards, 1);
  assert.equal(result.forwards, model.calls.length);
  for (const e of events) {
    for (let p = 0; p < target.length; p++)
      if (p !== 7 && p !== 16) assert.equal(e.canvas[p], target[p]);
  }
  // the scores (log-probabilities from the model's step statistics) equal the slow twin's:
  // softmax of the whole row of logits, with the scored position masked as in its pass
  const ids = chars.encode(wrong);
  const probe = new FakeModel(fakeConfig(), oracle(target));
  for (let p = 0; p < ids.length; p++) {
    const tokens = Int32Array.from(ids, (t, i) => (i % 4 === p % 4 ? MASK : t));
    const { logits } = await probe.forward({ tokens, rows: 1, logitsAt: Int32Array.of(p) });
    const max = Math.max(...logits);
    const sum = logits.reduce((a, x) => a + Math.exp(x - max), 0);
    const expected = Math.exp(logits[ids[p]] - max) / sum;
    assert.ok(
      Math.abs(result.scores[p] - expected) <= 1e-6 * Math.max(1, expected),
      `position ${p}`,
    );
  }
  // a clean file is left alone after the scoring pass
  const clean = await fix(new FakeModel(fakeConfig(), oracle(target)), right, { tokenizer: chars });
  assert.deepEqual(clean.changed, []);
  assert.equal(clean.forwards, 1);
});

test("the API validates up front with typed errors naming the parameter", async () => {
  const model = new FakeModel(fakeConfig({ maxPositions: 32 }), oracle(Array(32).fill(1)));
  const cases: [() => Promise<unknown>, string][] = [
    [() => generate(model, "hi", {}), "tokenizer"],
    [() => generate(model, "hi", { tokenizer: chars, genLength: 31 }), "genLength"],
    [() => generate(model, "hi", { tokenizer: chars, genLength: 0 }), "genLength"],
    [
      () => generate(model, "hi", { tokenizer: chars, genLength: 4, preset: "llada2" as "llada" }),
      "preset",
    ],
    [() => generate(model, "hi", { tokenizer: chars, genLength: 4, steps: -1 }), "steps"],
    [() => infill(model, ["a", "b"], { tokenizer: chars }), "parts"],
    [() => infill(model, ["a", { hole: 0 }], { tokenizer: chars }), "parts[1].hole"],
    [
      () => infill(model, ["a", { hole: 2 }], { tokenizer: chars, holeLength: "guess" as "trim" }),
      "holeLength",
    ],
    [() => edit(model, "abc", [{ start: 0, end: 1 }], {}), "tokenizer"],
    [() => fix(model, "abc", { tokenizer: chars, below: 0 }), "below"],
    [() => fix(model, "abc", { tokenizer: chars, threshold: 2 }), "threshold"],
    [() => generateAr(model, "abc", { tokenizer: chars }), "model"],
  ];
  for (const [call, parameter] of cases) {
    await assert.rejects(call(), (e: unknown) => {
      assert.ok(e instanceof DecodeOptionError, `${parameter}: ${e}`);
      assert.equal(e.parameter, parameter);
      return true;
    });
  }
  assert.equal(model.calls.length, 0);
  // the streaming forms throw when called
  assert.throws(
    () => streamGenerate(model, "hi", { tokenizer: chars, topP: 3 }),
    DecodeOptionError,
  );
  assert.throws(
    () => streamFix(model, "abc", { tokenizer: chars, maxFraction: 0 }),
    DecodeOptionError,
  );
});

test("an aborted generate rejects with the partial result, text included", async () => {
  const target = chars.encode("abcdefghijklmnopqrstuvwxyz");
  const controller = new AbortController();
  let steps = 0;
  const model = new FakeModel(fakeConfig(), (p, v, out) => {
    oracle(target)(p, v, out);
    if (p === 5 && ++steps === 2) controller.abort();
  });
  await assert.rejects(
    generate(model, "ab", {
      tokenizer: chars,
      genLength: 24,
      steps: 12,
      signal: controller.signal,
    }),
    (e: unknown) => {
      assert.ok(e instanceof DecodeAbortedError);
      assert.equal(e.partial.forwards, 2);
      assert.equal(typeof e.partial.text, "string");
      return true;
    },
  );
});

test("generateAr runs the AR baseline through the same API", async () => {
  const target = chars.encode("ab cd ef");
  const model = new FakeModel(fakeConfig({ attention: "causal" }), (p, _v, out) => {
    out[p + 1 < target.length ? target[p + 1] : EOS] = logitFor(0.9);
  });
  const result = await generateAr(model, "ab", { tokenizer: chars, maxTokens: 20 });
  assert.equal(result.text, " cd ef");
  assert.equal(result.stopReason, "eos");
  assert.equal(result.forwards, 7);
});
