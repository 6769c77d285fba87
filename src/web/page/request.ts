// What the page asks POST /v1/denoise for: the body built from the editor and the knobs, with
// mistakes the page can see itself (no hole to fill, no line chosen) told in plain words before
// anything is sent. Range checks of the numbers are the server's: its message names the field.

import { holeMarker } from "./highlight.js";

export type Mode = "generate" | "infill" | "edit" | "fix";

export interface Knobs {
  model: string;
  strategy?: string;
  /** Tokens to generate (Generate), or of the hole that replaces the selected lines (Edit). */
  maxTokens?: number;
  steps?: number;
  blockLength?: number;
  threshold?: number;
  temperature?: number;
  seed?: number;
  /** Fix: tokens the model finds less likely than this are rewritten. */
  below?: number;
}

/** A mistake in what the user asked for, told before any request. */
export class InputError extends Error {
  override name = "InputError";
}

/** Hole size for a bare `<FILL>`, in tokens. */
export const defaultHole = 16;

/** The editor's text split at its `<FILL>` / `<FILL:n>` markers into /v1/denoise `parts`. */
export function infillParts(source: string): (string | { hole: number })[] {
  const parts: (string | { hole: number })[] = [];
  let at = 0;
  for (const m of source.matchAll(holeMarker)) {
    const index = m.index ?? 0;
    if (index > at) parts.push(source.slice(at, index));
    const n = m[1] === undefined ? defaultHole : Number(m[1]);
    if (!(n >= 1)) throw new InputError(`A hole needs at least one token: ${m[0]} is empty.`);
    parts.push({ hole: n });
    at = index + m[0].length;
  }
  if (!parts.some((p) => typeof p !== "string")) {
    throw new InputError(
      "Infill needs a hole: put <FILL> (or <FILL:n> for n tokens) where code is missing — Alt+H inserts one.",
    );
  }
  if (at < source.length) parts.push(source.slice(at));
  return parts;
}

/** The 1-based line range [from, to] that a selection [start, end) of `source` covers. */
export function selectedLines(source: string, start: number, end: number): [number, number] {
  const lineOf = (offset: number) => source.slice(0, offset).split("\n").length;
  // a selection that ends just after a newline does not take in the next line
  const last = end > start && source[end - 1] === "\n" ? end - 1 : end;
  return [lineOf(start), lineOf(Math.max(start, last))];
}

/**
 * Edit as infill: lines [from, to] of `source` (their newline kept outside) become a hole of
 * `tokens` tokens, everything else held fixed — the spans of the library's edit, sized by the
 * user since the page has no tokenizer.
 */
export function editParts(
  source: string,
  [from, to]: [number, number],
  tokens: number,
): (string | { hole: number })[] {
  const starts = [0];
  for (let i = 0; i < source.length; i++) if (source[i] === "\n") starts.push(i + 1);
  const start = starts[from - 1];
  const end = to < starts.length ? starts[to] - 1 : source.length;
  const parts: (string | { hole: number })[] = [];
  if (start > 0) parts.push(source.slice(0, start));
  parts.push({ hole: tokens });
  if (end < source.length) parts.push(source.slice(end));
  return parts;
}

/** The body of POST /v1/denoise; knobs left empty are left to the server's defaults. */
export function denoiseBody(
  mode: Mode,
  source: string,
  selection: { start: number; end: number },
  knobs: Knobs,
): Record<string, unknown> {
  const body: Record<string, unknown> = { model: knobs.model };
  const put = (key: string, value: unknown) => {
    if (value !== undefined) body[key] = value;
  };
  put("strategy", knobs.strategy);
  put("steps", knobs.steps);
  put("block_length", knobs.blockLength);
  put("threshold", knobs.threshold);
  put("temperature", knobs.temperature);
  put("seed", knobs.seed);
  switch (mode) {
    case "generate":
      if (source === "")
        throw new InputError("Generate needs a prompt: type the start of the code.");
      body.prompt = source;
      put("max_tokens", knobs.maxTokens);
      break;
    case "infill":
      body.parts = infillParts(source);
      break;
    case "edit":
      if (source === "") throw new InputError("Edit needs code: paste or write some first.");
      body.parts = editParts(
        source,
        selectedLines(source, selection.start, selection.end),
        knobs.maxTokens ?? defaultHole,
      );
      break;
    case "fix":
      if (source === "") throw new InputError("Fix needs code: paste or write some first.");
      body.source = source;
      put("below", knobs.below);
      break;
  }
  return body;
}
