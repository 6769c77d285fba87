// `unmask eval`: a model's numbers on held-out data (src/eval): bits per byte on the corpus's
// valid split (the diffusion ELBO, or the AR twin's exact likelihood, on the same bytes), infill
// exact match on single-line and multi-line holes of held-out files (optionally HumanEval-X JS),
// and the share of generated samples that parse as TypeScript/JavaScript, with decoding speed.

import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import {
  type EvalPhase,
  type EvalReport,
  type EvaluateOptions,
  evaluateModel,
  type InfillScore,
} from "../eval/evaluate.js";
import { heldOutRows, readHeldOutDocuments } from "../eval/held-out.js";
import { humanEvalXFile, readHumanEvalX } from "../eval/infill-tasks.js";
import { loadModel, resolveModelDir } from "../host/models.js";
import { type CommandSpec, flag, intOption, parse, stringOption, UsageError } from "./args.js";
import { type Command, type Context, Interrupted } from "./command.js";
import { asUsageError, modelOption } from "./decode.js";
import { packageRoot } from "./package.js";
import { PhasedProgress } from "./progress.js";

const spec: CommandSpec = {
  name: "eval",
  usage: ["eval [options]"],
  description: `
Evaluates a model on the valid split of the corpus ('unmask corpus'), files never trained on:

  bits per byte   the first --rows rows of --length tokens of the split (as training's own
                  validation packs them), scored by the masked-diffusion ELBO (LLaDA's
                  estimator; an upper bound, with its standard error) for a diffusion model, its
                  block form for a block-diffusion model, exactly for an AR model. Lower is better.
  infill          exact match (trailing whitespace trimmed; also whitespace-normalised) of
                  whole lines hidden in held-out files: one line (10-120 characters, not a lone
                  brace) or 2-6 lines, the rest of the file around them as context. The hole has
                  the true middle's token count (the "oracle length" of diffusion infilling
                  evaluations); --trim gives it 1.5x and lets the model end it early. An AR model
                  has no infill score (it would need fill-in-the-middle training).
  syntax          --samples continuations of --sample-length tokens from the beginnings of
                  held-out files; a sample (prompt + the completion's complete lines) is valid
                  when it adds a line and TypeScript's parser finds no error before the end of
                  the text. Also the decoding speed, in generated tokens per second.

Every choice is seeded (--seed) and decoding is greedy: the same command gives the same numbers.`,
  options: [
    modelOption,
    {
      name: "ar",
      type: "boolean",
      description: "evaluate the embedded AR twin models/unmask-code-ar (instead of --model)",
    },
    {
      name: "corpus",
      type: "string",
      value: "DIR",
      description: "the corpus folder with valid.jsonl (default: .cache/corpus)",
    },
    {
      name: "rows",
      type: "string",
      value: "N",
      description: "held-out rows for bits per byte (default 64; 0: skip)",
    },
    {
      name: "length",
      type: "string",
      short: "n",
      value: "N",
      description: "tokens per row (default: the model's context, at most 256)",
    },
    {
      name: "elbo-samples",
      type: "string",
      value: "N",
      description: "Monte Carlo samples per row for the diffusion bounds (default 16)",
    },
    { name: "batch", type: "string", value: "N", description: "rows per forward pass (default 8)" },
    {
      name: "tasks",
      type: "string",
      value: "N[,M]",
      description:
        "single-line and multi-line infill tasks (default 50,30; one number: both; 0: skip)",
    },
    {
      name: "humaneval",
      type: "string",
      value: "N",
      description: `single-line infill tasks from HumanEval-X JS solutions (${humanEvalXFile}; default 0)`,
    },
    { name: "trim", type: "boolean", description: "variable-length holes (1.5x, ended early)" },
    {
      name: "samples",
      type: "string",
      value: "N",
      description: "generated samples for the syntax check (default 20; 0: skip)",
    },
    {
      name: "sample-length",
      type: "string",
      value: "N",
      description: "tokens per sample (default 64, at most half the context)",
    },
    { name: "seed", type: "string", value: "N", description: "seed of every choice (default 0)" },
    { name: "json", type: "boolean", description: "print the result as JSON" },
  ],
  examples: [
    "unmask eval",
    "unmask eval --ar   # the AR twin, on the same rows and prompts",
    "unmask eval --model ./run/model --corpus /tmp/corpus --humaneval 100 --json",
    "unmask eval --rows 0 --tasks 0 --samples 50   # only the syntax check",
  ],
  sections: [
    [
      "JSON output",
      `bits_per_byte, bits_per_byte_stderr, method (of the bound), rows, length, bytes;
infill_single_line_exact, infill_multi_line_exact, infill_humaneval_x_exact (shares, null when
not measured) with their _normalized shares and _tasks counts; syntax_valid_share,
syntax_complete_share, syntax_samples, tokens_per_s; timings (seconds per phase); model,
attention, corpus, options.`,
    ],
  ],
};

