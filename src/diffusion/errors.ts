// Typed errors of the decoders: a bad option names the parameter; an aborted run is an
// AbortError that still hands back what it had decoded.

import type { DecodeResult } from "./types.js";

/** An option that cannot work; `parameter` names it (e.g. "steps", "threshold", "preset"). */
export class DecodeOptionError extends Error {
  override name = "DecodeOptionError";
  constructor(
    readonly parameter: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${parameter}: ${message}`, options);
  }
}

/**
 * Thrown by a decoder when its AbortSignal fires. The signal is checked before every forward
 * pass, so the run stops within one step; `partial` is the canvas as it stood, and `cause` is the
 * signal's reason. `name` is "AbortError", as fetch and the DOM name theirs.
 */
export class DecodeAbortedError extends Error {
  override name = "AbortError";
  constructor(
    readonly partial: DecodeResult,
    options?: { cause?: unknown },
  ) {
    super(
      `decoding aborted after ${partial.steps} steps and ${partial.forwards} forward passes`,
      options,
    );
  }
}
