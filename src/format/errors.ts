// Typed errors of the format seam. Each names the file it is about (and the tensor, where there
// is one) so that a user can find the problem without a debugger.

/** Base class: something about a checkpoint file on disk is wrong. */
export class FormatError extends Error {
  override name = "FormatError";
  constructor(
    readonly file: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${file}: ${message}`, options);
  }
}

/** A problem with a file that may concern one of its tensors, named in the message. */
abstract class TensorFileError extends FormatError {
  constructor(
    file: string,
    readonly tensor: string | null,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(
      file,
      tensor === null ? message : `tensor ${JSON.stringify(tensor)}: ${message}`,
      options,
    );
  }
}

/** A safetensors file (or a shard index) is malformed or does not hold what it claims. */
export class SafetensorsError extends TensorFileError {
  override name = "SafetensorsError";
}

/** A checkpoint directory is incomplete, or its weights do not match its config. */
export class CheckpointError extends TensorFileError {
  override name = "CheckpointError";
}

/** A tokenizer.json (or tokenizer_config.json) cannot be read or used. */
export class TokenizerError extends FormatError {
  override name = "TokenizerError";
}
