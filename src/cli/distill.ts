// `unmask distill`: a distillation set (src/train/distill.ts) — prompts cut from the corpus, each
// continued by a causal teacher's greedy decoding — for `unmask train --distill DIR`.

import { existsSync } from "node:fs";
import { copyFile, readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { loadModel } from "../host/models.js";
import { BpeTokenizer, bpeFromTokenizerJson } from "../train/bpe.js";
import { teacherRows, writeDistillSet } from "../train/distill.js";
import { type CommandSpec, flag, intOption, parse, stringOption, UsageError } from "./args.js";
import type { Command } from "./command.js";
import { packageRoot } from "./package.js";
import { PhasedProgress } from "./progress.js";
import { tokenizeSplit } from "./train.js";

const spec: CommandSpec = {
  name: "distill",
  usage: ["distill [options] --out DIR"],
  description: `
Writes a distillation set: --rows prompts of --prompt tokens cut at seeded random points of the
corpus's training split (and --valid-rows from its held-out split, for the held-out loss), in the
teacher's tokens (its tokenizer.json), each continued by --response tokens of the teacher's greedy
decoding (sequence-level knowledge distillation). 'unmask train --distill DIR' then trains a
block-diffusion model on the responses against their clean prompts: a greedy teacher's text is a
function of its prompt, so the student can learn to be sure of several tokens at once. The
teacher is a causal model (the AR twin by default); --batch rows share each forward pass.`,
  options: [
    {
      name: "teacher",
      type: "string",
      value: "DIR",
      description: "a causal model folder (default: the embedded AR twin, models/unmask-code-ar)",
    },
    {
      name: "corpus",
      type: "string",
      value: "DIR",
      description: "the corpus folder of 'unmask corpus' (default: .cache/corpus)",
    },
    { name: "out", type: "string", short: "o", value: "DIR", description: "the set's folder" },
    { name: "rows", type: "string", value: "N", description: "training rows (default 4096)" },
    {
      name: "valid-rows",
      type: "string",
      value: "N",
      description: "held-out rows (default 128; 0: none)",
    },
    { name: "prompt", type: "string", value: "N", description: "prompt tokens (default 192)" },
    {
      name: "response",
      type: "string",
      value: "N",
      description: "teacher tokens after each prompt (default 64)",
    },
    { name: "seed", type: "string", value: "N", description: "seed of the cut points (default 0)" },
    {
      name: "batch",
      type: "string",
      value: "N",
      description: "rows per forward pass (default 32)",
    },
    { name: "json", type: "boolean", description: "print distill.json's contents as JSON" },
  ],
  examples: [
    "unmask distill --corpus .cache/corpus --out .cache/distill --rows 20000",
    "unmask train --config configs/unmask-code-bd8.json --init models/unmask-code-ar --distill .cache/distill --block-context dual --tokens 2000000",
  ],
};

async function run(argv: string[]): Promise<number> {
  const parsed = parse(spec, argv);
  const root = packageRoot();
  const out = stringOption(parsed, "out");
  if (out === undefined) throw new UsageError("distill: --out DIR is required");
  const teacherDir = resolve(
    stringOption(parsed, "teacher") ?? join(root, "models", "unmask-code-ar"),
  );
  const corpusDir = resolve(stringOption(parsed, "corpus") ?? join(root, ".cache", "corpus"));
  const rows = intOption(parsed, "rows", 1) ?? 4096;
  const validRows = intOption(parsed, "valid-rows", 0) ?? 128;
  const prompt = intOption(parsed, "prompt", 1) ?? 192;
  const response = intOption(parsed, "response", 1) ?? 64;
  const seed = intOption(parsed, "seed", 0) ?? 0;
  const batch = intOption(parsed, "batch", 1) ?? 32;
  // the teacher writes ids of its own vocabulary: its tokenizer cuts the prompts too
  const tokenizerFile = join(teacherDir, "tokenizer.json");
  for (const [file, what] of [
    [join(corpusDir, "train.jsonl"), "the corpus (run 'unmask corpus', or pass --corpus DIR)"],
    [tokenizerFile, "the teacher's tokenizer"],
  ]) {
    if (!existsSync(file)) throw new UsageError(`${file}: not found: ${what}`);
  }
  const tokenizer = new BpeTokenizer(
    bpeFromTokenizerJson(JSON.parse(await readFile(tokenizerFile, "utf8"))),
  );
  const teacher = await loadModel(teacherDir);
  try {
    const config = teacher.config;
    if (config.attention !== "causal") {
      throw new UsageError(
        `--teacher ${teacherDir}: expected a causal (AR) model, it has ${config.attention} attention`,
      );
    }
    if (tokenizer.vocabSize > config.vocabSize) {
      throw new UsageError(
        `${tokenizerFile} has ${tokenizer.vocabSize} tokens, more than the teacher's vocab_size ${config.vocabSize}`,
      );
    }
    if (prompt + response > config.maxPositions) {
      throw new UsageError(
        `--prompt ${prompt} + --response ${response} exceed the teacher's context of ${config.maxPositions} tokens`,
      );
    }
    const splits: { train: Int32Array; valid: Int32Array | null } = {
      train: new Int32Array(),
      valid: null,
    };
    for (const [split, count] of [
      ["valid", validRows],
      ["train", rows],
    ] as const) {
      if (count === 0) continue;
      const stream = await tokenizeSplit(corpusDir, split, tokenizer);
      if (stream === null) throw new UsageError(`${join(corpusDir, `${split}.jsonl`)}: not found`);
      const bar = new PhasedProgress("distill");
      try {
        splits[split] = await teacherRows({
          teacher: teacher.model,
          stream: stream.tokens,
          rows: count,
          prompt,
          response,
          seed,
          batch,
          onProgress: (done, total) => bar.update(`${split} rows`, done, total),
        });
      } finally {
        bar.end();
      }
    }
    const info = await writeDistillSet(
      resolve(out),
      { prompt, response, teacher: teacherDir, corpus: corpusDir, seed },
      splits,
      config.vocabSize,
    );
    // the set carries its tokenizer: `unmask train --distill` exports the student with it
    for (const file of ["tokenizer.json", "tokenizer_config.json"]) {
      if (existsSync(join(teacherDir, file)))
        await copyFile(join(teacherDir, file), join(resolve(out), file));
    }
    if (flag(parsed, "json")) process.stdout.write(`${JSON.stringify(info, null, 2)}\n`);
    else
      process.stdout.write(
        `${info.train} training and ${info.valid} held-out rows → ${resolve(out)}\n`,
      );
    return 0;
  } finally {
    await teacher.model.dispose();
  }
}

export const distill: Command = { spec, run };
