// `unmask bench`: the project's speed measurements, each a ratio measured side by side in one
// run (see DESIGN.md, "Where the numbers must come from"), as text or as JSON.

import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import inspector from "node:inspector";
import { dirname, join, resolve } from "node:path";
import { benchForward, type ForwardBenchResult } from "../bench/forward.js";
import { benchLoad, type LoadMeasure } from "../bench/load.js";
import { benchQuant, type QuantBenchResult, type QuantSpeed } from "../bench/quant.js";
import { benchRows } from "../bench/rows.js";
import {
  type BlockPoint,
  benchSizes,
  defaultSizes,
  type SizesBenchOptions,
  type SizesBenchResult,
  sizeShapes,
} from "../bench/sizes.js";
import { benchTrain, type TrainBenchResult } from "../bench/train.js";
import { benchDecode, type DecodeBenchResult, type DecodeSpeed } from "../diffusion/bench.js";
import { type PresetName, presetNames } from "../diffusion/options.js";
import { loadCheckpoint, type Tokenizer } from "../format/index.js";
import { defaultArModelName, defaultModelName, loadModel } from "../host/models.js";
import { type ModelConfig, parseModelConfig } from "../model/config.js";
import { OnnxModel } from "../model/engine.js";
import { quantTypes } from "../model/quant.js";
import { randomWeights } from "../model/random.js";
import type { LanguageModel } from "../model/types.js";
import { benchServe, type ServeBenchOptions, type ServeSpeed } from "../serve/bench.js";
import { type Series, writePlot } from "../train/plot.js";
import {
  type CommandSpec,
  flag,
  intOption,
  type Parsed,
  parse,
  stringOption,
  UsageError,
} from "./args.js";
import { claim } from "./bench-claim.js";
import type { Command, Context } from "./command.js";
import { packageRoot } from "./package.js";
import { loadPair } from "./serve.js";
import { formatSeconds, StatusLine } from "./terminal.js";

export interface Bench {
  name: string;
  summary: string;
  /** The options it reads (besides --json and --profile): any other is refused, never ignored. */
  reads: readonly string[];
  /** Runs the benchmark; `say` reports progress; resolves to its JSON result and text lines. */
  run(parsed: Parsed, say: (message: string) => void): Promise<{ json: unknown; lines: string[] }>;
}

