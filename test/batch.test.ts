// The batcher's kept K/V and its choice of the next call, on tiny random models: views of a
// batched call's K/V against copies, a kept cache fed again against the stack made anew and
// against each call alone, decodes that join and leave a batch mid-run against each decode alone,
// and which queued calls run next (a gated engine: nothing here waits on a clock).

import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { decodeAr } from "../src/diffusion/ar.js";
import { denoise } from "../src/diffusion/denoise.js";
import { composeRanges, KvView, sliceKv } from "../src/diffusion/kv.js";
import type { DecodeResult, StepEvent } from "../src/diffusion/types.js";
import type { ModelConfig } from "../src/model/config.js";
import { OnnxModel } from "../src/model/engine.js";
import { randomWeights } from "../src/model/random.js";
import type { ForwardRequest, ForwardResult, KvCache, LanguageModel } from "../src/model/types.js";
import { BatchingModel } from "../src/serve/batch.js";
import { relativeError, tinyModelConfig } from "./tiny-config.js";

const models: LanguageModel[] = [];
after(async () => {
  for (const m of models) await m.dispose();
});

async function tiny(over: Record<string, unknown>): Promise<OnnxModel> {
  const config = tinyModelConfig({ mask_token_id: 0, eos_token_id: 1, ...over });
  const model = await OnnxModel.create(config, randomWeights(config, 5, 0.5), { threads: 1 });
  models.push(model);
  return model;
}

const ids = (n: number, seed: number) =>
  Int32Array.from({ length: n }, (_, i) => 2 + ((i * (seed + 3) + seed) % 20));

/** A cache whose every number tells its row, layer, keys or values, head, position and dim. */
function numbered(config: ModelConfig, rows: number, length: number): KvCache {
  const { numKvHeads: heads, headDim: d } = config;
  const layer = (l: number, v: number) =>
    Float32Array.from({ length: rows * heads * length * d }, (_, i) => {
      const dim = i % d;
      const position = Math.floor(i / d) % length;
      const rh = Math.floor(i / (d * length));
      return ((((rh * 2 + v) * 4 + l) * 100 + position) * 10 + dim) / 1e4;
    });
  const layers = (v: number) => Array.from({ length: config.numLayers }, (_, l) => layer(l, v));
  return { rows, length, keys: layers(0), values: layers(1) };
}

function assertKvClose(a: KvCache, b: KvCache, what: string) {
  assert.equal(a.rows, b.rows, `${what}: rows`);
  assert.equal(a.length, b.length, `${what}: length`);
  for (let l = 0; l < b.keys.length; l++) {
    assert.ok(relativeError(a.keys[l], b.keys[l]) <= 1e-4, `${what}: keys of layer ${l}`);
    assert.ok(relativeError(a.values[l], b.values[l]) <= 1e-4, `${what}: values of layer ${l}`);
  }
}

/** A cache's own arrays, for the engine alone (a view's cut from its source, the view left unread). */
const copied = (config: ModelConfig, kv: KvCache): KvCache =>
  kv instanceof KvView ? sliceKv(config, kv.source, kv.columns, [kv.row, kv.rows]) : kv;

/** Checks a batched result against the engine's alone (reading a view's K/V from its source). */
function assertResultClose(
  config: ModelConfig,
  got: ForwardResult,
  want: ForwardResult,
  what: string,
) {
  assert.equal(got.positions, want.positions, `${what}: positions`);
  assert.ok(relativeError(got.logits, want.logits) <= 1e-4, `${what}: logits`);
  if (want.kv !== undefined) assertKvClose(copied(config, got.kv!), want.kv, `${what}: K/V`);
}

