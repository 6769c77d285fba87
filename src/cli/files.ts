// Files as users have them, for infill, edit and fix: the bytes are read as strict UTF-8 (a file
// that is not — Latin-1, binary — is refused, never re-encoded), a byte order mark and CRLF line
// endings are taken off for the model and put back on write, so that every byte outside the
// edited spans is written as it was read. Writes are atomic: a temporary file in the same folder,
// flushed to disk, renamed over the original with its mode; writability is checked before any
// model is loaded.

import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { access, open, readFile, realpath, rename, rm, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { type Encoder, type TextWindow, windowAround } from "../diffusion/window.js";
import type { Outcome } from "../host/decode.js";
import { UsageError } from "./args.js";
import { fileProblem, readStdinBytes } from "./command.js";

const BOM = "\uFEFF";

/** A file that is not UTF-8 text: its name, and where the first bad byte is. */
export class NotTextError extends UsageError {
  override name = "NotTextError";
  constructor(
    readonly file: string,
    /** 0-based offset of the first byte that is not UTF-8 (or the first NUL byte). */
    readonly offset: number,
    /** 1-based line of that byte. */
    readonly line: number,
    why: string,
  ) {
    super(
      `${file}: ${why} at byte ${offset} (line ${line}); unmask edits UTF-8 text only and leaves the file as it is`,
    );
  }
}

/** A requested write that did not happen (the original is left as it was). */
export class WriteError extends Error {
  override name = "WriteError";
  constructor(
    readonly file: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(`${file}: ${message}`, options);
  }
}

/** A hole (or holes and the text between them) that does not fit in the model's context. */
export class ContextError extends UsageError {
  override name = "ContextError";
  constructor(
    readonly file: string,
    what: string,
    readonly tokens: number,
    readonly context: number,
  ) {
    super(
      `${file}: ${what} take ${tokens} tokens, more than the model's context of ${context} tokens`,
    );
  }
}

/** A text file as the model sees it, and how to put its bytes back. */
export interface TextFile {
  /** The path, or "-" for stdin. */
  path: string;
  /** The text the model sees: no byte order mark, LF line endings. */
  text: string;
  /** The file began with a UTF-8 byte order mark. */
  bom: boolean;
  /** Every line of the file ended in CRLF (a file with mixed endings is left as it is). */
  crlf: boolean;
}

/** The offset of the first character of `bytes` that strict UTF-8 decoding rejects. */
function firstBadByte(bytes: Uint8Array): number {
  // the decoder does not say where it failed: find the longest prefix that decodes as a stream
  // (a character cut at its end is no error there), then back up to a character boundary
  const decodes = (n: number, stream: boolean) => {
    const decoder = new TextDecoder("utf-8", { fatal: true });
    try {
      decoder.decode(bytes.subarray(0, n), { stream });
      return true;
    } catch {
      return false;
    }
  };
  let lo = 0; // bytes[0, lo) decode
  let hi = bytes.length; // bytes[0, hi) do not
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (decodes(mid, true)) lo = mid;
    else hi = mid;
  }
  while (lo > 0 && !decodes(lo, false)) lo--;
  return lo;
}

function lineOf(bytes: Uint8Array, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset; i++) if (bytes[i] === 0x0a) line++;
  return line;
}

/** Decodes a file's bytes, refusing what is not UTF-8 text (a NUL byte marks a binary file). */
export function decodeText(path: string, bytes: Uint8Array): TextFile {
  let raw: string;
  try {
    raw = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    const at = firstBadByte(bytes);
    throw new NotTextError(path, at, lineOf(bytes, at), "not valid UTF-8");
  }
  const nul = bytes.indexOf(0);
  if (nul >= 0) throw new NotTextError(path, nul, lineOf(bytes, nul), "a binary file (NUL byte)");
  const bom = raw.startsWith(BOM);
  if (bom) raw = raw.slice(1);
  // CRLF when every line feed follows a carriage return; "\r\n" -> "\n" and back is then exact
  const lf = (raw.match(/\n/g) ?? []).length;
  const crlf = lf > 0 && (raw.match(/\r\n/g) ?? []).length === lf;
  return { path, text: crlf ? raw.replace(/\r\n/g, "\n") : raw, bom, crlf };
}

/** The bytes of `text` (as the model sees it) in `file`'s own form: its BOM and line endings. */
export function encodeText(file: TextFile, text: string): Buffer {
  const body = file.crlf ? text.replace(/\n/g, "\r\n") : text;
  return Buffer.from(file.bom ? BOM + body : body, "utf8");
}

/** The file's text in its own form (BOM and line endings), as a diff of it must show it. */
export function diskText(file: TextFile, text: string): string {
  return encodeText(file, text).toString("utf8");
}

