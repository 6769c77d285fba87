// The playground's logic that needs no browser: the highlighter, the SSE reader, the replay of a
// run's events into frames, the request built from the editor, and the files the server hands out.

import assert from "node:assert/strict";
import { test } from "node:test";
import { presetNames } from "../src/diffusion/options.js";
import { pageAsset, strategies } from "../src/web/assets.js";
import { plainWords, ServerError, Unreachable } from "../src/web/page/api.js";
import { highlight, kinds } from "../src/web/page/highlight.js";
import {
  denoiseBody,
  editParts,
  InputError,
  infillParts,
  selectedLines,
} from "../src/web/page/request.js";
import { sseData } from "../src/web/page/sse.js";
import { type StartEvent, type StepEvent, Trace } from "../src/web/page/trace.js";

/** The text of every run of one kind, e.g. all strings. */
function runsOf(text: string, kind: (typeof kinds)[number]): string[] {
  const colour = highlight(text);
  const k = kinds.indexOf(kind);
  const out: string[] = [];
  for (let i = 0; i < text.length; i++) {
    if (colour[i] !== k) continue;
    let j = i;
    while (j < text.length && colour[j] === k) j++;
    out.push(text.slice(i, j));
    i = j;
  }
  return out;
}

test("highlight: keywords, literals, strings with escapes, comments, numbers, hole markers", () => {
  const src =
    'const s = "a\\"b"; // note\nlet n = 0x1F + 2.5e3; /* block */ return null;\nf(`t $' +
    "{x}`, <FILL:8>, <FILL>)";
  assert.deepEqual(runsOf(src, "keyword"), ["const", "let", "return"]);
  assert.deepEqual(runsOf(src, "literal"), ["null"]);
  assert.deepEqual(runsOf(src, "string"), ['"a\\"b"', "`t $" + "{x}`"]);
  assert.deepEqual(runsOf(src, "comment"), ["// note", "/* block */"]);
  assert.deepEqual(runsOf(src, "number"), ["0x1F", "2.5e3"]);
  assert.deepEqual(runsOf(src, "hole"), ["<FILL:8>", "<FILL>"]);
  // identifiers that contain a keyword are not keywords; a mask inside a string keeps it a string
  assert.deepEqual(runsOf("constant iffy", "keyword"), []);
  assert.deepEqual(runsOf('x = "ab░░cd" + 1', "string"), ['"ab░░cd"']);
  // an unterminated string or comment runs to the end of its line or of the text
  assert.deepEqual(runsOf('"open\nnext', "string"), ['"open']);
  assert.deepEqual(runsOf("/* open\nstill", "comment"), ["/* open\nstill"]);
});

/** A body stream that delivers `text` in the given pieces. */
function streamOf(pieces: string[]): ReadableStream<Uint8Array> {
  const bytes = pieces.map((p) => new TextEncoder().encode(p));
  return new ReadableStream({
    start(controller) {
      for (const b of bytes) controller.enqueue(b);
      controller.close();
    },
  });
}

async function collect(pieces: string[]): Promise<string[]> {
  const out: string[] = [];
  for await (const data of sseData(streamOf(pieces))) out.push(data);
  return out;
}

test("sseData: events split anywhere across chunks, any line ending, stops at [DONE]", async () => {
  const wire =
    ': comment\n\ndata: {"a":1}\n\r\nevent: x\r\ndata: line 1\rdata:line 2\r\r' +
    'data: {"é":"ü"}\n\ndata: [DONE]\n\ndata: after\n\n';
  const expected = ['{"a":1}', "line 1\nline 2", '{"é":"ü"}'];
  assert.deepEqual(await collect([wire]), expected);
  // every split point, including inside a multi-byte character and between "\r" and "\n"
  const bytes = new TextEncoder().encode(wire);
  for (let cut = 1; cut < bytes.length; cut++) {
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(bytes.slice(0, cut));
        controller.enqueue(bytes.slice(cut));
        controller.close();
      },
    });
    const out: string[] = [];
    for await (const data of sseData(stream)) out.push(data);
    assert.deepEqual(out, expected, `split at byte ${cut}`);
  }
  // a stream that ends without a blank line still delivers its last event
  assert.deepEqual(await collect(["data: last"]), ["last"]);
});

