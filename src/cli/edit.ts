// `unmask edit` (regenerate some lines of a file, the rest held fixed) and `unmask fix` (the
// model scores every token, re-masks the ones it finds least likely and denoises them again;
// the change is shown as a unified diff).

import { writeFile } from "node:fs/promises";
import { isAbsolute } from "node:path";
import {
  type EditResult,
  type FixResult,
  spanRanges,
  streamEdit,
  streamFix,
} from "../diffusion/api.js";
import {
  type CommandSpec,
  flag,
  numberOption,
  type Parsed,
  parse,
  stringOption,
  UsageError,
} from "./args.js";
import { type Command, type Context, note, readText } from "./command.js";
import {
  type DecodeFlags,
  decodeFlags,
  decodeOptions,
  diffusionOptions,
  drive,
  finish,
  jsonSection,
  liveCanvasFor,
  loadForFlags,
  type Outcome,
  strategiesSection,
} from "./decode.js";
import { unifiedDiff } from "./diff.js";
import { isLiveTerminal } from "./terminal.js";
import { canvasLook, idsText } from "./text.js";

const writeOption = {
  name: "write",
  type: "boolean",
  short: "w",
  description: "write the result back to FILE",
} as const;

const editSpec: CommandSpec = {
  name: "edit",
  usage: ["edit [options] FILE --lines A-B"],
  description: `
Regenerates lines A to B of FILE (1-based, inclusive; "--lines 7" is line 7 alone) with the rest
of the file held fixed on the canvas, and prints the edited file (or writes it back with
--write; --diff prints the change as a unified diff instead). The new lines get as many tokens
as the old ones had, or --length.`,
  options: [
    {
      name: "lines",
      type: "string",
      short: "l",
      value: "A-B",
      description: "the lines to regenerate",
    },
    writeOption,
    {
      name: "diff",
      type: "boolean",
      short: "d",
      description: "print a unified diff of the change",
    },
    ...decodeOptions("tokens of the regenerated lines (default: as many as they have now)"),
  ],
  examples: [
    "unmask edit src/queue.ts --lines 12-18",
    "unmask edit src/queue.ts --lines 12-18 --diff --strategy self-correct",
    "unmask edit src/queue.ts -l 30 --length 24 --write",
  ],
  sections: [
    strategiesSection(),
    jsonSection(
      "edit",
      '"lines" ([A, B]), "replacement" (the new text of those lines), "diff" (unified diff)',
    ),
  ],
  maxPositionals: 1,
};

const fixSpec: CommandSpec = {
  name: "fix",
  usage: ["fix [options] FILE"],
  description: `
Scores every token of FILE with the model (each token masked in turn, in a few batched passes),
re-masks the least likely ones — those below --below, at most --max-fraction of the file — and
denoises them again with everything else held fixed. Prints the change as a unified diff (empty
when nothing changed); --write applies it to FILE.`,
  options: [
    {
      name: "below",
      type: "string",
      value: "P",
      description: "re-mask tokens whose probability is below P, in (0, 1] (default 0.5)",
    },
    {
      name: "max-fraction",
      type: "string",
      value: "F",
      description: "re-mask at most this share of the tokens, in (0, 1] (default 0.1)",
    },
    writeOption,
    ...decodeOptions("not used by fix").filter((o) => o.name !== "length"),
  ],
  examples: [
    "unmask fix src/parser.ts",
    "unmask fix src/parser.ts --below 0.2 --max-fraction 0.05 --write",
    "unmask fix src/parser.ts --json | jq -r .diff",
  ],
  sections: [
    strategiesSection(),
    jsonSection(
      "fix",
      '"diff" (unified diff, "" when nothing changed), "remasked" (tokens re-masked), "changed" (tokens that changed)',
    ),
  ],
  maxPositionals: 1,
};

/** "A-B" or "A" as 1-based inclusive lines of a text with `count` lines. */
export function parseLines(raw: string, count: number): [number, number] {
  const m = /^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$/.exec(raw);
  if (m === null)
    throw new UsageError(`--lines: expected A-B or A (line numbers), got ${JSON.stringify(raw)}`);
  const from = Number(m[1]);
  const to = m[2] === undefined ? from : Number(m[2]);
  if (from < 1) throw new UsageError(`--lines ${raw}: lines are numbered from 1`);
  if (to < from)
    throw new UsageError(`--lines ${raw}: the range ends (${to}) before it starts (${from})`);
  if (to > count) {
    throw new UsageError(`--lines ${raw}: the file has ${count} line${count === 1 ? "" : "s"}`);
  }
  return [from, to];
}

/** Lines of a text as an editor counts them (a final newline does not start another line). */
function lineCount(text: string): number {
  if (text === "") return 0;
  const n = text.split("\n").length;
  return text.endsWith("\n") ? n - 1 : n;
}

/** The FILE positional, required; `-` (stdin) only without --write. */
function fileArgument(spec: CommandSpec, parsed: Parsed): string {
  const file = parsed.positionals[0];
  if (file === undefined)
    throw new UsageError(`${spec.name}: which FILE? (see 'unmask ${spec.name} --help')`);
  if (file === "-" && flag(parsed, "write"))
    throw new UsageError("--write: stdin is not a file to write");
  return file;
}