/** Reads `path` ("-": stdin) as a text file; see decodeText. */
export async function readTextFile(path: string): Promise<TextFile> {
  if (path === "-") return { ...decodeText("stdin", await readStdinBytes()), path };
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (cause) {
    throw fileProblem(path, cause);
  }
  return decodeText(path, bytes);
}

/**
 * Refuses, before any work, a file that --write could not or should not replace: the file must
 * be writable and so must its folder (the temporary file and the rename); a file whose mode has
 * no write bit is read-only even to a user (root) whom the system would let write it.
 */
export async function checkWritable(path: string): Promise<void> {
  const refuse = (what: string, cause?: unknown) =>
    new WriteError(path, `cannot --write: ${what}; nothing was generated`, { cause });
  const target = await realpath(path);
  const mode = (await stat(target)).mode & 0o7777;
  if ((mode & 0o222) === 0) {
    throw refuse(`the file is read-only (mode ${mode.toString(8).padStart(4, "0")})`);
  }
  for (const [where, what] of [
    [target, "the file is not writable"],
    [dirname(target), `its folder ${dirname(target)} is not writable`],
  ] as const) {
    try {
      await access(where, constants.W_OK);
    } catch (cause) {
      throw refuse(what, cause);
    }
  }
}

/**
 * Test hook: with UNMASK_TEST_FAIL_WRITE set, the write fails after this many bytes of the
 * temporary file are on disk — a disk that fills up midway.
 */
function failAfter(): number | undefined {
  const raw = process.env.UNMASK_TEST_FAIL_WRITE;
  return raw === undefined ? undefined : Number(raw);
}

/**
 * Replaces `path` with `bytes` atomically: a temporary file beside it is written, flushed and
 * renamed over it, with the original's mode. On any failure the temporary file is removed and
 * the original is as it was.
 */
export async function writeAtomic(path: string, bytes: Uint8Array): Promise<void> {
  let target: string; // a symbolic link stays one: its target is replaced
  let mode: number;
  try {
    target = await realpath(path);
    mode = (await stat(target)).mode & 0o7777;
  } catch (cause) {
    throw new WriteError(path, "not written: the file is gone", { cause });
  }
  const folder = dirname(target);
  const temp = join(folder, `.${basename(target)}.unmask-${randomBytes(6).toString("hex")}.tmp`);
  let created = false;
  try {
    const handle = await open(temp, "wx", mode);
    created = true;
    try {
      const limit = failAfter();
      if (limit !== undefined && limit < bytes.length) {
        await handle.write(bytes.subarray(0, limit));
        throw Object.assign(new Error("no space left on device (injected)"), { code: "ENOSPC" });
      }
      await handle.write(bytes);
      await handle.chmod(mode); // the umask may have narrowed the mode at creation
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, target);
    created = false;
  } catch (cause) {
    if (created) await rm(temp, { force: true });
    const why = cause instanceof Error ? cause.message : String(cause);
    throw new WriteError(path, `not written (${why}); the file is as it was`, { cause });
  }
  // the rename itself on disk
  const dir = await open(folder, "r");
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

/**
 * With --write: replaces the file with `text` (as the model sees it) in the file's own form,
 * unless the run stopped before its canvas was clean (Ctrl-C, --max-time), which is said on
 * stderr. Resolves to whether the file was written.
 */
export async function writeBack(
  file: TextFile,
  text: string,
  stop: Outcome["stop"],
): Promise<boolean> {
  if (stop === "interrupted" || stop === "max_time") {
    const why = stop === "max_time" ? "at --max-time" : "by Ctrl-C";
    process.stderr.write(
      `unmask: ${file.path} not written: the run was stopped ${why} before the canvas was clean\n`,
    );
    return false;
  }
  await writeAtomic(file.path, encodeText(file, text));
  return true;
}

/** The exit code of a run that was asked to --write: not 0 when the file was not written. */
export function writeExitCode(code: number, write: boolean, written: boolean): number {
  return write && !written && code === 0 ? 1 : code;
}

/**
 * The window of `file` around the span [x, y) whose `middle` tokens (the hole, or the holes and
 * the text between them) must be on the canvas whole: the text before and after cut to what fits
 * in the model's `context` (src/diffusion/window.ts). A middle larger than the context is an
 * error naming both numbers.
 */
export function fitWindow(
  file: TextFile,
  span: readonly [number, number],
  middle: number,
  context: number,
  tokenizer: Encoder,
  what: string,
): TextWindow {
  if (middle > context) throw new ContextError(file.path, what, middle, context);
  return windowAround(file.text, span, context - middle, tokenizer);
}
