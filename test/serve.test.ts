// unmask serve over real HTTP on loopback: the server runs in this process (its engine tiny
// random checkpoints written here) or as `unmask serve` (SIGTERM, the API key from the
// environment). Nothing waits on a clock: a gated model holds runs in flight while the test
// fills the slots and the queue, and a disconnect is proven by the next request being served.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { Tokenizer } from "../src/format/tokenizer.js";
import { type LoadedModel, loadModel } from "../src/host/models.js";
import type { ForwardRequest, LanguageModel } from "../src/model/types.js";
import { type ServeOptions, UnmaskServer } from "../src/serve/server.js";
import { canvasPieces } from "../src/serve/text.js";
import { main, writeModel } from "./cli-helpers.js";

let dir = "";
let diffusion: LoadedModel;
let ar: LoadedModel;
let slow: LoadedModel;
let templated: LoadedModel;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "unmask-serve-"));
  await writeModel(join(dir, "tiny"), {}, { hidden: 16, layers: 2, context: 128 });
  await writeModel(join(dir, "tiny-ar"), { attention_mask: "causal" });
  // big enough that a 500-token canvas takes hundreds of steps of visible work
  await writeModel(join(dir, "slow"), {}, { hidden: 64, layers: 2, context: 512 });
  await writeModel(join(dir, "chat"), {});
  await writeFile(
    join(dir, "chat", "tokenizer_config.json"),
    JSON.stringify({
      chat_template:
        "{% for m in messages %}{{ m.content }} {% endfor %}{% if add_generation_prompt %}c{% endif %}",
    }),
  );
  diffusion = await loadModel(join(dir, "tiny"));
  ar = await loadModel(join(dir, "tiny-ar"));
  slow = await loadModel(join(dir, "slow"));
  templated = await loadModel(join(dir, "chat"));
});

after(async () => {
  for (const m of [diffusion, ar, slow, templated]) await m?.model.dispose();
  await rm(dir, { recursive: true, force: true });
});

interface Running {
  server: UnmaskServer;
  url: string;
}

async function start(options: Partial<ServeOptions> = {}): Promise<Running> {
  const server = new UnmaskServer({ models: [diffusion, ar], ...options });
  const address = await server.listen(0, "127.0.0.1");
  return { server, url: `http://127.0.0.1:${address.port}` };
}

async function post(url: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, json: () => JSON.parse(text) };
}

/** The `data:` payloads of an SSE body, in order. */
function sseData(text: string): string[] {
  return text
    .split("\n\n")
    .filter((e) => e.startsWith("data: "))
    .map((e) => e.slice(6));
}

function assertError(
  r: { status: number; json: () => { error: Record<string, unknown> } },
  status: number,
  code: string,
  param: string | null,
) {
  assert.equal(r.status, status);
  const e = r.json().error;
  assert.equal(e.code, code);
  assert.equal(e.param, param);
  assert.equal(typeof e.message, "string");
  assert.equal(typeof e.type, "string");
  assert.doesNotMatch(String(e.message), /\n\s+at /, "no stack trace");
}

