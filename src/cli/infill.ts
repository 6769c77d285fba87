// `unmask infill`: fill holes in code with everything around them held fixed — one hole between
// --prefix and --suffix, or every <FILL> marker of a file at once.

import { fimPrompt, type Hole, type InfillResult } from "../diffusion/api.js";
import { fimOf, planInfill } from "../host/decode.js";
import { type CommandSpec, flag, parse, stringOption, UsageError } from "./args.js";
import { type Command, type Context, note } from "./command.js";
import {
  arOptions,
  asUsageError,
  decodeFlags,
  decodeOptions,
  drive,
  finish,
  jsonSection,
  liveCanvasFor,
  loadForFlags,
  strategiesSection,
} from "./decode.js";
import {
  checkWritable,
  diskText,
  fitWindow,
  readTextFile,
  type TextFile,
  writeBack,
  writeExitCode,
} from "./files.js";
import { canvasLook, idsText } from "./text.js";

const defaultHole = 16;

const spec: CommandSpec = {
  name: "infill",
  usage: ["infill [options] FILE", "infill [options] --prefix TEXT --suffix TEXT"],
  description: `
Fills holes in code with the code around them held fixed, all holes on one canvas at once. In
FILE (or stdin as "-") a hole is marked <FILL> (a hole of --length tokens, default ${defaultHole}) or
<FILL:n> (a hole of exactly n tokens). Each hole is filled to its length; with --trim the model
may end a hole early with end-of-text tokens, which are dropped (for models trained to pad
their answers, as LLaDA's SFT). With --prefix and --suffix the hole is the one between them.
The filled file goes to stdout, or back into FILE with --write.

FILE must be UTF-8 text (anything else is refused and left as it is); its byte order mark and
line endings (LF or CRLF) are kept, and every byte outside the holes is written back as it was.
--write replaces FILE atomically (a temporary file renamed over it), checks that FILE can be
written before the model is loaded, and exits non-zero when it did not write. A file longer
than the model's context is filled through a window around its holes: the holes and the text
between them whole, the lines before and after as many as fit.

With --ar (an autoregressive checkpoint with --ar-model) the one hole is filled through the
model's fill-in-the-middle tokens (Qwen2.5-Coder's <|fim_prefix|>, <|fim_suffix|>,
<|fim_middle|>, or the StarCoder, DeepSeek-Coder or [FIM_PREFIX] spellings): the code before
and after the hole become the prompt, and the model writes the middle left to right until its
end token, at most the hole's length. A causal model without such tokens is refused; the
embedded twin has them but was not trained on FIM, so its middles are not meant to fit.`,
  options: [
    { name: "prefix", type: "string", value: "TEXT", description: "the code before the hole" },
    { name: "suffix", type: "string", value: "TEXT", description: "the code after the hole" },
    {
      name: "trim",
      type: "boolean",
      description: "a hole may end early: end-of-text tokens in it are dropped",
    },
    { name: "write", type: "boolean", short: "w", description: "write the filled file to FILE" },
    ...decodeOptions(`tokens of a <FILL> hole (default ${defaultHole})`),
    ...arOptions,
  ],
  examples: [
    "unmask infill src/util.ts                 # every <FILL> in the file",
    "unmask infill --write --strategy fast-dllm-dual src/util.ts",
    "unmask infill --prefix $'function add(a: number, b: number) {\\n  return ' --suffix $';\\n}\\n' -n 8",
    "printf 'const xs = [1, 2, 3];\\nconst total = <FILL:12>;\\n' | unmask infill - --json",
  ],
  sections: [
    strategiesSection(),
    jsonSection(
      "infill",
      '"fills" (the text of each hole, in order), "holes" (the length of each hole in tokens)',
    ),
  ],
  maxPositionals: 1,
};

/** A hole of a text: the characters [start, end) it replaces, and its length in tokens. */
export interface TextHole {
  start: number;
  end: number;
  hole: number;
}

/** A malformed hole marker (`<FILL:abc>`, `<FILL:0>`, `<FILL:3`...), by file, line and text. */
export class MarkerError extends UsageError {
  override name = "MarkerError";
  constructor(
    readonly file: string,
    readonly line: number,
    readonly marker: string,
  ) {
    super(
      `${file}:${line}: malformed hole marker ${JSON.stringify(marker)} (expected <FILL> or <FILL:n>, n ≥ 1)`,
    );
  }
}

/**
 * The holes marked in `text`: `<FILL>` (a hole of `holeLength` tokens) or `<FILL:n>`. Anything
 * else that starts like a marker (`<FILL` not followed by a letter, digit or underscore) is a
 * MarkerError.
 */