describe("K/V views", () => {
  const config = tinyModelConfig();

  it("composes ranges: positions of a view are the source columns it names", () => {
    assert.deepEqual(
      composeRanges(
        [
          [2, 5],
          [9, 12],
        ],
        [[1, 5]],
      ),
      [
        [3, 5],
        [9, 11],
      ],
    );
    assert.deepEqual(
      composeRanges(
        [[0, 7]],
        [
          [0, 3],
          [3, 5],
          [6, 7],
        ],
      ),
      [
        [0, 5],
        [6, 7],
      ],
    );
    assert.deepEqual(composeRanges([[4, 6]], [[1, 1]]), []);
  });

  it("a view's arrays are the rows and columns it names; a slice of a view is a view equal to the slice of its copy", () => {
    const source = numbered(config, 3, 10);
    const columns: [number, number][] = [
      [1, 4],
      [6, 9],
    ];
    const view = new KvView(config, source, 1, 2, columns);
    assert.equal(view.length, 6);
    assert.deepEqual(view.keys, sliceKv(config, source, columns, [1, 2]).keys);
    const ranges: [number, number][] = [
      [0, 2],
      [3, 6],
    ];
    const sliced = sliceKv(config, view, ranges);
    assert.ok(sliced instanceof KvView, "no copy made");
    assert.deepEqual(sliced.keys, sliceKv(config, copied(config, view), ranges).keys);
    assert.deepEqual(sliced.values, sliceKv(config, copied(config, view), ranges).values);
    assert.throws(() => sliceKv(config, view, [[4, 7]]), RangeError);
  });
});

describe("the kept cache", () => {
  it("fed again as it is, gives each call what the engine gives it alone; any other set is stacked anew", async () => {
    const model = await tiny({ attention_mask: "causal" });
    const batching = new BatchingModel(model);
    // three prompts of different lengths, each alone: caches of their own
    const prompts = [3, 7, 5].map((n, k) => ids(n, k));
    const first = await Promise.all(
      prompts.map((tokens) => model.forward({ tokens, rows: 1, returnKv: true })),
    );
    const step = (context: KvCache, k: number): ForwardRequest => ({
      tokens: Int32Array.of(3 + k),
      rows: 1,
      context,
      returnKv: true,
    });
    /** Runs the steps batched; checks each against the engine alone; returns the views. */
    const check = async (contexts: KvCache[], what: string, stacks: number) => {
      const before = { ...batching.stats };
      const together = await Promise.all(contexts.map((c, k) => batching.forward(step(c, k))));
      assert.equal(batching.stats.batches - before.batches, 1, `${what}: one engine call`);
      assert.equal(batching.stats.stacked - before.stacked, stacks, `${what}: stacked anew`);
      for (const c of contexts) {
        if (c instanceof KvView) assert.ok(!c.copiedOut, `${what}: a view fed was not copied out`);
      }
      for (const [k, c] of contexts.entries()) {
        const alone = await model.forward(step(copied(model.config, c), k));
        assertResultClose(model.config, together[k], alone, `${what}, row ${k}`);
      }
      return together.map((r) => r.kv!);
    };
    // stacked (padded to the longest, the padding hidden by the bias), the K/V handed back as
    // views of the call's output; fed again as they are, twice (each row's own positions, then
    // the padding, then its fresh ones)
    let kv = await check(
      first.map((r) => r.kv!),
      "contexts of different lengths",
      1,
    );
    for (const out of kv) assert.ok(out instanceof KvView);
    kv = await check(kv, "views of one call", 0);
    kv = await check(kv, "the grown cache", 0);
    // the same views in another order: still the one output
    await check([kv[2], kv[0], kv[1]], "reordered", 0);
    // a row leaves: stacked anew (from the views' source, no copy of them made first)
    const left = await check([kv[0], kv[2]], "a row left", 1);
    await check(left, "after the row left", 0);
    // a row joins: a context of its own beside two views
    const own = (await model.forward({ tokens: ids(4, 9), rows: 1, returnKv: true })).kv!;
    const joined = await check([left[0], own, left[1]], "a row joined", 1);
    await check(joined, "after the row joined", 0);
  });

  it("a dual cache (views with a hole) stays one array for its block", async () => {
    const model = await tiny({});
    const batching = new BatchingModel(model);
    const L = 12;
    const canvases = [0, 1, 2].map((k) => ids(L, k));
    const full = await Promise.all(
      canvases.map((tokens) => batching.forward({ tokens, rows: 1, returnKv: true })),
    );
    // the block [4, 8) left out of each cache, as Fast-dLLM's dual cache does
    const hole: [number, number][] = [
      [0, 4],
      [8, L],
    ];
    const caches = full.map((r) => sliceKv(model.config, r.kv!, hole));
    const block = (context: KvCache, k: number): ForwardRequest => ({
      tokens: canvases[k].subarray(4, 8),
      rows: 1,
      positions: Int32Array.of(4, 5, 6, 7),
      context,
      logitsAt: Int32Array.of(1, 3),
    });
    for (let s = 0; s < 3; s++) {
      const before = batching.stats.stacked;
      const together = await Promise.all(caches.map((c, k) => batching.forward(block(c, k))));
      assert.equal(batching.stats.stacked, before, "no stack made");
      for (const c of caches) assert.ok(c instanceof KvView && !c.copiedOut, "no copy made");
      for (const [k, c] of caches.entries()) {
        const alone = await model.forward(block(copied(model.config, c), k));
        assertResultClose(model.config, together[k], alone, `step ${s}, row ${k}`);
      }
    }
  });
});

