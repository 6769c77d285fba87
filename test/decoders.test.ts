// The decoders of issue 9 on models whose answers are known: EB-sampler's entropy bound, the
// small-block threshold and factor presets, and lossless speculative decoding (its text equals
// greedy AR decoding's exactly, on tiny random models and on fakes that agree or never agree).

import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { generateAr, generateSpeculative } from "../src/diffusion/api.js";
import { denoise } from "../src/diffusion/denoise.js";
import type { DiffusionOptions } from "../src/diffusion/options.js";
import { selectEntropyBounded } from "../src/diffusion/sampling.js";
import type { DecodeResult, StepEvent } from "../src/diffusion/types.js";
import { OnnxModel } from "../src/model/engine.js";
import { randomWeights } from "../src/model/random.js";
import {
  FakeModel,
  fakeConfig,
  MASK,
  oracle,
  promptCanvas,
  targetSequence,
} from "./fake-models.js";
import { tinyModelConfig } from "./tiny-config.js";

async function run(gen: AsyncGenerator<StepEvent, DecodeResult, undefined>) {
  const events: StepEvent[] = [];
  for (;;) {
    const next = await gen.next();
    if (next.done) return { events, result: next.value };
    events.push(next.value);
  }
}

const PROMPT = [5, 6, 7, 8];

/** Entropy (nats) of the fake oracle's distribution: p on the target, the rest spread evenly over V − 2 tokens (the mask excluded). */
function oracleEntropy(p: number, V = 32): number {
  const q = (1 - p) / (V - 2);
  return -(p * Math.log(p) + (V - 2) * q * Math.log(q));
}

describe("EB-sampler (entropy-bound selection)", () => {
  it("takes the largest surest prefix whose entropies less the largest sum to ≤ gamma", () => {
    const ranked = Int32Array.from([2, 0, 1, 3]);
    const entropy = Float64Array.from([0.05, 0.5, 0.01, 0.04]);
    // sums less the largest of the prefixes: 0, 0.01, 0.06, 0.1
    assert.deepEqual([...selectEntropyBounded(ranked, entropy, 0.11)], [2, 0, 1, 3]);
    assert.deepEqual([...selectEntropyBounded(ranked, entropy, 0.05)], [2, 0]);
    assert.deepEqual([...selectEntropyBounded(ranked, entropy, 0)], [2], "at least one");
    assert.deepEqual([...selectEntropyBounded(new Int32Array(0), entropy, 1)], []);
  });

  it("on an oracle: a sure model reveals whole blocks, gamma 0 one token per step; text exact", async () => {
    const target = targetSequence(PROMPT.length + 32);
    target.set(PROMPT);
    const h = oracleEntropy(0.999);
    const cases: [DiffusionOptions, number][] = [
      [{ preset: "eb-sampler" }, 4], // 7 · h ≈ 0.08 ≤ 0.1: a block of 8 per forward pass
      [{ preset: "eb-sampler", gamma: 3.5 * h }, 8], // 4 per step (3 · h ≤ γ < 4 · h)
      [{ preset: "eb-sampler", gamma: 0 }, 32],
      [{ preset: "eb-sampler", cache: "none", blockLength: 32, gamma: 1 }, 1],
    ];
    for (const [options, forwards] of cases) {
      const model = new FakeModel(
        fakeConfig(),
        oracle(target, () => 0.999),
      );
      const { result } = await run(
        denoise(model, { tokens: promptCanvas(PROMPT, 32), openEnded: true }, options),
      );
      assert.deepEqual([...result.canvas], [...target], JSON.stringify(options));
      assert.equal(result.forwards, forwards, JSON.stringify(options));
    }
  });

  it("of two unsure positions one joins the sure ones (the bound leaves out the largest entropy), the other waits", async () => {
    const target = targetSequence(PROMPT.length + 8);
    target.set(PROMPT);
    const unsure = [PROMPT.length + 3, PROMPT.length + 5];
    const model = new FakeModel(
      fakeConfig(),
      oracle(target, (position) => (unsure.includes(position) ? 0.4 : 0.999)),
    );
    const { events, result } = await run(
      denoise(
        model,
        { tokens: promptCanvas(PROMPT, 8), openEnded: true },
        { preset: "eb-sampler" },
      ),
    );
    assert.deepEqual([...result.canvas], [...target]);
    // six sure (5h ≤ γ), the first unsure (6h ≤ γ: its own entropy is the largest); the second
    // unsure would add its whole entropy
    assert.deepEqual(
      events.map((e) => e.revealed.map((r) => r.position)),
      [[4, 5, 6, 7, 8, 10, 11], [9]],
    );
  });
});

