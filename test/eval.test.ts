// Evaluation (src/eval, `unmask eval`): infill tasks from held-out files, the scorers, and whole
// runs on tiny random models (a byte-level BPE trained here on a few synthetic TypeScript files).

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { type EvalReport, evaluateModel, samplePrompts } from "../src/eval/evaluate.js";
import { heldOutRows, readHeldOutDocuments } from "../src/eval/held-out.js";
import {
  buildInfillTasks,
  humanEvalXFile,
  type InfillTask,
  readHumanEvalX,
  type SourceDocument,
} from "../src/eval/infill-tasks.js";
import {
  checkSyntax,
  editSimilarity,
  matchInfill,
  matchLine,
  sampleText,
} from "../src/eval/score.js";
import { saveCheckpoint, Tokenizer } from "../src/format/index.js";
import { type ModelConfig, parseModelConfig } from "../src/model/config.js";
import { OnnxModel } from "../src/model/engine.js";
import { randomWeights } from "../src/model/random.js";
import { bpeTokenizerConfig, bpeToTokenizerJson, trainBpe } from "../src/train/bpe.js";

const root = fileURLToPath(new URL("../../", import.meta.url));
const main = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));

/** A TypeScript file of `n` small functions, different per `seed`. */
function tsFile(seed: number, n = 8): string {
  const parts = [`// module ${seed}\nimport { helper } from "./helper.js";\n`];
  for (let k = 0; k < n; k++) {
    parts.push(
      `export function f${seed}_${k}(a: number, b: number): number {\n` +
        `  const total = helper(a) * ${k + seed};\n` +
        `  if (total > b) {\n    return total - b;\n  }\n` +
        `  return a + b + ${k};\n}\n`,
    );
  }
  return parts.join("\n");
}

const docs: SourceDocument[] = [0, 1, 2, 3, 4, 5].map((s) => ({
  source: `pkg@1.0.0/src/m${s}.ts`,
  path: `src/m${s}.ts`,
  text: tsFile(s),
}));

/** One token per UTF-16 unit: exact counts that are easy to reason about. */
const chars = {
  encode: (t: string) => Array.from(t, (c) => c.charCodeAt(0)),
  decode: (ids: ArrayLike<number>) => String.fromCharCode(...Array.from(ids)),
};

/**
 * Like the project's BPE pre-tokenizer, a newline and the next line's indentation are one token;
 * words, runs of spaces and single punctuation the others (each piece one id, from a table).
 */
function indentCodec() {
  const table: string[] = [];
  const ids = new Map<string, number>();
  return {
    encode: (t: string) =>
      (t.match(/\n[ ]*|[A-Za-z0-9_$]+| +|[^A-Za-z0-9_$ \n]/g) ?? []).map((piece) => {
        let id = ids.get(piece);
        if (id === undefined) {
          id = table.push(piece) - 1;
          ids.set(piece, id);
        }
        return id;
      }),
    decode: (ids: ArrayLike<number>) => Array.from(ids, (id) => table[id]).join(""),
  };
}

function checkTask(task: InfillTask, text: string): void {
  assert.equal(text.slice(task.window[0], task.window[1]), task.prefix + task.middle + task.suffix);
  assert.ok(task.window[0] === 0 || text[task.window[0] - 1] === "\n", "prefix starts a line");
  assert.ok(task.prefix === "" || task.prefix.endsWith("\n"), "hole starts a line");
  assert.ok(task.middle.endsWith("\n") || task.suffix === "", "hole ends a line");
  assert.equal(task.middle.split("\n").length - 1, task.lines, "whole lines");
  assert.ok(task.window[1] === text.length || text[task.window[1] - 1] === "\n");
}

