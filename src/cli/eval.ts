// `unmask eval`: a model's held-out bits per byte on the corpus's valid split — the diffusion
// ELBO for a diffusion model (an upper bound, with its Monte Carlo standard error), the exact
// likelihood for the AR twin — so that the two are compared on the same bytes.

import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { BpeTokenizer, bpeFromTokenizerJson } from "../train/bpe.js";
import { PackedRows, tokenizeCorpus } from "../train/data.js";
import { bitsPerByte, packedEvalText } from "../train/eval.js";
import { type CommandSpec, flag, intOption, parse, stringOption, UsageError } from "./args.js";
import type { Command } from "./command.js";
import { modelOption } from "./decode.js";
import { loadModel, resolveModelDir } from "./model.js";
import { packageRoot } from "./package.js";
import { PhasedProgress } from "./progress.js";

const spec: CommandSpec = {
  name: "eval",
  usage: ["eval [options]"],
  description: `
Measures a model's held-out bits per byte on the valid split of the corpus ('unmask corpus'):
the documents are tokenized with the model's own tokenizer and packed into rows of --length
tokens. A diffusion model is scored by its masked-diffusion ELBO (LLaDA's low-variance
estimator; an upper bound on the true bits per byte, reported with its standard error), a
block-diffusion model by the block form of that bound, and an autoregressive model exactly.
Lower is better; the same rows and bytes for every model make the numbers comparable.`,
  options: [
    modelOption,
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
      description: "held-out rows to score at most (default: all)",
    },
    {
      name: "length",
      type: "string",
      short: "n",
      value: "N",
      description: "tokens per row (default: the model's context, at most 256)",
    },
    {
      name: "samples",
      type: "string",
      value: "N",
      description: "Monte Carlo samples per row for the diffusion bounds (default 16)",
    },
    { name: "batch", type: "string", value: "N", description: "rows per forward pass (default 8)" },
    { name: "seed", type: "string", value: "N", description: "seed of the masks (default 0)" },
    { name: "json", type: "boolean", description: "print the result as JSON" },
  ],
  examples: [
    "unmask eval --rows 64",
    "unmask eval --model models/unmask-code-ar --rows 64   # the AR twin, on the same rows",
    "unmask eval --model ./run/model --corpus /tmp/corpus --json",
  ],
};

async function run(argv: string[]): Promise<number> {
  const parsed = parse(spec, argv);
  const dir = resolveModelDir(stringOption(parsed, "model"), false);
  const corpusDir = resolve(
    stringOption(parsed, "corpus") ?? join(packageRoot(), ".cache", "corpus"),
  );
  const valid = join(corpusDir, "valid.jsonl");
  if (!existsSync(valid)) {
    throw new UsageError(`${valid}: not found (run 'unmask corpus' first, or pass --corpus DIR)`);
  }
  const maxRows = intOption(parsed, "rows", 1);
  const options: Parameters<typeof bitsPerByte>[2] & object = {};
  const samples = intOption(parsed, "samples", 1);
  const batch = intOption(parsed, "batch", 1);
  const seed = intOption(parsed, "seed", Number.MIN_SAFE_INTEGER);
  if (samples !== undefined) options.samples = samples;
  if (batch !== undefined) options.batchRows = batch;
  if (seed !== undefined) options.seed = seed;

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
    // bytes per row come from the byte-level BPE's tokens (the format of our own tokenizers)
    const bpe = new BpeTokenizer(
      bpeFromTokenizerJson(JSON.parse(await readFile(join(dir, "tokenizer.json"), "utf8"))),
    );
    const tokenizing = new PhasedProgress("tokenize");
    let stream: Awaited<ReturnType<typeof tokenizeCorpus>>;
    try {
      stream = await tokenizeCorpus({
        corpus: valid,
        tokenizer: bpe,
        onProgress: (p) => tokenizing.update("valid", p.done, p.fileBytes, { tokens: p.tokens }),
      });
    } finally {
      tokenizing.end();
    }
    const rows = new PackedRows(stream.tokens, length);
    if (rows.count === 0) {
      throw new UsageError(`${valid}: fewer than ${length} tokens, not one row to score`);
    }
    const text = packedEvalText(rows, bpe, maxRows);
    const scoring = new PhasedProgress("eval");
    options.onProgress = (done, total) => scoring.update("held-out", done, total);
    let result: Awaited<ReturnType<typeof bitsPerByte>>;
    try {
      result = await bitsPerByte(loaded.model, text, options);
    } finally {
      scoring.end();
    }
    const summary = {
      model: dir,
      attention: config.attention,
      corpus: valid,
      rows: text.sequences.length,
      length,
      ...result,
    };
    if (flag(parsed, "json")) {
      process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
    } else {
      const error = result.standardError > 0 ? ` ± ${result.standardError.toFixed(4)}` : "";
      process.stdout.write(
        `${result.bitsPerByte.toFixed(4)}${error} bits/byte (${result.method}) on ${summary.rows} held-out rows of ${length} tokens, ${result.bytes} bytes\n`,
      );
    }
    return 0;
  } finally {
    await loaded.model.dispose();
  }
}

export const evalCommand: Command = { spec, run };