test("completions and chat, streamed and not; models, health; the Jinja chat template", async () => {
  const { server, url } = await start({ models: [diffusion, ar, templated] });
  try {
    const models = (await (await fetch(`${url}/v1/models`)).json()) as {
      data: { id: string; decoder: string }[];
    };
    assert.deepEqual(
      models.data.map((m: { id: string; decoder: string }) => [m.id, m.decoder]),
      [
        ["tiny", "diffusion"],
        ["tiny-ar", "autoregressive"],
        ["chat", "diffusion"],
      ],
    );
    const health = (await (await fetch(`${url}/health`)).json()) as { status: string };
    assert.equal(health.status, "ok");

    const plain = await post(`${url}/v1/completions`, { prompt: "ab c", max_tokens: 6 });
    assert.equal(plain.status, 200, plain.text);
    const c = plain.json();
    assert.equal(c.object, "text_completion");
    assert.equal(c.model, "tiny");
    assert.equal(typeof c.choices[0].text, "string");
    assert.ok(["stop", "length"].includes(c.choices[0].finish_reason));
    assert.equal(c.usage.prompt_tokens, diffusion.tokenizer.encode("ab c").length);
    assert.equal(c.usage.total_tokens, c.usage.prompt_tokens + c.usage.completion_tokens);

    // streamed: the deltas put together are the text of the same request unstreamed
    const streamed = await post(`${url}/v1/completions`, {
      prompt: "ab c",
      max_tokens: 6,
      stream: true,
    });
    const data = sseData(streamed.text);
    assert.equal(data.at(-1), "[DONE]");
    const chunks = data.slice(0, -1).map((d) => JSON.parse(d));
    assert.equal(chunks.map((k) => k.choices[0].text).join(""), c.choices[0].text);
    assert.equal(chunks.at(-1).choices[0].finish_reason, c.choices[0].finish_reason);
    assert.deepEqual(chunks.at(-1).usage, c.usage);

    const arText = await post(`${url}/v1/completions`, {
      prompt: "ab",
      max_tokens: 5,
      model: "tiny-ar",
    });
    assert.equal(arText.status, 200, arText.text);
    assert.equal(arText.json().model, "tiny-ar");

    const chat = await post(`${url}/v1/chat/completions`, {
      messages: [{ role: "user", content: "ab" }],
      max_tokens: 4,
    });
    assert.equal(chat.status, 200, chat.text);
    assert.equal(chat.json().object, "chat.completion");
    assert.equal(chat.json().choices[0].message.role, "assistant");
    const plainPrompt = "user: ab\n\nassistant: ";
    assert.equal(chat.json().usage.prompt_tokens, diffusion.tokenizer.encode(plainPrompt).length);

    const jinja = await post(`${url}/v1/chat/completions`, {
      model: "chat",
      messages: [
        { role: "user", content: "ab" },
        { role: "assistant", content: "b" },
      ],
      max_tokens: 4,
      stream: true,
    });
    const first = JSON.parse(sseData(jinja.text)[0]);
    assert.equal(first.object, "chat.completion.chunk");
    assert.equal(first.choices[0].delta.role, "assistant");
    const last = JSON.parse(sseData(jinja.text).at(-2)!);
    assert.equal(last.usage.prompt_tokens, templated.tokenizer.encode("ab b c").length);
  } finally {
    await server.shutdown();
  }
});

test("a seeded request repeats exactly; stop sequences cut the text", async () => {
  const { server, url } = await start();
  try {
    const body = { prompt: "ab", max_tokens: 12, temperature: 1.5, seed: 7 };
    const a = await post(`${url}/v1/completions`, body);
    const b = await post(`${url}/v1/completions`, body);
    assert.equal(a.status, 200);
    assert.equal(a.json().choices[0].text, b.json().choices[0].text);
    const arBody = { ...body, model: "tiny-ar" };
    const arA = await post(`${url}/v1/completions`, arBody);
    const arB = await post(`${url}/v1/completions`, arBody);
    assert.equal(arA.json().choices[0].text, arB.json().choices[0].text);

    const text: string = a.json().choices[0].text;
    const cutAt = text.search(/\S/);
    assert.ok(cutAt >= 0, `a text to cut: ${JSON.stringify(text)}`);
    const cut = await post(`${url}/v1/completions`, { ...body, stop: ["x", text[cutAt]] });
    assert.equal(cut.json().choices[0].text, text.slice(0, cutAt));
    assert.equal(cut.json().choices[0].finish_reason, "stop");
  } finally {
    await server.shutdown();
  }
});

test("/infill as llama.cpp serves it, with the warm-up request, streamed and not", async () => {
  const { server, url } = await start();
  try {
    const warm = await post(`${url}/infill`, {
      input_prefix: "ab",
      input_suffix: "c",
      n_predict: 0,
    });
    assert.equal(warm.status, 200);
    assert.equal(warm.json().content, "");
    assert.equal(warm.json().tokens_predicted, 0);

    const body = {
      input_prefix: "a b\n",
      input_suffix: "\nc",
      input_extra: [{ filename: "x.ts", text: "ab ab" }],
      n_predict: 6,
      seed: 1,
    };
    const filled = await post(`${url}/infill`, body);
    assert.equal(filled.status, 200, filled.text);
    const f = filled.json();
    assert.equal(typeof f.content, "string");
    assert.equal(f.stop, true);
    assert.ok(f.tokens_predicted <= 6);
    assert.ok(["eos", "limit", "word"].includes(f.stop_type));

    const streamed = await post(`${url}/infill`, { ...body, stream: true });
    const events = sseData(streamed.text).map((d) => JSON.parse(d));
    assert.equal(events.at(-1).stop, true);
    assert.ok(events.slice(0, -1).every((e) => e.stop === false));
    assert.equal(events.map((e) => e.content).join(""), f.content);

    // a file far longer than the context: cut around the hole, the hole whole
    const long = await post(`${url}/infill`, {
      input_prefix: "ab ".repeat(300),
      input_suffix: " c".repeat(300),
      n_predict: 8,
    });
    assert.equal(long.status, 200, long.text);
    assert.equal(long.json().truncated, true);
    assertError(
      await post(`${url}/infill`, { input_prefix: "a", n_predict: 1000 }),
      400,
      "invalid_value",
      "n_predict",
    );

    // a causal model fills the hole through its FIM tokens, left to right, the hole its budget
    const ar = await post(`${url}/infill`, { ...body, model: "tiny-ar", temperature: 0 });
    assert.equal(ar.status, 200, ar.text);
    const a = ar.json();
    assert.equal(a.model, "tiny-ar");
    assert.ok(a.tokens_predicted <= 6);
    assert.ok(["eos", "limit"].includes(a.stop_type));
    const arStreamed = await post(`${url}/infill`, {
      ...body,
      model: "tiny-ar",
      temperature: 0,
      stream: true,
    });
    const arEvents = sseData(arStreamed.text).map((d) => JSON.parse(d));
    assert.equal(arEvents.map((e) => e.content).join(""), a.content);
  } finally {
    await server.shutdown();
  }
});

