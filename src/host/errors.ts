// The decode service's errors, refinements of the diffusion library's DecodeOptionError (which
// names the parameter): front ends map the parameter to their own name for it (a CLI flag, a
// JSON field) and the class to their own kind of answer (exit code 2, HTTP 400 or 404).

import { DecodeOptionError } from "../diffusion/errors.js";

/** An option the chosen decoder or strategy would ignore: refused, never silently dropped. */
export class IgnoredOptionError extends DecodeOptionError {
  override name = "IgnoredOptionError";
}

/** A model that is not there (an unknown name, a missing folder). */
export class ModelNotFoundError extends DecodeOptionError {
  override name = "ModelNotFoundError";
}

/** A model that cannot run the decoder asked for (e.g. a causal model asked to denoise). */
export class WrongModelError extends DecodeOptionError {
  override name = "WrongModelError";
}
