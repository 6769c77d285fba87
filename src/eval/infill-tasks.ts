// Infill tasks for evaluation: whole lines of a file hidden between a prefix and a suffix that the
// model sees, made deterministically from held-out files (never training data) and, optionally,
// from the canonical solutions of HumanEval-X JS (data/eval, evaluation-only data).
//
//   single-line  one non-blank line of 10–120 characters that holds a word character (so never a
//                lone brace), as the single-line tasks of SantaCoder's FIM evaluation;
//   multi-line   2–6 consecutive lines (the count drawn per task), the first and last non-blank,
//                none longer than 120 characters, at least two holding a word character;
//   HumanEval-X  HumanEval-infilling's single-line recipe (Bavarian et al. 2022, "Efficient
//                Training of Language Models to Fill in the Middle"): every non-blank line of the
//                canonical solution is a candidate hole, the problem's prompt is part of the
//                prefix; in JavaScript a lone `}` (or `};`) is not a task (Python has none): the
//                1293 candidates that the evaluation data's SOURCES.md counts.
//
// Candidates of all files are shuffled with the seed and taken in that order while they fit: the
// hole (the middle's own token count, or more under `holeScale`) at most `maxHoleShare` of the
// context, and the prefix and suffix are whole lines around it, as many as the rest of the
// context (`maxPositions`) holds, split evenly and the unused share of one side given to the
// other (or, with `suffix: false` — line completion — all of it before the hole). Token counts
// are those of the tokenizer on each piece alone, which is how `infill` encodes its parts, so
// the canvas prefix + hole + suffix never exceeds the context.
//
// The hole's ends lie on token boundaries of the text around it, not at line starts: the
// project's tokenizer keeps a newline and the next line's indentation together ("\n    "), so a
// hole cut at a line start would split that token and no model could fill it exactly. The hole
// runs from the first boundary at or after its first line's start (after the indentation, which
// stays in the prefix) to the first boundary at or after the start of the line after it (its
// newline token, with the next line's indentation, belongs to the hole).

import { readFile } from "node:fs/promises";
import { gunzipSync } from "node:zlib";
import type { TextCodec } from "../diffusion/types.js";
import { lineStarts, windowAround } from "../diffusion/window.js";
import { Rng } from "../model/random.js";

/** A file to make tasks from. */
export interface SourceDocument {
  /** Where it came from, for the task's id: e.g. "lodash@4.17.21/chunk.js". */
  source: string;
  text: string;
  /** Its file name (the syntax check picks TypeScript or JavaScript by its extension). */
  path?: string;
  /** Lines [from, to) (0-based) that may be hidden; default every line. */
  holeLines?: readonly [number, number];
  /** `filtered` (default): the length and content rules above; `every`: any non-blank line but a lone `}`. */
  holeRule?: "filtered" | "every";
}

export type InfillKind = "single-line" | "multi-line";

export interface InfillTask {
  /** `<source>:<first line, 1-based>` and `-<last line>` for several lines. */
  id: string;
  kind: InfillKind;
  source: string;
  /** The first hidden line, 0-based, and how many. */
  line: number;
  lines: number;
  prefix: string;
  /**
   * The hidden text: the lines' content from the first token boundary at or after their start to
   * the first at or after the next line's start (see the module comment).
   */
  middle: string;
  suffix: string;
  /** [start, end) of prefix + middle + suffix in the document's text. */
  window: [number, number];
  /** Tokens of the middle alone: the true hole length. */
  middleTokens: number;
  /** Tokens the canvas gives the hole: middleTokens, scaled by `holeScale`. */
  holeTokens: number;
}