test("the denoise stream: start, one event per step, the result", async () => {
  const { server, url } = await start();
  try {
    const r = await post(`${url}/v1/denoise`, { prompt: "ab", max_tokens: 8, steps: 4 });
    assert.equal(r.status, 200);
    const data = sseData(r.text);
    assert.equal(data.at(-1), "[DONE]");
    const events = data.slice(0, -1).map((d) => JSON.parse(d));
    const [startEvent, ...rest] = events;
    const steps = rest.filter((e) => e.type === "step");
    const result = rest.at(-1);
    assert.equal(startEvent.type, "start");
    assert.equal(startEvent.canvas_length, startEvent.tokens.length);
    assert.deepEqual(startEvent.view, [startEvent.canvas_length - 8, startEvent.canvas_length]);
    assert.equal(result.type, "result");
    assert.equal(steps.length, result.steps);
    assert.ok(steps.length >= 1 && steps.length <= 4);
    const mask = startEvent.mask_token_id;
    let masked = 8;
    for (const [i, s] of steps.entries()) {
      assert.equal(s.step, i);
      assert.equal(s.tokens.length, startEvent.canvas_length);
      for (const c of s.revealed) {
        assert.notEqual(s.tokens[c.position], mask);
        assert.ok(c.confidence >= 0 && c.confidence <= 1);
      }
      masked -= s.revealed.length - s.remasked.length;
      assert.equal(s.masked, s.tokens.filter((t: number) => t === mask).length);
    }
    assert.ok(masked >= 0);
    assert.equal(result.forward_passes, steps.at(-1).forwards);

    const infill = await post(`${url}/v1/denoise`, { parts: ["ab ", { hole: 3 }, " c"] });
    const last = JSON.parse(sseData(infill.text).at(-2)!);
    assert.equal(last.type, "result");
    const arRun = await post(`${url}/v1/denoise`, {
      prompt: "ab",
      max_tokens: 3,
      model: "tiny-ar",
    });
    const arEvents = sseData(arRun.text)
      .slice(0, -1)
      .map((d) => JSON.parse(d));
    assert.equal(arEvents[0].decoder, "autoregressive");
    assert.ok(arEvents.filter((e) => e.type === "step").every((e) => e.revealed.length === 1));
  } finally {
    await server.shutdown();
  }
});

test("bad requests: the right status and an OpenAI-shaped error naming the field", async () => {
  const { server, url } = await start({ maxBodyBytes: 2048 });
  try {
    const c = `${url}/v1/completions`;
    assertError(await post(c, "{not json"), 400, "invalid_json", null);
    assertError(await post(c, "[1, 2]"), 400, "invalid_json", null);
    assertError(await post(c, { prompt: "a", max_tokens: "5" }), 400, "invalid_type", "max_tokens");
    assertError(await post(c, { prompt: "a", max_tokens: -3 }), 400, "invalid_value", "max_tokens");
    assertError(
      await post(c, { prompt: "a", max_tokens: 5000 }),
      400,
      "invalid_value",
      "max_tokens",
    );
    assertError(
      await post(c, { prompt: "a", temperature: -1 }),
      400,
      "invalid_value",
      "temperature",
    );
    assertError(await post(c, { prompt: 7 }), 400, "invalid_type", "prompt");
    assertError(await post(c, { prompt: "a", strategy: "best" }), 400, "invalid_value", "strategy");
    assertError(await post(c, { prompt: "a", model: "gpt-4" }), 404, "model_not_found", "model");
    assertError(
      await post(c, { prompt: "a", max_tokens: 4, steps: 9 }),
      400,
      "invalid_value",
      "steps",
    );
    assertError(await post(c, { prompt: "a".repeat(4000) }), 413, "body_too_large", null);
    // the decode service's rule for ignored options, as for the CLI
    assertError(await post(c, { prompt: "a", threshold: 0.5 }), 400, "ignored_option", "threshold");
    assertError(
      await post(c, { prompt: "a", model: "tiny-ar", steps: 4 }),
      400,
      "ignored_option",
      "steps",
    );
    assertError(
      await post(c, { prompt: "a", strategy: "fast-dllm", steps: 4 }),
      400,
      "ignored_option",
      "steps",
    );
    // unknown fields are ignored
    const ok = await post(c, { prompt: "a", max_tokens: 2, user: "x", logit_bias: {} });
    assert.equal(ok.status, 200, ok.text);
    const wrongMethod = await fetch(c);
    assert.equal(wrongMethod.status, 405);
    assertError(await post(`${url}/v2/nothing`, {}), 404, "not_found", null);
  } finally {
    await server.shutdown();
  }
});

