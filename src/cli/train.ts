// `unmask train`: train a model of a config.json on the corpus of `unmask corpus`, resuming from
// the newest checkpoint of its run folder, and export it as a Hugging Face checkpoint folder.
// The objective follows the config's attention: full → masked diffusion (MDLM/LLaDA),
// block_causal → block diffusion (BD3-LM), causal → next token (the AR twin).

import { existsSync } from "node:fs";
import { copyFile, readFile } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { loadCheckpoint } from "../format/index.js";
import { type ModelConfig, parseModelConfig } from "../model/config.js";
import { BpeTokenizer, bpeFromTokenizerJson } from "../train/bpe.js";
import { exportModel } from "../train/checkpoint.js";
import { DataError, PackedRows, type TokenStream, tokenizeCorpus } from "../train/data.js";
import { readDistillSet } from "../train/distill.js";
import { type ObjectiveSpec, type TrainData, type TrainOptions, train } from "../train/loop.js";
import { ProgressBar } from "../train/progress.js";
import { certaintyTemperature, createTrainStep } from "../train/step.js";
import {
  type CommandSpec,
  flag,
  intOption,
  numberOption,
  type Parsed,
  parse,
  stringOption,
  UsageError,
} from "./args.js";
import type { Command, Context } from "./command.js";
import { packageRoot } from "./package.js";
import { PhasedProgress } from "./progress.js";

const spec: CommandSpec = {
  name: "train",
  usage: ["train [options] --steps N", "train [options] --tokens N"],
  description: `
Trains the model that --config describes on the corpus that 'unmask corpus --tokenizer' wrote
(train.jsonl, valid.jsonl, tokenizer.json), then exports it to --out as a checkpoint folder that
every other command loads with --model. The loss follows the config's attention: "full" trains
masked diffusion (MDLM/LLaDA: a mask rate t per sequence, cross-entropy on the masked tokens
weighted by 1/t), "block_causal" block diffusion (BD3-LM), "causal" the next-token loss of the
autoregressive twin. AdamW with warm-up and cosine decay, gradient clipping; the held-out loss
(and bits per byte) is evaluated every --eval-every steps. Checkpoints go to the run folder, and
running the same command again resumes from the newest one exactly. Ctrl-C saves a checkpoint
and stops (exit 130).`,
  options: [
    {
      name: "config",
      type: "string",
      short: "c",
      value: "FILE",
      description: "the model's config.json (default: configs/unmask-code.json)",
    },
    {
      name: "corpus",
      type: "string",
      value: "DIR",
      description: "the corpus folder of 'unmask corpus' (default: .cache/corpus)",
    },
    {
      name: "tokenizer",
      type: "string",
      value: "FILE",
      description: "tokenizer.json (default: the one in the corpus folder)",
    },
    {
      name: "run",
      type: "string",
      value: "DIR",
      description:
        "run folder for checkpoints and the loss plot (default: .cache/runs/<config name>)",
    },
    {
      name: "out",
      type: "string",
      short: "o",
      value: "DIR",
      description: "where the trained model is exported (default: <run>/model)",
    },
    { name: "steps", type: "string", value: "N", description: "optimizer steps to train" },
    {
      name: "tokens",
      type: "string",
      value: "N",
      description: "tokens to train on, instead of --steps (rounded up to whole steps)",
    },
    {
      name: "batch",
      type: "string",
      short: "b",
      value: "N",
      description: "rows per micro-batch (default 16)",
    },
    {
      name: "accumulate",
      type: "string",
      value: "N",
      description: "micro-batches per optimizer step (default 1)",
    },
    {
      name: "length",
      type: "string",
      value: "N",
      description: "tokens per row (default: the model's context)",
    },
    { name: "lr", type: "string", value: "LR", description: "peak learning rate (default 0.002)" },
    {
      name: "warmup",
      type: "string",
      value: "N",
      description: "warm-up steps (default: 5% of the steps)",
    },
    {
      name: "seed",
      type: "string",
      value: "N",
      description: "seed of weights, data order and masks (default 0)",
    },
    {
      name: "eval-every",
      type: "string",
      value: "N",
      description: "steps between held-out evaluations (default: 10 in all)",
    },
    {
      name: "checkpoint-every",
      type: "string",
      value: "N",
      description: "steps between checkpoints (default: as --eval-every)",
    },
    {
      name: "eval-rows",
      type: "string",
      value: "N",
      description: "held-out rows per evaluation (default: all)",
    },
    {
      name: "init",
      type: "string",
      value: "DIR",
      description:
        "start from this exported model's weights instead of random ones: the same model trained further, or one whose config differs only where no tensor's shape does (e.g. the AR twin into a bidirectional, block-causal or logit-shifted config)",
    },
    {
      name: "anneal-steps",
      type: "string",
      value: "N",
      description:
        "DiffuLLaMA's attention-mask annealing (full attention only): the mask opens from causal to full over N steps",
    },
    {
      name: "block-context",
      type: "string",
      value: "KIND",
      description:
        "block diffusion: clean (one block per row, default), noisy (every block, noisy context) or dual (BD3-LM's [x_t ; x_0] trainer: every block against clean context)",
    },
    {
      name: "distill",
      type: "string",
      value: "DIR",
      description:
        "train on a distillation set of 'unmask distill' (its rows and tokenizer instead of the corpus): the responses train against their clean prompts (block diffusion, or the next-token loss of a causal config)",
    },
    {
      name: "draft",
      type: "string",
      value: "K",
      description:
        "causal configs: TiDAR's one-model drafting, blocks of K masks after the clean tokens trained beside the next-token loss, for the self-speculative decoder",
    },
    {
      name: "draft-weight",
      type: "string",
      value: "W",
      description: "the draft loss's weight beside the next-token loss (default 1; with --draft)",
    },
    {
      name: "certainty",
      type: "string",
      value: "W",
      description:
        "diffusion: dParallel's certainty forcing, W x the entropy (temperature 0.5) where the model is already right (the reference uses 2)",
    },
    {
      name: "complementary",
      type: "boolean",
      description: "diffusion: each row twice, with complementary masked positions (Fast-dLLM v2)",
    },
    {
      name: "dtype",
      type: "string",
      value: "TYPE",
      description: "storage type of the exported weights: F32 (default, exact), F16 or BF16",
    },
    {
      name: "fresh",
      type: "boolean",
      description: "start over instead of resuming from the run folder",
    },
    {
      name: "json",
      type: "boolean",
      description: "print the result (steps, tokens, losses) as JSON",
    },
  ],
  examples: [
    "unmask corpus --tokenizer && unmask train --steps 2000",
    "unmask train --config configs/unmask-code-ar.json --steps 2000   # the AR twin",
    "unmask train --steps 50 --batch 4 --length 64 --run /tmp/run --out /tmp/model",
    "unmask train --config configs/unmask-code-bd4.json --init models/unmask-code-ar --block-context dual --complementary --tokens 200000",
    "unmask generate --model /tmp/model 'function '",
  ],
};

