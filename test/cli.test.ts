// The command line, driven as a process: help on every command, --json results, errors with
// exit codes and no stack traces, the live canvas under a pseudo-terminal (script and tmux),
// Ctrl-C and --max-time. The models are tiny random checkpoints written to a temporary folder
// in the Hugging Face layout, with the tiny a/b/c tokenizer of the format tests.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, statSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { presetNames } from "../src/diffusion/options.js";
import { cli, main, type Ran, writeModel } from "./cli-helpers.js";

const ESC = "\x1b";
const root = fileURLToPath(new URL("../../", import.meta.url));

let dir = "";
let model = "";
let arModel = "";
let slowModel = "";

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "unmask-cli-"));
  model = join(dir, "model");
  arModel = join(dir, "model-ar");
  slowModel = join(dir, "model-slow");
  await writeModel(model, {});
  await writeModel(arModel, { attention_mask: "causal" });
  // big enough that a 400-token canvas takes seconds: something to interrupt
  await writeModel(slowModel, {}, { hidden: 256, layers: 4, context: 512 });
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The error contract: a non-zero code, one `unmask: ` line on stderr, no stack trace. */
function assertFails(r: Ran, code: number, pattern: RegExp): void {
  assert.equal(r.code, code, `exit code (stderr: ${r.stderr})`);
  assert.match(r.stderr, /^unmask: /);
  assert.match(r.stderr, pattern);
  assert.doesNotMatch(r.stderr, /\n\s+at /, "no stack trace");
  assert.equal(r.stderr.trim().split("\n").length, 1, "one line");
}

const decodingOptions = [
  "--model",
  "--strategy",
  "--steps",
  "--length",
  "--block-length",
  "--threshold",
  "--temperature",
  "--seed",
  "--max-time",
  "--json",
  "--help",
];

const commands: Record<string, string[]> = {
  generate: [...decodingOptions, "--file", "--ar", "--ar-model"],
  infill: [...decodingOptions, "--prefix", "--suffix", "--trim", "--write", "--ar", "--ar-model"],
  edit: [...decodingOptions, "--lines", "--write", "--diff"],
  fix: [...decodingOptions.filter((o) => o !== "--length"), "--below", "--max-fraction", "--write"],
  bench: [
    "--json",
    "--canvas",
    "--runs",
    "--positions",
    "--model",
    "--ar-model",
    "--presets",
    "--config",
    "--rows",
    "--length",
    "--corpus",
    "--tasks",
    "--infill-tasks",
    "--seed",
    "--out",
  ],
  train: [
    "--config",
    "--corpus",
    "--tokenizer",
    "--run",
    "--out",
    "--steps",
    "--tokens",
    "--batch",
    "--accumulate",
    "--length",
    "--lr",
    "--warmup",
    "--seed",
    "--eval-every",
    "--checkpoint-every",
    "--eval-rows",
    "--fresh",
    "--json",
  ],
  eval: ["--model", "--corpus", "--rows", "--length", "--samples", "--batch", "--seed", "--json"],
  corpus: [
    "--out",
    "--packages",
    "--only",
    "--node-modules",
    "--cap",
    "--valid-fraction",
    "--tokenizer",
    "--tokenizer-only",
    "--vocab-size",
    "--json",
  ],
  serve: [
    "--host",
    "--port",
    "--model",
    "--ar-model",
    "--api-key",
    "--slots",
    "--queue",
    "--time-limit",
  ],
};

test("the bin runs as a program: executable, with a node shebang (what npx unmask starts)", async () => {
  const result = spawnSync(main, ["--version"], { encoding: "utf8" });
  assert.equal(result.status, 0, `${result.error ?? ""} ${result.stderr}`);
  assert.match(result.stdout, /^unmask \d+\.\d+\.\d+/);
});

test("unmask --help lists every command; --version prints the package's", async () => {
  const r = await cli(["--help"]);
  assert.equal(r.code, 0);
  for (const name of Object.keys(commands)) assert.match(r.stdout, new RegExp(`^  ${name} `, "m"));
  const pkg = JSON.parse(await readFile(join(root, "package.json"), "utf8")) as { version: string };
  const v = await cli(["--version"]);
  assert.equal(v.code, 0);
  assert.equal(v.stdout, `unmask ${pkg.version}\n`);
  const none = await cli([]);
  assert.equal(none.code, 2, "no command is a usage error");
  assert.match(none.stdout, /Usage: unmask <command>/);
});