test("the per-request time limit: 504 unstreamed, an error event streamed", async () => {
  // 1 ms cannot hold 500 steps of the slow model: the limit always ends the run first
  const { server, url } = await start({ models: [slow], timeLimitMs: 1 });
  try {
    const body = { prompt: "ab", max_tokens: 500 };
    assertError(await post(`${url}/v1/completions`, body), 504, "request_timeout", null);
    const streamed = await post(`${url}/v1/completions`, { ...body, stream: true });
    const data = sseData(streamed.text);
    assert.equal(data.at(-1), "[DONE]");
    assert.equal(JSON.parse(data.at(-2)!).error.code, "request_timeout");
    assert.equal(server.slots.state.busy, 0);
  } finally {
    await server.shutdown();
  }
});

test("the API key: missing or wrong is 401, right is served; /health needs none", async () => {
  const { server, url } = await start({ apiKey: "s3cret" });
  try {
    const c = `${url}/v1/completions`;
    const body = { prompt: "a", max_tokens: 2 };
    assertError(await post(c, body), 401, "invalid_api_key", null);
    assertError(
      await post(c, body, { Authorization: "Bearer s3cre" }),
      401,
      "invalid_api_key",
      null,
    );
    assertError(await post(c, body, { Authorization: "s3cret" }), 401, "invalid_api_key", null);
    assert.equal((await post(c, body, { Authorization: "Bearer s3cret" })).status, 200);
    assert.equal((await fetch(`${url}/health`)).status, 200);
    assert.equal((await fetch(`${url}/v1/models`)).status, 401);
  } finally {
    await server.shutdown();
  }
});

/** A model whose forward calls wait until the gate opens. */
function gated(loaded: LoadedModel): { loaded: LoadedModel; open: () => void } {
  let open = () => {};
  const gate = new Promise<void>((resolve) => {
    open = resolve;
  });
  const model: LanguageModel = {
    config: loaded.model.config,
    forward: async (r: ForwardRequest) => {
      await gate;
      return loaded.model.forward(r);
    },
    dispose: async () => {},
  };
  return { loaded: { ...loaded, model }, open };
}

test("a burst over the queue bound: 429 with Retry-After, every accepted request answered once", async () => {
  const g = gated(diffusion);
  const { server, url } = await start({ models: [g.loaded], slots: 2, queue: 3 });
  try {
    const burst = Array.from({ length: 9 }, (_, i) =>
      post(`${url}/v1/completions`, { prompt: "ab", max_tokens: 4, seed: i }),
    );
    // while the gate is shut, 2 run and 3 wait: the other 4 are answered at once
    let answered = 0;
    let fourAnswered = () => {};
    const four = new Promise<void>((resolve) => {
      fourAnswered = resolve;
    });
    const settled = burst.map((p) =>
      p.then((r) => {
        if (++answered === 4) fourAnswered();
        return r;
      }),
    );
    await four;
    const refused = (await Promise.all(settled.map((p) => Promise.race([p, null])))).filter(
      (r) => r !== null,
    );
    assert.equal(refused.length, 4);
    g.open();
    const all = await Promise.all(settled);
    assert.equal(all.filter((r) => r.status === 429).length, 4);
    for (const r of refused) {
      assertError(r, 429, "queue_full", null);
      assert.equal(r.headers.get("retry-after"), "1");
    }
    const served = all.filter((r) => r.status === 200);
    assert.equal(served.length, 5);
    const ids = new Set(served.map((r) => r.json().id));
    assert.equal(ids.size, 5, "each accepted request answered once, with its own answer");
  } finally {
    await server.shutdown();
  }
});

