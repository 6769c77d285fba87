// One rule for options, driven as processes: an option that the command's decoder or strategy
// would ignore is refused with exit code 2 and a message naming it, never silently dropped; so is
// a model of the wrong kind for the decoder. The server shares the same validator (serve tests).

import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { checkSettings } from "../src/host/options.js";
import { cli, writeModel } from "./cli-helpers.js";

let dir = "";
let model = "";
let arModel = "";

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "unmask-options-"));
  model = join(dir, "model");
  arModel = join(dir, "model-ar");
  await writeModel(model, {});
  await writeModel(arModel, { attention_mask: "causal" });
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test("every ignored option and every wrong-kind model is refused by the CLI (exit 2, named)", async () => {
  const cases: [string[], RegExp][] = [
    [
      ["generate", "-m", model, "--threshold", "0.5", "ab"],
      /--threshold: strategy llada .* reads no threshold \(threshold strategies: fast-dllm, fast-dllm-dual, fast-dllm-small\)/,
    ],
    [["generate", "--ar-model", arModel, "--steps", "4", "ab"], /--steps with --ar: /],
    [
      ["generate", "--ar-model", arModel, "--strategy", "fast-dllm", "ab"],
      /--strategy with --ar: /,
    ],
    [["generate", "--ar-model", arModel, "--threshold", "0.5", "ab"], /--threshold with --ar: /],
    [
      ["generate", "--ar-model", arModel, "--block-length", "4", "ab"],
      /--block-length with --ar: /,
    ],
    [
      ["generate", "-m", model, "--strategy", "fast-dllm", "--steps", "4", "ab"],
      /--steps: strategy fast-dllm runs each block until it is clean/,
    ],
    [
      ["generate", "-m", model, "--strategy", "block-diffusion", "--block-length", "4", "ab"],
      /--block-length: strategy block-diffusion decodes the model's own blocks/,
    ],
    [
      ["bench", "decode", "--model", model, "--ar-model", arModel, "--presets", "block-diffusion"],
      /--presets block-diffusion: needs a block_causal model/,
    ],
    [
      ["generate", "-m", arModel, "ab"],
      /--model: a causal \(autoregressive\) model cannot denoise/,
    ],
    [["infill", "-m", arModel, "--prefix", "a", "--suffix", "b"], /--model: a causal/],
    [
      ["generate", "--ar-model", model, "ab"],
      /--ar-model: a diffusion model \(full attention\) cannot decode left to right/,
    ],
  ];
  for (const [args, pattern] of cases) {
    const r = await cli(args);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, pattern, args.join(" "));
    assert.equal(r.stdout, "", "nothing decoded");
    assert.doesNotMatch(r.stderr, /\n\s+at /, "no stack trace");
  }
});

test("the options a command keeps are echoed in its JSON; AR reports no steps it did not take", async () => {
  const r = await cli([
    "generate",
    "--ar-model",
    arModel,
    "ab",
    "-n",
    "4",
    "--seed",
    "3",
    "--json",
  ]);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.decoder, "autoregressive");
  assert.equal(out.options.steps, null);
  assert.equal(out.options.threshold, null);
  assert.equal(out.options.seed, 3);
  assert.equal(out.options.length, 4);
});

test("the validator is one function: the same settings give the same verdict to every caller", () => {
  assert.throws(() => checkSettings({ decoder: "diffusion", strategy: "llada", threshold: 0.5 }), {
    name: "IgnoredOptionError",
    parameter: "threshold",
  });
  assert.throws(() => checkSettings({ decoder: "autoregressive", steps: 2 }), {
    name: "IgnoredOptionError",
    parameter: "steps",
  });
  assert.throws(() => checkSettings({ decoder: "autoregressive", temperature: -1 }), {
    name: "DecodeOptionError",
    parameter: "temperature",
  });
  // what each decoder reads passes
  checkSettings({ decoder: "diffusion", strategy: "fast-dllm", threshold: 0.5, blockLength: 8 });
  checkSettings({ decoder: "autoregressive", temperature: 0.5, seed: 1, topK: 4, length: 8 });
});