test("every command's --help exits 0 and shows its options, examples and strategies", async () => {
  for (const [name, options] of Object.entries(commands)) {
    const r = await cli([name, "--help"]);
    assert.equal(r.code, 0, name);
    assert.equal(r.stderr, "");
    assert.match(r.stdout, new RegExp(`^Usage: unmask ${name}`), name);
    for (const option of options) assert.ok(r.stdout.includes(option), `${name} --help: ${option}`);
    assert.match(r.stdout, /Examples:\n {2}unmask /, name);
    if (["generate", "infill", "edit", "fix"].includes(name)) {
      for (const preset of presetNames)
        assert.ok(r.stdout.includes(`  ${preset} `), `${name}: ${preset}`);
      assert.match(r.stdout, /JSON output/, name);
    }
    const viaHelp = await cli(["help", name]);
    assert.equal(viaHelp.stdout, r.stdout);
  }
  assert.match((await cli(["infill", "--help"])).stdout, /<FILL:n>/);
});

test("generate --json: one object with the documented fields; seeded runs repeat", async () => {
  const args = ["generate", "--model", model, "ab c", "--length", "12", "--steps", "4", "--json"];
  const r = await cli(args);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, "");
  const out = JSON.parse(r.stdout);
  assert.equal(out.command, "generate");
  assert.equal(out.decoder, "diffusion");
  assert.equal(out.strategy, "llada");
  assert.equal(out.model, model);
  assert.equal(out.prompt, "ab c");
  assert.equal(typeof out.text, "string");
  assert.deepEqual(out.options, {
    steps: 4,
    length: 12,
    block_length: null,
    threshold: null,
    temperature: null,
    seed: null,
    max_time: null,
  });
  assert.equal(out.tokens.prompt, 3); // "ab", " ", "c"
  assert.equal(out.tokens.canvas, 15);
  assert.ok(out.tokens.generated >= 0 && out.tokens.generated <= 12);
  assert.ok(out.steps >= 1 && out.steps <= 4, `steps ${out.steps}`);
  assert.equal(out.forward_passes, out.steps);
  assert.equal(out.remasks, 0);
  assert.ok(["complete", "eos"].includes(out.stop_reason));
  for (const key of ["load_ms", "decode_ms", "tokens_per_s"]) {
    assert.equal(typeof out.timings[key], "number", key);
  }
  assert.equal(JSON.parse((await cli(args)).stdout).text, out.text, "same seed, same text");

  // the plain result off a terminal: the prompt and the generated text, nothing else
  const plain = await cli(args.filter((a) => a !== "--json"));
  assert.equal(plain.code, 0);
  assert.equal(plain.stdout, `ab c${out.text}\n`);
  assert.equal(plain.stderr, "");
  assert.ok(!plain.stdout.includes(ESC), "no escape sequences off a terminal");
});

test("generate: prompt from stdin and from --file; other strategies and options", async () => {
  const stdin = await cli(["generate", "-m", model, "-", "-n", "6", "--json"], { input: "c ab\n" });
  assert.equal(stdin.code, 0, stdin.stderr);
  assert.equal(JSON.parse(stdin.stdout).prompt, "c ab\n");
  const file = join(dir, "prompt.txt");
  await writeFile(file, "c ab\n");
  const fromFile = await cli(["generate", "-m", model, "-f", file, "-n", "6", "--json"]);
  assert.equal(JSON.parse(fromFile.stdout).text, JSON.parse(stdin.stdout).text);

  const fast = await cli([
    "generate",
    "-m",
    model,
    "a",
    "-n",
    "16",
    "--strategy",
    "fast-dllm",
    "--block-length",
    "8",
    "--threshold",
    "0.5",
    "--temperature",
    "0.7",
    "--seed",
    "3",
    "--json",
  ]);
  assert.equal(fast.code, 0, fast.stderr);
  const out = JSON.parse(fast.stdout);
  assert.equal(out.strategy, "fast-dllm");
  assert.deepEqual(out.options, {
    steps: null,
    length: 16,
    block_length: 8,
    threshold: 0.5,
    temperature: 0.7,
    seed: 3,
    max_time: null,
  });
  assert.ok(out.forward_passes >= 1 && out.forward_passes <= 16);
});

