// `unmask edit` (regenerate some lines of a file, the rest held fixed) and `unmask fix` (the
// model scores every token, re-masks the ones it finds least likely and denoises them again;
// the change is shown as a unified diff).

import { isAbsolute } from "node:path";
import {
  type EditResult,
  type FixResult,
  spanRanges,
  streamEdit,
  streamFix,
} from "../diffusion/api.js";
import type { StepEvent } from "../diffusion/types.js";
import { lineChunks } from "../diffusion/window.js";
import {
  type CommandSpec,
  flag,
  numberOption,
  type Parsed,
  parse,
  stringOption,
  UsageError,
} from "./args.js";
import { type Command, type Context, note } from "./command.js";
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
  strategiesSection,
} from "./decode.js";
import { commonEnds, splitLines, unifiedDiff } from "./diff.js";
import {
  checkWritable,
  diskText,
  fitWindow,
  readTextFile,
  type TextFile,
  writeBack,
  writeExitCode,
} from "./files.js";
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
as the old ones had, or --length.

FILE must be UTF-8 text (anything else is refused and left as it is); its byte order mark and
line endings (LF or CRLF, the new lines too) are kept, and every byte outside lines A-B is
written back as it was. --write replaces FILE atomically, checks that FILE can be written before
the model is loaded, and exits non-zero when it did not write. A file longer than the model's
context is edited through a window around lines A-B: those lines' tokens whole (more than the
context is an error), the lines before and after as many as fit.`,
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
when nothing changed); --write applies it to FILE.

FILE must be UTF-8 text (anything else is refused and left as it is); its byte order mark and
line endings are kept, and only the bytes of changed tokens change. --write replaces FILE
atomically, checks that FILE can be written before the model is loaded, and exits non-zero when
it did not write. A file longer than the model's context is fixed in chunks of whole lines that
each fit, one after the other (a single line longer than the context is an error).`,
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

/** The unified diff of the file's text before and after, in the file's own form. */
function diffOf(flags: DecodeFlags, file: TextFile, before: string, after: string): string {
  const color = !flags.json && isLiveTerminal(process.stdout, process.env);
  const path = file.path;
  // git's a/ b/ prefixes for a relative path (so that `git apply` takes the patch)
  const names: [string, string] = isAbsolute(path) ? [path, path] : [`a/${path}`, `b/${path}`];
  return unifiedDiff(diskText(file, before), diskText(file, after), names, { color });
}

/** Reads FILE, and with --write checks up front that it can be replaced. */
async function openFile(parsed: Parsed, path: string): Promise<TextFile> {
  const file = await readTextFile(path);
  if (flag(parsed, "write")) await checkWritable(path);
  return file;
}