const blockContexts = ["clean", "noisy", "dual"] as const;

function objectiveOf(config: ModelConfig, file: string, parsed: Parsed): ObjectiveSpec {
  const annealSteps = intOption(parsed, "anneal-steps", 1);
  const context = stringOption(parsed, "block-context");
  const complementary = flag(parsed, "complementary");
  const certainty = numberOption(parsed, "certainty", (v) =>
    v > 0 ? null : "expected a weight > 0",
  );
  const refuse = (option: string, why: string) => {
    throw new UsageError(`--${option}: ${why}; ${file} has ${config.attention} attention`);
  };
  if (annealSteps !== undefined && config.attention !== "full") {
    refuse("anneal-steps", "annealing opens the mask to full attention");
  }
  if (context !== undefined && config.attention !== "block_causal") {
    refuse("block-context", "it chooses a block-diffusion objective");
  }
  const draft = intOption(parsed, "draft", 1);
  const draftWeight = numberOption(parsed, "draft-weight", (v) =>
    v > 0 ? null : "expected a weight > 0",
  );
  if (draftWeight !== undefined && draft === undefined) {
    throw new UsageError("--draft-weight: it weighs the --draft loss; give --draft K");
  }
  if (config.attention === "causal") {
    if (complementary) refuse("complementary", "masks belong to the diffusion objectives");
    if (certainty !== undefined) refuse("certainty", "it sharpens the diffusion objectives");
    if (draft === undefined) return { kind: "ar" };
    if (config.maskTokenId === null) {
      throw new UsageError(`--draft: ${file} has no mask_token_id for the draft blocks`);
    }
    const weight = draftWeight === undefined ? {} : { weight: draftWeight };
    return { kind: "ar", draft: { blockSize: draft, maskId: config.maskTokenId, ...weight } };
  }
  if (draft !== undefined) refuse("draft", "one-model drafting trains a causal model");
  if (config.maskTokenId === null) {
    throw new UsageError(`${file}: a ${config.attention} model needs a mask_token_id to train`);
  }
  const maskId = config.maskTokenId;
  if (config.attention === "full") {
    const spec: ObjectiveSpec = { kind: "diffusion", maskId };
    if (complementary) spec.complementary = true;
    if (annealSteps !== undefined) spec.annealSteps = annealSteps;
    if (certainty !== undefined) spec.certainty = certainty;
    return spec;
  }
  const kind = blockContexts.find((c) => c === (context ?? "clean"));
  if (kind === undefined) {
    throw new UsageError(
      `--block-context: expected ${blockContexts.join(", ")}, got ${JSON.stringify(context)}`,
    );
  }
  const spec: ObjectiveSpec = { kind: "block", maskId, context: kind };
  if (complementary) spec.complementary = true;
  if (certainty !== undefined) spec.certainty = certainty;
  return spec;
}