/** Runs a decode to its end, calling `onStep` with each event. */
async function drain(
  run: AsyncGenerator<StepEvent, DecodeResult, undefined>,
  onStep: (step: number) => void = () => {},
): Promise<DecodeResult> {
  for (let step = 0; ; step++) {
    const next = await run.next();
    if (next.done === true) return next.value;
    onStep(step);
  }
}

describe("decodes joining and leaving a batch mid-run", () => {
  it("AR decodes of different prompts and lengths, started at different steps, write what each writes alone", async () => {
    const model = await tiny({ attention_mask: "causal" });
    const batching = new BatchingModel(model);
    const jobs = [
      { prompt: ids(3, 1), maxTokens: 9 },
      { prompt: ids(6, 2), maxTokens: 4 },
      { prompt: ids(2, 3), maxTokens: 7 },
      { prompt: ids(5, 4), maxTokens: 6 },
    ];
    const run = (m: LanguageModel, k: number) =>
      decodeAr(m, jobs[k].prompt, { maxTokens: jobs[k].maxTokens, stopAtEos: false });
    // the first two start together; the third joins after the first's 2nd token, the fourth
    // after its 5th (the second has left by then)
    await assertJoinedRunsAlone(model, batching, run, { 1: 2, 4: 3 }, 2);
  });

  it("dual-cache diffusion decodes, one joining mid-run, write what each writes alone", async () => {
    const model = await tiny({});
    const batching = new BatchingModel(model);
    const canvas = (k: number) => {
      const x = new Int32Array(20).fill(0);
      x.set(ids(4 + k, k));
      return x;
    };
    const run = (m: LanguageModel, k: number) =>
      denoise(
        m,
        { tokens: canvas(k), openEnded: true, view: [4 + k, 20] },
        { preset: "fast-dllm-small", stopAtEos: false },
      );
    await assertJoinedRunsAlone(model, batching, run, { 3: 2 }, 4);
  });
});

/** An engine that runs a call only when the test lets it, and notes each call's rows and length. */
class Gated implements LanguageModel {
  readonly calls: { rows: number; n: number }[] = [];
  private waiting: (() => void)[] = [];
  constructor(private readonly inner: LanguageModel) {}
  get config() {
    return this.inner.config;
  }
  async forward(request: ForwardRequest): Promise<ForwardResult> {
    this.calls.push({ rows: request.rows, n: request.tokens.length / request.rows });
    await new Promise<void>((go) => this.waiting.push(go));
    return this.inner.forward(request);
  }
  /** Lets the calls made so far run. */
  release(): void {
    for (const go of this.waiting.splice(0)) go();
  }
  dispose(): Promise<void> {
    return Promise.resolve();
  }
}

/** Turns of the event loop, for queued calls to reach the engine. */
const turns = async (n = 5) => {
  for (let i = 0; i < n; i++) await new Promise((go) => setImmediate(go));
};