test("a client that disconnects cancels its run within a step and frees its slot", async () => {
  const { server, url } = await start({ models: [slow], slots: 1, queue: 1 });
  try {
    const controller = new AbortController();
    const res = await fetch(`${url}/v1/denoise`, {
      method: "POST",
      body: JSON.stringify({ prompt: "ab", max_tokens: 500 }),
      signal: controller.signal,
    });
    const reader = res.body!.getReader();
    let seen = "";
    while (!seen.includes('"type":"step"'))
      seen += new TextDecoder().decode((await reader.read()).value);
    controller.abort();
    // with one slot, this request is served only once the first one has let go of it
    const next = await post(`${url}/v1/completions`, { prompt: "ab", max_tokens: 2 });
    assert.equal(next.status, 200);
    const calls = server.batchStats().slow.calls;
    assert.ok(calls < 500, `the abandoned run stopped early: ${calls} forward calls of 500`);
    assert.equal(server.slots.state.busy, 0);
  } finally {
    await server.shutdown();
  }
});

test("batched forward calls give each caller what the model gives it alone", async () => {
  const { BatchingModel } = await import("../src/serve/batch.js");
  const { planGenerate, settle, supervise } = await import("../src/host/decode.js");
  const batching = new BatchingModel(diffusion.model);
  const batched = { ...diffusion, model: batching };
  const prompts = ["ab", "ba", "cc", "a b"].map((p) => diffusion.tokenizer.encode(p));
  const run = (loaded: LoadedModel, ids: number[], seed: number) =>
    settle(
      supervise(
        planGenerate(loaded, { decoder: "diffusion", length: 6, temperature: 1, seed }, ids).start,
      ),
    );
  const together = await Promise.all(prompts.map((p, i) => run(batched, p, i)));
  const alone = [];
  for (const [i, p] of prompts.entries()) alone.push(await run(diffusion, p, i));
  for (const [i, r] of together.entries()) {
    assert.deepEqual(Array.from(r.result.canvas), Array.from(alone[i].result.canvas));
  }
  assert.ok(batching.stats.batches < batching.stats.calls, "forward calls were shared");

  // statistics instead of logits (what a lean step asks for), with different positions per call
  const statsReqs: ForwardRequest[] = [1, 3].map((p, k) => ({
    tokens: Int32Array.from({ length: 6 }, (_, i) => 4 + ((i * (k + 2)) % 7)),
    rows: 1,
    logitsAt: Int32Array.from({ length: p }, (_, i) => i * 2),
    logits: false,
    stats: {
      topK: 2,
      exclude: Int32Array.of(1),
      scoreTokens: Int32Array.from({ length: p }, () => 5),
    },
  }));
  const statsMany = await Promise.all(statsReqs.map((r) => batching.forward(r)));
  for (const [k, r] of statsReqs.entries()) {
    const one = await diffusion.model.forward(r);
    const got = statsMany[k].stats!;
    assert.equal(statsMany[k].logits.length, 0);
    assert.deepEqual(Array.from(got.ids), Array.from(one.stats!.ids));
    for (const key of ["logProbs", "logSumExp", "entropy", "scoreLogProbs"] as const) {
      const a = got[key]!;
      const b = one.stats![key]!;
      assert.equal(a.length, b.length, key);
      for (let i = 0; i < b.length; i++) assert.ok(Math.abs(a[i] - b[i]) < 1e-4, key);
    }
  }

  // at the forward level: different logit counts and a K/V context, logits and K/V close
  const cfg = diffusion.config;
  const reqs: ForwardRequest[] = [0, 1, 2].map((k) => ({
    tokens: Int32Array.from({ length: 5 }, (_, i) => 4 + ((i + k) % 6)),
    rows: 1,
    logitsAt: Int32Array.from({ length: k + 1 }, (_, i) => i),
    returnKv: true,
  }));
  const many = await Promise.all(reqs.map((r) => batching.forward(r)));
  for (const [k, r] of reqs.entries()) {
    const one = await diffusion.model.forward(r);
    assert.equal(many[k].positions, one.positions);
    assert.equal(many[k].logits.length, (k + 1) * cfg.vocabSize);
    for (let i = 0; i < one.logits.length; i++) {
      assert.ok(Math.abs(many[k].logits[i] - one.logits[i]) < 1e-4);
    }
    for (let l = 0; l < cfg.numLayers; l++) {
      assert.equal(many[k].kv!.keys[l].length, one.kv!.keys[l].length);
      for (let i = 0; i < one.kv!.keys[l].length; i++) {
        assert.ok(Math.abs(many[k].kv!.keys[l][i] - one.kv!.keys[l][i]) < 1e-4);
      }
    }
  }

  // contexts of different lengths share a call (padded, the padding hidden by the bias): a
  // causal and a bidirectional model, logits and the K/V handed back as each call alone gives them
  for (const loaded of [ar, diffusion]) {
    const model = new BatchingModel(loaded.model);
    const { numLayers } = loaded.config;
    const prefixes = [3, 7, 5].map((len, k) =>
      Int32Array.from({ length: len }, (_, i) => 4 + ((i * (k + 1)) % 6)),
    );
    const contexts = await Promise.all(
      prefixes.map(
        async (tokens) => (await loaded.model.forward({ tokens, rows: 1, returnKv: true })).kv!,
      ),
    );
    const steps: ForwardRequest[] = contexts.map((context, k) => ({
      tokens: Int32Array.of(5 + k, 4),
      rows: 1,
      context,
      returnKv: true,
    }));
    const before = model.stats.batches;
    const together = await Promise.all(steps.map((r) => model.forward(r)));
    assert.equal(model.stats.batches - before, 1, "one engine call for the three");
    for (const [k, r] of steps.entries()) {
      const one = await loaded.model.forward(r);
      const got = together[k];
      assert.equal(got.logits.length, one.logits.length);
      for (let i = 0; i < one.logits.length; i++) {
        assert.ok(Math.abs(got.logits[i] - one.logits[i]) < 1e-4, `${loaded.name} logit ${i}`);
      }
      assert.equal(got.kv!.length, prefixes[k].length + 2);
      for (let l = 0; l < numLayers; l++) {
        for (const key of ["keys", "values"] as const) {
          const a = got.kv![key][l];
          const b = one.kv![key][l];
          assert.equal(a.length, b.length);
          for (let i = 0; i < b.length; i++) assert.ok(Math.abs(a[i] - b[i]) < 1e-4, key);
        }
      }
    }
  }

  // AR decodes of prompts of different lengths, batched step by step, write what each writes alone
  const arBatched = { ...ar, model: new BatchingModel(ar.model) };
  const arRun = (loaded: LoadedModel, ids: number[]) =>
    settle(supervise(planGenerate(loaded, { decoder: "autoregressive", length: 6 }, ids).start));
  const arPrompts = ["a", "ab c", "ba"].map((p) => ar.tokenizer.encode(p));
  const arTogether = await Promise.all(arPrompts.map((p) => arRun(arBatched, p)));
  for (const [i, p] of arPrompts.entries()) {
    const alone = await arRun(ar, p);
    assert.deepEqual(Array.from(arTogether[i].result.canvas), Array.from(alone.result.canvas));
  }
  const arStats = (arBatched.model as InstanceType<typeof BatchingModel>).stats;
  assert.ok(arStats.batches < arStats.calls, "AR steps of different lengths were shared");
});

