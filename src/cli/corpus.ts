// `unmask corpus`: assemble the training corpus from the pinned npm packages (and, with
// --tokenizer, train the byte-level BPE on its train split).

import { resolve } from "node:path";
import {
  buildCorpus,
  type CorpusManifest,
  type CorpusOptions,
  type TrainTokenizerOptions,
  type TrainTokenizerResult,
  trainTokenizerFromCorpus,
} from "../train/corpus.js";
import {
  type CommandSpec,
  flag,
  intOption,
  numberOption,
  parse,
  stringOption,
  UsageError,
} from "./args.js";
import type { Command } from "./command.js";
import { PhasedProgress } from "./progress.js";

const spec: CommandSpec = {
  name: "corpus",
  usage: ["corpus [options]"],
  description: `
Installs the npm packages pinned in data/corpus/packages.json (in the repository; --only: some
of them) into a cache folder (once; npm install --ignore-scripts, from the npm registry), takes their hand-written TypeScript and JavaScript sources,
filters, deduplicates and caps them per package, holds out a share of the files by a hash of
their path, and writes train.jsonl, valid.jsonl and manifest.json (per-file provenance: package,
version, licence, path). The same inputs give the same bytes. With --tokenizer it then trains
the byte-level BPE on train.jsonl alone and writes tokenizer.json next to the corpus.`,
  options: [
    {
      name: "out",
      type: "string",
      short: "o",
      value: "DIR",
      description: "where the corpus goes (default: .cache/corpus in the repository)",
    },
    {
      name: "packages",
      type: "string",
      value: "FILE",
      description: "the pinned package list (default: data/corpus/packages.json)",
    },
    {
      name: "only",
      type: "string",
      value: "NAME[,NAME...]",
      description: "only these packages of the list (a small corpus, e.g. for a quick trial)",
    },
    {
      name: "node-modules",
      type: "string",
      value: "DIR",
      description: "read the packages from this installed node_modules folder (no npm install)",
    },
    {
      name: "cap",
      type: "string",
      value: "BYTES",
      description: "bytes kept per package at most (default 6000000)",
    },
    {
      name: "valid-fraction",
      type: "string",
      value: "F",
      description: "share of files held out for validation, in [0, 1) (default 0.02)",
    },
    {
      name: "tokenizer",
      type: "boolean",
      description: "then train the tokenizer on the corpus's train split",
    },
    {
      name: "tokenizer-only",
      type: "boolean",
      description: "train the tokenizer on the corpus already in --out, without rebuilding it",
    },
    {
      name: "vocab-size",
      type: "string",
      value: "N",
      description: "tokenizer vocabulary, special and byte tokens included (default 8192)",
    },
    { name: "json", type: "boolean", description: "print the manifest's summary as JSON" },
  ],
  examples: [
    "unmask corpus --tokenizer",
    "unmask corpus --tokenizer-only --vocab-size 16384",
    "unmask corpus --out /tmp/corpus --cap 2000000 --json",
    "unmask corpus --only zod,ws --valid-fraction 0.1 --tokenizer --vocab-size 1024   # a tiny trial",
  ],
};

const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;

async function run(argv: string[]): Promise<number> {
  const parsed = parse(spec, argv);
  const out = stringOption(parsed, "out");
  const only = flag(parsed, "tokenizer-only");
  const options: CorpusOptions = {};
  if (out !== undefined) options.outDir = resolve(out);
  const packages = stringOption(parsed, "packages");
  if (packages !== undefined) options.packagesJson = resolve(packages);
  const subset = stringOption(parsed, "only");
  if (subset !== undefined) {
    const names = subset.split(",").map((name) => name.trim());
    if (names.includes("")) {
      throw new UsageError(`--only: expected package names separated by commas, got "${subset}"`);
    }
    options.only = names;
  }
  const nodeModules = stringOption(parsed, "node-modules");
  if (nodeModules !== undefined) options.nodeModules = resolve(nodeModules);
  const cap = intOption(parsed, "cap", 1);
  if (cap !== undefined) options.packageCapBytes = cap;
  const valid = numberOption(parsed, "valid-fraction", (v) =>
    v >= 0 && v < 1 ? null : "expected a share in [0, 1)",
  );
  if (valid !== undefined) options.validFraction = valid;
  const vocabSize = intOption(parsed, "vocab-size", 1);
  if (only && Object.keys(options).some((k) => k !== "outDir")) {
    throw new UsageError(
      "--tokenizer-only reads the corpus in --out: the build options do not apply",
    );
  }
  const tokenizer = only || flag(parsed, "tokenizer");
  if (vocabSize !== undefined && !tokenizer) {
    throw new UsageError("--vocab-size: only with --tokenizer or --tokenizer-only");
  }
  const json = flag(parsed, "json");
  const report: { corpus?: unknown; tokenizer?: TrainTokenizerResult } = {};
  const lines: string[] = [];

  if (!only) {
    const progress = new PhasedProgress("corpus");
    let manifest: CorpusManifest;
    try {
      manifest = await buildCorpus(options, (p) =>
        progress.update(p.phase, p.filesDone, p.phase === "install" ? null : p.filesTotal, {
          MB: (p.bytes / 1e6).toFixed(1),
        }),
      );
    } finally {
      progress.end();
    }
    const { train, valid: held } = manifest.splits;
    report.corpus = {
      out: options.outDir ?? ".cache/corpus",
      packages: Object.keys(manifest.packages).length,
      splits: manifest.splits,
      rejections: manifest.rejections,
    };
    lines.push(
      `corpus: ${Object.keys(manifest.packages).length} packages; train ${train.files} files, ${mb(train.bytes)}; valid ${held.files} files, ${mb(held.bytes)}`,
    );
  }
  if (tokenizer) {
    const t: TrainTokenizerOptions = {};
    if (options.outDir !== undefined) t.corpusDir = options.outDir;
    if (vocabSize !== undefined) t.vocabSize = vocabSize;
    const progress = new PhasedProgress("tokenizer");
    let result: TrainTokenizerResult;
    try {
      result = await trainTokenizerFromCorpus(t, (p) =>
        progress.update(p.phase, p.done, p.phase === "count" ? null : p.total),
      );
    } finally {
      progress.end();
    }
    report.tokenizer = result;
    lines.push(
      `tokenizer: ${result.vocabSize} tokens, ${result.validBytesPerToken.toFixed(2)} bytes/token on the held-out split → ${result.path}`,
    );
  }
  process.stdout.write(json ? `${JSON.stringify(report, null, 2)}\n` : `${lines.join("\n")}\n`);
  return 0;
}

export const corpus: Command = { spec, run };
