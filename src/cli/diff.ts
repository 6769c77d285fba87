// A unified diff of two texts by lines (longest common subsequence of the middle left after the
// common head and tail; edits are local, so the quadratic table is small), as `diff -u` prints
// it, so that `git apply` and `patch` take it: a line is compared with its line ending (a CR of a
// CRLF line is part of its text), and a last line without a newline is followed by
// "\ No newline at end of file".

/** One line of the edit script: kept (" "), removed ("-") or added ("+"). */
interface Line {
  op: " " | "-" | "+";
  text: string;
  /** 1-based line numbers in the old and new text before this line is applied. */
  a: number;
  b: number;
}

/** The lines of a text, each with its newline (the last one may have none). */
export function splitLines(text: string): string[] {
  return text.match(/[^\n]*\n|[^\n]+$/g) ?? [];
}

/**
 * The lengths of the common head and tail of two sequences (lines, or a string's characters);
 * they do not overlap.
 */
export function commonEnds<T>(a: ArrayLike<T>, b: ArrayLike<T>): [number, number] {
  let pre = 0;
  while (pre < a.length && pre < b.length && a[pre] === b[pre]) pre++;
  let suf = 0;
  while (
    suf < a.length - pre &&
    suf < b.length - pre &&
    a[a.length - 1 - suf] === b[b.length - 1 - suf]
  ) {
    suf++;
  }
  return [pre, suf];
}

function script(a: string[], b: string[]): Line[] {
  // common head and tail first: edits are usually local
  const [pre, suf] = commonEnds(a, b);
  const n = a.length - pre - suf;
  const m = b.length - pre - suf;
  // lcs[i][j]: the LCS length of a[pre + i..] and b[pre + j..] within the middle
  const lcs = new Uint32Array((n + 1) * (m + 1));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i * (m + 1) + j] =
        a[pre + i] === b[pre + j]
          ? lcs[(i + 1) * (m + 1) + j + 1] + 1
          : Math.max(lcs[(i + 1) * (m + 1) + j], lcs[i * (m + 1) + j + 1]);
    }
  }
  const out: Line[] = [];
  let x = 0;
  let y = 0;
  const push = (op: Line["op"], text: string) => {
    out.push({ op, text, a: x + 1, b: y + 1 });
    if (op !== "+") x++;
    if (op !== "-") y++;
  };
  for (let k = 0; k < pre; k++) push(" ", a[k]);
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[pre + i] === b[pre + j]) {
      push(" ", a[pre + i]);
      i++;
      j++;
    } else if (i < n && (j === m || lcs[(i + 1) * (m + 1) + j] >= lcs[i * (m + 1) + j + 1])) {
      push("-", a[pre + i]); // removals before additions, as diff -u
      i++;
    } else {
      push("+", b[pre + j]);
      j++;
    }
  }
  for (let k = a.length - suf; k < a.length; k++) push(" ", a[k]);
  return out;
}

/**
 * The unified diff of `before` and `after` with `context` lines around each change, headed by
 * the two names; "" when the texts are equal. With `color`, removed lines are red and added
 * lines green.
 */
export function unifiedDiff(
  before: string,
  after: string,
  names: [string, string],
  options: { context?: number; color?: boolean } = {},
): string {
  if (before === after) return "";
  const context = options.context ?? 3;
  const lines = script(splitLines(before), splitLines(after));
  const paint = (op: Line["op"], s: string) =>
    !options.color || op === " " ? s : `\x1b[${op === "-" ? 31 : 32}m${s}\x1b[39m`;
  const out = [`--- ${names[0]}`, `+++ ${names[1]}`];
  let k = 0;
  while (k < lines.length) {
    if (lines[k].op === " ") {
      k++;
      continue;
    }
    // a hunk: from `context` lines before this change to `context` lines after the last change
    // that is no further than 2 × context kept lines away
    const start = Math.max(0, k - context);
    let end = k;
    for (let q = k; q < lines.length; q++) {
      if (lines[q].op !== " ") end = q;
      else if (q - end > 2 * context) break;
    }
    const stop = Math.min(lines.length, end + context + 1);
    const hunk = lines.slice(start, stop);
    const oldCount = hunk.filter((l) => l.op !== "+").length;
    const newCount = hunk.filter((l) => l.op !== "-").length;
    const oldStart = oldCount === 0 ? hunk[0].a - 1 : hunk[0].a;
    const newStart = newCount === 0 ? hunk[0].b - 1 : hunk[0].b;
    // as diff -u: a range of one line is its number alone
    const range = (start: number, count: number) =>
      count === 1 ? `${start}` : `${start},${count}`;
    out.push(`@@ -${range(oldStart, oldCount)} +${range(newStart, newCount)} @@`);
    for (const l of hunk) {
      const ended = l.text.endsWith("\n");
      out.push(paint(l.op, `${l.op}${ended ? l.text.slice(0, -1) : l.text}`));
      if (!ended) out.push("\\ No newline at end of file");
    }
    k = stop;
  }
  return `${out.join("\n")}\n`;
}