const phaseLabels: Record<EvalPhase, string> = {
  "bits-per-byte": "bits/byte",
  "infill-single-line": "infill single-line",
  "infill-multi-line": "infill multi-line",
  "infill-humaneval-x": "infill HumanEval-X",
  samples: "samples",
};

/** --tasks N or N,M. */
function taskCounts(raw: string | undefined): [number, number] {
  if (raw === undefined) return [50, 30];
  const m = /^\s*(\d+)\s*(?:,\s*(\d+)\s*)?$/.exec(raw);
  if (m === null) {
    throw new UsageError(
      `--tasks: expected N or N,M (non-negative integers), got ${JSON.stringify(raw)}`,
    );
  }
  return [Number(m[1]), Number(m[2] ?? m[1])];
}

async function run(argv: string[], context: Context): Promise<number> {
  const parsed = parse(spec, argv);
  const ar = flag(parsed, "ar");
  if (ar && stringOption(parsed, "model") !== undefined) {
    throw new UsageError("--ar evaluates the embedded AR twin: pass either --ar or --model DIR");
  }
  let dir: string;
  try {
    dir = resolveModelDir(
      stringOption(parsed, "model"),
      ar ? "autoregressive" : "diffusion",
      "--model",
    );
  } catch (error) {
    throw asUsageError(error);
  }
  const corpusDir = resolve(
    stringOption(parsed, "corpus") ?? join(packageRoot(), ".cache", "corpus"),
  );
  const valid = join(corpusDir, "valid.jsonl");
  if (!existsSync(valid)) {
    throw new UsageError(`${valid}: not found (run 'unmask corpus' first, or pass --corpus DIR)`);
  }
  const rows = intOption(parsed, "rows", 0) ?? 64;
  const [single, multi] = taskCounts(stringOption(parsed, "tasks"));
  const humanEvalTasks = intOption(parsed, "humaneval", 0) ?? 0;
  const options: EvaluateOptions = {
    singleLineTasks: single,
    multiLineTasks: multi,
    humanEvalTasks,
    holeLength: flag(parsed, "trim") ? "trim" : "fixed",
    samples: intOption(parsed, "samples", 0) ?? 20,
    sampleTokens: intOption(parsed, "sample-length", 1) ?? 64,
    elboSamples: intOption(parsed, "elbo-samples", 1) ?? 16,
    batchRows: intOption(parsed, "batch", 1) ?? 8,
    seed: intOption(parsed, "seed", Number.MIN_SAFE_INTEGER) ?? 0,
    signal: context.interrupt,
  };
  if (humanEvalTasks > 0) {
    options.humanEval = await readHumanEvalX(resolve(packageRoot(), humanEvalXFile));
  }

  const loaded = await loadModel(dir);
  try {
    const { config } = loaded;
    const length =
      intOption(parsed, "length", 2, config.maxPositions) ?? Math.min(256, config.maxPositions);
    if (config.attention === "block_causal" && length % config.blockSize !== 0) {
      throw new UsageError(
        `--length ${length}: not a multiple of the block size ${config.blockSize}`,
      );
    }
    const progress = new PhasedProgress("eval");
    const started = performance.now();
    let report: EvalReport;
    try {
      if (rows > 0) {
        const tokenizerJson = JSON.parse(await readFile(join(dir, "tokenizer.json"), "utf8"));
        try {
          options.heldOut = await heldOutRows({
            corpus: valid,
            tokenizerJson,
            length,
            rows,
            onProgress: (p) =>
              progress.update("tokenize", p.done, p.fileBytes, { tokens: p.tokens }),
          });
        } catch (error) {
          if (error instanceof RangeError) throw new UsageError(error.message, { cause: error });
          throw error;
        }
      }
      options.documents = await readHeldOutDocuments(valid);
      report = await evaluateModel(loaded.model, loaded.tokenizer, options, (phase, done, total) =>
        progress.update(phaseLabels[phase], done, total),
      );
    } catch (error) {
      if (context.interrupt.aborted) throw new Interrupted();
      throw error;
    } finally {
      progress.end();
    }
    const totalSeconds = (performance.now() - started) / 1000;
    const summary = jsonSummary(report, { dir, valid, length, rows, options, totalSeconds });
    if (flag(parsed, "json")) {
      process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
    } else {
      process.stdout.write(table(report, dir, length));
    }
    return 0;
  } finally {
    await loaded.model.dispose();
  }
}