test("generate --ar: the autoregressive twin, one forward pass per token", async () => {
  const r = await cli(["generate", "--ar-model", arModel, "ab", "-n", "8", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.decoder, "autoregressive");
  assert.equal(out.strategy, "ar");
  assert.equal(out.forward_passes, out.steps);
  assert.ok(out.steps >= 1 && out.steps <= 8);
  const mixed = await cli(["generate", "--ar", "--model", model, "ab"]);
  assertFails(mixed, 2, /--ar-model/);
});

test("infill: <FILL> and <FILL:n> holes in a file, --prefix/--suffix, --write", async () => {
  const file = join(dir, "holes.txt");
  const source = "ab c\n<FILL:3>\nc c <FILL> ab\n";
  await writeFile(file, source);
  const r = await cli(["infill", "-m", model, file, "-n", "5", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.command, "infill");
  assert.deepEqual(out.holes, [3, 5]);
  assert.equal(out.fills.length, 2);
  assert.equal(out.text, `ab c\n${out.fills[0]}\nc c ${out.fills[1]} ab\n`);
  assert.equal(out.tokens.canvas, 4 + 3 + 5 + 5 + 3); // "ab c\n", hole, "\nc c ", hole, " ab\n"
  assert.equal(out.stop_reason, "complete");

  const plain = await cli(["infill", "-m", model, file, "-n", "5"]);
  assert.equal(plain.stdout, out.text);
  const written = await cli(["infill", "-m", model, file, "-n", "5", "--write"]);
  assert.equal(written.code, 0, written.stderr);
  assert.equal(written.stdout, "");
  assert.equal(await readFile(file, "utf8"), out.text);

  const pair = await cli([
    "infill",
    "-m",
    model,
    "--prefix",
    "ab ",
    "--suffix",
    " c",
    "-n",
    "4",
    "--json",
  ]);
  assert.equal(pair.code, 0, pair.stderr);
  const p = JSON.parse(pair.stdout);
  assert.equal(p.text, `ab ${p.fills[0]} c`);
  assert.deepEqual(p.holes, [4]);
});

test("infill --ar: a causal model fills one hole through its FIM tokens", async () => {
  const args = ["infill", "--ar-model", arModel, "--prefix", "ab ", "--suffix", " c", "-n", "4"];
  const r = await cli([...args, "--temperature", "0", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.decoder, "autoregressive");
  assert.equal(out.text, `ab ${out.fills[0]} c`);
  assert.ok(out.steps >= 1 && out.steps <= 4);
  assert.equal(out.forward_passes, out.steps);
  // FIM fills one hole; a strategy is the diffusion decoder's
  const file = join(dir, "two-holes.txt");
  await writeFile(file, "ab <FILL:2> c <FILL:2>\n");
  assertFails(await cli(["infill", "--ar-model", arModel, file]), 2, /one hole/);
  assertFails(await cli([...args, "--strategy", "llada"]), 2, /--strategy/);
});

test("edit --lines: the other lines never change; --diff shows the change", async () => {
  const file = join(dir, "edit.txt");
  const source = "ab\nc c\nab ab\nc\n";
  await writeFile(file, source);
  const r = await cli(["edit", "-m", model, file, "--lines", "2-3", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.deepEqual(out.lines, [2, 3]);
  assert.equal(out.text, `ab\n${out.replacement}\nc\n`);
  assert.equal(out.counts, undefined);
  assert.equal(out.tokens.replaced, 7); // "c", " ", "c", "\n", "ab", " ", "ab"
  const diff = await cli(["edit", "-m", model, file, "--lines", "2-3", "--diff"]);
  assert.equal(diff.code, 0);
  assert.equal(diff.stdout, out.diff);
  if (out.text !== source)
    assert.match(out.diff, /^--- .*\n\+\+\+ .*\n@@ -1,4 \+1,\d+ @@\n ab\n-c c\n-ab ab\n/);
});

test("fix: a unified diff, and --write applies it", async () => {
  const file = join(dir, "fix.txt");
  await writeFile(file, "ab ab ab\nc c c\nab c ab\n");
  const args = ["fix", "-m", model, file, "--below", "1", "--max-fraction", "0.5"];
  const r = await cli([...args, "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.command, "fix");
  assert.equal(typeof out.diff, "string");
  assert.ok(out.remasked >= 1, "below 1: every token is a candidate");
  assert.ok(out.changed <= out.remasked);
  assert.equal(out.forward_passes, out.steps, "one scoring pass, then one per step");
  const plain = await cli(args);
  assert.equal(plain.stdout, out.diff === "" ? "" : out.diff);
  await cli([...args, "--write"]);
  assert.equal(await readFile(file, "utf8"), out.text);
});

test("bench decode --json: every strategy asked for and the AR twin, side by side", async () => {
  const r = await cli([
    "bench",
    "decode",
    "--model",
    model,
    "--ar-model",
    arModel,
    "--presets",
    "llada,fast-dllm",
    "--length",
    "8",
    "--json",
  ]);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.deepEqual(
    out.presets.map((p: { name: string }) => p.name),
    ["llada", "fast-dllm"],
  );
  for (const speed of [...out.presets, out.ar]) {
    assert.ok(speed.tokens_per_s > 0);
    assert.ok(speed.forwards_per_token > 0 && speed.forwards_per_token <= 1);
  }
  assert.equal(out.ar.forwards_per_token, 1);
  assert.equal(out.gen_length, 8);
  assertFails(await cli(["bench", "decode", "--presets", "llada,best"]), 2, /--presets: .*"best"/);
  assertFails(await cli(["bench", "decode", "--model", model]), 2, /both --model and --ar-model/);
});

test("bench: train --json on a small config; an unknown benchmark is a usage error", async () => {
  const config = join(dir, "model", "config.json");
  const r = await cli([
    "bench",
    "train",
    "--config",
    config,
    "--rows",
    "1",
    "--length",
    "8",
    "--runs",
    "1",
    "--json",
  ]);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  for (const key of [
    "step_ms",
    "tokens_per_s",
    "train_gflops",
    "matmul_peak_gflops",
    "peak_fraction",
  ]) {
    assert.equal(typeof out[key], "number", key);
  }
  assertFails(
    await cli(["bench", "nope"]),
    2,
    /unknown benchmark "nope" \(valid: forward, decode, train, serve, sizes, rows, load, claim, quant, all\)/,
  );
  assertFails(await cli(["bench"]), 2, /which benchmark/);
  assertFails(
    await cli(["bench", "train", "--presets", "llada"]),
    2,
    /--presets: bench train does not read it/,
  );
});

test("bench sizes --json: an AR step against diffusion steps, a roofline, the plot", async () => {
  const plot = join(dir, "plots", "sizes.svg");
  const args = ["bench", "sizes", "--sizes", "embedded", "--runs", "1", "--json", "--plot", plot];
  const r = await cli(args);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.sizes.length, 1);
  const [size] = out.sizes;
  assert.equal(size.name, "embedded");
  assert.deepEqual(
    size.blocks.map((b: { block: number }) => b.block),
    [8, 16, 32],
  );
  assert.ok(size.ar_ms > 0 && size.roofline_ar_ms > 0);
  for (const b of size.blocks) {
    assert.ok(b.step_ms > 0 && b.break_even_tokens_per_step > 0);
    assert.ok(
      b.roofline_break_even >= 1,
      "a step of B ≥ 1 tokens costs at least one token's roofline",
    );
  }
  assert.match(await readFile(plot, "utf8"), /^<svg/);
  assert.ok((await readFile(plot.replace(/\.svg$/, ".png"))).length > 1000);
  assertFails(await cli(["bench", "sizes", "--sizes", "7B"]), 2, /--sizes: unknown size "7B"/);
  assertFails(
    await cli(["bench", "sizes", "--plot", "x.png"]),
    2,
    /--plot: x.png: expected a .svg/,
  );
});

test("bench sizes' step FLOPs: with no context, the forward pass's count", async () => {
  const { stepFlops, sizeShapes } = await import("../src/bench/sizes.js");
  const { forwardFlops } = await import("../src/bench/forward.js");
  for (const { config } of Object.values(sizeShapes)) {
    assert.equal(stepFlops(config, 32, 0, 32), forwardFlops(config, 32, 32));
    assert.equal(stepFlops(config, 1, 0, 1), forwardFlops(config, 1, 1));
    assert.ok(stepFlops(config, 1, 128, 1) > forwardFlops(config, 1, 1), "the context is attended");
  }
});

test("bad input: a clear message, a non-zero exit code, no stack trace", async () => {
  const notAModel = join(dir, "not-a-model");
  await mkdir(notAModel, { recursive: true });
  await writeFile(join(notAModel, "notes.txt"), "hello");
  const badConfig = join(dir, "bad-config");
  await mkdir(badConfig, { recursive: true });
  await writeFile(join(badConfig, "config.json"), '{"vocab_size": 13, "colour": "blue"}');
  const lines = join(dir, "lines.txt");
  await writeFile(lines, "a\nb\nc\n");
  const missing = join(dir, "missing.txt");

  const cases: [string[], number, RegExp][] = [
    [["generate", "-m", model, "--bogus", "ab"], 2, /unknown option --bogus/],
    [["frobnicate"], 2, /unknown command "frobnicate"/],
    [["infill", "-m", model, missing], 2, /missing\.txt: no such file/],
    [["generate", "-m", model, "-f", missing], 2, /missing\.txt: no such file/],
    [["generate", "-m", model, "--steps", "0", "ab"], 2, /--steps: expected an integer ≥ 1, got 0/],
    [
      ["generate", "-m", model, "--steps", "two", "ab"],
      2,
      /--steps: expected an integer, got "two"/,
    ],
    [["generate", "-m", model, "--threshold", "1.5", "ab"], 2, /--threshold: .* \(0, 1\]/],
    // a negative value is the option's value, with the option's own message (not the parser's)
    [
      ["generate", "-m", model, "--steps", "-1", "ab"],
      2,
      /--steps: expected an integer ≥ 1, got -1/,
    ],
    [["generate", "-m", model, "-t", "-0.5", "ab"], 2, /--temperature: .*, got -0\.5/],
    [["generate", "-m", model, "--strategy", "best", "ab"], 2, /valid: llada, /],
    [["generate", "-m", model, "--max-time", "0", "ab"], 2, /--max-time/],
    [["edit", "-m", model, lines, "--lines", "9-3"], 2, /--lines 9-3: the range ends \(3\) before/],
    [["edit", "-m", model, lines, "--lines", "2-7"], 2, /--lines 2-7: the file has 3 lines/],
    [["edit", "-m", model, lines], 2, /which lines\? \(--lines A-B\)/],
    [["infill", "-m", model, lines], 2, /no <FILL> marker/],
    [["generate", "-m", model, "ab ".repeat(40)], 2, /prompt is 80 tokens, longer than .* 64/],
    [
      ["generate", "-m", model, "ab", "-n", "64"],
      2,
      /--length: 64 tokens do not fit: .* room for 63/,
    ],
    [["generate", "-m", notAModel, "ab"], 1, /config\.json: not found: is this a checkpoint/],
    [["generate", "-m", badConfig, "ab"], 1, /config\.json: colour: unknown config key/],
    [["generate", "-m", join(dir, "nowhere"), "ab"], 2, /--model: .*nowhere: not found/],
  ];
  if (!existsSync(join(root, "models", "unmask-code", "config.json"))) {
    cases.push([["generate", "ab"], 2, /embedded model unmask-code is not installed.*--model DIR/]);
  }
  for (const [args, code, pattern] of cases) assertFails(await cli(args), code, pattern);
});

test("corpus → tokenizer → train (and resume) → generate and eval, on a tiny package", async () => {
  const base = join(dir, "corpus");
  const src = join(base, "node_modules", "tiny-pkg", "src");
  await mkdir(src, { recursive: true });
  await writeFile(join(base, "packages.json"), '{"dependencies": {"tiny-pkg": "1.0.0"}}');
  await writeFile(
    join(base, "node_modules", "tiny-pkg", "package.json"),
    '{"name": "tiny-pkg", "version": "1.0.0", "license": "MIT"}',
  );
  for (let m = 0; m < 12; m++) {
    const fns = Array.from(
      { length: 12 },
      (_, k) =>
        `export function f${m}_${k}(a: number, b: number): number {\n  return a * ${k} + b - ${m};\n}\n`,
    );
    await writeFile(join(src, `m${m}.ts`), fns.join("\n"));
  }
  const out = join(base, "out");
  const args = [
    "corpus",
    "--packages",
    join(base, "packages.json"),
    "--node-modules",
    join(base, "node_modules"),
    "--out",
    out,
  ];
  const r = await cli([
    ...args,
    "--valid-fraction",
    "0.5",
    "--tokenizer",
    "--vocab-size",
    "300",
    "--json",
  ]);
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout);
  assert.equal(report.corpus.packages, 1);
  assert.equal(report.corpus.splits.train.files + report.corpus.splits.valid.files, 12);
  assert.ok(report.corpus.splits.valid.files > 0, "a held-out split to evaluate on");
  assert.equal(report.tokenizer.vocabSize, 300);
  for (const f of ["train.jsonl", "valid.jsonl", "manifest.json", "tokenizer.json"]) {
    assert.ok(existsSync(join(out, f)), f);
  }
  assertFails(
    await cli([...args, "--vocab-size", "300"]),
    2,
    /--vocab-size: only with --tokenizer/,
  );
  assertFails(
    await cli(["corpus", "--packages", join(base, "nope.json")]),
    1,
    /packages\.json not found|nope\.json/,
  );

  // train on it (then resume), and generate with the exported model
  const config = join(base, "config.json");
  await writeFile(
    config,
    JSON.stringify({
      model_type: "unmask",
      vocab_size: 300,
      hidden_size: 16,
      num_hidden_layers: 1,
      num_attention_heads: 2,
      intermediate_size: 32,
      max_position_embeddings: 32,
      mask_token_id: 0,
      pad_token_id: 1,
      bos_token_id: 2,
      eos_token_id: 3,
    }),
  );
  const run = join(base, "run");
  const trainArgs = [
    "train",
    "-c",
    config,
    "--corpus",
    out,
    "--run",
    run,
    "-b",
    "2",
    "--length",
    "16",
    "--json",
  ];
  const trained = await cli([...trainArgs, "--steps", "4"]);
  assert.equal(trained.code, 0, trained.stderr);
  const t = JSON.parse(trained.stdout);
  assert.equal(t.objective, "diffusion");
  assert.equal(t.steps, 4);
  assert.equal(t.tokens, 4 * 2 * 16);
  assert.equal(t.resumed_from, null);
  assert.ok(Number.isFinite(t.train_loss) && Number.isFinite(t.valid_bits_per_byte));
  assert.equal(t.model, join(run, "model"));
  const resumed = JSON.parse((await cli([...trainArgs, "--steps", "6"])).stdout);
  assert.match(resumed.resumed_from, /step-0+4$/);
  assert.equal(resumed.steps, 6);
  // A finished run re-exports at once, here in half precision: half the weight bytes.
  const f32Bytes = statSync(join(t.model, "model.safetensors")).size;
  const again = JSON.parse((await cli([...trainArgs, "--steps", "6", "--dtype", "F16"])).stdout);
  assert.equal(again.steps, 6);
  const f16Bytes = statSync(join(t.model, "model.safetensors")).size;
  assert.ok(f16Bytes < 0.6 * f32Bytes, `F16 export ${f16Bytes} B vs F32 ${f32Bytes} B`);
  assert.equal(
    JSON.parse(readFileSync(join(t.model, "generation_config.json"), "utf8")).mask_token_id,
    0,
  );
  // Training an exported model further: --init starts from its weights in a new run folder.
  const furtherArgs = trainArgs.map((a) => (a === run ? `${run}-further` : a));
  const further = await cli([...furtherArgs, "--steps", "1", "--init", t.model]);
  assert.equal(further.code, 0, further.stderr);
  assert.equal(JSON.parse(further.stdout).resumed_from, null);
  // ... or into a config that differs where no tensor's shape does: block-causal with the logit
  // shift, trained by BD3-LM's [x_t ; x_0] form with complementary masks.
  const bd = join(base, "bd.json");
  const bdConfig = { ...JSON.parse(readFileSync(config, "utf8")), attention_mask: "block_causal" };
  await writeFile(bd, JSON.stringify({ ...bdConfig, block_size: 4, logit_shift: true }));
  const bdArgs = [...trainArgs.map((a) => (a === config ? bd : a === run ? `${run}-bd` : a))];
  const adapted = await cli([
    ...bdArgs,
    ...["--steps", "1", "--init", t.model, "--block-context", "dual", "--complementary"],
    ...["--certainty", "2"],
  ]);
  assert.equal(adapted.code, 0, adapted.stderr);
  assert.equal(JSON.parse(adapted.stdout).objective, "block");
  // Distillation: the AR twin (here the model adapted to causal attention) continues corpus
  // prompts greedily; block diffusion trains on those responses against their clean prompts.
  const arConfig = join(base, "ar.json");
  await writeFile(arConfig, JSON.stringify({ ...bdConfig, attention_mask: "causal" }));
  const arArgs = trainArgs.map((a) => (a === config ? arConfig : a === run ? `${run}-ar` : a));
  const arTrained = await cli([...arArgs, "--steps", "1", "--init", t.model]);
  assert.equal(arTrained.code, 0, arTrained.stderr);
  const set = join(base, "distill");
  const distilled = await cli([
    ...["distill", "--teacher", JSON.parse(arTrained.stdout).model, "--corpus", out],
    ...["--out", set, "--rows", "6", "--valid-rows", "2", "--prompt", "8", "--response", "8"],
    "--json",
  ]);
  assert.equal(distilled.code, 0, distilled.stderr);
  const info = JSON.parse(distilled.stdout);
  assert.deepEqual([info.train, info.valid, info.prompt, info.response], [6, 2, 8, 8]);
  const distillArgs = ["train", "-c", bd, "--distill", set, "--run", `${run}-distill`, "-b", "2"];
  const student = await cli([...distillArgs, "--steps", "2", "--block-context", "dual", "--json"]);
  assert.equal(student.code, 0, student.stderr);
  const st = JSON.parse(student.stdout);
  assert.equal(st.tokens, 2 * 2 * 16);
  assert.ok(Number.isFinite(st.valid_bits_per_byte), student.stdout);
  assertFails(
    await cli([...distillArgs, "--steps", "1", "--corpus", out]),
    2,
    /--distill: the set replaces the corpus/,
  );
  assertFails(
    await cli(["train", "-c", config, "--distill", set, "--steps", "1", "--run", `${run}-x`]),
    2,
    /--distill trains block diffusion or the next-token loss on the responses/,
  );
  // TiDAR's one-model drafting: the causal model trains to draft blocks of 4 masks beside its
  // next-token loss, on the same set; the held-out bits per byte stay the next-token loss's.
  const drafter = await cli([
    ...["train", "-c", arConfig, "--distill", set, "--run", `${run}-draft`, "-b", "2"],
    ...["--init", JSON.parse(arTrained.stdout).model, "--steps", "2", "--draft", "4"],
    ...["--draft-weight", "0.5", "--json"],
  ]);
  assert.equal(drafter.code, 0, drafter.stderr);
  const dr = JSON.parse(drafter.stdout);
  assert.equal(dr.objective, "ar");
  assert.ok(Number.isFinite(dr.valid_bits_per_byte), drafter.stdout);
  assertFails(
    await cli([...distillArgs, "--steps", "1", "--draft", "4"]),
    2,
    /--draft: one-model drafting trains a causal model/,
  );
  assertFails(
    await cli([...arArgs, "--steps", "1", "--draft-weight", "2"]),
    2,
    /--draft-weight: it weighs the --draft loss/,
  );
  assertFails(
    await cli([...bdArgs, "--steps", "1", "--anneal-steps", "4"]),
    2,
    /--anneal-steps: annealing opens the mask to full attention/,
  );
  assertFails(
    await cli([...bdArgs, "--steps", "1", "--block-context", "both"]),
    2,
    /--block-context: expected clean, noisy, dual, got "both"/,
  );
  const generated = await cli(["generate", "-m", t.model, "export function", "-n", "8", "--json"]);
  assert.equal(generated.code, 0, generated.stderr);
  const g = JSON.parse(generated.stdout);
  assert.equal(g.tokens.canvas, g.tokens.prompt + 8);
  const evaluated = await cli([
    "eval",
    "-m",
    t.model,
    "--corpus",
    out,
    "-n",
    "16",
    "--samples",
    "2",
    "--json",
  ]);
  assert.equal(evaluated.code, 0, evaluated.stderr);
  const e = JSON.parse(evaluated.stdout);
  assert.equal(e.method, "diffusion-elbo");
  assert.equal(e.length, 16);
  assert.ok(
    e.rows >= 1 && e.bytes > 0 && Number.isFinite(e.bits_per_byte) && e.bits_per_byte_stderr >= 0,
  );
  assertFails(await cli(["train", "-c", config, "--corpus", out]), 2, /--steps N or --tokens N/);
  const nowhere = join(base, "nowhere");
  assertFails(
    await cli(["train", "--steps", "1", "--corpus", nowhere]),
    2,
    /'unmask corpus' first/,
  );
});

/** The CLI's command line for a shell. */
function shellLine(args: string[]): string {
  const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  return [process.execPath, main, ...args].map(quote).join(" ");
}

const hasScript = spawnSync("script", ["--version"]).status === 0;
const hasTmux = spawnSync("tmux", ["-V"]).status === 0;

test("live canvas under a pseudo-terminal (script): frames drawn in place, then the result", {
  skip: hasScript ? false : "util-linux script is not installed",
}, async () => {
  const args = ["generate", "-m", model, "ab c", "-n", "12", "--steps", "4"];
  const expected = JSON.parse((await cli([...args, "--json"])).stdout) as { text: string };
  const r = spawnSync(
    "script",
    ["-qec", `stty cols 100 rows 30; ${shellLine(args)}`, "/dev/null"],
    {
      encoding: "utf8",
      env: { ...process.env, TERM: "xterm-256color", NO_COLOR: "" },
    },
  );
  assert.equal(r.status, 0, r.stderr);
  const raw = r.stdout;
  assert.ok(raw.includes("\x1b[?25l"), "the cursor is hidden while drawing");
  assert.ok(raw.includes("\x1b[?25h"), "and shown again");
  assert.match(raw, /step 1 · \d+ masked · 1 forward passes/, "a frame per step");
  assert.ok(raw.includes("░"), "masked positions drawn as placeholders");
  assert.match(raw, new RegExp(`${ESC}\\[\\d+F${ESC}\\[J`), "the frame is erased in place");
  // the final text, after the last erase
  const final = raw.slice(raw.lastIndexOf("\x1b[J") + 3).replace(/\r/g, "");
  assert.ok(final.includes(`ab c${expected.text}\n`), JSON.stringify(final));
  assert.match(final, /\d+ tokens · \d+ steps · \d+ forward passes · [\d.]+ tokens\/s/);

  // NO_COLOR (and TERM=dumb): no animation, no escapes in the result
  const plain = spawnSync("script", ["-qec", shellLine(args), "/dev/null"], {
    encoding: "utf8",
    env: { ...process.env, NO_COLOR: "1" },
  });
  assert.ok(!plain.stdout.includes(ESC) && !plain.stdout.includes("step 1 ·"), "no animation");
  assert.ok(plain.stdout.replace(/\r/g, "").startsWith(`ab c${expected.text}\n`));
});

let tmuxSessions = 0;

/** Runs `args` in a detached tmux session; resolves with helpers to read its screen. */
async function inTmux(
  args: string[],
  run: (tmux: (...a: string[]) => string, rc: string) => Promise<void>,
): Promise<string> {
  // a fresh server per session: a new session on a server still shutting down can be lost
  const id = `${process.pid}-${++tmuxSessions}`;
  const socket = `unmask-cli-test-${id}`;
  const rc = join(dir, `rc-${id}`);
  const tmux = (...a: string[]) =>
    spawnSync("tmux", ["-L", socket, ...a], { encoding: "utf8" }).stdout ?? "";
  const line = `${shellLine(args)}; echo $? > ${rc}; sleep 30`;
  spawnSync(
    "tmux",
    ["-L", socket, "new-session", "-d", "-s", "cli", "-x", "100", "-y", "30", line],
    {
      env: { ...process.env, TERM: "xterm-256color", NO_COLOR: "" },
    },
  );
  try {
    await run(tmux, rc);
  } finally {
    spawnSync("tmux", ["-L", socket, "kill-server"]);
  }
  return rc;
}

async function waitFor(
  what: string,
  check: () => boolean,
  show: () => string = () => "",
  seconds = 20,
): Promise<void> {
  const deadline = Date.now() + seconds * 1000;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}\n${show()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test("live canvas under tmux: the final screen holds the result and the summary", {
  skip: hasTmux ? false : "tmux is not installed",
}, async () => {
  const args = ["generate", "-m", model, "ab c", "-n", "20", "--steps", "5"];
  const expected = JSON.parse((await cli([...args, "--json"])).stdout) as { text: string };
  let screen = "";
  const rc = await inTmux(args, async (tmux, rc) => {
    await waitFor(
      "the exit code",
      () => existsSync(rc),
      () => tmux("capture-pane", "-p", "-t", "cli"),
    );
    screen = tmux("capture-pane", "-p", "-t", "cli");
  });
  assert.equal((await readFile(rc, "utf8")).trim(), "0");
  const lines = screen.split("\n").map((l) => l.trimEnd());
  const result = `ab c${expected.text}`.split("\n").map((l) => l.trimEnd());
  assert.deepEqual(lines.slice(0, result.length), result, screen);
  assert.match(lines[result.length], /^\d+ tokens · \d+ steps · \d+ forward passes/);
  assert.doesNotMatch(screen, /step \d+ ·|░/, "the animation is gone");
});

test("Ctrl-C stops at the next step and prints what is there (exit 130)", {
  skip: hasTmux ? false : "tmux is not installed",
}, async () => {
  const args = ["generate", "-m", slowModel, "ab", "-n", "400"];
  let screen = "";
  const rc = await inTmux(args, async (tmux, rc) => {
    const screenNow = () => tmux("capture-pane", "-p", "-t", "cli");
    await waitFor(
      "a few steps",
      () => Number(/step (\d+) ·/.exec(screenNow())?.[1] ?? 0) >= 2,
      screenNow,
    );
    tmux("send-keys", "-t", "cli", "C-c");
    await waitFor("the exit code", () => existsSync(rc));
    screen = tmux("capture-pane", "-p", "-t", "cli");
  });
  assert.equal((await readFile(rc, "utf8")).trim(), "130");
  assert.match(screen, /^ab/, "the prompt and what was decoded");
  assert.ok(screen.includes("░"), "the masks still there");
  assert.match(screen, /forward passes · .* · interrupted/);
});

test("--max-time and SIGINT off a terminal: partial results as JSON", async () => {
  const timed = await cli([
    "generate",
    "-m",
    slowModel,
    "ab",
    "-n",
    "400",
    "--max-time",
    "0.5",
    "--json",
  ]);
  assert.equal(timed.code, 0, timed.stderr);
  const t = JSON.parse(timed.stdout);
  assert.equal(t.stop_reason, "max_time");
  assert.ok(t.text.includes("░") && t.steps < 400);

  // SIGINT once the first step is decoded (UNMASK_DEBUG prints a line per step on stderr)
  let sent = false;
  const r = await cli(["generate", "-m", slowModel, "ab", "-n", "400", "--json"], {
    env: { UNMASK_DEBUG: "1" },
    onStderr: (stderr, pid) => {
      if (!sent && stderr.includes("unmask: debug: step 1 ·")) {
        sent = true;
        process.kill(pid, "SIGINT");
      }
    },
  });
  assert.ok(sent, "a step was traced");
  assert.equal(r.code, 130, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.stop_reason, "interrupted");
  assert.ok(out.steps < 400);
});
