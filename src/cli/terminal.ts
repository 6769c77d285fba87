// The terminal side of the CLI: whether to animate, and the live canvas — the denoise loop's
// canvas redrawn in place after every step (ANSI: cursor up over the lines drawn last time,
// clear to the end of the screen, draw again), masked positions as a dim placeholder, tokens
// revealed since the last frame in bold green, re-masked positions in red.

import type { DecodeText, StepEvent } from "../diffusion/types.js";

/** Animation and colour: a terminal that is not dumb, and no NO_COLOR (no-color.org). */
export function isLiveTerminal(stream: NodeJS.WriteStream, env: NodeJS.ProcessEnv): boolean {
  return (
    stream.isTTY === true &&
    (env.NO_COLOR === undefined || env.NO_COLOR === "") &&
    env.TERM !== "dumb"
  );
}

const esc = "\x1b[";
const style = {
  dim: (s: string) => `${esc}2m${s}${esc}22m`,
  fresh: (s: string) => `${esc}1;32m${s}${esc}22;39m`,
  remasked: (s: string) => `${esc}31m${s}${esc}39m`,
};

export const maskGlyph = "░";
const endGlyph = "·";

/**
 * Model output made safe to draw: a carriage return, an escape sequence or another control
 * character from the model must not move the cursor or restyle the terminal; tabs become spaces
 * so that widths can be counted.
 */
export function sanitize(text: string, expandTabs = true): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: replacing control characters
  const safe = text.replace(/\r/g, "").replace(/[\x00-\x08\x0b-\x1f\x7f]/g, "\ufffd");
  return expandTabs ? safe.replace(/\t/g, "    ") : safe;
}

/** Columns a line takes on screen (escape sequences excluded; one column per code point). */
function visibleWidth(line: string): number {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: matching ANSI escape sequences
  return [...line.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, "")].length;
}

export interface CanvasLook {
  /** The canvas range to draw. */
  view: readonly [number, number];
  maskId: number;
  /** EOS and pad ids: drawn as a dim dot. */
  endTokens: readonly number[];
  decode: DecodeText;
}

type Kind = "text" | "fresh" | "mask" | "remasked" | "end";

/**
 * The view of a canvas as styled text. Neighbouring positions of the same kind are decoded
 * together (so multi-byte characters split over tokens come out whole). Also returns the line
 * of the first position still in play (masked, fresh or re-masked), for windowing.
 */
export function styledCanvas(
  canvas: ArrayLike<number>,
  look: CanvasLook,
  fresh: ReadonlySet<number>,
  remasked: ReadonlySet<number>,
): { text: string; activeLine: number } {
  const kindOf = (i: number): Kind => {
    const t = canvas[i];
    if (t === look.maskId) return remasked.has(i) ? "remasked" : "mask";
    if (fresh.has(i)) return "fresh";
    return look.endTokens.includes(t) ? "end" : "text";
  };
  let text = "";
  let activeLine = -1;
  const a = look.view[0];
  const b = Math.min(look.view[1], canvas.length);
  for (let i = a; i < b; ) {
    const kind = kindOf(i);
    let j = i + 1;
    while (j < b && kindOf(j) === kind) j++;
    if (kind !== "text" && kind !== "end" && activeLine < 0) {
      activeLine = text.split("\n").length - 1;
    }
    const n = j - i;
    if (kind === "mask") text += style.dim(maskGlyph.repeat(n));
    else if (kind === "remasked") text += style.remasked(maskGlyph.repeat(n));
    else if (kind === "end") text += style.dim(endGlyph.repeat(n));
    else {
      const ids = Array.from({ length: n }, (_, k) => canvas[i + k]);
      const piece = sanitize(look.decode(ids));
      // style each line separately so that a wrapped or cleared line does not carry the colour
      text += kind === "fresh" ? piece.split("\n").map(style.fresh).join("\n") : piece;
    }
    i = j;
  }
  return { text, activeLine: Math.max(activeLine, 0) };
}

/** Draws a frame of lines in place of the previous one; frames are clipped to the screen. */
export class InPlace {
  private drawn = 0;

  constructor(private readonly out: NodeJS.WriteStream) {}