/** A corpus split's tokens (cached next to it after the first run), null when the split is absent. */
export async function tokenizeSplit(
  corpusDir: string,
  split: string,
  tokenizer: BpeTokenizer,
): Promise<TokenStream | null> {
  const corpus = join(corpusDir, `${split}.jsonl`);
  if (!existsSync(corpus)) return null;
  const progress = new PhasedProgress("tokenize");
  try {
    return await tokenizeCorpus({
      corpus,
      tokenizer,
      onProgress: (p) => progress.update(split, p.done, p.fileBytes, { tokens: p.tokens }),
    });
  } finally {
    progress.end();
  }
}

/** Rows of `--length` tokens (default the context) from the corpus's splits. */
async function corpusData(
  corpusDir: string,
  tokenizer: BpeTokenizer,
  config: ModelConfig,
  parsed: Parsed,
): Promise<TrainData> {
  const length = intOption(parsed, "length", 2, config.maxPositions) ?? config.maxPositions;
  if (config.attention === "block_causal" && length % config.blockSize !== 0) {
    throw new UsageError(
      `--length ${length}: block diffusion needs a multiple of the block size ${config.blockSize}`,
    );
  }
  const trainTokens = (await tokenizeSplit(corpusDir, "train", tokenizer))!;
  const validTokens = await tokenizeSplit(corpusDir, "valid", tokenizer);
  const data: TrainData = { train: new PackedRows(trainTokens.tokens, length) };
  if (validTokens !== null && validTokens.tokens.length >= length) {
    data.valid = new PackedRows(validTokens.tokens, length);
    data.validBytesPerToken = validTokens.bytes / validTokens.tokens.length;
  }
  return data;
}

/**
 * A distillation set's rows (prompt + response); the objective then trains the responses only
 * (`from` = the prompt's length). Bits per byte count the bytes of the held-out responses' text.
 */
async function distillData(
  dir: string,
  tokenizer: BpeTokenizer,
  config: ModelConfig,
  file: string,
  parsed: Parsed,
  objective: ObjectiveSpec,
): Promise<TrainData> {
  if (objective.kind === "diffusion") {
    throw new UsageError(
      `--distill trains block diffusion or the next-token loss on the responses; ${file} has full attention (block_causal or causal needed)`,
    );
  }
  if (intOption(parsed, "length", 1) !== undefined) {
    throw new UsageError("--length: a distillation set's rows are prompt + response tokens long");
  }
  let set: Awaited<ReturnType<typeof readDistillSet>>;
  try {
    set = await readDistillSet(dir);
  } catch (cause) {
    if (cause instanceof DataError) throw new UsageError(`--distill: ${cause.message}`, { cause });
    throw cause;
  }
  const { prompt, response } = set.info;
  const block = objective.kind === "block";
  if (block && (prompt % config.blockSize !== 0 || (prompt + response) % config.blockSize !== 0)) {
    throw new UsageError(
      `--distill: prompt ${prompt} and response ${response} must be multiples of ${file}'s block size ${config.blockSize}`,
    );
  }
  if (prompt + response > config.maxPositions) {
    throw new UsageError(
      `--distill: rows of ${prompt + response} tokens exceed ${file}'s context ${config.maxPositions}`,
    );
  }
  objective.from = prompt;
  const data: TrainData = { train: set.train };
  if (set.valid) {
    data.valid = set.valid;
    const row = new Int32Array(prompt + response);
    let bytes = 0;
    for (let r = 0; r < set.valid.count; r++) {
      set.valid.copyRow(r, row);
      bytes += Buffer.byteLength(tokenizer.decode(Array.from(row.subarray(prompt))));
    }
    data.validBytesPerToken = bytes / (set.valid.count * response);
  }
  return data;
}