interface RunInfo {
  dir: string;
  valid: string;
  length: number;
  rows: number;
  options: EvaluateOptions;
  totalSeconds: number;
}

function infillFields(name: string, score: InfillScore | null): Record<string, unknown> {
  return {
    [`infill_${name}_exact`]: score?.exactShare ?? null,
    [`infill_${name}_normalized`]: score?.normalizedShare ?? null,
    [`infill_${name}_tasks`]: score?.tasks ?? 0,
  };
}

function jsonSummary(r: EvalReport, run: RunInfo): Record<string, unknown> {
  const o = run.options;
  const bpb = r.bitsPerByte;
  const { singleLine, multiLine, humanEval } = r.infill;
  return {
    model: run.dir,
    attention: r.attention,
    corpus: run.valid,
    options: {
      rows: run.rows,
      length: run.length,
      elbo_samples: o.elboSamples,
      batch: o.batchRows,
      single_line_tasks: o.singleLineTasks,
      multi_line_tasks: o.multiLineTasks,
      humaneval_tasks: o.humanEvalTasks,
      hole_length: o.holeLength,
      samples: o.samples,
      sample_tokens: r.syntax?.sampleTokens ?? o.sampleTokens,
      seed: r.seed,
    },
    bits_per_byte: bpb?.bitsPerByte ?? null,
    bits_per_byte_stderr: bpb?.standardError ?? null,
    method: bpb?.method ?? null,
    rows: bpb?.rows ?? 0,
    length: run.length,
    bytes: bpb?.bytes ?? 0,
    ...infillFields("single_line", singleLine),
    ...infillFields("multi_line", multiLine),
    ...infillFields("humaneval_x", humanEval),
    infill_note: r.infill.note,
    syntax_valid_share: r.syntax?.validShare ?? null,
    syntax_complete_share: r.syntax?.completeShare ?? null,
    syntax_samples: r.syntax?.samples ?? 0,
    syntax_decoder: r.syntax?.decoder ?? null,
    tokens_per_s: r.syntax?.tokensPerSecond ?? null,
    timings: {
      bits_per_byte_s: bpb?.seconds ?? null,
      infill_single_line_s: singleLine?.seconds ?? null,
      infill_multi_line_s: multiLine?.seconds ?? null,
      infill_humaneval_x_s: humanEval?.seconds ?? null,
      samples_s: r.syntax?.seconds ?? null,
      total_s: run.totalSeconds,
    },
  };
}

const percent = (x: number | null) => (x === null ? "n/a" : `${(100 * x).toFixed(1)}%`);
const secs = (s: number | null | undefined) =>
  s === null || s === undefined ? "" : `${s.toFixed(1)} s`;

/** The result as an aligned table: metric, value, detail, time. */
function table(r: EvalReport, dir: string, length: number): string {
  const rows: [string, string, string, string][] = [];
  const bpb = r.bitsPerByte;
  rows.push([
    "bits per byte (held-out)",
    bpb ? bpb.bitsPerByte.toFixed(4) : "n/a",
    bpb
      ? `${bpb.standardError > 0 ? `± ${bpb.standardError.toFixed(4)}, ` : ""}${bpb.method}, ${bpb.rows} rows × ${length} tokens, ${bpb.bytes} bytes`
      : "not measured",
    secs(bpb?.seconds),
  ]);
  const infillRow = (name: string, s: InfillScore | null) => {
    rows.push([
      `infill ${name} exact`,
      percent(s?.exactShare ?? null),
      s
        ? `${s.exact}/${s.tasks} (whitespace-normalised ${percent(s.normalizedShare)})`
        : (r.infill.note ?? "not measured"),
      secs(s?.seconds),
    ]);
  };
  infillRow("single-line", r.infill.singleLine);
  infillRow("multi-line", r.infill.multiLine);
  if (r.infill.humanEval) infillRow("HumanEval-X", r.infill.humanEval);
  const s = r.syntax;
  rows.push([
    "syntax-valid samples",
    percent(s?.validShare ?? null),
    s
      ? `${s.valid}/${s.samples} (complete ${s.complete}), ${s.sampleTokens} tokens by ${s.decoder}, ${s.tokensPerSecond === null ? "n/a" : s.tokensPerSecond.toFixed(1)} tokens/s`
      : "not measured",
    secs(s?.seconds),
  ]);
  const widths = [0, 1, 2].map((c) => Math.max(...rows.map((row) => row[c].length)));
  const lines = rows.map((row) =>
    row
      .map((cell, c) => (c < 3 ? cell.padEnd(widths[c]) : cell))
      .join("  ")
      .trimEnd(),
  );
  return `${dir} (${r.attention} attention, seed ${r.seed})\n${lines.join("\n")}\n`;
}

export const evalCommand: Command = { spec, run };
