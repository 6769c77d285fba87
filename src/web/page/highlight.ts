// A small highlighter for TypeScript and JavaScript: one left-to-right scan that gives every
// UTF-16 unit of the text a kind (comment, string, number, keyword, literal, hole marker).
// No regex literals and no nesting inside template strings: a page for watching code resolve
// needs readable colour, not a parser. Masked positions are drawn as a placeholder character
// that is none of the delimiters, so a string or comment stays open across a mask.

export const kinds = [
  "plain",
  "comment",
  "string",
  "number",
  "keyword",
  "literal",
  "hole",
] as const;
export type Kind = (typeof kinds)[number];

const keywords = new Set(
  (
    "abstract as async await break case catch class const continue debugger declare default " +
    "delete do else enum export extends finally for from function get if implements import in " +
    "instanceof interface keyof let namespace new of private protected public readonly return " +
    "satisfies set static super switch throw try type typeof var void while with yield"
  ).split(" "),
);
const literals = new Set(["true", "false", "null", "undefined", "this", "NaN", "Infinity"]);

/** An infill hole as the CLI marks it: `<FILL>` or `<FILL:n>`. */
export const holeMarker = /<FILL(?::(\d+))?>/g;

/** The end of a hole marker that starts at `i`, or -1. */
function holeEnd(text: string, i: number): number {
  const sticky = new RegExp(holeMarker.source, "y");
  sticky.lastIndex = i;
  return sticky.test(text) ? sticky.lastIndex : -1;
}

const isIdentStart = (c: string) => /[A-Za-z_$]/.test(c);
const isIdent = (c: string) => /[A-Za-z0-9_$]/.test(c);
const isDigit = (c: string) => c >= "0" && c <= "9";

/** The kind of every UTF-16 unit of `text`, as indices into `kinds`. */
export function highlight(text: string): Uint8Array {
  const out = new Uint8Array(text.length);
  const mark = (a: number, b: number, kind: Kind) => out.fill(kinds.indexOf(kind), a, b);
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    const start = i;
    if (c === "/" && text[i + 1] === "/") {
      const nl = text.indexOf("\n", i);
      i = nl < 0 ? text.length : nl;
      mark(start, i, "comment");
    } else if (c === "/" && text[i + 1] === "*") {
      const end = text.indexOf("*/", i + 2);
      i = end < 0 ? text.length : end + 2;
      mark(start, i, "comment");
    } else if (c === '"' || c === "'" || c === "`") {
      i++;
      while (i < text.length && text[i] !== c && (c === "`" || text[i] !== "\n")) {
        i += text[i] === "\\" ? 2 : 1;
      }
      i = Math.min(text[i] === c ? i + 1 : i, text.length);
      mark(start, i, "string");
    } else if (isDigit(c) || (c === "." && isDigit(text[i + 1] ?? ""))) {
      i++;
      while (i < text.length && /[0-9A-Za-z_.]/.test(text[i])) i++;
      mark(start, i, "number");
    } else if (isIdentStart(c)) {
      while (i < text.length && isIdent(text[i])) i++;
      const word = text.slice(start, i);
      if (keywords.has(word)) mark(start, i, "keyword");
      else if (literals.has(word)) mark(start, i, "literal");
    } else if (c === "<" && holeEnd(text, i) > 0) {
      i = holeEnd(text, i);
      mark(start, i, "hole");
    } else {
      i++;
    }
  }
  return out;
}