// A hand-made run: canvas "a" + 4 masks; step 0 reveals 1 and 2, step 1 re-masks 2 and reveals 3,
// step 2 reveals 2 and 4.
const M = 0;
const start: StartEvent = {
  type: "start",
  model: "m",
  decoder: "diffusion",
  canvas_length: 5,
  view: [1, 5],
  tokens: [7, M, M, M, M],
  pieces: ["a", null, null, null, null],
};
function step(
  k: number,
  pieces: (string | null)[],
  revealed: [number, number][],
  remasked: [number, number][],
): StepEvent {
  const change = ([position, confidence]: [number, number]) => ({
    position,
    token: 1,
    piece: pieces[position] ?? "?",
    confidence,
  });
  return {
    type: "step",
    step: k,
    block: 0,
    forwards: k + 1,
    masked: pieces.filter((p) => p === null).length,
    tokens: pieces.map((p) => (p === null ? M : 1)),
    pieces,
    revealed: revealed.map(change),
    remasked: remasked.map(change),
    elapsed_ms: 10 * (k + 1),
    tokens_per_s: 0,
  };
}

test("Trace: frames replay reveals, re-masks and confidences; scrub by step or by time", () => {
  const trace = new Trace(start);
  trace.add(
    step(
      0,
      ["a", "b", "c", null, null],
      [
        [1, 0.9],
        [2, 0.4],
      ],
      [],
    ),
  );
  trace.add(step(1, ["a", "b", null, "d", null], [[3, 0.8]], [[2, 0.1]]));
  trace.add(
    step(
      2,
      ["a", "b", "C", "d", "e"],
      [
        [2, 0.7],
        [4, 0.95],
      ],
      [],
    ),
  );

  const before = trace.frame(-1);
  assert.deepEqual(
    before.cells.map((c) => c.state),
    ["fixed", "mask", "mask", "mask", "mask"],
  );
  assert.equal(before.masked, 4);
  assert.equal(trace.viewText(-1), "░░░░");

  const f1 = trace.frame(1);
  assert.deepEqual(
    f1.cells.map((c) => c.state),
    ["fixed", "token", "mask", "token", "mask"],
  );
  assert.deepEqual(
    f1.cells.map((c) => c.fresh),
    [false, false, false, true, false],
  );
  assert.deepEqual(
    f1.cells.map((c) => c.remasked),
    [false, false, true, false, false],
  );
  assert.equal(f1.cells[1].confidence, 0.9);
  assert.equal(f1.cells[1].revealedAt, 0);
  assert.equal(f1.cells[2].confidence, undefined, "a re-masked position keeps no confidence");
  assert.equal(trace.viewText(1), "b░d░");

  const f2 = trace.frame(2);
  assert.equal(f2.cells[2].confidence, 0.7);
  assert.equal(f2.cells[2].revealedAt, 2);
  assert.equal(trace.viewText(2), "bCde");
  assert.equal(trace.revealedCount(), 4);
  assert.equal(trace.revealedCount(1), 2);

  assert.equal(trace.stepAt(0), -1);
  assert.equal(trace.stepAt(25), 1);
  assert.equal(trace.stepAt(1e9), 2);

  // fix: the scoring step re-masks tokens of the input, which the run never revealed
  const fixing = new Trace({
    ...start,
    tokens: [7, 1, 1, 1, 1],
    pieces: ["a", "b", "c", "d", "e"],
  });
  fixing.add(
    step(
      0,
      ["a", null, "c", null, "e"],
      [],
      [
        [1, 0.01],
        [3, 0.02],
      ],
    ),
  );
  fixing.add(
    step(
      1,
      ["a", "B", "c", "D", "e"],
      [
        [1, 0.9],
        [3, 0.8],
      ],
      [],
    ),
  );
  assert.equal(fixing.revealedCount(0), 0);
  assert.equal(fixing.revealedCount(1), 2);

  // an end token is marked as one (drawn as a dot); an empty piece that is part of a character
  // split over tokens is not
  const ended = new Trace({ ...start, end_token_ids: [9] });
  ended.add({ ...step(0, ["a", "", "é", null, ""], [[1, 0.5]], []), tokens: [7, 5, 6, M, 9] });
  assert.deepEqual(
    ended.frame(0).cells.map((c) => c.end),
    [false, false, false, false, true],
  );
});

test("infillParts: the code around the holes is kept byte for byte; holes sized by the marker", () => {
  const source = "function f(x) {\r\n  <FILL:12>\n  return <FILL>;\n}\t\u00e9\n";
  const parts = infillParts(source);
  assert.deepEqual(parts, [
    "function f(x) {\r\n  ",
    { hole: 12 },
    "\n  return ",
    { hole: 16 },
    ";\n}\t\u00e9\n",
  ]);
  const rebuilt = parts
    .map((p) => (typeof p === "string" ? p : p.hole === 16 ? "<FILL>" : `<FILL:${p.hole}>`))
    .join("");
  assert.equal(rebuilt, source);
  assert.deepEqual(infillParts("<FILL:3>"), [{ hole: 3 }]);
  assert.throws(() => infillParts("no hole here"), InputError);
  assert.throws(() => infillParts("a <FILL:0> b"), /at least one token/);
});