describe("small-block presets", () => {
  it("fast-dllm-small (threshold) and fast-dllm-factor reveal what their rules allow, text exact", async () => {
    const target = targetSequence(PROMPT.length + 16);
    target.set(PROMPT);
    // confidence 0.95 everywhere: threshold 0.9 takes a block of 8 per step; the factor rule
    // takes n while (n + 1)·0.05 ≤ 1, i.e. all 8 as well
    for (const preset of ["fast-dllm-small", "fast-dllm-factor"] as const) {
      const model = new FakeModel(
        fakeConfig(),
        oracle(target, () => 0.95),
      );
      const { result } = await run(
        denoise(model, { tokens: promptCanvas(PROMPT, 16), openEnded: true }, { preset }),
      );
      assert.deepEqual([...result.canvas], [...target], preset);
      assert.equal(result.forwards, 2, `${preset}: two blocks of 8, one step each`);
    }
    // at 0.8: the threshold takes one per step; factor 1 takes n while (n + 1)·0.2 ≤ 1: 4
    for (const [preset, forwards] of [
      ["fast-dllm-small", 16],
      ["fast-dllm-factor", 4],
    ] as const) {
      const model = new FakeModel(
        fakeConfig(),
        oracle(target, () => 0.8),
      );
      const { result } = await run(
        denoise(model, { tokens: promptCanvas(PROMPT, 16), openEnded: true }, { preset }),
      );
      assert.deepEqual([...result.canvas], [...target], preset);
      assert.equal(result.forwards, forwards, preset);
    }
  });
});