async function runEdit(argv: string[], context: Context): Promise<number> {
  const parsed = parse(editSpec, argv);
  const flags = decodeFlags(parsed);
  const path = fileArgument(editSpec, parsed);
  const rawLines = stringOption(parsed, "lines");
  if (rawLines === undefined) throw new UsageError("edit: which lines? (--lines A-B)");
  const file = await openFile(parsed, path);
  const source = file.text;
  const lines = parseLines(rawLines, lineCount(source));
  const [[a, b]] = spanRanges(source, [{ lines }]);

  const t0 = performance.now();
  const loaded = await loadForFlags(flags);
  try {
    const loadMs = performance.now() - t0;
    const { tokenizer, model } = loaded;
    const length =
      flags.settings.length ?? Math.max(1, tokenizer.encode(source.slice(a, b)).length);
    const what = `the new lines ${lines.join("-")}`;
    const w = fitWindow(file, [a, b], length, model.config.maxPositions, tokenizer, what);
    const span = { start: a - w.start, end: b - w.start, length };
    const outcome = await drive<EditResult>(
      (signal) =>
        streamEdit(model, source.slice(w.start, w.end), [span], {
          ...diffusionOptions(flags),
          tokenizer,
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
      text: diskText(file, text),
      tokens: fill.filter((t) => t !== loaded.config.maskTokenId).length,
      counts: { canvas: outcome.result.canvas.length, replaced: fill.length },
      extra: { lines, replacement, diff, window: [w.start, w.end] },
    };
    const write = flag(parsed, "write");
    const written = write && (await writeBack(file, text, outcome.stop));
    const print = flag(parsed, "diff") ? diff : written ? "" : report.text;
    if (written && !flags.json) note(`rewrote lines ${lines.join("-")} of ${path}`);
    return writeExitCode(finish(flags, loaded, outcome, report, loadMs, print), write, written);
  } finally {
    await loaded.model.dispose();
  }
}

/**
 * `after` (the decoded canvas of a fix) put into `source` line by line: the lines that `before`
 * (the decoded original canvas) and `after` share at the head and the tail are taken from
 * `source` as they are, so that characters the tokenizer drops or normalises there are kept;
 * the lines between must be ones the tokenizer reproduced exactly (else the change cannot be put
 * back byte for byte: an error naming the file).
 */
export function spliceChange(source: string, before: string, after: string, file: string): string {
  const [src, old, neu] = [splitLines(source), splitLines(before), splitLines(after)];
  const [head, tail] = commonEnds(old, neu);
  const reproduced =
    src.length === old.length &&
    src.slice(head, src.length - tail).join("") === old.slice(head, old.length - tail).join("");
  if (!reproduced) {
    throw new UsageError(
      `${file}: the tokenizer does not reproduce the changed lines, so the change cannot be put back byte for byte`,
    );
  }
  return [
    ...src.slice(0, head),
    ...neu.slice(head, neu.length - tail),
    ...src.slice(src.length - tail),
  ].join("");
}

/** What the chunks of a fix found so far: their texts, and what was re-masked and changed. */
interface FixProgress {
  texts: string[];
  remasked: number;
  changed: number;
  tokens: number;
}

async function runFix(argv: string[], context: Context): Promise<number> {
  const parsed = parse(fixSpec, argv);
  const flags = decodeFlags(parsed);
  const path = fileArgument(fixSpec, parsed);
  const inUnit = (v: number) => (v > 0 && v <= 1 ? null : "expected a number in (0, 1]");
  const below = numberOption(parsed, "below", inUnit);
  const maxFraction = numberOption(parsed, "max-fraction", inUnit);
  const file = await openFile(parsed, path);
  const source = file.text;
  if (source === "") throw new UsageError(`${path}: empty, nothing to fix`);

  const t0 = performance.now();
  const loaded = await loadForFlags(flags);
  try {
    const loadMs = performance.now() - t0;
    const { tokenizer, model } = loaded;
    let chunks: [number, number][];
    try {
      chunks = lineChunks(source, model.config.maxPositions, tokenizer);
    } catch (error) {
      throw error instanceof RangeError ? new UsageError(`${path}: ${error.message}`) : error;
    }
    const options: { below?: number; maxFraction?: number } = {};
    if (below !== undefined) options.below = below;
    if (maxFraction !== undefined) options.maxFraction = maxFraction;
    const done: FixProgress = { texts: [], remasked: 0, changed: 0, tokens: 0 };
    // the chunks one after the other, as one run: their events in turn, the counts summed
    async function* fixChunks(signal: AbortSignal): AsyncGenerator<StepEvent, FixResult> {
      let last: FixResult | undefined;
      let steps = 0;
      let forwards = 0;
      let remasks = 0;
      for (const [from, to] of chunks) {
        const piece = source.slice(from, to);
        const r = yield* streamFix(model, piece, {
          ...diffusionOptions(flags),
          ...options,
          tokenizer,
          signal,
        });
        const before = idsText(loaded, tokenizer.encode(piece));
        done.texts.push(
          r.remasked.length === 0
            ? piece
            : spliceChange(piece, before, idsText(loaded, r.canvas), path),
        );
        done.remasked += r.remasked.length;
        done.changed += r.changed.length;
        done.tokens += r.canvas.length;
        steps += r.steps;
        forwards += r.forwards;
        remasks += r.remasks;
        last = r;
      }
      return { ...(last as FixResult), steps, forwards, remasks };
    }
    const outcome = await drive<FixResult>(
      fixChunks,
      context.interrupt,
      flags.maxTimeMs,
      liveCanvasFor(flags, canvasLook(loaded, [0, Number.MAX_SAFE_INTEGER])),
    );
    // a stopped run: the chunks done, the rest as it was
    const text =
      done.texts.join("") + source.slice(chunks[done.texts.length]?.[0] ?? source.length);
    const diff = diffOf(flags, file, source, text);
    const report = {
      command: "fix",
      text: diskText(file, text),
      tokens: done.remasked,
      counts: { source: done.tokens },
      extra: { diff, remasked: done.remasked, changed: done.changed, chunks: chunks.length },
    };
    const write = flag(parsed, "write");
    const written = write && (diff === "" || (await writeBack(file, text, outcome.stop)));
    if (written && diff !== "" && !flags.json) note(`fixed ${path}`);
    return writeExitCode(finish(flags, loaded, outcome, report, loadMs, diff), write, written);
  } finally {
    await loaded.model.dispose();
  }
}

export const edit: Command = { spec: editSpec, run: runEdit };
export const fix: Command = { spec: fixSpec, run: runFix };