test("selectedLines: the 1-based lines a selection covers", () => {
  const src = "one\ntwo\nthree\nfour";
  assert.deepEqual(selectedLines(src, 0, 0), [1, 1]);
  assert.deepEqual(selectedLines(src, 5, 5), [2, 2]); // caret in line 2
  assert.deepEqual(selectedLines(src, 4, 13), [2, 3]);
  assert.deepEqual(selectedLines(src, 4, 8), [2, 2], "ending just after a newline stays on line 2");
  assert.deepEqual(selectedLines(src, 0, src.length), [1, 4]);
});

test("editParts: the chosen lines become the hole, their newlines and the rest kept", () => {
  const src = "one\ntwo\nthree\nfour";
  assert.deepEqual(editParts(src, [2, 3], 4), ["one\n", { hole: 4 }, "\nfour"]);
  assert.deepEqual(editParts(src, [1, 1], 2), [{ hole: 2 }, "\ntwo\nthree\nfour"]);
  assert.deepEqual(editParts(src, [4, 4], 3), ["one\ntwo\nthree\n", { hole: 3 }]);
  assert.deepEqual(editParts("x\n", [2, 2], 1), ["x\n", { hole: 1 }]);
});

test("denoiseBody: each mode's fields; empty knobs left to the server", () => {
  const sel = { start: 0, end: 0 };
  assert.deepEqual(denoiseBody("generate", "let x", sel, { model: "m", maxTokens: 8, seed: 3 }), {
    model: "m",
    seed: 3,
    prompt: "let x",
    max_tokens: 8,
  });
  assert.deepEqual(
    denoiseBody("infill", "a<FILL:2>b", sel, { model: "m", strategy: "fast-dllm", threshold: 0.8 }),
    { model: "m", strategy: "fast-dllm", threshold: 0.8, parts: ["a", { hole: 2 }, "b"] },
  );
  assert.deepEqual(
    denoiseBody("edit", "a\nb\nc", { start: 2, end: 3 }, { model: "m", maxTokens: 5 }),
    { model: "m", parts: ["a\n", { hole: 5 }, "\nc"] },
  );
  assert.deepEqual(denoiseBody("fix", "let x = 1;", sel, { model: "m", below: 0.3, seed: 1 }), {
    model: "m",
    seed: 1,
    source: "let x = 1;",
    below: 0.3,
  });
  assert.throws(() => denoiseBody("generate", "", sel, { model: "m" }), InputError);
  assert.throws(() => denoiseBody("fix", "", sel, { model: "m" }), InputError);
});

test("plainWords: every failure told as a sentence, with the server's own message", () => {
  const refused = new ServerError(400, {
    message: "max_tokens: expected an integer ≥ 1, got -5",
    type: "invalid_request_error",
    param: "max_tokens",
  });
  assert.equal(
    plainWords(refused),
    "The server refused the request: max_tokens: expected an integer ≥ 1, got -5",
  );
  assert.match(
    plainWords(new ServerError(429, { message: "queue full" }, 2)),
    /busy.*Try again in 2 s/,
  );
  assert.match(plainWords(new Unreachable("x")), /does not answer/);
  assert.match(plainWords(new ServerError(401, { message: "no key" })), /API key/);
  assert.equal(plainWords(new InputError("Give a hole.")), "Give a hole.");
});

test("pageAsset: the built page and nothing else", async () => {
  const index = await pageAsset("/");
  assert.ok(index !== undefined);
  assert.equal(index.contentType, "text/html; charset=utf-8");
  assert.match(index.body.toString(), /<script type="module" src="app.js"><\/script>/);
  const app = await pageAsset("/app.js");
  assert.equal(app?.contentType, "text/javascript; charset=utf-8");
  assert.equal((await pageAsset("/style.css"))?.contentType, "text/css; charset=utf-8");
  for (const path of [
    "/../assets.js",
    "/..%2fassets.js",
    "/app.d.ts",
    "/nope.js",
    "",
    "/v1/models",
  ]) {
    assert.equal(await pageAsset(path), undefined, path);
  }
});

test("strategies.json: every preset, the default first, the knobs the validator lets it read", async () => {
  const list = strategies();
  assert.deepEqual(
    list.map((s) => s.name),
    presetNames,
  );
  assert.equal(list[0].name, "llada");
  const of = (name: string) => list.find((s) => s.name === name)?.options;
  assert.deepEqual(of("llada"), ["steps", "block_length", "temperature", "seed"]);
  assert.ok(of("fast-dllm")?.includes("threshold") && !of("fast-dllm")?.includes("steps"));
  const served = await pageAsset("/strategies.json");
  assert.equal(served?.contentType, "application/json; charset=utf-8");
  assert.deepEqual(JSON.parse(served?.body.toString() ?? ""), list);
});