describe("infill tasks", () => {
  it("single-line: one whole line of 10–120 characters with a word, the file around it", () => {
    const tasks = buildInfillTasks(docs, {
      tokenizer: chars,
      context: 1e6,
      kind: "single-line",
      count: 40,
    });
    assert.equal(tasks.length, 40);
    for (const t of tasks) {
      const doc = docs.find((d) => d.source === t.source)!;
      checkTask(t, doc.text);
      assert.deepEqual(t.window, [0, doc.text.length], "the whole file fits");
      assert.equal(t.lines, 1);
      const line = t.middle.trim();
      assert.ok(line.length >= 10 && line.length <= 120 && /\w/.test(line), line);
      assert.equal(t.middleTokens, t.middle.length);
      assert.equal(t.holeTokens, t.middleTokens);
      assert.match(t.id, /^pkg@1\.0\.0\/src\/m\d\.ts:\d+$/);
    }
    assert.ok(new Set(tasks.map((t) => t.id)).size === tasks.length, "no line twice");
  });

  it("multi-line: 2–6 lines; windows clipped to the context; deterministic per seed", () => {
    const o = { tokenizer: chars, context: 160, kind: "multi-line" as const, count: 20 };
    const tasks = buildInfillTasks(docs, o);
    assert.equal(tasks.length, 20);
    for (const t of tasks) {
      checkTask(t, docs.find((d) => d.source === t.source)!.text);
      assert.ok(t.lines >= 2 && t.lines <= 6);
      assert.ok(t.holeTokens <= 80, "the hole leaves half the context");
      assert.ok(t.prefix.length + t.holeTokens + t.suffix.length <= 160, "fits the context");
      assert.ok(t.prefix.length + t.holeTokens + t.suffix.length > 100, "and uses it");
    }
    assert.deepEqual(buildInfillTasks(docs, o), tasks);
    assert.notDeepEqual(
      buildInfillTasks(docs, { ...o, seed: 1 }).map((t) => t.id),
      tasks.map((t) => t.id),
    );
    const trim = buildInfillTasks(docs, { ...o, holeScale: 1.5 });
    for (const t of trim) assert.equal(t.holeTokens, Math.ceil(1.5 * t.middleTokens));
  });

  it("holes lie on token boundaries: a newline+indent token is never split", () => {
    const codec = indentCodec();
    for (const kind of ["single-line", "multi-line"] as const) {
      const tasks = buildInfillTasks(docs, { tokenizer: codec, context: 120, kind, count: 20 });
      assert.equal(tasks.length, 20);
      for (const t of tasks) {
        const text = docs.find((d) => d.source === t.source)!.text;
        assert.equal(text.slice(t.window[0], t.window[1]), t.prefix + t.middle + t.suffix);
        // the pieces tokenized alone are the window's own tokens: a model can write the middle
        const window = text.slice(t.window[0], t.window[1]);
        const parts = [t.prefix, t.middle, t.suffix].flatMap((piece) => codec.encode(piece));
        assert.deepEqual(parts, codec.encode(window), t.id);
        assert.equal(t.holeTokens, codec.encode(t.middle).length);
        assert.ok(/\n *$/.test(t.middle) || t.suffix === "", "ends with the line's newline token");
        assert.ok(!t.middle.startsWith(" "), "the indentation stays in the prefix");
      }
    }
    const completion = buildInfillTasks(docs, {
      tokenizer: codec,
      context: 120,
      kind: "single-line",
      count: 5,
      suffix: false,
    });
    for (const t of completion) {
      assert.equal(t.suffix, "");
      assert.ok(t.prefix.length > 100, "the whole context before the line");
    }
  });

  it("skips holes too long for the context and text holding the mask token", () => {
    assert.deepEqual(
      buildInfillTasks(docs, { tokenizer: chars, context: 16, kind: "single-line", count: 5 }),
      [],
    );
    const masked = buildInfillTasks(docs, {
      tokenizer: chars,
      context: 1e6,
      kind: "single-line",
      count: 5,
      maskTokenId: "{".charCodeAt(0),
    });
    assert.deepEqual(masked, []);
  });

  it("HumanEval-X JS: every non-blank solution line but a lone brace (HumanEval-infilling)", {}, async () => {
    const problems = await readHumanEvalX(join(root, humanEvalXFile));
    assert.equal(problems.length, 164);
    const tasks = buildInfillTasks(problems, {
      tokenizer: chars,
      context: 1e6,
      kind: "single-line",
      count: Infinity,
      maxHoleShare: 1,
    });
    assert.equal(tasks.length, 1293, "the 1293 candidates of SOURCES.md");
    for (const t of tasks.slice(0, 50)) {
      const p = problems.find((d) => d.source === t.source)!;
      checkTask(t, p.text);
      assert.ok(t.line >= p.holeLines![0], "never a line of the prompt");
    }
  });
});

