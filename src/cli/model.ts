// Where the CLI finds its models, and loading one: a Hugging Face checkpoint folder becomes an
// ONNX Runtime model and its tokenizer. The embedded models live in the package itself
// (`models/unmask-code`, and its autoregressive twin `models/unmask-code-ar`).

import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { loadCheckpoint, type Tokenizer } from "../format/index.js";
import type { ModelConfig } from "../model/config.js";
import { OnnxModel } from "../model/engine.js";
import { UsageError } from "./args.js";
import { packageRoot } from "./package.js";

export const defaultModelName = "unmask-code";
export const defaultArModelName = "unmask-code-ar";

/**
 * The checkpoint folder to load: `given` when the user named one, else the embedded model. An
 * absent embedded model is a usage error that says what to pass instead.
 */
export function resolveModelDir(given: string | undefined, ar: boolean): string {
  if (given !== undefined) {
    const dir = resolve(given);
    if (!existsSync(dir))
      throw new UsageError(`${ar ? "--ar-model" : "--model"}: ${dir}: not found`);
    return dir;
  }
  const name = ar ? defaultArModelName : defaultModelName;
  const dir = join(packageRoot(), "models", name);
  if (!existsSync(join(dir, "config.json"))) {
    const flagName = ar ? "--ar-model" : "--model";
    throw new UsageError(
      `the embedded model ${name} is not installed (looked in ${dir}); pass ${flagName} DIR with a checkpoint folder (config.json, model.safetensors, tokenizer.json)`,
    );
  }
  return dir;
}

export interface LoadedModel {
  dir: string;
  config: ModelConfig;
  model: OnnxModel;
  tokenizer: Tokenizer;
  /** generation_config.json as read ({} when absent). */
  generation: Record<string, unknown>;
}

/** Loads a checkpoint folder (validated by the format seam) into an ONNX Runtime model. */
export async function loadModel(dir: string): Promise<LoadedModel> {
  const checkpoint = await loadCheckpoint(dir);
  const model = await OnnxModel.create(checkpoint.config, checkpoint.weights);
  return {
    dir,
    config: checkpoint.config,
    model,
    tokenizer: checkpoint.tokenizer,
    generation: checkpoint.generation,
  };
}