export interface InfillTaskOptions {
  /** Its decode finds the token boundaries around a hole. */
  tokenizer: TextCodec;
  /** Tokens of the canvas at most: the model's maxPositions. */
  context: number;
  kind: InfillKind;
  /** Tasks to make at most (fewer when fewer candidates fit). */
  count: number;
  /** Default 0. */
  seed?: number;
  /** The hole's share of the context at most (default 0.5), so that context remains around it. */
  maxHoleShare?: number;
  /** Hole tokens per middle token (default 1: the true length; more for variable-length infill). */
  holeScale?: number;
  /** A candidate whose text encodes to this id (the mask, as "[MASK]" in source) is skipped. */
  maskTokenId?: number | null;
  /** Text after the hole (default true); false: none, the whole context before it (line completion). */
  suffix?: boolean;
}

const MIN_CHARS = 10;
const MAX_CHARS = 120;
const MIN_LINES = 2;
const MAX_LINES = 6;
const WORD = /[\p{L}\p{N}_$]/u;

/** Deterministic infill tasks from `documents`; see the module comment. */
export function buildInfillTasks(
  documents: readonly SourceDocument[],
  options: InfillTaskOptions,
): InfillTask[] {
  const { tokenizer, context, kind, count } = options;
  const rng = new Rng(options.seed ?? 0, kind === "single-line" ? 1 : 2);
  const maxHole = Math.floor(context * (options.maxHoleShare ?? 0.5));
  const scale = options.holeScale ?? 1;
  if (!(scale >= 1)) throw new RangeError(`holeScale: expected a number ≥ 1, got ${scale}`);

  const docs = documents.map((d) => {
    const starts = lineStarts(d.text);
    const lines = starts.slice(0, -1).map((s, i) => d.text.slice(s, starts[i + 1]));
    return { d, starts, lines };
  });
  const candidates: [number, number][] = [];
  docs.forEach(({ d, lines }, di) => {
    const [from, to] = d.holeLines ?? [0, lines.length];
    for (let i = Math.max(0, from); i < Math.min(to, lines.length); i++) {
      if (holeLine(lines[i], d.holeRule ?? "filtered")) candidates.push([di, i]);
    }
  });
  for (let i = candidates.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [candidates[i], candidates[j]] = [candidates[j], candidates[i]];
  }

  const tasks: InfillTask[] = [];
  for (const [di, a] of candidates) {
    if (tasks.length >= count) break;
    const { d, starts, lines } = docs[di];
    const n = kind === "single-line" ? 1 : MIN_LINES + rng.int(MAX_LINES - MIN_LINES + 1);
    const b = a + n; // lines [a, b) are hidden
    if (kind === "multi-line" && !multiLineHole(lines, a, b, d.holeLines?.[1] ?? lines.length)) {
      continue;
    }
    // the hole between token boundaries (of lines a − 1 … b tokenized alone: tokens never cross
    // more than one line start, so that is where the text's own boundaries lie)
    const cuts = tokenBoundaries(
      d.text,
      starts[Math.max(0, a - 1)],
      starts[b + 1] ?? starts[b],
      tokenizer,
    );
    const from = cuts.find((c) => c >= starts[a]);
    const to = cuts.find((c) => c >= starts[b]);
    if (from === undefined || to === undefined || from >= to) continue;
    const middle = d.text.slice(from, to);
    const middleIds = tokenizer.encode(middle);
    const middleTokens = middleIds.length;
    const holeTokens = Math.ceil(middleTokens * scale);
    if (middleTokens === 0 || holeTokens > maxHole) continue;
    const withSuffix = options.suffix ?? true;
    const text = withSuffix ? d.text : d.text.slice(0, to);
    const w = windowAround(
      text,
      [from, to],
      context - holeTokens,
      tokenizer,
      withSuffix ? starts : undefined,
    );
    const mask = options.maskTokenId ?? null;
    if (mask !== null && [...middleIds, ...w.before, ...w.after].includes(mask)) continue;
    const last = b - 1;
    tasks.push({
      id: `${d.source}:${a + 1}${n > 1 ? `-${last + 1}` : ""}`,
      kind,
      source: d.source,
      line: a,
      lines: n,
      prefix: d.text.slice(w.start, from),
      middle,
      suffix: d.text.slice(to, w.end),
      window: [w.start, w.end],
      middleTokens,
      holeTokens,
    });
  }
  return tasks;
}