describe("scoring", () => {
  it("exact match trims trailing whitespace; normalised match squeezes all whitespace", () => {
    assert.deepEqual(matchInfill("  return a;\n", "  return a;"), {
      exact: true,
      normalized: true,
    });
    assert.deepEqual(matchInfill("  return a;\n", "  return a;  \n\n"), {
      exact: true,
      normalized: true,
    });
    assert.deepEqual(matchInfill("  return a;\n", "return a;"), { exact: false, normalized: true });
    assert.deepEqual(matchInfill("a(b, c);\n", "a(b,c);"), { exact: false, normalized: false });
    assert.deepEqual(matchInfill("x\n  y\n", "x   \n  y"), { exact: true, normalized: true });
  });

  it("edit similarity is fuzz.ratio / 100 (2·LCS / total length); line match as CodeXGLUE", () => {
    assert.equal(editSimilarity("abc", "abc"), 1);
    assert.equal(editSimilarity("abc", "xyz"), 0);
    assert.equal(editSimilarity("", ""), 1);
    assert.equal(editSimilarity("abc", ""), 0);
    // fuzz.ratio("kitten", "sitting") = 62: LCS "ittn" = 4, 2·4 / 13
    assert.equal(editSimilarity("kitten", "sitting"), 8 / 13);
    assert.equal(editSimilarity("  x = 1;\n", "x = 1;"), 1, "ends trimmed");
    assert.deepEqual(matchLine("return a + b;\n  ", "return  a + b;\n}\n"), {
      exact: true,
      editSimilarity: editSimilarity("return a + b;", "return  a + b;"),
    });
    assert.deepEqual(matchLine("return a;", "\nreturn a;"), { exact: false, editSimilarity: 0 });
  });

  it("syntax: TypeScript and JavaScript parse; errors before the end make a sample invalid", () => {
    const ok = "export function f(a: number): number {\n  return a * 2;\n}\n";
    assert.deepEqual(checkSyntax(ok), { complete: true, validPrefix: true });
    assert.equal(
      checkSyntax("const f = (a) => a + 1;\nclass A { m() {} }\n", "a.js").complete,
      true,
    );
    assert.equal(checkSyntax("const x = <div>{1}</div>;\n", "a.tsx").complete, true);
    // cut off mid-function: only errors at the end
    const cut = checkSyntax("function f(a: number) {\n  if (a) {\n    return a;\n");
    assert.equal(cut.complete, false);
    assert.equal(cut.validPrefix, true);
    assert.equal(checkSyntax("const x =\n").validPrefix, true);
    assert.equal(checkSyntax("/* a comment\n").validPrefix, true);
    for (const bad of ["let x = = 2;\n", "function (\n}\nconst y = 1;\n", "a b c\n", "x = );\n"]) {
      const r = checkSyntax(bad);
      assert.equal(r.validPrefix, false, bad);
      assert.equal(typeof r.firstError?.message, "string");
    }
  });

  it("a sample keeps the completion's complete lines, all of it when the model ended the text", () => {
    assert.deepEqual(sampleText("a();\n", "b();\nc(", false), { text: "a();\nb();\n", lines: 1 });
    assert.deepEqual(sampleText("a();\n", "b();\nc();", true), {
      text: "a();\nb();\nc();",
      lines: 2,
    });
    assert.deepEqual(sampleText("a();\n", "  \nb(", false), { text: "a();\n  \n", lines: 0 });
  });

  it("prompts: whole lines from file beginnings within the budget, never the whole file", () => {
    const prompts = samplePrompts(docs, 4, 60, chars, 0);
    assert.equal(prompts.length, 4);
    for (const p of prompts) {
      const doc = docs.find((d) => d.source === p.source)!;
      assert.ok(doc.text.startsWith(p.text) && p.text.endsWith("\n"));
      assert.ok(p.tokens <= 60 && p.text.length < doc.text.length);
      assert.ok(doc.text.slice(0, doc.text.indexOf("\n", p.text.length) + 1).length > 60);
    }
    assert.deepEqual(samplePrompts(docs, 4, 60, chars, 0), prompts);
  });
});