test("load: 8 concurrent clients × 25 requests, every one answered once, memory bounded", async () => {
  const { server, url } = await start({ slots: 8, queue: 8 });
  try {
    const before = process.memoryUsage().rss;
    const answered: string[] = [];
    await Promise.all(
      Array.from({ length: 8 }, async (_, client) => {
        for (let k = 0; k < 25; k++) {
          const r = await post(`${url}/v1/completions`, {
            prompt: "ab c",
            max_tokens: 8,
            seed: client * 100 + k,
            stream: k % 2 === 1,
          });
          assert.equal(r.status, 200, r.text);
          answered.push(`${client}/${k}`);
        }
      }),
    );
    assert.equal(new Set(answered).size, 200);
    const grown = (process.memoryUsage().rss - before) / 2 ** 20;
    // stated bound: the resident set grows by less than 150 MiB over the 200 requests
    assert.ok(grown < 150, `rss grew by ${grown.toFixed(1)} MiB`);
    const stats = server.batchStats().tiny;
    assert.ok(stats.batches < stats.calls, "concurrent requests shared forward passes");
  } finally {
    await server.shutdown();
  }
});

test("unmask serve as a process: API key from the environment; SIGTERM mid-request exits 0", async () => {
  const served = startServe(["--model", join(dir, "slow"), "--ar-model", join(dir, "tiny-ar")], {
    env: { ...process.env, UNMASK_API_KEY: "k3y" },
    stdio: ["ignore", "ignore", "pipe"],
  });
  const url = await served.url;
  assert.match(served.stderr(), /API key required/);
  assert.match(url, /^http:\/\/127\.0\.0\.1:/, "loopback by default");
  assert.equal((await post(`${url}/v1/completions`, { prompt: "a" })).status, 401);
  const res = await fetch(`${url}/v1/denoise`, {
    method: "POST",
    headers: { Authorization: "Bearer k3y" },
    body: JSON.stringify({ prompt: "ab", max_tokens: 40 }),
  });
  const reader = res.body!.getReader();
  let seen = "";
  while (!seen.includes('"type":"step"'))
    seen += new TextDecoder().decode((await reader.read()).value);
  served.child.kill("SIGTERM");
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    seen += new TextDecoder().decode(value);
  }
  assert.match(seen, /"type":"result"/, "the request in flight was finished");
  assert.ok(seen.endsWith("data: [DONE]\n\n"));
  assert.equal(await served.exited, 0, served.stderr());
  assert.match(served.stderr(), /shutting down/);
});

