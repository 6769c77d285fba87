// Every decoder end to end on tiny random models: the float64 reference and the ONNX Runtime
// engine. Random weights have no right answer, so these check what must hold anyway: shapes,
// the event stream's bookkeeping, determinism, exact caches agreeing with full recomputation,
// and the engine agreeing with the reference.

import assert from "node:assert/strict";
import { after, test } from "node:test";
import { decodeAr } from "../src/diffusion/ar.js";
import { benchDecode } from "../src/diffusion/bench.js";
import { denoise } from "../src/diffusion/denoise.js";
import { type DiffusionOptions, type PresetName, presetNames } from "../src/diffusion/options.js";
import type { DecodeResult, StepEvent } from "../src/diffusion/types.js";
import { type ModelConfig, parseModelConfig } from "../src/model/config.js";
import { OnnxModel } from "../src/model/engine.js";
import { randomWeights } from "../src/model/random.js";
import { ReferenceModel } from "../src/model/reference.js";
import type { LanguageModel } from "../src/model/types.js";

const MASK = 47;
const EOS = 46;

function tinyConfig(over: Record<string, unknown> = {}): ModelConfig {
  return parseModelConfig(
    {
      model_type: "unmask",
      vocab_size: 48,
      hidden_size: 16,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      intermediate_size: 32,
      max_position_embeddings: 64,
      rope_theta: 100,
      ...over,
    },
    "config.json",
    { mask_token_id: MASK, eos_token_id: EOS },
  );
}

const models: LanguageModel[] = [];
after(async () => {
  for (const m of models) await m.dispose();
});

function reference(config: ModelConfig, seed = 5): ReferenceModel {
  const m = new ReferenceModel(config, randomWeights(config, seed, 0.5));
  models.push(m);
  return m;
}

async function engine(config: ModelConfig, seed = 5): Promise<OnnxModel> {
  const m = await OnnxModel.create(config, randomWeights(config, seed, 0.5), { threads: 1 });
  models.push(m);
  return m;
}

async function collect(gen: AsyncGenerator<StepEvent, DecodeResult, undefined>) {
  const events: StepEvent[] = [];
  for (;;) {
    const next = await gen.next();
    if (next.done) return { events, result: next.value };
    events.push(next.value);
  }
}

const PROMPT = [5, 9, 2, 7, 11, 3];
const GEN = 16;

function canvas(): Int32Array {
  const x = new Int32Array(PROMPT.length + GEN).fill(MASK);
  x.set(PROMPT);
  return x;
}

/** The bookkeeping every run must keep, whatever the model says. */
function checkEvents(events: StepEvent[], result: DecodeResult, label: string) {
  let before = canvas();
  let remasks = 0;
  events.forEach((e, i) => {
    assert.equal(e.step, i, label);
    assert.equal(e.canvas.length, before.length, label);
    for (let p = 0; p < PROMPT.length; p++)
      assert.equal(e.canvas[p], PROMPT[p], `${label}: prompt`);
    for (const r of e.revealed) {
      assert.equal(before[r.position], MASK, `${label}: revealed ${r.position} was not masked`);
      assert.equal(e.canvas[r.position], r.token, label);
      assert.notEqual(r.token, MASK, label);
    }
    for (const r of e.remasked) assert.equal(e.canvas[r.position], MASK, label);
    remasks += e.remasked.length;
    // everything else stands still (except EOS settling the tail on an early stop)
    const touched = new Set([...e.revealed, ...e.remasked].map((r) => r.position));
    for (let p = 0; p < before.length; p++) {
      if (!touched.has(p) && before[p] !== MASK)
        assert.equal(e.canvas[p], before[p], `${label}: ${p}`);
    }
    assert.equal(e.masked, e.canvas.filter((t) => t === MASK).length, label);
    assert.ok(e.forwards === i + 1, `${label}: one forward per step`);
    before = e.canvas;
  });
  assert.deepEqual(result.canvas, before, label);
  assert.equal(result.steps, events.length, label);
  assert.equal(result.remasks, remasks, label);
  assert.ok(!result.canvas.includes(MASK), `${label}: masks left`);
}

function configFor(preset: PresetName, logitShift: boolean): ModelConfig {
  return preset === "block-diffusion"
    ? tinyConfig({ attention_mask: "block_causal", block_size: 4, logit_shift: logitShift })
    : tinyConfig({ logit_shift: logitShift });
}

const sampled: DiffusionOptions = { temperature: 0.8, seed: 11 };

test("every preset runs end to end on the float64 reference: events, shapes, determinism", async () => {
  for (const logitShift of [false, true]) {
    for (const preset of presetNames) {
      const model = reference(configFor(preset, logitShift));
      const options: DiffusionOptions = {
        preset,
        blockLength: preset === "block-diffusion" ? undefined : 8,
        ...sampled,
      };
      const label = `${preset} shift=${logitShift}`;
      const a = await collect(denoise(model, { tokens: canvas(), openEnded: true }, options));
      checkEvents(a.events, a.result, label);
      const b = await collect(denoise(model, { tokens: canvas(), openEnded: true }, options));
      assert.deepEqual(b.events, a.events, `${label}: not reproducible`);
    }
  }
});

