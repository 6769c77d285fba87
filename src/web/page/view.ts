// Drawing: a frame of a run as one span per canvas position (masked positions as a placeholder,
// tokens fading in when revealed, re-masked ones flashing, the confidence kept for the heat map
// and the inspector), and the editor's highlighted twin under its transparent textarea. Both are
// coloured by the highlighter over the whole text, so colour follows the code, not the tokens.

import { highlight, kinds } from "./highlight.js";
import type { Cell, Frame } from "./trace.js";

export const maskGlyph = "░";

/** Appends `text[a, b)` to `parent`, split into spans by highlight kind. */
function appendColoured(parent: Node, text: string, colour: Uint8Array, a: number, b: number) {
  for (let i = a; i < b; ) {
    let j = i + 1;
    while (j < b && colour[j] === colour[i]) j++;
    const piece = text.slice(i, j);
    if (colour[i] === 0) {
      parent.appendChild(document.createTextNode(piece));
    } else {
      const span = document.createElement("span");
      span.className = `k-${kinds[colour[i]]}`;
      span.textContent = piece;
      parent.appendChild(span);
    }
    i = j;
  }
}

/** Draws `frame` into `pre`: one `span.t` per position, `data-i` its canvas index. */
export function drawFrame(pre: HTMLElement, frame: Frame): void {
  const texts = frame.cells.map((c) => (c.state === "mask" ? maskGlyph : c.piece));
  const text = texts.join("");
  const colour = highlight(text);
  const out = document.createDocumentFragment();
  let at = 0;
  frame.cells.forEach((cell, i) => {
    const span = document.createElement("span");
    span.className = cellClass(cell);
    span.dataset.i = String(i);
    if (cell.confidence !== undefined) span.style.setProperty("--c", cell.confidence.toFixed(3));
    appendColoured(span, text, colour, at, at + texts[i].length);
    at += texts[i].length;
    out.appendChild(span);
  });
  pre.replaceChildren(out);
}

function cellClass(cell: Cell): string {
  let c = `t ${cell.state}`;
  if (cell.fresh) c += " fresh";
  if (cell.remasked) c += " remasked";
  if (cell.end) c += " end";
  return c;
}

/** What the inspector says about a cell. */
export function describe(cell: Cell): string {
  const shown = cell.state === "mask" ? "" : ` ${JSON.stringify(cell.piece)}`;
  if (cell.state === "mask") {
    return cell.remasked ? "re-masked in this step: the model took this token back" : "masked";
  }
  if (cell.state === "fixed") return `${shown.trim()} — given (your code, held fixed)`;
  const confidence =
    cell.confidence === undefined ? "" : ` · confidence ${cell.confidence.toFixed(3)}`;
  const step = cell.revealedAt === undefined ? "" : ` · revealed at step ${cell.revealedAt + 1}`;
  return `${shown.trim()}${confidence}${step}`;
}

/** The editor's highlighted twin; lines [from, to] (1-based) marked as selected for an edit. */
export function drawEditor(pre: HTMLElement, text: string, lines?: [number, number]): void {
  const colour = highlight(text);
  const out = document.createDocumentFragment();
  let at = 0;
  text.split("\n").forEach((line, n) => {
    const end = at + line.length + (at + line.length < text.length ? 1 : 0);
    let parent: Node = out;
    if (lines !== undefined && n + 1 >= lines[0] && n + 1 <= lines[1]) {
      const band = document.createElement("span");
      band.className = "sel-line";
      out.appendChild(band);
      parent = band;
    }
    appendColoured(parent, text, colour, at, end);
    at = end;
  });
  // a trailing newline needs a character after it to take up its line
  out.appendChild(document.createTextNode("\n"));
  pre.replaceChildren(out);
}
