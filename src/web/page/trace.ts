// The record of one run of POST /v1/denoise (events as docs/api-server: start, one per step,
// result) and the frame of any step, for drawing and for scrubbing the timeline afterwards.

/** A position that changed in a step. */
export interface Change {
  position: number;
  token: number;
  piece: string;
  confidence: number;
}

export interface StartEvent {
  type: "start";
  model: string;
  decoder: "diffusion" | "autoregressive";
  strategy?: string;
  mask_token_id?: number;
  canvas_length: number;
  /** The range of the canvas the run writes into. */
  view: [number, number];
  tokens: number[];
  /** Each token's text (null where masked); a character split over tokens goes to its last one. */
  pieces: (string | null)[];
  /** The model's end tokens (their pieces are ""). */
  end_token_ids?: number[];
}

export interface StepEvent {
  type: "step";
  step: number;
  block: number;
  forwards: number;
  masked: number;
  tokens: number[];
  pieces: (string | null)[];
  revealed: Change[];
  remasked: Change[];
  elapsed_ms: number;
  tokens_per_s: number;
}

export interface ResultEvent {
  type: "result";
  text: string;
  finish_reason: string;
  stop_reason: string;
  steps: number;
  forward_passes: number;
  remasks: number;
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
  timings: { decode_ms: number; tokens_per_s: number };
}

export interface ApiError {
  message: string;
  type?: string;
  param?: string | null;
  code?: string | null;
}

export interface ErrorEvent {
  type: "error";
  error: ApiError;
}

export type DenoiseEvent = StartEvent | StepEvent | ResultEvent | ErrorEvent;

export type PositionState = "fixed" | "mask" | "token";

/** One position as drawn in a frame. */
export interface Cell {
  /** The token's text; "" for a mask (drawn as a placeholder). */
  piece: string;
  state: PositionState;
  /** Revealed in this frame's step. */
  fresh: boolean;
  /** Re-masked in this frame's step (drawn as a flash). */
  remasked: boolean;
  /** An end token (drawn as a dot, its text being empty). */
  end: boolean;
  /** The confidence the token was revealed with (undefined for fixed code and masks). */
  confidence?: number;
  /** The step that revealed it. */
  revealedAt?: number;
}

export interface Frame {
  /** -1: the canvas before the first step. */
  step: number;
  cells: Cell[];
  masked: number;
  forwards: number;
  elapsedMs: number;
}

/** A run as it arrives: its start, its steps, its result; `frame(k)` rebuilds any step. */
export class Trace {
  readonly steps: StepEvent[] = [];
  result?: ResultEvent;

  constructor(readonly start: StartEvent) {}

  add(event: StepEvent | ResultEvent): void {
    if (event.type === "step") this.steps.push(event);
    else this.result = event;
  }

  /**
   * Tokens the run has written and still holds after step `upTo`: a re-mask takes back a token the
   * run revealed (self-correction); one of the input's tokens re-masked (fix) was never counted.
   */
  revealedCount(upTo = this.steps.length - 1): number {
    const held = new Set<number>();
    for (let k = 0; k <= upTo; k++) {
      for (const c of this.steps[k].remasked) held.delete(c.position);
      for (const c of this.steps[k].revealed) held.add(c.position);
    }
    return held.size;
  }

  /** The last step whose elapsed time is at most `ms` (-1 before the first). */
  stepAt(ms: number): number {
    let k = -1;
    while (k + 1 < this.steps.length && this.steps[k + 1].elapsed_ms <= ms) k++;
    return k;
  }

  /** The canvas after step `k` (-1: before the first step). */
  frame(k: number): Frame {
    const { start } = this;
    const pieces = k < 0 ? start.pieces : this.steps[k].pieces;
    const tokens = k < 0 ? start.tokens : this.steps[k].tokens;
    const ends = new Set(start.end_token_ids);
    const revealed = new Map<number, { confidence: number; step: number }>();
    for (let j = 0; j <= k; j++) {
      const s = this.steps[j];
      for (const c of s.remasked) revealed.delete(c.position);
      for (const c of s.revealed) revealed.set(c.position, { confidence: c.confidence, step: j });
    }
    const step = k < 0 ? undefined : this.steps[k];
    const fresh = new Set(step?.revealed.map((c) => c.position));
    const remasked = new Set(step?.remasked.map((c) => c.position));
    const cells = pieces.map((piece, i): Cell => {
      const cell: Cell = {
        piece: piece ?? "",
        state: piece === null ? "mask" : revealed.has(i) ? "token" : "fixed",
        fresh: fresh.has(i),
        remasked: remasked.has(i),
        end: piece !== null && ends.has(tokens[i]),
      };
      const r = revealed.get(i);
      if (r !== undefined && piece !== null) {
        cell.confidence = r.confidence;
        cell.revealedAt = r.step;
      }
      return cell;
    });
    return {
      step: k,
      cells,
      masked: step?.masked ?? start.pieces.filter((p) => p === null).length,
      forwards: step?.forwards ?? 0,
      elapsedMs: step?.elapsed_ms ?? 0,
    };
  }

  /** The text of the run's view in frame `k`, masks drawn as `mask`. */
  viewText(k: number, mask = "░"): string {
    const [a, b] = this.start.view;
    return this.frame(k)
      .cells.slice(a, b)
      .map((c) => (c.state === "mask" ? mask : c.piece))
      .join("");
  }
}