test("the engine runs every preset like the reference (greedy: same tokens) and reproducibly", async () => {
  for (const preset of presetNames) {
    const config = configFor(preset, true);
    const onnx = await engine(config);
    const ref = reference(config);
    const options: DiffusionOptions = {
      preset,
      blockLength: preset === "block-diffusion" ? undefined : 8,
      temperature: 0,
    };
    const a = await collect(denoise(onnx, { tokens: canvas(), openEnded: true }, options));
    checkEvents(a.events, a.result, `engine ${preset}`);
    const b = await collect(denoise(ref, { tokens: canvas(), openEnded: true }, options));
    assert.deepEqual(Array.from(a.result.canvas), Array.from(b.result.canvas), preset);
    assert.equal(a.result.forwards, b.result.forwards, preset);
    // sampled runs on the engine repeat exactly from their seed
    const s1 = await collect(
      denoise(onnx, { tokens: canvas(), openEnded: true }, { ...options, ...sampled }),
    );
    const s2 = await collect(
      denoise(onnx, { tokens: canvas(), openEnded: true }, { ...options, ...sampled }),
    );
    checkEvents(s1.events, s1.result, `engine ${preset} sampled`);
    assert.deepEqual(s2.events, s1.events, `engine ${preset}: not reproducible`);
  }
});

test("block diffusion's cache is exact: the same tokens as recomputing the whole canvas", async () => {
  // a prompt of 8 so that the model's blocks of 4 and blockLength 4 cut the region alike
  const spec = () => {
    const x = new Int32Array(8 + GEN).fill(MASK);
    x.set([...PROMPT, 1, 2]);
    return { tokens: x };
  };
  for (const logitShift of [false, true]) {
    const inner = reference(
      tinyConfig({ attention_mask: "block_causal", block_size: 4, logit_shift: logitShift }),
    );
    const fresh: number[] = [];
    const model: LanguageModel = {
      config: inner.config,
      forward: (r) => {
        fresh.push(r.tokens.length);
        return inner.forward(r);
      },
      dispose: () => inner.dispose(),
    };
    const options: DiffusionOptions = {
      preset: "block-diffusion",
      stopAtEos: false,
      temperature: 0.7,
      seed: 3,
    };
    const cached = await collect(denoise(model, spec(), options));
    const cachedTokens = fresh.splice(0).reduce((a, b) => a + b, 0);
    const full = await collect(
      denoise(model, spec(), { ...options, cache: "none", blockLength: 4 }),
    );
    const fullTokens = fresh.splice(0).reduce((a, b) => a + b, 0);
    const moves = (events: StepEvent[]) =>
      events.map((e) => e.revealed.map((r) => [r.position, r.token]));
    assert.deepEqual(moves(cached.events), moves(full.events), `shift=${logitShift}`);
    assert.deepEqual(Array.from(cached.result.canvas), Array.from(full.result.canvas));
    assert.equal(cached.result.forwards, GEN);
    assert.ok(cachedTokens * 2 < fullTokens, `${cachedTokens} fresh tokens vs ${fullTokens}`);
  }
});

test("AR decoding with the K/V cache equals recomputing the whole sequence each token", async () => {
  for (const logitShift of [false, true]) {
    const config = tinyConfig({ attention_mask: "causal", logit_shift: logitShift });
    for (const model of [reference(config), await engine(config)]) {
      const { result, events } = await collect(
        decodeAr(model, PROMPT, { maxTokens: 12, stopAtEos: false }),
      );
      assert.equal(result.forwards, 12);
      assert.equal(events.length, 12);
      // recompute: the whole sequence every time, greedy
      const seq = [...PROMPT];
      for (let i = 0; i < 12; i++) {
        const tokens = Int32Array.from(logitShift ? [...seq, MASK] : seq);
        const out = await model.forward({
          tokens,
          rows: 1,
          logitsAt: Int32Array.of(tokens.length - 1),
        });
        let best = 0;
        for (let v = 1; v < config.vocabSize; v++) if (out.logits[v] > out.logits[best]) best = v;
        seq.push(best);
      }
      assert.deepEqual(Array.from(result.canvas), seq, `shift=${logitShift}`);
    }
  }
});

test("benchDecode measures every preset and the AR baseline side by side", async () => {
  const r = await benchDecode({
    diffusion: reference(tinyConfig()),
    blockDiffusion: reference(tinyConfig({ attention_mask: "block_causal", block_size: 4 })),
    ar: reference(tinyConfig({ attention_mask: "causal" })),
    prompt: PROMPT,
    genLength: 16,
  });
  assert.deepEqual(
    r.presets.map((p) => p.name),
    presetNames,
  );
  for (const p of [...r.presets, r.ar]) {
    assert.ok(p.tokens_per_s > 0 && Number.isFinite(p.tokens_per_s));
    assert.ok(p.forwards_per_token > 0 && p.forwards_per_token <= 1);
  }
  assert.equal(r.ar.forwards_per_token, 1);
  assert.equal(r.presets.find((p) => p.name === "llada")!.forwards_per_token, 1);
});