test("unmask serve --quant --device --family: the models loaded so and served over HTTP; bad values are usage errors", async () => {
  const { cli } = await import("./cli-helpers.js");
  const pair = ["--model", join(dir, "tiny"), "--ar-model", join(dir, "tiny-ar")];
  const served = startServe([...pair, "--quant", "int8", "--device", "cpu", "--family", "unmask"], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  const url = await served.url;
  assert.match(served.stderr(), /models: tiny, tiny-ar; int8 weights; on cpu\)/);
  for (const model of ["tiny", "tiny-ar"]) {
    const r = await post(`${url}/v1/completions`, { model, prompt: "ab", max_tokens: 4, seed: 1 });
    assert.equal(r.status, 200, r.text);
    assert.equal(typeof r.json().choices[0].text, "string");
  }
  served.child.kill("SIGTERM");
  assert.equal(await served.exited, 0, served.stderr());
  for (const [flag, value, message] of [
    ["--quant", "int3", /--quant: expected int8 or int4 or int4-lean, got "int3"/],
    ["--device", "tpu", /--device: expected cpu or cuda, got "tpu"/],
    ["--family", "nope", /--family: expected one of unmask, .*, got "nope"/],
  ] as const) {
    const bad = await cli(["serve", "--port", "0", ...pair, flag, value]);
    assert.equal(bad.code, 2, `${flag} ${value}: ${bad.stderr}`);
    assert.match(bad.stderr, message);
  }
  // a family the checkpoint is not: the loader's typed error names its config.json
  const wrong = await cli(["serve", "--port", "0", ...pair, "--family", "llada"]);
  assert.notEqual(wrong.code, 0);
  assert.match(wrong.stderr, /config\.json/);
});

