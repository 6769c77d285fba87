/**
 * The code-aware pre-tokenizer of our byte-level BPE.
 *
 * Text is cut into pre-tokens before BPE runs; merges never cross a pre-token boundary. The
 * pattern is GPT-2/GPT-4-style, adapted for code:
 *
 * 1. `[\t ]*[\r\n]+[\t ]*` — line breaks together with the indentation that follows them (and
 *    any trailing blanks before them): "\n    " is one pre-token, so every indentation level
 *    can become a single token. Blank lines join in ("\n\n    ").
 * 2. ` ?[\p{L}_$][\p{L}\p{M}\p{N}_$]*` — an identifier (letters, digits, `_`, `$`) with at most
 *    one leading space: " return", "max_len", "$el", "utf8".
 * 3. ` ?\p{N}{1,3}` — numbers in chunks of up to three digits, with one optional leading space.
 * 4. ` ?[^\p{L}\p{N}\p{White_Space}_$]+` — runs of punctuation/operators: " =>", ");", " !==".
 * 5. `\p{White_Space}+(?!\P{White_Space})|\p{White_Space}+` — other white space; a run before a
 *    word leaves its last space to the word, as in GPT-2.
 *
 * The pattern uses only `\p{…}` escapes, explicit characters and a lookahead, so
 * tokenizers.js (which rewrites Oniguruma syntax before compiling with the `gu` flags) compiles
 * it unchanged: the test suite checks that its compiled source equals this string, which makes
 * the two splitters identical by construction.
 */
export const CODE_SPLIT_PATTERN =
  "[\\t ]*[\\r\\n]+[\\t ]*" +
  "| ?[\\p{L}_$][\\p{L}\\p{M}\\p{N}_$]*" +
  "| ?\\p{N}{1,3}" +
  "| ?[^\\p{L}\\p{N}\\p{White_Space}_$]+" +
  "|\\p{White_Space}+(?!\\P{White_Space})" +
  "|\\p{White_Space}+";

const SPLIT_RE = new RegExp(CODE_SPLIT_PATTERN, "gu");

/**
 * Cuts `text` into pre-tokens, calling `emit` for each in order. Same semantics as a Hugging
 * Face `Split` pre-tokenizer with behavior "Isolated": matches and the gaps between them are
 * both pieces (our pattern leaves no gaps, but the semantics are kept exact).
 */
export function forEachPreToken(text: string, emit: (piece: string) => void): void {
  const re = new RegExp(SPLIT_RE); // own lastIndex: safe if `emit` pre-tokenizes too
  let prev = 0;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    if (m.index > prev) emit(text.slice(prev, m.index));
    emit(m[0]);
    prev = m.index + m[0].length;
  }
  if (prev < text.length) emit(text.slice(prev));
}

/** The pre-tokens of `text` as an array. */
export function preTokenize(text: string): string[] {
  const out: string[] = [];
  forEachPreToken(text, (p) => out.push(p));
  return out;
}