/** Writes the result to `file` with --write, unless the run stopped with masks left. */
async function writeBack(
  parsed: Parsed,
  file: string,
  text: string,
  outcome: Outcome,
): Promise<boolean> {
  if (!flag(parsed, "write")) return false;
  if (outcome.stop === "interrupted" || outcome.stop === "max_time") {
    process.stderr.write(
      `unmask: ${file} not written: the run stopped before the canvas was clean\n`,
    );
    return false;
  }
  await writeFile(file, text);
  return true;
}

function diffOf(flags: DecodeFlags, file: string, before: string, after: string): string {
  const color = !flags.json && isLiveTerminal(process.stdout, process.env);
  // git's a/ b/ prefixes for a relative path (so that `git apply` takes the patch)
  const names: [string, string] = isAbsolute(file) ? [file, file] : [`a/${file}`, `b/${file}`];
  return unifiedDiff(before, after, names, { color });
}

async function runEdit(argv: string[], context: Context): Promise<number> {
  const parsed = parse(editSpec, argv);
  const flags = decodeFlags(parsed);
  const file = fileArgument(editSpec, parsed);
  const rawLines = stringOption(parsed, "lines");
  if (rawLines === undefined) throw new UsageError("edit: which lines? (--lines A-B)");
  const source = await readText(file);
  const lines = parseLines(rawLines, lineCount(source));
  const span =
    flags.settings.length === undefined ? { lines } : { lines, length: flags.settings.length };
  const [[a, b]] = spanRanges(source, [span]);

  const t0 = performance.now();
  const loaded = await loadForFlags(flags);
  try {
    const loadMs = performance.now() - t0;
    const outcome = await drive<EditResult>(
      (signal) =>
        streamEdit(loaded.model, source, [span], {
          ...diffusionOptions(flags),
          tokenizer: loaded.tokenizer,
          signal,
        }),
      context.interrupt,
      flags.maxTimeMs,
      liveCanvasFor(flags, canvasLook(loaded, [0, Number.MAX_SAFE_INTEGER])),
    );
    const fill = outcome.result.fills[0];
    const replacement = idsText(loaded, fill);
    const text = source.slice(0, a) + replacement + source.slice(b);
    const diff = diffOf(flags, file, source, text);
    const report = {
      command: "edit",
      text,
      tokens: fill.filter((t) => t !== loaded.config.maskTokenId).length,
      counts: { canvas: outcome.result.canvas.length, replaced: fill.length },
      extra: { lines, replacement, diff },
    };
    const written = await writeBack(parsed, file, text, outcome);
    const print = flag(parsed, "diff") ? diff : written ? "" : text;
    if (written && !flags.json) note(`rewrote lines ${lines.join("-")} of ${file}`);
    return finish(flags, loaded, outcome, report, loadMs, print);
  } finally {
    await loaded.model.dispose();
  }
}

async function runFix(argv: string[], context: Context): Promise<number> {
  const parsed = parse(fixSpec, argv);
  const flags = decodeFlags(parsed);
  const file = fileArgument(fixSpec, parsed);
  const inUnit = (v: number) => (v > 0 && v <= 1 ? null : "expected a number in (0, 1]");
  const below = numberOption(parsed, "below", inUnit);
  const maxFraction = numberOption(parsed, "max-fraction", inUnit);
  const source = await readText(file);
  if (source === "") throw new UsageError(`${file}: empty, nothing to fix`);

  const t0 = performance.now();
  const loaded = await loadForFlags(flags);
  try {
    const loadMs = performance.now() - t0;
    const options: { below?: number; maxFraction?: number } = {};
    if (below !== undefined) options.below = below;
    if (maxFraction !== undefined) options.maxFraction = maxFraction;
    const outcome = await drive<FixResult>(
      (signal) =>
        streamFix(loaded.model, source, {
          ...diffusionOptions(flags),
          ...options,
          tokenizer: loaded.tokenizer,
          signal,
        }),
      context.interrupt,
      flags.maxTimeMs,
      liveCanvasFor(flags, canvasLook(loaded, [0, Number.MAX_SAFE_INTEGER])),
    );
    const { result } = outcome;
    const text = result.remasked.length === 0 ? source : idsText(loaded, result.canvas);
    const diff = diffOf(flags, file, source, text);
    const report = {
      command: "fix",
      text,
      tokens: result.remasked.length,
      counts: { source: result.canvas.length },
      extra: { diff, remasked: result.remasked.length, changed: result.changed.length },
    };
    const written = diff !== "" && (await writeBack(parsed, file, text, outcome));
    if (written && !flags.json) note(`fixed ${file}`);
    return finish(flags, loaded, outcome, report, loadMs, diff);
  } finally {
    await loaded.model.dispose();
  }
}

export const edit: Command = { spec: editSpec, run: runEdit };
export const fix: Command = { spec: fixSpec, run: runFix };