// ---------------------------------------------------------------------------------------------
// Whole runs on tiny random models

let dir = "";
let tokenizerJson: object = {};
let tokenizer: Tokenizer;
let corpus = "";

function tinyConfig(attention: "full" | "causal", vocab: number): ModelConfig {
  return parseModelConfig({
    model_type: "unmask",
    vocab_size: vocab,
    hidden_size: 16,
    num_hidden_layers: 1,
    num_attention_heads: 2,
    intermediate_size: 32,
    max_position_embeddings: 64,
    attention_mask: attention,
    mask_token_id: 0,
    pad_token_id: 1,
    bos_token_id: 2,
    eos_token_id: 3,
  });
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "unmask-eval-"));
  const bpe = await trainBpe(
    docs.map((d) => d.text),
    { vocabSize: 300 },
  );
  tokenizerJson = bpeToTokenizerJson(bpe);
  tokenizer = Tokenizer.fromJson(tokenizerJson, bpeTokenizerConfig(bpe));
  corpus = join(dir, "corpus");
  await mkdir(corpus);
  const lines = docs.map((d, i) =>
    JSON.stringify({
      package: "pkg",
      version: "1.0.0",
      license: "MIT",
      path: `src/m${i}.ts`,
      language: "typescript",
      text: d.text,
    }),
  );
  await writeFile(join(corpus, "valid.jsonl"), `${lines.join("\n")}\n`);
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The report without its timings, which differ from run to run. */
function untimed(r: EvalReport): unknown {
  return JSON.parse(JSON.stringify(r), (k, v) =>
    k === "seconds" || k === "tokensPerSecond" ? undefined : v,
  );
}