async function run(argv: string[], context: Context): Promise<number> {
  const parsed = parse(spec, argv);
  const root = packageRoot();
  const configFile = resolve(
    stringOption(parsed, "config") ?? join(root, "configs", "unmask-code.json"),
  );
  const corpusDir = resolve(stringOption(parsed, "corpus") ?? join(root, ".cache", "corpus"));
  const distillDir = stringOption(parsed, "distill");
  if (distillDir !== undefined && stringOption(parsed, "corpus") !== undefined) {
    throw new UsageError(
      "--distill: the set replaces the corpus; give one of --distill and --corpus",
    );
  }
  const tokenizerFile = resolve(
    stringOption(parsed, "tokenizer") ??
      join(distillDir === undefined ? corpusDir : resolve(distillDir), "tokenizer.json"),
  );
  const runDir = resolve(
    stringOption(parsed, "run") ?? join(root, ".cache", "runs", basename(configFile, ".json")),
  );
  const outDir = resolve(stringOption(parsed, "out") ?? join(runDir, "model"));
  const steps = intOption(parsed, "steps", 1);
  const tokens = intOption(parsed, "tokens", 1);
  if ((steps === undefined) === (tokens === undefined)) {
    throw new UsageError("train: give the budget as --steps N or --tokens N (one of them)");
  }
  const batchRows = intOption(parsed, "batch", 1) ?? 16;
  const accumulation = intOption(parsed, "accumulate", 1) ?? 1;
  const lr = numberOption(parsed, "lr", (v) => (v > 0 ? null : "expected a rate > 0")) ?? 2e-3;
  const seed = intOption(parsed, "seed", 0) ?? 0;
  const warmup = intOption(parsed, "warmup", 0);
  const evalEvery = intOption(parsed, "eval-every", 1);
  const checkpointEvery = intOption(parsed, "checkpoint-every", 1);
  const evalRows = intOption(parsed, "eval-rows", 1);
  const dtype = stringOption(parsed, "dtype") ?? "F32";
  if (dtype !== "F32" && dtype !== "F16" && dtype !== "BF16") {
    throw new UsageError(`--dtype: expected F32, F16 or BF16, got ${JSON.stringify(dtype)}`);
  }
  for (const [file, what] of [
    [configFile, "--config"],
    distillDir === undefined
      ? [
          join(corpusDir, "train.jsonl"),
          "the corpus (run 'unmask corpus' first, or pass --corpus DIR)",
        ]
      : [join(resolve(distillDir), "distill.json"), "the distillation set (run 'unmask distill')"],
    [tokenizerFile, "the tokenizer (run 'unmask corpus --tokenizer', or pass --tokenizer FILE)"],
  ]) {
    if (!existsSync(file)) throw new UsageError(`${file}: not found: ${what}`);
  }

  const config = parseModelConfig(JSON.parse(await readFile(configFile, "utf8")), configFile);
  const objective = objectiveOf(config, configFile, parsed);
  const tokenizerJson = await readFile(tokenizerFile, "utf8");
  const tokenizer = new BpeTokenizer(bpeFromTokenizerJson(JSON.parse(tokenizerJson)));
  if (tokenizer.vocabSize > config.vocabSize) {
    throw new UsageError(
      `${tokenizerFile} has ${tokenizer.vocabSize} tokens, more than ${configFile}'s vocab_size ${config.vocabSize}`,
    );
  }
  const data =
    distillDir === undefined
      ? await corpusData(corpusDir, tokenizer, config, parsed)
      : await distillData(resolve(distillDir), tokenizer, config, configFile, parsed, objective);

  const step = await createTrainStep(
    config,
    {},
    objective.kind !== "ar" && objective.certainty
      ? { certainty: { temperature: certaintyTemperature } }
      : {},
  );
  const tokensPerStep = batchRows * data.train.length * accumulation;
  const totalSteps = steps ?? Math.ceil(tokens! / tokensPerStep);
  const options: TrainOptions = {
    runDir,
    objective,
    batchRows,
    accumulation,
    lr,
    seed,
    warmupSteps: warmup ?? Math.floor(totalSteps * 0.05),
    evalEvery: evalEvery ?? Math.max(1, Math.ceil(totalSteps / 10)),
    checkpointEvery: checkpointEvery ?? evalEvery ?? Math.max(1, Math.ceil(totalSteps / 10)),
    resume: !flag(parsed, "fresh"),
  };
  if (steps !== undefined) options.maxSteps = steps;
  else options.maxTokens = tokens!;
  if (evalRows !== undefined) options.evalRows = evalRows;
  const initDir = stringOption(parsed, "init");
  if (initDir !== undefined) {
    // the trainer checks every tensor's shape against this config (naming the first that differs)
    options.initialWeights = (await loadCheckpoint(resolve(initDir), { tokenizer: false })).weights;
  }

  const bar = new ProgressBar({ label: "train", total: totalSteps });
  const json = flag(parsed, "json");
  let last = { step: 0, loss: Number.NaN };
  let result: Awaited<ReturnType<typeof train>>;
  try {
    result = await train(
      { ...options, step, data },
      {
        onProgress: (p) => {
          last = { step: p.step, loss: p.loss };
          bar.update(p.step, {
            loss: p.loss.toFixed(3),
            lr: p.lr.toExponential(1),
            "tok/s": Math.round(p.tokensPerSecond),
          });
        },
        onEval: (e) => {
          const bpb = e.bitsPerByte === null ? "" : `, ${e.bitsPerByte.toFixed(3)} bits/byte`;
          if (!json) bar.log(`step ${e.step}: held-out loss ${e.loss.toFixed(4)}${bpb}`);
        },
        onInterrupt: (handler) => {
          context.interrupt.addEventListener("abort", handler, { once: true });
          return () => context.interrupt.removeEventListener("abort", handler);
        },
      },
    );
  } finally {
    bar.finish(last.step, { loss: last.loss.toFixed(3) });
    await step.dispose();
  }

  let exported: string | null = null;
  if (!result.interrupted) {
    await exportModel(
      outDir,
      {
        config,
        layout: result.layout,
        params: result.params,
        tokenizerJson,
        generation: {
          bos_token_id: config.bosTokenId,
          eos_token_id: config.eosTokenId,
          pad_token_id: config.padTokenId,
          mask_token_id: config.maskTokenId,
        },
      },
      { dtype },
    );
    const tokenizerConfig = join(dirname(tokenizerFile), "tokenizer_config.json");
    if (existsSync(tokenizerConfig))
      await copyFile(tokenizerConfig, join(outDir, "tokenizer_config.json"));
    exported = outDir;
  }
  const valid = result.history.valid.at(-1) ?? null;
  if (json) {
    const summary = {
      config: configFile,
      objective: objective.kind,
      run: runDir,
      model: exported,
      resumed_from: result.resumedFrom,
      checkpoint: result.checkpoint,
      interrupted: result.interrupted,
      steps: result.step,
      tokens: result.tokens,
      train_loss: last.loss,
      valid_loss: valid?.loss ?? null,
      valid_bits_per_byte: valid?.bitsPerByte ?? null,
    };
    process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
  } else if (result.interrupted) {
    process.stderr.write(
      `unmask: interrupted at step ${result.step}; checkpoint in ${result.checkpoint}; run the same command to resume\n`,
    );
  } else {
    process.stdout.write(`trained ${result.step} steps (${result.tokens} tokens) → ${exported}\n`);
  }
  return result.interrupted ? 130 : 0;
}

export const trainCommand: Command = { spec, run };
