// A window of a text around a span that fits the model's context: the span whole, and whole lines
// before and after it (plus the rest of the span's own first and last lines) as many as the
// budget holds, split evenly and the unused share of one side given to the other. Used where a
// text is longer than the context: the CLI's infill, edit and fix, and the evaluation's infill
// tasks. Token counts are those of the tokenizer on each side alone, which is how an infill
// encodes its parts, so that the canvas never exceeds the context.

export interface Encoder {
  encode(text: string): number[];
}

/**
 * Line i of a text runs over [starts[i], starts[i + 1]) (its newline included); the last entry is
 * the text's length. A final newline does not start another line.
 */
export function lineStarts(text: string): number[] {
  const starts = [0];
  for (let i = 0; i < text.length; i++) if (text[i] === "\n") starts.push(i + 1);
  if (starts[starts.length - 1] === text.length && starts.length > 1) starts.pop();
  starts.push(text.length);
  return starts;
}

export interface TextWindow {
  /** [start, end) of the window in the text: start ≤ span[0], end ≥ span[1]. */
  start: number;
  end: number;
  /** The ids of text[start, span[0]) and of text[span[1], end). */
  before: number[];
  after: number[];
}

/**
 * The window around `span` (character offsets) whose two sides fit in `budget` tokens together:
 * first by the lines' own token counts (half the budget before, then after, then the rest
 * before), then, measured exactly, the farthest piece dropped from the longer side (a whole line,
 * at last the rest of the span's own line) until the two fit.
 */
export function windowAround(
  text: string,
  span: readonly [number, number],
  budget: number,
  tokenizer: Encoder,
  starts: readonly number[] = lineStarts(text),
): TextWindow {
  const [x, y] = span;
  if (!(budget >= 0)) throw new RangeError(`windowAround: budget ${budget} < 0`);
  const lines = starts.length - 1;
  // the lines [a, b) hold the span: a starts at or before x, b at or after y
  let a = 0;
  while (a + 1 < lines && starts[a + 1] <= x) a++;
  let b = a;
  while (b < lines && starts[b] < y) b++;
  const costs = new Map<number, number>();
  const cost = (i: number) => {
    let c = costs.get(i);
    if (c === undefined) {
      c = tokenizer.encode(text.slice(starts[i], starts[i + 1])).length;
      costs.set(i, c);
    }
    return c;
  };
  // [p, s): the lines of the window; the span's own lines' rest comes along
  let p = a;
  let s = b;
  let used = 0;
  const growBefore = (limit: number) => {
    while (p > 0 && used + cost(p - 1) <= limit) used += cost(--p);
  };
  const growAfter = (limit: number) => {
    while (s < lines && used + cost(s) <= limit) used += cost(s++);
  };
  growBefore(Math.floor(budget / 2));
  growAfter(budget);
  growBefore(budget);
  let start = starts[p];
  let end = starts[s];
  for (;;) {
    const before = tokenizer.encode(text.slice(start, x));
    const after = tokenizer.encode(text.slice(y, end));
    if (before.length + after.length <= budget) return { start, end, before, after };
    if (before.length >= after.length) start = p < a ? starts[++p] : x;
    else end = s > b ? starts[--s] : y;
  }
}

/**
 * The text cut at line ends into pieces of at most `budget` tokens each (as the tokenizer encodes
 * each piece alone), as [start, end) offsets covering the text in order. A single line longer
 * than the budget is a RangeError naming its number and both counts.
 */
export function lineChunks(
  text: string,
  budget: number,
  tokenizer: Encoder,
  starts: readonly number[] = lineStarts(text),
): [number, number][] {
  const lines = starts.length - 1;
  const chunks: [number, number][] = [];
  let first = 0; // the first line of the chunk being grown
  while (first < lines) {
    let last = first + 1; // lines [first, last) fit
    const alone = tokenizer.encode(text.slice(starts[first], starts[last])).length;
    if (alone > budget) {
      throw new RangeError(
        `line ${first + 1} has ${alone} tokens, more than the ${budget} that fit in the model's context`,
      );
    }
    while (
      last < lines &&
      tokenizer.encode(text.slice(starts[first], starts[last + 1])).length <= budget
    ) {
      last++;
    }
    chunks.push([starts[first], starts[last]]);
    first = last;
  }
  return chunks;
}
