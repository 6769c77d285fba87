// The shapes every decoder shares: what a canvas to denoise is, the event of one step, and the
// result. The diffusion loop and the AR decoder both speak them, so a CLI, a server or a web page
// can show either one the same way.

/** The tokenizer shape the decoders need (the format seam's Tokenizer fits it). */
export interface TextCodec {
  encode(text: string): number[];
  decode(ids: ArrayLike<number>): string;
}

/**
 * A causal model's fill-in-the-middle sentinels (Bavarian et al. 2022), by id: the prompt is
 * `lead` + `prefix` + the code before + `suffix` + the code after + `middle`, and the middle ends
 * at one of `stops` or at an end token of the model (src/format/template.ts `fimTokens` finds a
 * tokenizer's).
 */
export interface FimTokens {
  /** What the tokenizer puts before any text (DeepSeek-Coder's BOS; none for Qwen). */
  lead: readonly number[];
  prefix: number;
  suffix: number;
  middle: number;
  stops: readonly number[];
}

/** Decodes token ids to text (e.g. `(ids) => tokenizer.decode(ids)`). */
export type DecodeText = (ids: ArrayLike<number>) => string;

/** A canvas to denoise: every position holding the model's mask id is free, every other fixed. */
export interface CanvasSpec {
  /** The canvas: fixed tokens (prompt, suffix, held code) and mask ids where text is wanted. */
  tokens: ArrayLike<number>;
  /**
   * The masked region runs to the end of the canvas and may end early with EOS (open-ended
   * generation): once an EOS is revealed with no mask before it, the rest is settled as EOS and
   * the run stops (`stopAtEos`). Infill and edit canvases are not open-ended.
   */
  openEnded?: boolean;
  /** The range of the canvas that events render as text; default the whole canvas. */
  view?: readonly [number, number];
  /** Renders the view as text in each event and in the result. */
  decode?: DecodeText;
  /** What a mask renders as in event text; default "░". */
  maskText?: string;
}

/** One position changed in a step. */
export interface PositionChange {
  position: number;
  /** The token revealed, or (for a re-mask) the token taken back. */
  token: number;
  /**
   * Revealed: the confidence it was chosen by (the option `confidence`'s measure). Re-masked:
   * the model's current probability of the token taken back.
   */
  confidence: number;
}

export interface StepEvent {
  /** 0-based index of the step over the whole run. */
  step: number;
  /** 0-based block (semi-autoregressive decoding); 0 when the region is one block. */
  block: number;
  /** The canvas after the step (a copy the consumer may keep): token ids, mask id where masked. */
  canvas: Int32Array;
  /** The view rendered as text, when a decode function was given. */
  text?: string;
  revealed: PositionChange[];
  remasked: PositionChange[];
  /** Masked positions left on the canvas. */
  masked: number;
  /** Forward passes so far (a batched pass over several rows, as classifier-free guidance makes, counts once). */
  forwards: number;
}

export type StopReason = "complete" | "eos" | "max_tokens";

export interface DecodeResult {
  /** The final canvas. Aborted runs (DecodeAbortedError.partial) may still hold mask ids. */
  canvas: Int32Array;
  /** The view rendered as text, when a decode function was given. */
  text?: string;
  steps: number;
  forwards: number;
  /** Positions re-masked over the run (self-correction). */
  remasks: number;
  stopReason: StopReason;
}