/** Turns of the event loop until `done()`. */
const until = async (done: () => boolean) => {
  while (!done()) await turns(1);
};

describe("which queued calls run next", () => {
  const request = (n: number): ForwardRequest => ({ tokens: ids(n, n), rows: 1 });

  it("the shape with the most rows; on a tie the shape just run; a request passed over `patience` times first", async () => {
    const gated = new Gated(await tiny({}));
    const batching = new BatchingModel(gated, 16, 2);
    const done: Promise<ForwardResult>[] = [];
    const ask = (n: number) => done.push(batching.forward(request(n)));
    ask(4); // runs at once, alone
    await until(() => gated.calls.length === 1);
    ask(2); // one of length 2, then two of length 3, two of length 5
    ask(3);
    ask(3);
    ask(5);
    ask(5);
    const next = async () => {
      const made = gated.calls.length;
      gated.release();
      await until(() => gated.calls.length > made);
      return gated.calls[made];
    };
    assert.deepEqual(await next(), { rows: 2, n: 3 }, "two rows before one, the tie: first to two");
    ask(3);
    assert.deepEqual(await next(), { rows: 2, n: 5 }, "two rows before one");
    ask(3); // now two of length 3 against the one of length 2, passed over twice
    assert.deepEqual(await next(), { rows: 1, n: 2 }, "passed over `patience` times");
    ask(5);
    assert.deepEqual(await next(), { rows: 2, n: 3 }, "the two of length 3, one passed over twice");
    ask(5); // two of length 5 queued, then two of the length just run
    ask(3);
    ask(3);
    assert.deepEqual(await next(), { rows: 2, n: 3 }, "a tie: the shape just run");
    assert.deepEqual(await next(), { rows: 2, n: 5 });
    gated.release();
    assert.equal((await Promise.all(done)).length, 12, "every call answered");
  });

  it("a free engine waits for the rows of its last calls to come back", async () => {
    const gated = new Gated(await tiny({}));
    // a wait no test run reaches: only the rows coming back end it
    const batching = new BatchingModel(gated, 16, 8, 3_600_000);
    const a = batching.forward(request(3));
    const b = batching.forward(request(3));
    await until(() => gated.calls.length === 1);
    assert.deepEqual(gated.calls, [{ rows: 2, n: 3 }]);
    gated.release();
    await Promise.all([a, b]);
    const c = batching.forward(request(3)); // one of the two comes back…
    await turns();
    assert.equal(gated.calls.length, 1, "the engine waits for the other");
    const d = batching.forward(request(3)); // …and the other
    await until(() => gated.calls.length === 2);
    assert.deepEqual(gated.calls[1], { rows: 2, n: 3 });
    gated.release();
    await Promise.all([c, d]);
  });
});

/**
 * Runs decodes 0 and 1 together through `batching`, starting decode `joins[step]` when decode 0
 * reaches that step; each must write what it writes alone on `model`, the steps must have been
 * shared, and fewer than 1/`share` of the batched calls may have stacked their contexts anew.
 */
async function assertJoinedRunsAlone(
  model: LanguageModel,
  batching: BatchingModel,
  run: (m: LanguageModel, k: number) => AsyncGenerator<StepEvent, DecodeResult, undefined>,
  joins: Record<number, number>,
  share: number,
): Promise<void> {
  const late: Promise<DecodeResult>[] = [];
  const together = await Promise.all([
    drain(run(batching, 0), (step) => {
      if (joins[step] !== undefined) late.push(drain(run(batching, joins[step])));
    }),
    drain(run(batching, 1)),
  ]);
  together.push(...(await Promise.all(late)));
  for (const [k, got] of together.entries()) {
    const alone = await drain(run(model, k));
    assert.deepEqual(Array.from(got.canvas), Array.from(alone.canvas), `decode ${k}`);
  }
  const { calls, batches, stacked } = batching.stats;
  assert.ok(batches < calls, "steps were shared");
  assert.ok(
    stacked < batches / share,
    `the kept cache was fed (${stacked} stacks, ${batches} calls)`,
  );
}
