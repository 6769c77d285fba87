// `unmask infill`: fill holes in code with everything around them held fixed — one hole between
// --prefix and --suffix, or every <FILL> marker of a file at once.

import { writeFile } from "node:fs/promises";
import { type Hole, type InfillResult, streamInfill } from "../diffusion/api.js";
import { type CommandSpec, flag, parse, stringOption, UsageError } from "./args.js";
import { type Command, type Context, note, readText } from "./command.js";
import {
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
import { canvasLook, idsText } from "./text.js";

/** `<FILL>`, or `<FILL:n>` for a hole of n tokens. */
const marker = /<FILL(?::(\d+))?>/g;

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
The filled file goes to stdout, or back into FILE with --write.`,
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

/** The parts of a marked file: its text between markers, and a hole per marker. */
export function markedParts(text: string, holeLength: number): (string | Hole)[] {
  const parts: (string | Hole)[] = [];
  let at = 0;
  for (const m of text.matchAll(marker)) {
    if (m.index > at) parts.push(text.slice(at, m.index));
    const n = m[1] === undefined ? holeLength : Number(m[1]);
    if (!(n >= 1 && Number.isSafeInteger(n))) {
      throw new UsageError(`${m[0]}: a hole needs at least 1 token`);
    }
    parts.push({ hole: n });
    at = m.index + m[0].length;
  }
  if (at < text.length) parts.push(text.slice(at));
  return parts;
}

async function run(argv: string[], context: Context): Promise<number> {
  const parsed = parse(spec, argv);
  const flags = decodeFlags(parsed);
  const file = parsed.positionals[0];
  const prefix = stringOption(parsed, "prefix");
  const suffix = stringOption(parsed, "suffix");
  const write = flag(parsed, "write");
  const holeLength = flags.settings.length ?? defaultHole;
  let parts: (string | Hole)[];
  if (file !== undefined) {
    if (prefix !== undefined || suffix !== undefined) {
      throw new UsageError(
        "infill: give a FILE with <FILL> markers or --prefix/--suffix, not both",
      );
    }
    if (write && file === "-") throw new UsageError("--write: stdin is not a file to write");
    const text = await readText(file);
    parts = markedParts(text, holeLength);
    if (parts.every((p) => typeof p === "string")) {
      throw new UsageError(
        `${file}: no <FILL> marker to fill (mark holes with <FILL> or <FILL:n>)`,
      );
    }
  } else {
    if (prefix === undefined && suffix === undefined) {
      throw new UsageError("infill: give a FILE with <FILL> markers, or --prefix and --suffix");
    }
    if (write) throw new UsageError("--write needs a FILE");
    parts = [prefix ?? "", { hole: holeLength }, suffix ?? ""];
    parts = parts.filter((p) => p !== "");
  }

  const t0 = performance.now();
  const loaded = await loadForFlags(flags);
  try {
    const loadMs = performance.now() - t0;
    const { tokenizer, model } = loaded;
    // fixed text as ids, so that the result can be put together from the original text
    const asIds = parts.map((p) => (typeof p === "string" ? tokenizer.encode(p) : p));
    const canvasLength = asIds.reduce((n, p) => n + ("hole" in p ? p.hole : p.length), 0);
    const outcome = await drive<InfillResult>(
      (signal) =>
        streamInfill(model, asIds, {
          ...diffusionOptions(flags),
          holeLength: flag(parsed, "trim") ? "trim" : "fixed",
          signal,
        }),
      context.interrupt,
      flags.maxTimeMs,
      liveCanvasFor(flags, canvasLook(loaded, [0, canvasLength])),
    );
    const fills = outcome.result.fills.map((ids) => idsText(loaded, ids));
    let hole = 0;
    const text = parts.map((p) => (typeof p === "string" ? p : fills[hole++])).join("");
    const mask = loaded.config.maskTokenId;
    const report = {
      command: "infill",
      text,
      tokens: outcome.result.fills.reduce((n, f) => n + f.filter((t) => t !== mask).length, 0),
      counts: { canvas: canvasLength },
      extra: {
        fills,
        holes: parts.flatMap((p) => (typeof p === "string" ? [] : [p.hole])),
      },
    };
    if (write && file !== undefined) {
      if (outcome.stop === "interrupted" || outcome.stop === "max_time") {
        process.stderr.write(
          `unmask: ${file} not written: the run stopped before every hole was filled\n`,
        );
      } else {
        await writeFile(file, text);
        if (!flags.json) {
          note(`filled ${fills.length} holes in ${file}`);
          return finish(flags, loaded, outcome, report, loadMs, "");
        }
      }
    }
    return finish(flags, loaded, outcome, report, loadMs);
  } finally {
    await loaded.model.dispose();
  }
}

export const infill: Command = { spec, run };
