// The text a streamed completion sends: the settled part of the answer — the tokens from its start
// up to the first position still masked (all of them for AR), cut at the first end token and at
// the first stop sequence. Text once sent never changes: a possible start of a stop sequence and
// an incomplete UTF-8 character at the end are held back until the next step decides them.

import type { LoadedModel } from "../host/models.js";
import { endTokenIds } from "../model/config.js";

export class SettledText {
  private sent = "";
  private readonly end: number[];
  private readonly hold: number;
  /** Whether a stop sequence ended the text. */
  stopped = false;

  /**
   * `view`: the answer's positions on the canvas, [start, end); `maskId`: the mask (-1 when the decoder never
   * leaves one); `settles`: false when the text is read at the end only (a step may take back
   * revealed tokens, or nothing reads it before the end).
   */
  constructor(
    private readonly loaded: LoadedModel,
    private readonly view: readonly [number, number],
    private readonly maskId: number,
    private readonly stops: string[],
    private readonly settles: boolean,
  ) {
    this.end = endTokenIds(loaded.config);
    this.hold = Math.max(0, ...stops.map((s) => s.length - 1));
  }

  /** The text of `ids`, cut at a stop sequence, and how much of it is safe to send. */
  private textOf(ids: number[], final: boolean): { text: string; safe: number } {
    let text = this.loaded.tokenizer.decode(ids, { skipSpecialTokens: true });
    let cut = -1;
    for (const s of this.stops) {
      const at = text.indexOf(s);
      if (at >= 0 && (cut < 0 || at < cut)) cut = at;
    }
    if (cut >= 0) {
      this.stopped = true;
      text = text.slice(0, cut);
      return { text, safe: text.length };
    }
    if (final) return { text, safe: text.length };
    let safe = Math.max(0, text.length - this.hold);
    while (safe > 0 && text.charCodeAt(safe - 1) === 0xfffd) safe--;
    return { text, safe };
  }

  /** The new text a step settles ("" when none), and whether a stop sequence ended the answer. */
  step(canvas: ArrayLike<number>): string {
    if (!this.settles || this.stopped) return "";
    const ids: number[] = [];
    for (let i = this.view[0]; i < Math.min(this.view[1], canvas.length); i++) {
      const t = canvas[i];
      if (t === this.maskId || this.end.includes(t)) break;
      ids.push(t);
    }
    const { text, safe } = this.textOf(ids, false);
    return this.advance(text.slice(0, safe));
  }

  /** The rest of the text at the end of the run (`ids`: the answer's), and the whole answer. */
  finish(ids: number[]): { delta: string; full: string } {
    const { text } = this.textOf(ids, true);
    return { delta: this.advance(text), full: text };
  }

  private advance(text: string): string {
    // text already sent stays; a text that does not extend it (cannot happen with settled
    // tokens, but a tokenizer may merge bytes differently) adds nothing
    if (!text.startsWith(this.sent) || text.length <= this.sent.length) return "";
    const delta = text.slice(this.sent.length);
    this.sent = text;
    return delta;
  }
}

/**
 * Each position's text for drawing a canvas token by token (null where masked). A token decoded
 * alone gives U+FFFD where it holds only part of a UTF-8 character (byte-level BPE splits rare
 * characters across tokens): such a token and the ones that complete its character are decoded
 * together, the text going to the last of them and "" to the others — so that the pieces of a run
 * of tokens join to the run's text. `piece` decodes one token, `decode` several.
 */
export function canvasPieces(
  canvas: ArrayLike<number>,
  maskId: number,
  piece: (token: number) => string,
  decode: (ids: number[]) => string,
): (string | null)[] {
  const out: (string | null)[] = Array.from(canvas, (t) => (t === maskId ? null : piece(t)));
  for (let i = 0; i < out.length; i++) {
    if (!out[i]?.includes("\uFFFD")) continue;
    // a UTF-8 character spans at most 4 bytes, so at most 4 tokens
    for (let j = i + 1; j < Math.min(i + 4, out.length) && out[j] !== null; j++) {
      const ids = Array.from({ length: j - i + 1 }, (_, k) => canvas[i + k]);
      const joined = decode(ids);
      if (!joined.includes("\uFFFD")) {
        for (let k = i; k < j; k++) out[k] = "";
        out[j] = joined;
        i = j;
        break;
      }
    }
  }
  return out;
}