const forward: Bench = {
  name: "forward",
  reads: ["canvas", "runs", "positions"],
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
  reads: ["config", "rows", "length", "runs"],
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

/** Lines of a QuantSpeed: each form's median time, its fastest, and the ratios of both. */
function speedLines(title: string, r: QuantSpeed): string[] {
  const time = (median: number, fastest: number) =>
    `${formatSeconds(median)} (fastest ${formatSeconds(fastest)})`;
  return [
    `${title}: float32 ${time(r.float32_ms, r.fastest.float32_ms)}`,
    ...quantTypes.map(
      (q) =>
        `  ${q}: ${time(r.quant_ms[q], r.fastest.quant_ms[q])}: ${r.speedup[q].toFixed(2)}× float32's speed (fastest runs ${r.fastest.speedup[q].toFixed(2)}×)`,
    ),
  ];
}

/**
 * The decode benchmark's sessions run in turn: spinning workers of the idle one would steal the
 * other's cores (measured on a loaded 2-core machine: fast-dllm-dual's step 12 ms spinning, 4 ms
 * not; AR's 1.5-4.8 ms against 1.6 ms).
 */
const turns = { spinning: false };

/** The prompt every decoding run continues. */
const benchPrompt =
  "export function binarySearch(xs: number[], x: number): number {\n  let lo = 0;\n";

/**
 * The models `bench decode` compares: the checkpoints named, else the embedded pair, else random
 * weights of the embedded models' shapes (configs/), with a block-diffusion twin of that shape.
 */
async function decodeModels(parsed: Parsed, say: (message: string) => void) {
  const given = [stringOption(parsed, "model"), stringOption(parsed, "ar-model")];
  if ((given[0] === undefined) !== (given[1] === undefined)) {
    throw new UsageError("bench decode: give both --model and --ar-model, or neither");
  }
  const root = packageRoot();
  const embedded = [defaultModelName, defaultArModelName].map((n) => join(root, "models", n));
  const dirs =
    given[0] !== undefined
      ? given.map((d) => resolve(d!))
      : embedded.every((d) => existsSync(join(d, "config.json")))
        ? embedded
        : null;
  const models: LanguageModel[] = [];
  try {
    if (dirs !== null) {
      say("loading the models…");
      const diffusion = await loadModel(dirs[0], turns);
      models.push(diffusion.model);
      const ar = await loadModel(dirs[1], turns);
      models.push(ar.model);
      return { label: `${dirs[0]} against ${dirs[1]}`, tokenizer: diffusion.tokenizer, models };
    }
    say("building random models of the embedded models' shapes…");
    const read = (name: string): ModelConfig => {
      const file = join(root, "configs", `${name}.json`);
      return parseModelConfig(JSON.parse(readFileSync(file, "utf8")), file);
    };
    const diffusion = read(defaultModelName);
    const block: ModelConfig = { ...diffusion, attention: "block_causal", blockSize: 32 };
    for (const config of [diffusion, read(defaultArModelName), block]) {
      models.push(await OnnxModel.create(config, randomWeights(config, 1), turns));
    }
    return {
      label: "random weights, shapes of configs/unmask-code*.json",
      tokenizer: null,
      models,
    };
  } catch (error) {
    for (const m of models) await m.dispose();
    throw error;
  }
}

const decode: Bench = {
  name: "decode",
  reads: ["length", "runs", "presets", "model", "ar-model"],
  summary:
    "tokens/s and forward passes per token of every strategy and of the AR twin, side by side",
  async run(parsed, say) {
    const length = intOption(parsed, "length", 1);
    const runs = intOption(parsed, "runs", 1);
    const list = stringOption(parsed, "presets");
    const presets = list?.split(",").map((p) => p.trim());
    for (const p of presets ?? []) {
      if (!(presetNames as string[]).includes(p)) {
        throw new UsageError(
          `--presets: unknown strategy ${JSON.stringify(p)} (valid: ${presetNames.join(", ")})`,
        );
      }
    }
    const { label, tokenizer, models } = await decodeModels(parsed, say);
    const [diffusion, ar, block] = models;
    try {
      if (presets?.includes("block-diffusion") && block === undefined) {
        throw new UsageError(
          `--presets block-diffusion: needs a block_causal model, and ${label} has none (drop it from --presets)`,
        );
      }
      const prompt = promptIds(tokenizer, diffusion.config);
      const options: Parameters<typeof benchDecode>[0] = { diffusion, ar, prompt, progress: say };
      if (block !== undefined) options.blockDiffusion = block;
      if (length !== undefined) options.genLength = length;
      if (runs !== undefined) options.runs = runs;
      if (presets !== undefined) options.presets = presets as PresetName[];
      const r: DecodeBenchResult = await benchDecode(options);
      const width = Math.max(...r.presets.map((p) => p.name.length), 2) + 2;
      const row = (name: string, s: DecodeSpeed) =>
        `  ${name.padEnd(width)}${s.tokens_per_s.toFixed(0).padStart(8)} tokens/s  ${s.forwards_per_token.toFixed(2).padStart(5)} forwards/token  ${(s.tokens_per_s / r.ar.tokens_per_s).toFixed(2).padStart(6)}× AR  step ${s.step_ms.toFixed(2).padStart(6)} ms  engine ${s.engine_ms.toFixed(2).padStart(6)} ms  host ${(100 * s.host_fraction).toFixed(0).padStart(3)}%`;
      return {
        json: { model: label, ...r },
        lines: [
          `decoding ${r.gen_length} tokens after a ${r.prompt_length}-token prompt, ${label}, median of ${r.runs}:`,
          ...r.presets.map((p) => row(p.name, p)),
          row("ar", r.ar),
        ],
      };
    } finally {
      for (const m of models) await m.dispose();
    }
  },
};

/** The benchmark prompt's ids: by the tokenizer, or fixed ids inside the vocabulary. */
function promptIds(tokenizer: Tokenizer | null, config: ModelConfig): number[] {
  if (tokenizer !== null) return tokenizer.encode(benchPrompt);
  const special = new Set([config.maskTokenId, config.eosTokenId, config.padTokenId]);
  const ids: number[] = [];
  for (let i = 0; ids.length < 24; i++) {
    const id = 16 + ((i * 37) % (config.vocabSize - 16));
    if (!special.has(id)) ids.push(id);
  }
  return ids;
}

/** The request `bench serve` sends: dual-cache blocks of 8, the step shape small canvases decode in. */
const serveRequest = { strategy: "fast-dllm-dual", block_length: 8, max_tokens: 32 };

const serveBench: Bench = {
  name: "serve",
  reads: ["length", "runs", "presets", "model", "ar-model", "ar"],
  summary:
    "tokens/s of unmask serve over loopback HTTP, 8 concurrent clients against 1 (batched forward passes)",
  async run(parsed, say) {
    const length = intOption(parsed, "length", 1);
    const runs = intOption(parsed, "runs", 1);
    const strategy = stringOption(parsed, "presets");
    const ar = flag(parsed, "ar");
    const body: Record<string, unknown> = ar ? { max_tokens: 32 } : { ...serveRequest };
    if (ar && strategy !== undefined) {
      throw new UsageError("--presets with --ar: the AR twin has no strategy (drop one of them)");
    }
    if (strategy !== undefined) {
      if (!(presetNames as string[]).includes(strategy)) {
        throw new UsageError(
          `--presets: serve times one strategy, got ${JSON.stringify(strategy)} (valid: ${presetNames.join(", ")})`,
        );
      }
      body.strategy = strategy;
      body.block_length = undefined;
    }
    if (length !== undefined) body.max_tokens = length;
    say("loading the models…");
    const models = await loadPair(parsed);
    try {
      const options: ServeBenchOptions = { models, prompt: benchPrompt, body, progress: say };
      if (ar) options.model = models[1].name;
      if (runs !== undefined) options.requests = runs;
      const r = await benchServe(options);
      const line = (s: ServeSpeed) =>
        `  ${String(s.clients).padStart(2)} client${s.clients === 1 ? " " : "s"}  ${s.tokens_per_s.toFixed(1).padStart(8)} tokens/s  (${s.completion_tokens} tokens, ${s.requests} requests, ${formatSeconds(s.seconds * 1000)})`;
      return {
        json: r,
        lines: [
          `unmask serve on loopback, ${r.model}, ${JSON.stringify(body)}:`,
          line(r.single),
          line(r.concurrent),
          `  throughput ratio ${r.throughput_ratio.toFixed(2)}× (${r.batching.rows_per_call.toFixed(1)} requests per engine call)`,
        ],
      };
    } finally {
      for (const m of models) await m.model.dispose();
    }
  },
};

const sizesBench: Bench = {
  name: "sizes",
  reads: ["sizes", "runs", "plot"],
  summary:
    "an AR token against a diffusion step of 8-32 tokens, random models from the embedded shape to 0.5B, beside a roofline",
  async run(parsed, say) {
    const list = stringOption(parsed, "sizes");
    const sizes = list?.split(",").map((s) => s.trim());
    for (const s of sizes ?? []) {
      if (sizeShapes[s] === undefined) {
        throw new UsageError(
          `--sizes: unknown size ${JSON.stringify(s)} (valid: ${Object.keys(sizeShapes).join(", ")})`,
        );
      }
    }
    const plot = stringOption(parsed, "plot");
    if (plot !== undefined && !plot.endsWith(".svg")) {
      throw new UsageError(
        `--plot: ${plot}: expected a .svg file name (a .png is written beside it)`,
      );
    }
    const runs = intOption(parsed, "runs", 1);
    const options: SizesBenchOptions = { progress: say };
    if (sizes !== undefined) options.sizes = sizes;
    if (runs !== undefined) options.runs = runs;
    const r = await benchSizes(options);
    if (plot !== undefined) await writeSizesPlot(resolve(plot), r);
    const lines = [
      `one step against a ${r.context}-token cached context; MatMul peak ${r.matmul_peak_gflops.toFixed(0)} GFLOP/s, weights read at ${r.weight_read_gbs.toFixed(1)} GB/s;`,
      "break-even: tokens a diffusion step must reveal to match AR (measured, roofline):",
    ];
    for (const s of r.sizes) {
      const cells = s.blocks.map(
        (b) =>
          `block ${b.block}: ${b.step_ms.toFixed(2)} ms, ${b.break_even_tokens_per_step.toFixed(2)} (${b.roofline_break_even.toFixed(2)})`,
      );
      lines.push(
        `  ${s.name.padEnd(9)} ${(s.parameters / 1e6).toFixed(0).padStart(5)}M  AR ${s.ar_ms.toFixed(2)} ms  ${cells.join("  ")}`,
      );
    }
    return { json: r, lines };
  },
};

const rowsBench: Bench = {
  name: "rows",
  reads: ["rows", "runs"],
  summary:
    "a forward pass's time against its query rows (1-440; with and without cached K/V; 1 and all threads): fixed cost per call, cost per row, against the MatMul peak",
  async run(parsed, say) {
    const list = stringOption(parsed, "rows")?.split(",");
    const rows = list?.map((s) => Number(s.trim()));
    if (rows?.some((n) => !Number.isInteger(n) || n < 1 || n > 1024)) {
      throw new UsageError(`--rows: expected positive integers up to 1024, got ${list!.join(",")}`);
    }
    const runs = intOption(parsed, "runs", 1);
    const r = await benchRows({ rows, runs, progress: say });
    const peaks = Object.entries(r.matmul_peak_gflops).map(
      ([t, g]) => `${g.toFixed(0)} (${t} thr.)`,
    );
    const lines = [`${r.model}; MatMul peak ${peaks.join(", ")} GFLOP/s; ms (fastest tenth):`];
    for (const p of r.points) {
      lines.push(
        `  ${String(p.rows).padStart(4)} rows (${p.canvases}×${p.fresh}) context ${String(p.context).padStart(2)} stats at ${String(p.stats_rows).padStart(3)}  ${p.threads} thr.  ${p.ms.toFixed(3).padStart(7)} ms  ${p.gflops.toFixed(0).padStart(4)} GFLOP/s`,
      );
    }
    lines.push("fit over one canvas of 2-64 rows: ms = fixed + rows × per row");
    for (const f of r.fits) {
      lines.push(
        `  ${f.threads} thr. context ${String(f.context).padStart(2)} stats at ${f.stats.padEnd(14)} fixed ${f.fixed_ms.toFixed(3)} ms, per row ${f.per_row_ms.toFixed(4)} ms (${f.per_row_gflops.toFixed(0)} GFLOP/s)`,
      );
    }
    return { json: r, lines };
  },
};

/** The break-even tokens per step against model size: measured and roofline, per block. */
async function writeSizesPlot(file: string, r: SizesBenchResult): Promise<void> {
  // a dark colour for the measured line, a light one of the same hue for its roofline
  const colors = [
    ["#1f77b4", "#9ecae1"],
    ["#d62728", "#f4a6a6"],
    ["#2ca02c", "#a1d99b"],
    ["#9467bd", "#cbb7e3"],
  ];
  const blocks = r.sizes[0]?.blocks.map((b) => b.block) ?? [];
  const series: Series[] = blocks.flatMap((block, k) => {
    const at = (pick: (b: BlockPoint) => number) =>
      r.sizes.map((s): [number, number] => [
        s.parameters,
        pick(s.blocks.find((b) => b.block === block)!),
      ]);
    const [dark, light] = colors[k % colors.length];
    return [
      { name: `B=${block}`, color: dark, points: at((b) => b.break_even_tokens_per_step) },
      { name: `B=${block} roofline`, color: light, points: at((b) => b.roofline_break_even) },
    ];
  });
  const options = {
    title: "Tokens a diffusion step of B tokens must reveal to match AR",
    xLabel: "parameters",
    yLabel: "break-even tokens per step",
    logX: true,
    logY: true,
  };
  mkdirSync(dirname(file), { recursive: true });
  await writePlot(file, series, options);
  await writePlot(file.replace(/\.svg$/, ".png"), series, options);
}

const loadBench: Bench = {
  name: "load",
  reads: ["7b"],
  summary:
    "peak memory of loading a 2.3 GB synthetic checkpoint (float32 and BF16) in a fresh process, against the weights' bytes",
  async run(parsed, say) {
    const r = await benchLoad({ progress: say, with7b: flag(parsed, "7b") });
    const gb = (bytes: number) => `${(bytes / 1e9).toFixed(2)} GB`;
    const line = (m: LoadMeasure) =>
      `  ${m.dtype.padEnd(4)} file ${gb(m.file_bytes)}${m.quant ? ` as ${m.quant}` : ""}: peak RSS ${gb(m.peak_rss_bytes)} = ${m.peak_rss_ratio.toFixed(2)}× the weights held (${gb(m.weight_bytes)}; ${gb(m.rss_before_bytes)} before loading), loaded in ${m.load_s.toFixed(1)} s`;
    const lines = [
      `loading ${(r.parameters / 1e6).toFixed(0)}M parameters (${gb(r.weight_bytes)} as float32 in the engine):`,
      line(r.float32),
      line(r.bf16),
      line(r.int4),
      line(r.int4_lean),
    ];
    if (r.load_7b_int4 !== null) {
      const m = r.load_7b_int4;
      lines.push(
        `  7B shape in int4: built in ${m.load_s.toFixed(0)} s, peak RSS ${gb(m.peak_rss_bytes)}, one 32-token forward ${m.forward_s.toFixed(2)} s (the next ${m.forward_again_s.toFixed(2)} s)`,
      );
    }
    return { json: r, lines };
  },
};

const quant: Bench = {
  name: "quant",
  reads: ["model", "corpus", "rows", "runs"],
  summary:
    "int8/int4 weights: top-1 agreement with float32 at masked positions of held-out canvases (needs a corpus; not in 'all'), and forward speed against float32",
  async run(parsed, say) {
    const dir = resolve(
      stringOption(parsed, "model") ?? join(packageRoot(), "models", defaultModelName),
    );
    const corpus = join(
      resolve(stringOption(parsed, "corpus") ?? join(packageRoot(), ".cache", "corpus")),
      "valid.jsonl",
    );
    if (!existsSync(corpus)) {
      throw new UsageError(
        `bench quant: ${corpus} not found (run 'unmask corpus', or --corpus DIR)`,
      );
    }
    const r: QuantBenchResult = await benchQuant({
      checkpoint: await loadCheckpoint(dir),
      corpus,
      rows: intOption(parsed, "rows", 1),
      runs: intOption(parsed, "runs", 1),
      progress: say,
    });
    return {
      json: r,
      lines: [
        `top-1 agreement with float32 at ${r.masked_positions} masked positions of ${r.canvases} held-out canvases (${r.model}):`,
        ...quantTypes.map(
          (q) =>
            `  ${q}: ${(100 * r.agreement[q]).toFixed(2)}% ± ${(100 * r.agreement_se[q]).toFixed(2)} (standard error over canvases)`,
        ),
        ...speedLines(`forward pass, ${r.speed_model}`, r),
        ...speedLines("a 32-token block", r.block_32),
      ],
    };
  },
};

const benches: Bench[] = [
  forward,
  decode,
  train,
  serveBench,
  sizesBench,
  rowsBench,
  loadBench,
  claim,
  quant,
];

const spec: CommandSpec = {
  name: "bench",
  usage: [`bench <${[...benches.map((b) => b.name), "all"].join("|")}> [options]`],
  description: `
Runs a benchmark and prints its numbers; "all" runs every benchmark but claim in turn. Every claim is a
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
      description:
        "timed runs per measurement, the median reported; serve: requests per client (default 4); rows: rounds of 3 calls a case (default 10), the fastest tenth reported",
    },
    {
      name: "positions",
      type: "string",
      value: "N",
      description: "forward: positions to compute logits at in the subset measurement (default 32)",
    },
    {
      name: "model",
      type: "string",
      short: "m",
      value: "DIR",
      description:
        "decode: the diffusion checkpoint (with --ar-model; default: the embedded pair, or random weights of their shape); claim: diffusion checkpoints, or causal ones trained with --draft (the one-model speculative decoder), comma-separated (default: the embedded one); quant: the model (default: the embedded one)",
    },
    {
      name: "ar-model",
      type: "string",
      value: "DIR",
      description: "decode, claim: the autoregressive checkpoint to compare with",
    },
    {
      name: "corpus",
      type: "string",
      value: "DIR",
      description:
        "claim, quant: the corpus folder with valid.jsonl, the held-out files (default: .cache/corpus)",
    },
    {
      name: "tasks",
      type: "string",
      value: "N",
      description:
        "claim: line completions, and continuations for the parse rate (default 40 each)",
    },
    {
      name: "infill-tasks",
      type: "string",
      value: "N",
      description: "claim: single-line infill tasks (default 40)",
    },
    {
      name: "seed",
      type: "string",
      value: "N",
      description: "claim: the seed of the task choice and of every decode (default 0)",
    },
    {
      name: "out",
      type: "string",
      value: "DIR",
      description:
        "claim: where the Pareto plot goes, pareto.svg and pareto.png (default: ./bench-claim)",
    },
    {
      name: "presets",
      type: "string",
      value: "LIST",
      description:
        "decode: strategies to time, comma-separated (default: all); serve: the one strategy the requests ask for (default fast-dllm-dual, blocks of 8)",
    },
    {
      name: "profile",
      type: "string",
      value: "DIR",
      description:
        "write a CPU profile of each benchmark's run to DIR/<benchmark>.cpuprofile (open it in Chrome DevTools or speedscope)",
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
      description:
        "train: sequences per batch (default 16); quant: held-out canvases (default 256); rows: query rows to time, comma-separated (default 1,2,4,…,256,440)",
    },
    {
      name: "sizes",
      type: "string",
      value: "LIST",
      description: `sizes: model shapes to time, comma-separated (default ${defaultSizes.join(",")}; known: ${Object.keys(sizeShapes).join(", ")})`,
    },
    {
      name: "plot",
      type: "string",
      value: "FILE.svg",
      description: "sizes: draw the break-even against model size to FILE.svg and FILE.png",
    },
    {
      name: "7b",
      type: "boolean",
      description:
        "load: also build the 7B shape in int4 (weights made on demand) and time one 32-token forward pass (minutes)",
    },
    {
      name: "ar",
      type: "boolean",
      description:
        "serve: the requests go to the AR twin (its KV-cache decode; steps of different context lengths share engine calls)",
    },
    {
      name: "length",
      type: "string",
      value: "N",
      description:
        "decode: tokens to generate (default 64); serve: max_tokens of each request (default 32); train: tokens per sequence",
    },
  ],
  examples: [
    "unmask bench forward",
    "unmask bench decode --presets llada,fast-dllm --length 128 --runs 3",
    "unmask bench decode --json --profile prof/",
    "unmask bench train --rows 8 --length 128",
    "unmask bench serve --json              # 8 concurrent clients against 1: throughput_ratio",
    "unmask bench serve --ar                # the same for the AR twin",
    "unmask bench sizes --plot docs/sizes.svg  # where diffusion can win, by model size",
    "unmask bench all --json > bench.json",
    "unmask bench claim --corpus .cache/corpus --tasks 16 --infill-tasks 16 --json",
    "unmask bench quant --corpus .cache/corpus --rows 64",
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
  // claim and quant need a corpus (and claim minutes), rows takes a minute: they run when named
  const chosen =
    which === "all"
      ? benches.filter((b) => b !== claim && b !== quant && b !== rowsBench)
      : benches.filter((b) => b.name === which);
  if (chosen.length === 0) {
    throw new UsageError(
      `bench: unknown benchmark ${JSON.stringify(which)} (valid: ${[...names, "all"].join(", ")})`,
    );
  }
  const reads = new Set(["json", "profile", ...chosen.flatMap((b) => b.reads)]);
  for (const [name, value] of Object.entries(parsed.values)) {
    if (value !== undefined && !reads.has(name)) {
      const readers = benches.filter((b) => b.reads.includes(name)).map((b) => b.name);
      throw new UsageError(
        `--${name}: bench ${which} does not read it (it is an option of bench ${readers.join(", ")})`,
      );
    }
  }
  const json = flag(parsed, "json");
  const profileDir = stringOption(parsed, "profile");
  const results: Record<string, unknown> = {};
  for (const bench of chosen) {
    if (context.interrupt.aborted) break;
    const status = new StatusLine(process.stderr, process.env);
    let result: { json: unknown; lines: string[] };
    try {
      const runBench = () =>
        bench.run(parsed, (message) => status.say(`${bench.name}: ${message}`));
      result =
        profileDir === undefined
          ? await runBench()
          : await profiled(join(resolve(profileDir), `${bench.name}.cpuprofile`), runBench);
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

/** Runs `body` under the V8 CPU profiler and writes the profile to `file` (as node --cpu-prof). */
async function profiled<T>(file: string, body: () => Promise<T>): Promise<T> {
  const session = new inspector.Session();
  session.connect();
  const post = (method: string) =>
    new Promise<unknown>((done, fail) =>
      session.post(method, (error, result) => (error ? fail(error) : done(result))),
    );
  try {
    await post("Profiler.enable");
    await post("Profiler.start");
    const result = await body();
    const { profile } = (await post("Profiler.stop")) as { profile: unknown };
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, JSON.stringify(profile));
    process.stderr.write(`CPU profile: ${file}\n`);
    return result;
  } finally {
    session.disconnect();
  }
}

export const bench: Command = { spec, run };