describe("evaluateModel", () => {
  it("a diffusion model: bits per byte, infill, syntax; the same numbers on a second run", async () => {
    const config = tinyConfig("full", tokenizer.vocabSize);
    const model = await OnnxModel.create(config, randomWeights(config, 3, 0.5));
    try {
      const documents = await readHeldOutDocuments(join(corpus, "valid.jsonl"));
      assert.equal(documents[0].source, "pkg@1.0.0/src/m0.ts");
      const heldOut = await heldOutRows({
        corpus: join(corpus, "valid.jsonl"),
        tokenizerJson,
        length: 32,
        rows: 3,
      });
      assert.equal(heldOut.sequences.length, 3);
      const options = {
        heldOut,
        documents,
        singleLineTasks: 4,
        multiLineTasks: 2,
        samples: 3,
        sampleTokens: 12,
        elboSamples: 2,
      };
      const phases = new Set<string>();
      const r = await evaluateModel(model, tokenizer, options, (phase) => phases.add(phase));
      assert.deepEqual(
        [...phases],
        ["bits-per-byte", "infill-single-line", "infill-multi-line", "samples"],
      );
      assert.equal(r.attention, "full");
      assert.equal(r.bitsPerByte?.method, "diffusion-elbo");
      assert.equal(r.bitsPerByte?.rows, 3);
      assert.ok(Number.isFinite(r.bitsPerByte?.bitsPerByte) && r.bitsPerByte!.bitsPerByte > 0);
      for (const [s, n] of [
        [r.infill.singleLine, 4],
        [r.infill.multiLine, 2],
      ] as const) {
        assert.equal(s?.tasks, n);
        assert.equal(s?.outcomes.length, n);
        assert.ok(s!.exactShare! >= 0 && s!.exactShare! <= s!.normalizedShare!);
        assert.ok(s!.holeTokens > 0);
      }
      assert.equal(r.infill.humanEval, null);
      assert.equal(r.infill.note, null);
      const syntax = r.syntax!;
      assert.equal(syntax.samples, 3);
      assert.equal(syntax.sampleTokens, 12);
      assert.equal(syntax.decoder, "generate (llada)");
      assert.ok(syntax.validShare! >= syntax.completeShare!);
      assert.ok(syntax.tokens <= 3 * 12);
      for (const s of syntax.outcomes) {
        assert.ok(
          s.promptTokens <= 52 &&
            s.valid === (s.lines > 0 && checkSyntax(s.text, "x.ts").validPrefix),
        );
      }
      const again = await evaluateModel(model, tokenizer, options);
      assert.deepEqual(untimed(again), untimed(r));
    } finally {
      await model.dispose();
    }
  });

  it("an AR model: exact likelihood, no infill score, samples by generateAr", async () => {
    const config = tinyConfig("causal", tokenizer.vocabSize);
    const model = await OnnxModel.create(config, randomWeights(config, 4, 0.5));
    try {
      const heldOut = await heldOutRows({
        corpus: join(corpus, "valid.jsonl"),
        tokenizerJson,
        length: 32,
        rows: 2,
      });
      const documents = await readHeldOutDocuments(join(corpus, "valid.jsonl"));
      const r = await evaluateModel(model, tokenizer, {
        heldOut,
        documents,
        samples: 2,
        sampleTokens: 8,
      });
      assert.equal(r.bitsPerByte?.method, "exact");
      assert.equal(r.bitsPerByte?.standardError, 0);
      assert.equal(r.infill.singleLine, null);
      assert.equal(r.infill.multiLine, null);
      assert.match(r.infill.note ?? "", /fill-in-the-middle/);
      assert.equal(r.syntax?.decoder, "generateAr (greedy)");
      assert.equal(r.syntax?.samples, 2);
    } finally {
      await model.dispose();
    }
  });

  it("stops on an aborted signal", async () => {
    const config = tinyConfig("full", tokenizer.vocabSize);
    const model = await OnnxModel.create(config, randomWeights(config, 3, 0.5));
    try {
      const controller = new AbortController();
      controller.abort(new Error("stop"));
      await assert.rejects(
        evaluateModel(model, tokenizer, { documents: docs, signal: controller.signal }),
        /stop/,
      );
    } finally {
      await model.dispose();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// The command line

function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [main, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

describe("unmask eval", () => {
  it("--help shows every option", async () => {
    const r = await cli(["eval", "--help"]);
    assert.equal(r.code, 0);
    for (const o of [
      "--model",
      "--ar",
      "--corpus",
      "--rows",
      "--tasks",
      "--samples",
      "--seed",
      "--json",
    ]) {
      assert.ok(r.stdout.includes(o), o);
    }
  });

  it("--json: the documented fields, on a tiny model; the AR twin has null infill", async () => {
    const model = join(dir, "model");
    const arModel = join(dir, "model-ar");
    for (const [path, attention] of [
      [model, "full"],
      [arModel, "causal"],
    ] as const) {
      const config = tinyConfig(attention, tokenizer.vocabSize);
      await saveCheckpoint(path, { config, weights: randomWeights(config, 5, 0.5), tokenizerJson });
    }
    const args = [
      "--corpus",
      corpus,
      "--rows",
      "2",
      "-n",
      "32",
      "--tasks",
      "3,2",
      "--samples",
      "2",
    ];
    const more = ["--sample-length", "8", "--elbo-samples", "2", "--json"];
    const r = await cli(["eval", "--model", model, ...args, ...more]);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(out.model, model);
    assert.equal(out.attention, "full");
    assert.equal(out.method, "diffusion-elbo");
    assert.equal(out.rows, 2);
    assert.equal(out.length, 32);
    assert.ok(out.bits_per_byte > 0 && out.bits_per_byte_stderr >= 0);
    assert.equal(out.infill_single_line_tasks, 3);
    assert.equal(out.infill_multi_line_tasks, 2);
    for (const k of ["infill_single_line_exact", "infill_multi_line_exact", "syntax_valid_share"]) {
      assert.ok(out[k] >= 0 && out[k] <= 1, k);
    }
    assert.equal(out.infill_humaneval_x_exact, null);
    assert.equal(out.syntax_samples, 2);
    assert.ok(out.tokens_per_s > 0);
    assert.ok(out.timings.total_s > 0);
    assert.equal(out.options.seed, 0);
    const ar = JSON.parse((await cli(["eval", "--model", arModel, ...args, ...more])).stdout);
    assert.equal(ar.method, "exact");
    assert.equal(ar.infill_single_line_exact, null);
    assert.equal(ar.infill_multi_line_tasks, 0);
    assert.equal(ar.syntax_samples, 2);
    const bad = await cli(["eval", "--model", model, "--ar"]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--ar/);
  });
});