test("bench serve --json: one client against eight, in one run", async () => {
  const { cli } = await import("./cli-helpers.js");
  const args = ["bench", "serve", "--model", join(dir, "tiny"), "--ar-model", join(dir, "tiny-ar")];
  const r = await cli([...args, "--presets", "llada", "--length", "4", "--runs", "1", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.single.clients, 1);
  assert.equal(out.concurrent.clients, 8);
  assert.equal(out.concurrent.requests, 16, "2 rounds × 8 clients × 1 request");
  assert.ok(out.single.completion_tokens > 0 && out.concurrent.completion_tokens > 0);
  assert.equal(out.throughput_ratio, out.concurrent.tokens_per_s / out.single.tokens_per_s);
  assert.equal(out.batching.calls > 0, true);
  const bad = await cli([...args, "--presets", "llada,dream"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--presets: serve times one strategy/);
  // the AR twin's requests
  const ar = await cli([...args, "--ar", "--length", "4", "--runs", "1", "--json"]);
  assert.equal(ar.code, 0, ar.stderr);
  assert.equal(JSON.parse(ar.stdout).model, "tiny-ar");
  // an option the benchmark would not read is refused, never ignored
  const ignored = await cli([...args, "--canvas", "16"]);
  assert.equal(ignored.code, 2);
  assert.match(
    ignored.stderr,
    /--canvas: bench serve does not read it \(it is an option of bench forward\)/,
  );
  const arStrategy = await cli([...args, "--ar", "--presets", "llada"]);
  assert.equal(arStrategy.code, 2);
  assert.match(arStrategy.stderr, /--presets with --ar/);
});

test("the denoise stream's fix form: the least likely tokens re-masked, then written again", async () => {
  const { server, url } = await start();
  try {
    const source = "ab ba ab ba ab";
    const ids = diffusion.tokenizer.encode(source);
    const r = await post(`${url}/v1/denoise`, { source, below: 1, max_fraction: 0.5 });
    assert.equal(r.status, 200);
    const events = sseData(r.text)
      .slice(0, -1)
      .map((d) => JSON.parse(d));
    const [startEvent, scoring] = events;
    const result = events.at(-1);
    assert.deepEqual(startEvent.tokens, ids);
    assert.deepEqual(startEvent.view, [0, ids.length]);
    assert.ok(startEvent.pieces.every((p: string | null) => p !== null));
    // the scoring pass: every token has probability < 1, so below 1 re-masks the bound's share
    const chosen = scoring.remasked.map((c: { position: number }) => c.position);
    assert.equal(chosen.length, Math.floor(0.5 * ids.length));
    for (const c of scoring.remasked) {
      assert.equal(c.token, ids[c.position]);
      assert.equal(scoring.tokens[c.position], startEvent.mask_token_id);
    }
    assert.equal(scoring.tokens_per_s, 0, "re-masking the input reveals nothing");
    assert.ok(events.every((e) => e.type !== "step" || e.tokens_per_s >= 0));
    assert.equal(result.type, "result");
    assert.deepEqual(result.remasked, chosen);
    assert.equal(result.usage.completion_tokens, chosen.length);
    // the canvas after the last step: the source where nothing was re-masked
    const final = events.filter((e) => e.type === "step").at(-1).tokens;
    assert.equal(result.text, diffusion.tokenizer.decode(final, { skipSpecialTokens: true }));
    for (let i = 0; i < ids.length; i++) {
      if (!chosen.includes(i)) assert.equal(final[i], ids[i], `position ${i} was not re-masked`);
    }
    for (const i of result.changed) assert.ok(chosen.includes(i));

    const d = `${url}/v1/denoise`;
    assertError(await post(d, { source: "ab", prompt: "ab" }), 400, "invalid_value", null);
    assertError(await post(d, { source: "" }), 400, "invalid_value", "source");
    assertError(await post(d, { source: "ab", below: 0 }), 400, "invalid_value", "below");
    assertError(
      await post(d, { source: "ab", max_fraction: 2 }),
      400,
      "invalid_value",
      "max_fraction",
    );
    assertError(
      await post(d, { source: "ab", max_tokens: 4 }),
      400,
      "ignored_option",
      "max_tokens",
    );
    assertError(await post(d, { prompt: "ab", below: 0.5 }), 400, "ignored_option", "below");
    assertError(await post(d, { source: "ab", model: "tiny-ar" }), 400, "invalid_value", "model");
  } finally {
    await server.shutdown();
  }
});

test("drawn pieces of characters split across tokens join to the canvas's text", async () => {
  const tokenizer = await Tokenizer.load("models/unmask-code/tokenizer.json");
  const text = 'const s = "café → 日本語 😀";';
  const ids = tokenizer.encode(text);
  const piece = (t: number) => tokenizer.decode([t]);
  const decode = (x: number[]) => tokenizer.decode(x);
  // the embedded byte-level BPE splits these characters: alone, a token is a broken character
  assert.ok(ids.some((t) => piece(t).includes("\uFFFD")));
  const pieces = canvasPieces(ids, -1, piece, decode);
  assert.equal(pieces.join(""), text);
  assert.ok(pieces.every((p) => p !== null && !p.includes("\uFFFD")));
  // a mask between the bytes of a character leaves both sides drawn as they are
  const e = ids.findIndex((t) => piece(t).includes("\uFFFD"));
  const masked = ids.map((t, i) => (i === e + 1 ? 9999 : t));
  const split = canvasPieces(masked, 9999, piece, decode);
  assert.equal(split[e + 1], null);
  assert.equal(split.slice(0, e).join(""), tokenizer.decode(ids.slice(0, e)));
});

/** `unmask serve --port 0 …args` as a process: its listening URL (from its stderr), its exit code, its stderr so far. */
function startServe(args: string[], options: Parameters<typeof spawn>[2]) {
  const child = spawn(process.execPath, [main, "serve", "--port", "0", ...args], options);
  let stderr = "";
  const exited = new Promise<number | null>((resolve) => child.on("close", resolve));
  const url = new Promise<string>((resolve, reject) => {
    child.stderr!.on("data", (d: Buffer) => {
      stderr += d.toString();
      const m = /listening on (http:\/\/[^ ]+)/.exec(stderr);
      if (m) resolve(m[1]);
    });
    child.on("close", () => reject(new Error(stderr)));
  });
  return { child, url, exited, stderr: () => stderr };
}