  /** Lines of the frame as they fit the screen: at most rows − 1, around `focus`. */
  private fit(lines: string[], focus: number): string[] {
    const columns = this.columns();
    const rows = Math.max((this.out.rows || 24) - 1, 3);
    const height = (l: string) => Math.max(1, Math.ceil(visibleWidth(l) / columns));
    let total = 0;
    for (const l of lines) total += height(l);
    if (total <= rows) return lines;
    // keep the first line (a header), then a window starting a little before the focus
    const [head, ...body] = lines;
    const kept: string[] = [];
    let used = height(head);
    for (let i = Math.max(0, focus - 3); i < body.length; i++) {
      const h = height(body[i]);
      if (used + h > rows) {
        // a line too tall for what is left: cut it to the room there is
        const room = rows - used;
        if (room > 0 && kept.length === 0) kept.push(cutToWidth(body[i], room * columns));
        break;
      }
      kept.push(body[i]);
      used += h;
    }
    return [head, ...kept];
  }

  /** The screen's width; a terminal that does not say (0, as under `script`) counts as 80. */
  private columns(): number {
    return Math.max(this.out.columns || 80, 10);
  }

  draw(lines: string[], focus = 0): void {
    const fitted = this.fit(lines, focus);
    const columns = this.columns();
    let frame = this.drawn > 0 ? `${esc}${this.drawn}F` : "\r";
    frame += `${esc}J`;
    frame += fitted.map((l) => `${l}\n`).join("");
    this.out.write(frame);
    this.drawn = fitted.reduce((n, l) => n + Math.max(1, Math.ceil(visibleWidth(l) / columns)), 0);
  }

  /** Erases the frame drawn last. */
  clear(): void {
    if (this.drawn > 0) this.out.write(`${esc}${this.drawn}F${esc}J`);
    this.drawn = 0;
  }
}

/** The first `width` visible columns of a styled line, styles closed. */
function cutToWidth(line: string, width: number): string {
  let out = "";
  let seen = 0;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: splitting on ANSI escape sequences
  for (const part of line.split(/(\x1b\[[0-9;?]*[A-Za-z])/)) {
    if (part.startsWith("\x1b[")) {
      out += part;
      continue;
    }
    const chars = [...part];
    out += chars.slice(0, Math.max(0, width - seen)).join("");
    seen += chars.length;
  }
  return `${out}${esc}0m`;
}

/**
 * The live canvas of a decoding run: call `step` with every event; frames are drawn at most
 * every `interval` ms (the positions revealed or re-masked since the last frame are the ones
 * highlighted), and `finish` erases the animation so the final result can be printed in its place.
 */
export class LiveCanvas {
  private readonly screen: InPlace;
  private fresh = new Set<number>();
  private remasked = new Set<number>();
  private last = 0;
  private pending: StepEvent | null = null;
  private readonly restoreCursor = () => this.out.write(`${esc}?25h`);

  constructor(
    private readonly out: NodeJS.WriteStream,
    private readonly look: CanvasLook,
    private readonly interval = 1000 / 30,
  ) {
    this.screen = new InPlace(out);
    out.write(`${esc}?25l`);
    process.once("exit", this.restoreCursor);
  }

  step(event: StepEvent): void {
    for (const r of event.revealed) {
      this.fresh.add(r.position);
      this.remasked.delete(r.position);
    }
    for (const r of event.remasked) {
      this.remasked.add(r.position);
      this.fresh.delete(r.position);
    }
    this.pending = event;
    const now = performance.now();
    if (now - this.last >= this.interval) this.flush(now);
  }

  private flush(now: number): void {
    const event = this.pending;
    if (event === null) return;
    const { text, activeLine } = styledCanvas(event.canvas, this.look, this.fresh, this.remasked);
    const header = style.dim(
      `step ${event.step + 1} · ${event.masked} masked · ${event.forwards} forward passes`,
    );
    this.screen.draw([header, ...text.split("\n")], activeLine);
    this.fresh = new Set();
    this.remasked = new Set();
    this.pending = null;
    this.last = now;
  }

  /** Erases the animation (the caller prints the result in its place). */
  finish(): void {
    this.screen.clear();
    this.restoreCursor();
    process.removeListener("exit", this.restoreCursor);
  }
}

/** A one-line status (spinner and message) on a terminal, redrawn in place; silent elsewhere. */
export class StatusLine {
  private frame = 0;
  private readonly live: boolean;

  constructor(
    private readonly out: NodeJS.WriteStream,
    env: NodeJS.ProcessEnv,
  ) {
    this.live = isLiveTerminal(out, env);
  }

  say(message: string): void {
    if (!this.live) return;
    const spinner = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"[this.frame++ % 10];
    this.out.write(`\r${esc}K${style.dim(`${spinner} ${message}`)}`);
  }

  done(): void {
    if (this.live) this.out.write(`\r${esc}K`);
  }
}

/** "1.23 s", "45 ms". */
export function formatSeconds(ms: number): string {
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(0)} ms`;
}
