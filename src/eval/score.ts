// Scoring model output: infill exact match, line completion (CodeXGLUE's exact match and edit
// similarity), and whether a generated sample parses as TypeScript/JavaScript (the `typescript`
// package's own parser).

import ts from "typescript";

export interface InfillMatch {
  /** Equal once trailing whitespace is trimmed from every line and from the end. */
  exact: boolean;
  /** Equal once every run of whitespace is one space and the ends are trimmed. */
  normalized: boolean;
}

/** Compares a model's fill with the true middle. */
export function matchInfill(expected: string, actual: string): InfillMatch {
  const trimmed = (s: string) =>
    s
      .split("\n")
      .map((l) => l.trimEnd())
      .join("\n")
      .trimEnd();
  const squeezed = (s: string) => s.replace(/\s+/g, " ").trim();
  return {
    exact: trimmed(expected) === trimmed(actual),
    normalized: squeezed(expected) === squeezed(actual),
  };
}

/**
 * Edit similarity in [0, 1] of two texts, their ends trimmed: fuzzywuzzy's `fuzz.ratio` (with
 * python-Levenshtein) as CodeXGLUE's line-level completion scores it, divided by 100 and not
 * rounded — (|a| + |b| − d) / (|a| + |b|) with d the Levenshtein distance in which a substitution
 * costs 2, i.e. 2·LCS(a, b) / (|a| + |b|). Two empty texts: 1.
 */
export function editSimilarity(expected: string, actual: string): number {
  const a = expected.trim();
  const b = actual.trim();
  if (a.length + b.length === 0) return 1;
  // longest common subsequence, one row of the table at a time
  let row = new Int32Array(b.length + 1);
  let next = new Int32Array(b.length + 1);
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      next[j] = a[i - 1] === b[j - 1] ? row[j - 1] + 1 : Math.max(row[j], next[j - 1]);
    }
    [row, next] = [next, row];
  }
  return (2 * row[b.length]) / (a.length + b.length);
}

export interface LineMatch {
  /** CodeXGLUE's exact match: the same whitespace-separated words (`pred.split() == gt.split()`). */
  exact: boolean;
  editSimilarity: number;
}

/**
 * Scores a line completion: `completion` (the model's text after the prompt) up to its first
 * newline against the true line.
 */
export function matchLine(expected: string, completion: string): LineMatch {
  const line = completion.split("\n", 1)[0];
  const words = (s: string) => s.trim().split(/\s+/).join(" ");
  return { exact: words(expected) === words(line), editSimilarity: editSimilarity(expected, line) };
}

export interface SyntaxCheck {
  /** No parse error at all: the text is a whole program. */
  complete: boolean;
  /**
   * Every parse error lies at the end of the text (a `}` or `)` expected, an open comment or
   * template literal): the text is, as far as the parser can tell, the beginning of a valid
   * program — what a sample cut off mid-file can be at best.
   */
  validPrefix: boolean;
  /** The first parse error, when there is one. */
  firstError?: { position: number; message: string };
}

/**
 * Parses `text` with TypeScript's parser (`ts.createSourceFile`, its `parseDiagnostics`; no type
 * checking). The file name's extension picks the grammar: .ts, .tsx, .d.ts, .js, .jsx, .mjs...
 * (an unknown extension parses as TypeScript).
 */
export function checkSyntax(text: string, fileName = "sample.ts"): SyntaxCheck {
  const file = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, false);
  // parseDiagnostics is not in the public typings, but it is what the parser reports
  const errors = (file as unknown as { parseDiagnostics: readonly ts.Diagnostic[] })
    .parseDiagnostics;
  const end = text.trimEnd().length;
  const out: SyntaxCheck = {
    complete: errors.length === 0,
    validPrefix: errors.every((e) => (e.start ?? 0) >= end),
  };
  if (errors.length > 0) {
    out.firstError = {
      position: errors[0].start ?? 0,
      message: ts.flattenDiagnosticMessageText(errors[0].messageText, " "),
    };
  }
  return out;
}

export interface Sample {
  /** Prompt + the completion's complete lines (all of it when the model ended the text). */
  text: string;
  /** Non-blank lines the completion adds to the prompt. */
  lines: number;
}

/**
 * A generated sample as it is checked: the prompt (whole lines) and the completion cut after its
 * last newline — a line the token budget cut short is dropped — unless the model ended the text
 * itself (`ended`: an end token), when all of it counts.
 */
export function sampleText(prompt: string, completion: string, ended: boolean): Sample {
  const kept = ended ? completion : completion.slice(0, completion.lastIndexOf("\n") + 1);
  return { text: prompt + kept, lines: kept.split("\n").filter((l) => l.trim() !== "").length };
}