describe("speculative decoding", () => {
  const models: OnnxModel[] = [];
  after(async () => {
    for (const m of models) await m.dispose();
  });

  it("its text equals greedy AR decoding's exactly on tiny random models, at every block length", async () => {
    const shape = { vocab_size: 23, mask_token_id: 22, eos_token_id: 21 };
    const draftConfig = tinyModelConfig(shape);
    const arConfig = tinyModelConfig({ ...shape, attention_mask: "causal" });
    for (const seed of [1, 2, 3]) {
      const draft = await OnnxModel.create(draftConfig, randomWeights(draftConfig, seed, 0.5), {
        threads: 1,
      });
      const ar = await OnnxModel.create(arConfig, randomWeights(arConfig, seed + 10, 0.5), {
        threads: 1,
      });
      models.push(draft, ar);
      const prompt = [1, 2, 3 + seed, 4];
      const expected = await generateAr(ar, prompt, { maxTokens: 40, stopAtEos: false });
      for (const blockLength of [1, 3, 8]) {
        for (const draftCache of ["prefix", "none"] as const) {
          const r = await generateSpeculative(draft, ar, prompt, {
            blockLength,
            maxTokens: 40,
            stopAtEos: false,
            draftCache,
          });
          const label = `seed ${seed}, blocks of ${blockLength}, draft cache ${draftCache}`;
          assert.deepEqual(r.tokens, expected.tokens, label);
          assert.ok(r.forwards <= 2 * 40);
        }
      }
    }
  });

  it("a drafter that agrees yields blockLength + 1 tokens per two passes; one that never does, one", async () => {
    const target = targetSequence(64);
    target.set(PROMPT);
    const ar = new FakeModel(fakeConfig({ attention: "causal" }), (position, view, out) =>
      oracle(target)(position + 1, view, out),
    );
    const agrees = new FakeModel(fakeConfig(), oracle(target));
    const never = new FakeModel(fakeConfig(), (_position, _view, out) => {
      out[28] = 10; // never in the target (1 + (i·7 mod 25) ≤ 25 ... 28 is not)
    });
    const expected = [...target.subarray(PROMPT.length, PROMPT.length + 27)];
    const a = await generateSpeculative(agrees, ar, PROMPT, { blockLength: 8, maxTokens: 27 });
    assert.deepEqual(a.tokens, expected);
    assert.equal(a.steps, 3, "27 tokens in rounds of 9");
    assert.equal(a.forwards, 6);
    // the drafter's cache: each round runs the new tokens and the masks against the text's K/V
    const drafts = agrees.calls;
    assert.deepEqual(
      drafts.map((c) => [c.contextLength, c.n]),
      [
        [0, PROMPT.length + 8],
        [PROMPT.length, 9 + 8],
        [PROMPT.length + 9, 9 + 8],
      ],
    );
    const n = await generateSpeculative(never, ar, PROMPT, { blockLength: 8, maxTokens: 27 });
    assert.deepEqual(n.tokens, expected, "still AR's text");
    assert.equal(n.steps, 27, "one token per round");
  });

  it("one model (TiDAR's form): its text equals its own greedy AR decoding's on tiny random models", async () => {
    const config = tinyModelConfig({
      vocab_size: 23,
      mask_token_id: 22,
      eos_token_id: 21,
      attention_mask: "causal",
    });
    for (const seed of [1, 2]) {
      const model = await OnnxModel.create(config, randomWeights(config, seed, 0.5), {
        threads: 1,
      });
      models.push(model);
      const prompt = [1, 2, 3 + seed, 4];
      const expected = await generateAr(model, prompt, { maxTokens: 40, stopAtEos: false });
      for (const blockLength of [1, 3, 8]) {
        const r = await generateSpeculative(model, model, prompt, {
          blockLength,
          maxTokens: 40,
          stopAtEos: false,
        });
        assert.deepEqual(r.tokens, expected.tokens, `seed ${seed}, blocks of ${blockLength}`);
        assert.ok(r.forwards <= 40);
      }
    }
  });

  it("one model: masks that draft the text yield blockLength + 1 tokens per pass; wrong drafts, one", async () => {
    const target = targetSequence(64);
    target.set(PROMPT);
    // causal rows predict the next token of the target; masks draft it (or a token never in it)
    const model = (drafts: boolean) =>
      new FakeModel(fakeConfig({ attention: "causal" }), (position, view, out) => {
        if (view.tokens.get(position) === MASK && !drafts) out[28] = 10;
        else oracle(target)(position + 1, view, out);
      });
    const expected = [...target.subarray(PROMPT.length, PROMPT.length + 27)];
    const good = model(true);
    const a = await generateSpeculative(good, good, PROMPT, { blockLength: 8, maxTokens: 27 });
    assert.deepEqual(a.tokens, expected);
    assert.equal(a.forwards, 4, "1 token and a draft, then 9, 9 and the last 8");
    // each pass: the text not in the cache, the draft, then the masks
    assert.deepEqual(
      good.calls.map((c) => [c.contextLength, c.n]),
      [
        [0, PROMPT.length + 8],
        [PROMPT.length, 1 + 8 + 8],
        [PROMPT.length + 9, 1 + 8 + 8],
        [PROMPT.length + 18, 1 + 7],
      ],
    );
    const bad = model(false);
    const n = await generateSpeculative(bad, bad, PROMPT, { blockLength: 8, maxTokens: 27 });
    assert.deepEqual(n.tokens, expected, "still its own greedy text");
    assert.equal(n.forwards, 27, "one token per pass");
  });

  it("refuses a wrong drafter or verifier, naming it", async () => {
    const full = new FakeModel(fakeConfig(), oracle(targetSequence(8)));
    const causal = new FakeModel(fakeConfig({ attention: "causal" }), oracle(targetSequence(8)));
    const unmasked = new FakeModel(
      fakeConfig({ attention: "causal", maskTokenId: null }),
      oracle(targetSequence(8)),
    );
    await assert.rejects(generateSpeculative(causal, full, PROMPT), /draft/);
    await assert.rejects(generateSpeculative(unmasked, unmasked, PROMPT), /draft.*mask token/);
    await assert.rejects(generateSpeculative(full, full, PROMPT), /verifier/);
    await assert.rejects(generateSpeculative(full, causal, []), /prompt/);
    await assert.rejects(
      generateSpeculative(full, causal, PROMPT, { maxTokens: 600 }),
      /maxTokens.*context/,
    );
  });
});
