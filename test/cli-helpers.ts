// What the process-level tests share: tiny random checkpoints in the Hugging Face layout over the
// tiny a/b/c tokenizer of the format tests, and running the CLI as a process.

import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { saveCheckpoint } from "../src/format/index.js";
import { parseModelConfig } from "../src/model/config.js";
import { randomWeights } from "../src/model/random.js";
import { tinyTokenizerJson } from "./format-helpers.js";

export const main = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));

/** A checkpoint over the tiny tokenizer (ids 0 pad, 1 mask, 2 bos, 3 eos; a b c space newline ab). */
export async function writeModel(
  path: string,
  extra: Record<string, unknown>,
  size = { hidden: 16, layers: 2, context: 64 },
): Promise<void> {
  const config = parseModelConfig({
    model_type: "unmask",
    vocab_size: 13,
    hidden_size: size.hidden,
    num_hidden_layers: size.layers,
    num_attention_heads: 2,
    intermediate_size: 2 * size.hidden,
    max_position_embeddings: size.context,
    pad_token_id: 0,
    mask_token_id: 1,
    bos_token_id: 2,
    eos_token_id: 3,
    ...extra,
  });
  await saveCheckpoint(path, {
    config,
    weights: randomWeights(config, 7, 0.5),
    tokenizerJson: tinyTokenizerJson(),
  });
}

export interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI to its end, off a terminal. */
export function cli(
  args: string[],
  options: {
    input?: string;
    env?: Record<string, string>;
    /** The working folder (default: this process's). */
    cwd?: string;
    /** Called with the stderr so far whenever more arrives, and the child's pid. */
    onStderr?: (stderr: string, pid: number) => void;
  } = {},
): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [main, ...args], {
      env: { ...process.env, ...options.env },
      cwd: options.cwd,
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
      if (child.pid !== undefined) options.onStderr?.(stderr, child.pid);
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(options.input ?? "");
  });
}