/**
 * The token boundaries (character offsets, from `from` to `to` both included) of text[from, to)
 * tokenized alone. Where a token's text is not whole characters (a byte-level token inside a
 * multi-byte character) no boundary lies inside that character.
 */
export function tokenBoundaries(
  text: string,
  from: number,
  to: number,
  tokenizer: TextCodec,
): number[] {
  const region = text.slice(from, to);
  const ids = tokenizer.encode(region);
  const cuts = [from];
  const pieces = ids.map((id) => tokenizer.decode([id]));
  if (pieces.join("") === region) {
    let offset = from;
    for (const piece of pieces) {
      offset += piece.length;
      cuts.push(offset);
    }
    return cuts;
  }
  for (let i = 1; i <= ids.length; i++) {
    const head = tokenizer.decode(ids.slice(0, i));
    if (region.startsWith(head) && from + head.length > cuts[cuts.length - 1]) {
      cuts.push(from + head.length);
    }
  }
  if (cuts[cuts.length - 1] !== to) cuts.push(to);
  return cuts;
}

function holeLine(line: string, rule: "filtered" | "every"): boolean {
  const t = line.trim();
  if (rule === "every") return t.length > 0 && t !== "}" && t !== "};";
  return t.length >= MIN_CHARS && t.length <= MAX_CHARS && WORD.test(t);
}

/** Lines [a, b) as a multi-line hole: inside the file, ends non-blank, short lines, some words. */
function multiLineHole(lines: string[], a: number, b: number, end: number): boolean {
  if (b > Math.min(end, lines.length)) return false;
  const span = lines.slice(a, b).map((l) => l.trim());
  if (span[0] === "" || span[span.length - 1] === "") return false;
  if (span.some((l) => l.length > MAX_CHARS)) return false;
  return span.filter((l) => WORD.test(l)).length >= 2;
}

/** Where the repository keeps HumanEval-X JS (with its licence and SOURCES.md). */
export const humanEvalXFile = "data/eval/HumanEval-X-js.jsonl.gz";

export class EvalDataError extends Error {
  override name = "EvalDataError";
}

/**
 * HumanEval-X JS (THUDM/CodeGeeX) as documents for `buildInfillTasks`: each problem's prompt
 * followed by its canonical solution, the solution's lines the holes (`every` rule).
 */
export async function readHumanEvalX(file: string): Promise<SourceDocument[]> {
  let lines: string[];
  try {
    lines = gunzipSync(await readFile(file))
      .toString("utf8")
      .split("\n");
  } catch (cause) {
    throw new EvalDataError(`${file}: cannot read as gzipped JSONL: ${String(cause)}`, { cause });
  }
  const docs: SourceDocument[] = [];
  lines.forEach((line, n) => {
    if (line.trim() === "") return;
    let row: unknown;
    try {
      row = JSON.parse(line);
    } catch (cause) {
      throw new EvalDataError(`${file}:${n + 1}: not JSON`, { cause });
    }
    const { task_id, prompt, canonical_solution } = (row ?? {}) as Record<string, unknown>;
    if (
      typeof task_id !== "string" ||
      typeof prompt !== "string" ||
      typeof canonical_solution !== "string" ||
      !prompt.endsWith("\n")
    ) {
      throw new EvalDataError(
        `${file}:${n + 1}: expected task_id, prompt (ending in a newline) and canonical_solution strings`,
      );
    }
    const text = prompt + canonical_solution;
    const first = lineStarts(prompt).length - 1;
    const holeLines: [number, number] = [first, lineStarts(text).length - 1];
    docs.push({ source: task_id, text, path: "solution.js", holeLines, holeRule: "every" });
  });
  return docs;
}
