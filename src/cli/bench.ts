// `unmask bench`: the project's speed measurements, each a ratio measured side by side in one
// run (see DESIGN.md, "Where the numbers must come from"), as text or as JSON.

import { resolve } from "node:path";
import { benchForward, type ForwardBenchResult } from "../bench/forward.js";
import { benchTrain, type TrainBenchResult } from "../bench/train.js";
import {
  type CommandSpec,
  flag,
  intOption,
  type Parsed,
  parse,
  stringOption,
  UsageError,
} from "./args.js";
import type { Command, Context } from "./command.js";
import { formatSeconds, StatusLine } from "./terminal.js";

interface Bench {
  name: string;
  summary: string;
  /** Runs the benchmark; `say` reports progress; resolves to its JSON result and text lines. */
  run(parsed: Parsed, say: (message: string) => void): Promise<{ json: unknown; lines: string[] }>;
}

const forward: Bench = {
  name: "forward",
  summary:
    "the forward pass's GFLOP/s as a share of ONNX Runtime's own MatMul peak, and the gain of computing logits only at the positions asked for",
  async run(parsed, say) {
    const options: Parameters<typeof benchForward>[0] & object = { progress: say };
    const canvas = intOption(parsed, "canvas", 1, 1024);
    const runs = intOption(parsed, "runs", 1);
    const positions = intOption(parsed, "positions", 1);
    if (canvas !== undefined) options.canvas = canvas;
    if (runs !== undefined) options.runs = runs;
    if (positions !== undefined) {
      if (positions > (canvas ?? 256)) {
        throw new UsageError(`--positions ${positions}: more than the canvas of ${canvas ?? 256}`);
      }
      options.positions = positions;
    }
    const r: ForwardBenchResult = await benchForward(options);
    return {
      json: r,
      lines: [
        `forward pass, ${r.model}, canvas ${r.canvas}:`,
        `  ${formatSeconds(r.forward_ms)} · ${r.forward_gflops.toFixed(0)} GFLOP/s · ${(100 * r.peak_fraction).toFixed(0)}% of the MatMul peak (${r.matmul_peak_gflops.toFixed(0)} GFLOP/s)`,
        `logits at ${r.positions_requested} of ${r.canvas} positions, ${r.positions_model}:`,
        `  ${formatSeconds(r.positions_full_ms)} → ${formatSeconds(r.positions_subset_ms)} (${r.positions_speedup.toFixed(2)}× faster)`,
      ],
    };
  },
};

const train: Bench = {
  name: "train",
  summary:
    "training step throughput (tokens/s) of the default model's shape, as a share of the MatMul peak",
  async run(parsed, say) {
    const options: Parameters<typeof benchTrain>[0] & object = { progress: say };
    const config = stringOption(parsed, "config");
    const rows = intOption(parsed, "rows", 1);
    const length = intOption(parsed, "length", 1);
    const runs = intOption(parsed, "runs", 1);
    if (config !== undefined) options.configFile = resolve(config);
    if (rows !== undefined) options.rows = rows;
    if (length !== undefined) options.length = length;
    if (runs !== undefined) options.runs = runs;
    const r: TrainBenchResult = await benchTrain(options);
    return {
      json: r,
      lines: [
        `training step, ${r.parameters.toLocaleString("en-US")} parameters (${r.model}), batch ${r.batch}:`,
        `  ${formatSeconds(r.step_ms)} · ${r.tokens_per_s.toFixed(0)} tokens/s · ${r.train_gflops.toFixed(0)} GFLOP/s · ${(100 * r.peak_fraction).toFixed(0)}% of the MatMul peak (${r.matmul_peak_gflops.toFixed(0)} GFLOP/s)`,
      ],
    };
  },
};

const benches: Bench[] = [forward, train];

const spec: CommandSpec = {
  name: "bench",
  usage: [`bench <${[...benches.map((b) => b.name), "all"].join("|")}> [options]`],
  description: `
Runs a benchmark and prints its numbers; "all" runs every benchmark in turn. Every claim is a
ratio of two things measured side by side in the same run on this machine. Benchmarks:
${benches.map((b) => `  ${b.name.padEnd(9)}${b.summary}`).join("\n")}`,
  options: [
    {
      name: "json",
      type: "boolean",
      description:
        "print one JSON object: a benchmark's result, or with 'all' an object keyed by benchmark name",
    },
    {
      name: "canvas",
      type: "string",
      value: "N",
      description: "forward: tokens in the canvas (default 256)",
    },
    {
      name: "runs",
      type: "string",
      value: "N",
      description: "forward, train: timed runs per measurement, the median reported",
    },
    {
      name: "positions",
      type: "string",
      value: "N",
      description: "forward: positions to compute logits at in the subset measurement (default 32)",
    },
    {
      name: "config",
      type: "string",
      value: "FILE",
      description: "train: the model's config.json (default: configs/unmask-code.json)",
    },
    {
      name: "rows",
      type: "string",
      value: "N",
      description: "train: sequences per batch (default 16)",
    },
    {
      name: "length",
      type: "string",
      value: "N",
      description: "train: tokens per sequence (default: 256 or the model's context)",
    },
  ],
  examples: [
    "unmask bench forward",
    "unmask bench train --rows 8 --length 128",
    "unmask bench all --json > bench.json",
  ],
  maxPositionals: 1,
};

async function run(argv: string[], context: Context): Promise<number> {
  const parsed = parse(spec, argv);
  const which = parsed.positionals[0];
  const names = benches.map((b) => b.name);
  if (which === undefined) {
    throw new UsageError(`bench: which benchmark? (${[...names, "all"].join(", ")})`);
  }
  const chosen = which === "all" ? benches : benches.filter((b) => b.name === which);
  if (chosen.length === 0) {
    throw new UsageError(
      `bench: unknown benchmark ${JSON.stringify(which)} (valid: ${[...names, "all"].join(", ")})`,
    );
  }
  const json = flag(parsed, "json");
  const results: Record<string, unknown> = {};
  for (const bench of chosen) {
    if (context.interrupt.aborted) break;
    const status = new StatusLine(process.stderr, process.env);
    let result: { json: unknown; lines: string[] };
    try {
      result = await bench.run(parsed, (message) => status.say(`${bench.name}: ${message}`));
    } finally {
      status.done();
    }
    results[bench.name] = result.json;
    if (!json) process.stdout.write(`${result.lines.join("\n")}\n`);
  }
  if (json) {
    const out = which === "all" ? results : results[which];
    process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
  }
  return context.interrupt.aborted ? 130 : 0;
}

export const bench: Command = { spec, run };