export function markedHoles(text: string, holeLength: number, file: string): TextHole[] {
  const holes: TextHole[] = [];
  for (const m of text.matchAll(/<FILL(?![A-Za-z0-9_])/g)) {
    const valid = /^<FILL(?::([0-9]+))?>/.exec(text.slice(m.index, m.index + 32));
    const n = valid === null ? 0 : valid[1] === undefined ? holeLength : Number(valid[1]);
    if (valid === null || !(n >= 1 && Number.isSafeInteger(n))) {
      const line = text.slice(0, m.index).split("\n").length;
      const shown = /^<FILL[^>\n]{0,24}>?/.exec(text.slice(m.index))?.[0] ?? "<FILL";
      throw new MarkerError(file, line, shown);
    }
    holes.push({ start: m.index, end: m.index + valid[0].length, hole: n });
  }
  return holes;
}

async function run(argv: string[], context: Context): Promise<number> {
  const parsed = parse(spec, argv);
  const flags = decodeFlags(parsed);
  const path = parsed.positionals[0];
  const prefix = stringOption(parsed, "prefix");
  const suffix = stringOption(parsed, "suffix");
  const write = flag(parsed, "write");
  const holeLength = flags.settings.length ?? defaultHole;
  let file: TextFile;
  let holes: TextHole[];
  if (path !== undefined) {
    if (prefix !== undefined || suffix !== undefined) {
      throw new UsageError(
        "infill: give a FILE with <FILL> markers or --prefix/--suffix, not both",
      );
    }
    if (write && path === "-") throw new UsageError("--write: stdin is not a file to write");
    file = await readTextFile(path);
    holes = markedHoles(file.text, holeLength, file.path);
    if (holes.length === 0) {
      throw new UsageError(
        `${path}: no <FILL> marker to fill (mark holes with <FILL> or <FILL:n>)`,
      );
    }
    if (write) await checkWritable(path);
  } else {
    if (prefix === undefined && suffix === undefined) {
      throw new UsageError("infill: give a FILE with <FILL> markers, or --prefix and --suffix");
    }
    if (write) throw new UsageError("--write needs a FILE");
    const text = (prefix ?? "") + (suffix ?? "");
    const at = (prefix ?? "").length;
    file = { path: "--prefix/--suffix", text, bom: false, crlf: false };
    holes = [{ start: at, end: at, hole: holeLength }];
  }
  const { text: source } = file;

  const t0 = performance.now();
  const loaded = await loadForFlags(flags);
  try {
    const loadMs = performance.now() - t0;
    const { tokenizer, model } = loaded;
    // a causal model's prompt adds its FIM sentinels around the text
    let sentinels = 0;
    try {
      if (flags.ar) sentinels = fimPrompt(fimOf(loaded, "--ar-model"), [], []).length;
    } catch (error) {
      throw asUsageError(error);
    }
    // the holes and the fixed text between them, whole; around them a window that fits
    const middle: (number[] | Hole)[] = [];
    holes.forEach((h, i) => {
      if (i > 0 && h.start > holes[i - 1].end) {
        middle.push(tokenizer.encode(source.slice(holes[i - 1].end, h.start)));
      }
      middle.push({ hole: h.hole });
    });
    const middleTokens = middle.reduce<number>((n, p) => n + ("hole" in p ? p.hole : p.length), 0);
    const span = [holes[0].start, holes[holes.length - 1].end] as const;
    const what = holes.length === 1 ? "the hole's tokens" : "the holes and the text between them";
    const room = model.config.maxPositions - sentinels;
    const w = fitWindow(file, span, middleTokens, room, tokenizer, what);
    const asIds = [w.before, ...middle, w.after].filter((p) => !Array.isArray(p) || p.length > 0);
    const canvasLength = w.before.length + middleTokens + w.after.length;
    let plan: ReturnType<typeof planInfill>;
    try {
      plan = planInfill(loaded, flags.settings, asIds, flag(parsed, "trim") ? "trim" : "fixed");
    } catch (error) {
      throw asUsageError(error, flags.ar);
    }
    const outcome = await drive<InfillResult>(
      plan.start,
      context.interrupt,
      flags.maxTimeMs,
      liveCanvasFor(flags, canvasLook(loaded, flags.ar ? plan.view : [0, canvasLength])),
    );
    const fills = outcome.result.fills.map((ids) => idsText(loaded, ids));
    let text = "";
    let at = 0;
    holes.forEach((h, i) => {
      text += source.slice(at, h.start) + fills[i];
      at = h.end;
    });
    text += source.slice(at);
    const mask = loaded.config.maskTokenId;
    const report = {
      command: "infill",
      text: diskText(file, text),
      tokens: outcome.result.fills.reduce((n, f) => n + f.filter((t) => t !== mask).length, 0),
      counts: { canvas: canvasLength },
      extra: {
        fills,
        holes: holes.map((h) => h.hole),
        window: [w.start, w.end],
      },
    };
    const written = write && (await writeBack(file, text, outcome.stop));
    if (written && !flags.json) note(`filled ${fills.length} holes in ${file.path}`);
    const print = written && !flags.json ? "" : report.text;
    return writeExitCode(finish(flags, loaded, outcome, report, loadMs, print), write, written);
  } finally {
    await loaded.model.dispose();
  }
}

export const infill: Command = { spec, run };
