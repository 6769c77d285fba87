// Models by name or folder: the embedded pair lives in the package (`models/unmask-code` and its
// autoregressive twin `models/unmask-code-ar`); any other Hugging Face checkpoint folder is loaded
// by path. Loading turns the folder into an ONNX Runtime model and its tokenizer.

import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { basename, join, resolve } from "node:path";
import { packageRoot } from "../cli/package.js";
import { openCheckpoint, type Tokenizer, TokenizerError } from "../format/index.js";
import { PromptTemplate } from "../format/template.js";
import type { ModelConfig } from "../model/config.js";
import { type EngineOptions, OnnxModel } from "../model/engine.js";
import type { FamilyName } from "../model/families.js";
import type { LanguageModel } from "../model/types.js";
import { ModelNotFoundError } from "./errors.js";

export const defaultModelName = "unmask-code";
export const defaultArModelName = "unmask-code-ar";

/** Which decoder a model is for: a causal model decodes left to right, any other denoises. */
export type Decoder = "diffusion" | "autoregressive";

/**
 * The checkpoint folder to load: `given` when a folder was named, else the embedded model of the
 * decoder. A missing folder is a ModelNotFoundError naming `parameter` (the caller's name for it).
 */
export function resolveModelDir(
  given: string | undefined,
  decoder: Decoder,
  parameter: string,
): string {
  if (given !== undefined) {
    const dir = resolve(given);
    if (!existsSync(dir)) throw new ModelNotFoundError(parameter, `${dir}: not found`);
    return dir;
  }
  const name = decoder === "autoregressive" ? defaultArModelName : defaultModelName;
  const dir = join(packageRoot(), "models", name);
  if (!existsSync(join(dir, "config.json"))) {
    throw new ModelNotFoundError(
      parameter,
      `the embedded model ${name} is not installed (looked in ${dir}): name a checkpoint folder (config.json, model.safetensors, tokenizer.json)`,
    );
  }
  return dir;
}

export interface LoadedModel {
  /** The name clients use: the folder's base name (the embedded ones: unmask-code, unmask-code-ar). */
  name: string;
  dir: string;
  config: ModelConfig;
  model: LanguageModel;
  tokenizer: Tokenizer;
  /** generation_config.json as read ({} when absent). */
  generation: Record<string, unknown>;
  /** tokenizer_config.json's chat_template, compiled, when the folder has one. */
  chatTemplate: PromptTemplate | null;
}

/** The decoder a model's config is made for. */
export function decoderOf(config: ModelConfig): Decoder {
  return config.attention === "causal" ? "autoregressive" : "diffusion";
}

/**
 * Loads a checkpoint folder (validated by the format seam) into an ONNX Runtime model, its
 * weights streamed into the session tensor by tensor (never all held in JavaScript); `family`
 * reads it as that family (src/model/families.ts).
 */
export async function loadModel(
  dir: string,
  options: EngineOptions & { family?: FamilyName } = {},
): Promise<LoadedModel> {
  const { family, ...engine } = options;
  const checkpoint = await openCheckpoint(dir, family === undefined ? {} : { family });
  let model: OnnxModel;
  try {
    model = await OnnxModel.create(checkpoint.config, checkpoint.weights, engine);
  } finally {
    await checkpoint.weights.close();
  }
  return {
    name: basename(dir),
    dir,
    config: checkpoint.config,
    model,
    tokenizer: checkpoint.tokenizer,
    generation: checkpoint.generation,
    chatTemplate: await chatTemplateOf(dir),
  };
}

/** tokenizer_config.json's `chat_template` (a string, or the one named "default" of a list). */
async function chatTemplateOf(dir: string): Promise<PromptTemplate | null> {
  const file = join(dir, "tokenizer_config.json");
  if (!existsSync(file)) return null;
  let json: unknown;
  try {
    json = JSON.parse(await readFile(file, "utf8"));
  } catch (cause) {
    throw new TokenizerError(file, "not valid JSON", { cause });
  }
  const t = (json as { chat_template?: unknown }).chat_template;
  if (typeof t === "string") return new PromptTemplate(t, file);
  if (Array.isArray(t)) {
    const named = t.find((x) => (x as { name?: unknown })?.name === "default") as
      | { template?: unknown }
      | undefined;
    if (typeof named?.template === "string") return new PromptTemplate(named.template, file);
  }
  return null;
}
