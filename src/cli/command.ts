// The shape of a subcommand, and reading the text a command works on (a file, or stdin as "-").

import { readFile } from "node:fs/promises";
import type { CommandSpec } from "./args.js";
import { UsageError } from "./args.js";

export interface Context {
  /**
   * Fires on Ctrl-C (SIGINT): work that listens stops at its next step and reports what it has.
   * While nothing listens, Ctrl-C ends the process at once (exit 130).
   */
  interrupt: AbortSignal;
}

export interface Command {
  spec: CommandSpec;
  /** Runs the command on its arguments (after the command name); resolves to the exit code. */
  run(argv: string[], context: Context): Promise<number>;
}

/** Reads all of stdin's bytes. */
export async function readStdinBytes(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** A file that cannot be read or written, as a UsageError naming it. */
export function fileProblem(path: string, cause: unknown): UsageError {
  const code = (cause as { code?: unknown }).code;
  const why =
    code === "ENOENT"
      ? "no such file"
      : code === "EISDIR"
        ? "is a folder, not a file"
        : code === "EACCES"
          ? "permission denied"
          : String(cause);
  return new UsageError(`${path}: ${why}`, { cause });
}

/** The text of `source`: "-" is stdin, a path is read (a missing file is a UsageError). */
export async function readText(source: string): Promise<string> {
  if (source === "-") return (await readStdinBytes()).toString("utf8");
  try {
    return await readFile(source, "utf8");
  } catch (cause) {
    throw fileProblem(source, cause);
  }
}

/** Aborted by the user (Ctrl-C): exit code 130 after printing what is there. */
export class Interrupted extends Error {
  override name = "Interrupted";
  constructor() {
    super("interrupted");
  }
}

/** A note for the person at the terminal (stderr), never for a pipe or a log. */
export function note(message: string): void {
  if (process.stderr.isTTY) process.stderr.write(`${message}\n`);
}
