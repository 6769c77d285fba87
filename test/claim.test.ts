// The claim yardstick (src/eval/claim.ts): its scorers on models whose answers are known — an
// oracle that writes the held-out file's true text (every score perfect) and one that never does
// (every score zero) — and the Pareto front and matched-quality rules on given numbers.

import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import {
  benchClaim,
  type ClaimReport,
  type ClaimSetting,
  matchedSpeedup,
  paretoFront,
  type SettingScore,
  writeClaimPlot,
} from "../src/eval/claim.js";
import type { SourceDocument } from "../src/eval/infill-tasks.js";
import { FakeModel, fakeConfig, logitFor, type Predictor } from "./fake-models.js";

const V = 128;
const [MASK_ID, PAD_ID, BOS_ID, EOS_ID] = [0, 1, 2, 3];
/** One token per ASCII character; the special ids decode to nothing. */
const codec = {
  encode: (t: string) => Array.from(t, (c) => c.charCodeAt(0)),
  decode: (ids: ArrayLike<number>) =>
    String.fromCharCode(...Array.from(ids).filter((id) => id > EOS_ID)),
};

/** A TypeScript file of small functions, different per seed (never a "~"). */
function tsFile(seed: number): string {
  const parts = [`// module ${seed}\n`];
  for (let k = 0; k < 5; k++) {
    parts.push(
      `export function f${seed}_${k}(a: number, b: number): number {\n` +
        `  const total${k} = a * ${k + seed} + b;\n` +
        `  if (total${k} > b) {\n    return total${k} - b;\n  }\n` +
        `  return a + ${seed * 10 + k};\n}\n`,
    );
  }
  return parts.join("\n");
}

const docs: SourceDocument[] = [0, 1, 2, 3].map((s) => ({
  source: `pkg@1.0.0/m${s}.ts`,
  path: `m${s}.ts`,
  text: tsFile(s),
}));

/**
 * The true token at `position` of the canvas the view shows: the document and offset at which
 * every fixed token of the view stands (found from its longest fixed run); EOS past the end.
 */
function truth(view: Map<number, number>, position: number): number {
  const fixed = [...view].filter(([, t]) => t !== MASK_ID).sort((a, b) => a[0] - b[0]);
  let best: [number, string] = [0, ""];
  for (let i = 0; i < fixed.length; ) {
    let j = i;
    while (j + 1 < fixed.length && fixed[j + 1][0] === fixed[j][0] + 1) j++;
    const run = String.fromCharCode(...fixed.slice(i, j + 1).map(([, t]) => t));
    if (run.length > best[1].length) best = [fixed[i][0], run];
    i = j + 1;
  }
  for (const { text } of docs) {
    for (let at = text.indexOf(best[1]); at >= 0; at = text.indexOf(best[1], at + 1)) {
      const offset = at - best[0];
      if (fixed.every(([q, t]) => text.charCodeAt(offset + q) === t)) {
        const c = text.charCodeAt(offset + position);
        return Number.isNaN(c) ? EOS_ID : c;
      }
    }
  }
  throw new Error(`the oracle found no document for the canvas at ${position}`);
}

/** Probability 0.99 on the true token (the next one for a causal model), or always on "~". */
function writer(kind: "oracle" | "never", causal: boolean): Predictor {
  return (position, view, out) => {
    const token =
      kind === "never" ? "~".charCodeAt(0) : truth(view.tokens, position + (causal ? 1 : 0));
    out[token] = logitFor(0.99, V);
  };
}

function models(kind: "oracle" | "never") {
  const base = {
    vocabSize: V,
    maskTokenId: MASK_ID,
    padTokenId: PAD_ID,
    bosTokenId: BOS_ID,
    eosTokenId: EOS_ID,
  };
  return {
    diffusion: new FakeModel(fakeConfig(base), writer(kind, false)),
    ar: new FakeModel(fakeConfig({ ...base, attention: "causal" }), writer(kind, true)),
  };
}

const settings: ClaimSetting[] = [
  { name: "ar", decoder: { kind: "ar" } },
  { name: "llada", decoder: { kind: "diffusion", model: 0, options: { preset: "llada" } } },
  {
    name: "llada-4/step",
    decoder: { kind: "diffusion", model: 0, options: { preset: "llada" }, tokensPerStep: 4 },
  },
  {
    name: "fast-dllm-small",
    decoder: { kind: "diffusion", model: 0, options: { preset: "fast-dllm-small" } },
  },
  { name: "eb", decoder: { kind: "diffusion", model: 0, options: { preset: "eb-sampler" } } },
  { name: "spec-8", decoder: { kind: "speculative", model: 0, blockLength: 8 } },
  // the causal model as its own drafter (TiDAR's one-model form): its masks write the truth too
  { name: "tidar-8", decoder: { kind: "speculative", model: 1, blockLength: 8, self: true } },
];

async function run(kind: "oracle" | "never"): Promise<ClaimReport> {
  const m = models(kind);
  return benchClaim({
    models: [
      { name: kind, model: m.diffusion },
      { name: "one-model", model: m.ar },
    ],
    ar: m.ar,
    tokenizer: codec,
    documents: docs,
    settings,
    tasks: 4,
    infillTasks: 4,
    lineTokens: 128,
    sampleTokens: 64,
    promptTokens: 96,
  });
}

describe("bench claim", () => {
  it("an oracle that writes the true text scores perfectly on every measure", async () => {
    const r = await run("oracle");
    assert.deepEqual(r.tasks, { lineCompletion: 4, continuations: 4, infill: 4 });
    for (const s of r.settings) {
      assert.equal(s.lineCompletion.exactMatch, 1, s.name);
      assert.equal(s.lineCompletion.editSimilarity, 1, s.name);
      assert.equal(s.parseRate, 1, s.name);
      assert.ok(Math.abs(s.arNll + Math.log(0.99)) < 1e-4, `${s.name}: nll ${s.arNll}`);
      assert.ok(s.distinctShare > 0.2 && s.distinctShare <= 1);
      assert.ok(s.tokensPerSecond > 0 && s.forwardsPerToken > 0);
      if (s.decoder === "ar") {
        assert.equal(s.infill, null);
        assert.equal(s.forwardsPerToken, 1);
      } else if (s.decoder === "speculative") {
        assert.equal(s.infill, null);
        assert.ok(
          s.forwardsPerToken < 0.25,
          "an oracle's drafts are all kept: 2 passes (1 in one model) per 9 tokens",
        );
      } else {
        assert.deepEqual(s.infill, { tasks: 4, exactMatch: 1, editSimilarity: 1 }, s.name);
      }
    }
    const fourPerStep = r.settings.find((s) => s.name === "llada-4/step")!;
    assert.ok(fourPerStep.forwardsPerToken <= 0.26, "4 tokens per forward pass");
    const m = r.speedupAtMatchedQuality;
    assert.ok(m.setting !== null && m.value !== null && m.reason === null, "every setting matches");
    assert.equal(m.editSimilarity, 1);
    assert.equal(r.infillExactMatch.value, 1);
  });

  it("a model that never writes the true text scores zero on every measure", async () => {
    const r = await run("never");
    for (const s of r.settings) {
      assert.equal(s.lineCompletion.exactMatch, 0, s.name);
      assert.equal(s.lineCompletion.editSimilarity, 0, s.name);
      assert.equal(s.parseRate, 0, s.name);
      assert.ok(s.distinctShare < 0.05, "one token repeated");
      if (s.infill !== null)
        assert.deepEqual(s.infill, { tasks: 4, exactMatch: 0, editSimilarity: 0 });
    }
    assert.equal(r.infillExactMatch.value, 0);
  });

  it("the Pareto front and the speed-up at matched quality follow their rules; the plot is written", async () => {
    const score = (name: string, tps: number, es: number, parse: number): SettingScore => ({
      name,
      model: name === "ar" ? "ar" : "m",
      decoder: name === "ar" ? "ar" : "diffusion",
      options: null,
      tokensPerSecond: tps,
      forwardsPerToken: 1,
      tokens: 1,
      seconds: 1,
      lineCompletion: { tasks: 1, exactMatch: 0, editSimilarity: es },
      infill: null,
      parseRate: parse,
      arNll: 1,
      distinctShare: 1,
    });
    const all = [
      score("ar", 50, 0.42, 0.9),
      score("fast-bad", 200, 0.2, 0.9),
      score("fast-close", 120, 0.405, 0.86),
      score("fast-unparsable", 150, 0.42, 0.8),
      score("slow-good", 10, 0.43, 0.9),
      score("dominated", 40, 0.3, 0.9),
    ];
    // fast-close and ar are beaten by fast-unparsable (faster, as good); dominated by ar
    assert.deepEqual(paretoFront(all), ["fast-bad", "fast-unparsable", "slow-good"]);
    // within 0.02 edit similarity and 5 points of parse rate: fast-close and slow-good
    const matched = matchedSpeedup(all);
    assert.equal(matched.setting, "fast-close");
    assert.equal(matched.value, 120 / 50);
    const none = matchedSpeedup([all[0], all[1], all[3]]);
    assert.equal(none.value, null);
    assert.match(none.reason!, /no setting reaches/);
    const m = models("oracle");
    const r = await benchClaim({
      models: [{ name: "oracle", model: m.diffusion }],
      ar: m.ar,
      tokenizer: codec,
      documents: docs,
      settings: settings.slice(0, 2),
      tasks: 1,
      infillTasks: 1,
      lineTokens: 128,
    });
    const dir = await mkdtemp(join(tmpdir(), "claim-"));
    try {
      const files = await writeClaimPlot(r, join(dir, "pareto"));
      assert.match(await readFile(files[0], "utf8"), /<svg[\s\S]*Pareto front/);
      assert.deepEqual([...(await readFile(files[1])).subarray(1, 4)], [0x50, 0x4e, 0x47]);
    } finally {
      await rm(dir, { recursive: true });
    }
  });
});
