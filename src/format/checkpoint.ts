// A checkpoint folder in the Hugging Face layout, for real checkpoints and our own alike:
//   config.json                     the architecture (parseModelConfig)
//   generation_config.json          optional: token ids and sampling defaults
//   tokenizer.json                  (+ optional tokenizer_config.json)
//   model.safetensors               or model.safetensors.index.json + shards
// Loading validates everything before it reads a weight: the config, the tokenizer, every
// safetensors header, and every tensor's name and shape against parameterShapes(config). Weights
// are then read one tensor at a time into their final Float32Arrays.

import { existsSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  ConfigError,
  checkTokenIds,
  configToJson,
  type ModelConfig,
  parameterShapes,
  parseFamilyConfig,
  type WeightReader,
  type Weights,
} from "../model/config.js";
import type { Family, FamilyName } from "../model/families.js";
import { CheckpointError } from "./errors.js";
import { f32ToBF16, f32ToF16 } from "./half.js";
import {
  floatDtypes,
  SafetensorsReader,
  scratchBytes,
  shapeSize,
  type TensorEntry,
  writeSafetensors,
} from "./safetensors.js";
import { closeAll, indexFileName, openShards } from "./sharded.js";
import { Tokenizer } from "./tokenizer.js";

export const configFileName = "config.json";
export const generationFileName = "generation_config.json";
export const tokenizerFileName = "tokenizer.json";
export const weightsFileName = "model.safetensors";

/** Tensors that some checkpoints store but that are not parameters (derived buffers). */
const ignoredTensors = [/\.rotary_emb\.inv_freq$/];

export interface Checkpoint<T extends Tokenizer | null = Tokenizer> {
  dir: string;
  config: ModelConfig;
  /** fp32 weights by parameter name, exactly the parameters of parameterShapes(config). */
  weights: Weights;
  tokenizer: T;
  /** generation_config.json as read ({} when absent). */
  generation: Record<string, unknown>;
}

export interface LoadOptions {
  /** Load tokenizer.json (default true); false loads config and weights alone. */
  tokenizer?: boolean;
  /**
   * Read the folder as this family (src/model/families.ts) instead of the one its config.json
   * names: needed for Open-dCoder, whose config.json is an ordinary Qwen2 one.
   */
  family?: FamilyName;
}

/** Reads a JSON object file; a syntax error is a ConfigError naming the file. */
async function readConfigJson(file: string): Promise<Record<string, unknown>> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(file, "utf8"));
  } catch (cause) {
    throw new ConfigError(file, "(file)", `cannot read as JSON: ${String(cause)}`, { cause });
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new ConfigError(file, "(root)", "expected a JSON object");
  }
  return raw as Record<string, unknown>;
}

const showShape = (shape: readonly number[]) => `[${shape.join(", ")}]`;

/**
 * A checkpoint's weights, validated and open: read on demand one tensor at a time (as a
 * WeightReader, e.g. streamed into the engine), or all at once; close() when done.
 */
export class CheckpointWeights implements WeightReader {
  private readonly scratch = new ArrayBuffer(scratchBytes); // one conversion buffer for all reads

  constructor(
    /** model.safetensors or the shards' index (for messages). */
    readonly source: string,
    private readonly byTensor: Map<string, SafetensorsReader>,
    /** Our parameter names (parameterShapes order) → the names the file stores them under. */
    private readonly stored: ReadonlyMap<string, string>,
  ) {}

  /** The parameters, in parameterShapes order. */
  get names(): string[] {
    return [...this.stored.keys()];
  }

  has(name: string): boolean {
    return this.stored.has(name);
  }

  read(name: string): Float32Array {
    const stored = this.stored.get(name);
    if (stored === undefined) {
      throw new CheckpointError(this.source, name, "not a parameter of this checkpoint");
    }
    return this.byTensor.get(stored)!.readFloat32Sync(stored, this.scratch);
  }

  /** Every parameter as fp32. */
  readAll(): Weights {
    return new Map(this.names.map((name) => [name, this.read(name)]));
  }

  async close(): Promise<void> {
    await closeAll(this.byTensor.values());
  }
}

export interface OpenCheckpoint<T extends Tokenizer | null = Tokenizer>
  extends Omit<Checkpoint<T>, "weights"> {
  weights: CheckpointWeights;
}

/** Loads a checkpoint folder; throws ConfigError, CheckpointError, SafetensorsError or TokenizerError. */
export async function loadCheckpoint(
  dir: string,
  options?: LoadOptions & { tokenizer?: true },
): Promise<Checkpoint>;
export async function loadCheckpoint(
  dir: string,
  options: LoadOptions & { tokenizer: false },
): Promise<Checkpoint<null>>;
export async function loadCheckpoint(
  dir: string,
  options?: LoadOptions,
): Promise<Checkpoint<Tokenizer | null>>;
export async function loadCheckpoint(
  dir: string,
  options: LoadOptions = {},
): Promise<Checkpoint<Tokenizer | null>> {
  const open = await openCheckpoint(dir, options);
  try {
    return { ...open, weights: open.weights.readAll() };
  } finally {
    await open.weights.close();
  }
}

/**
 * Validates a checkpoint folder (config, tokenizer, every safetensors header, every tensor's
 * name and shape) and leaves its weights open to be read tensor by tensor; the caller closes
 * them. Throws as loadCheckpoint.
 */
export async function openCheckpoint(
  dir: string,
  options?: LoadOptions & { tokenizer?: true },
): Promise<OpenCheckpoint>;
export async function openCheckpoint(
  dir: string,
  options?: LoadOptions,
): Promise<OpenCheckpoint<Tokenizer | null>>;
export async function openCheckpoint(
  dir: string,
  options: LoadOptions = {},
): Promise<OpenCheckpoint<Tokenizer | null>> {
  const configFile = join(dir, configFileName);
  if (!existsSync(configFile)) {
    throw new CheckpointError(configFile, null, "not found: is this a checkpoint folder?");
  }
  const rawConfig = await readConfigJson(configFile);
  const generationFile = join(dir, generationFileName);
  const generation = existsSync(generationFile) ? await readConfigJson(generationFile) : {};
  const { config, family } = parseFamilyConfig(
    rawConfig,
    configFile,
    generation,
    generationFile,
    options.family,
  );

  let tokenizer: Tokenizer | null = null;
  if (options.tokenizer !== false) {
    const file = join(dir, tokenizerFileName);
    if (!existsSync(file)) {
      throw new CheckpointError(
        file,
        null,
        "not found (load with { tokenizer: false } to read the weights alone)",
      );
    }
    tokenizer = await Tokenizer.load(file);
    if (tokenizer.vocabSize > config.vocabSize) {
      throw new CheckpointError(
        file,
        null,
        `the tokenizer has ${tokenizer.vocabSize} token ids but ${configFile} has vocab_size ${config.vocabSize}`,
      );
    }
    tokensFromTokenizer(config, family, tokenizer);
    checkTokenIds(config, file);
  }
  if (family.maskFromTokenizer && config.maskTokenId === null) {
    throw new ConfigError(
      join(dir, "tokenizer_config.json"),
      "mask_token",
      `a ${family.name} checkpoint takes its mask token from the tokenizer, and this one has none`,
    );
  }

  const weights = await openWeights(dir, config, configFile, family);
  return { dir, config, weights, tokenizer, generation };
}

/**
 * The special tokens a family takes from its tokenizer rather than config.json: the end-of-turn
 * token (LLaDA's <|eot_id|>, Qwen's <|im_end|>) and, where config.json names none (Open-dCoder,
 * Fast-dLLM v2, SDAR), the mask.
 */
function tokensFromTokenizer(config: ModelConfig, family: Family, tokenizer: Tokenizer): void {
  if (config.eotTokenId == null) {
    for (const spelling of family.endOfTurn) {
      const id = tokenizer.tokenToId(spelling);
      if (id !== null && id !== config.eosTokenId) {
        config.eotTokenId = id;
        break;
      }
    }
  }
  if (family.maskFromTokenizer && config.maskTokenId === null) {
    const own = (family.maskSpellings ?? []).map((s) => tokenizer.tokenToId(s));
    config.maskTokenId = own.find((id) => id !== null) ?? tokenizer.specialTokens.mask;
  }
}

/**
 * Opens model.safetensors or the sharded index and checks every tensor (under the family's
 * names) against the config; the weights are read later, on demand.
 */
async function openWeights(
  dir: string,
  config: ModelConfig,
  configFile: string,
  family: Family,
): Promise<CheckpointWeights> {
  const single = join(dir, weightsFileName);
  const index = join(dir, indexFileName);
  let source: string;
  let byTensor: Map<string, SafetensorsReader>;
  if (existsSync(single)) {
    source = single;
    const reader = await SafetensorsReader.open(single);
    byTensor = new Map([...reader.tensors.keys()].map((name) => [name, reader]));
    if (byTensor.size === 0) await reader.close(); // closeAll below would not see it
  } else if (existsSync(index)) {
    source = index;
    byTensor = await openShards(index);
  } else {
    throw new CheckpointError(single, null, `not found, nor ${indexFileName}`);
  }
  try {
    const expected = parameterShapes(config).map((p) => ({
      ...p,
      stored: family.tensorName(p.name),
    }));
    const names = new Set(expected.map((p) => p.stored));
    for (const { stored: name, shape } of expected) {
      const reader = byTensor.get(name);
      if (!reader) {
        throw new CheckpointError(
          source,
          name,
          `missing; ${configFile} needs it with shape ${showShape(shape)}`,
        );
      }
      const info = reader.tensors.get(name)!;
      if (info.shape.length !== shape.length || info.shape.some((n, i) => n !== shape[i])) {
        throw new CheckpointError(
          reader.file,
          name,
          `shape ${showShape(info.shape)} in the file, but ${configFile} needs ${showShape(shape)}`,
        );
      }
      if (!floatDtypes.includes(info.dtype)) {
        throw new CheckpointError(reader.file, name, `dtype ${info.dtype} is not a float type`);
      }
    }
    for (const [name, reader] of byTensor) {
      if (names.has(name) || ignoredTensors.some((re) => re.test(name))) continue;
      // Tied embeddings: a stored copy of the head is allowed and ignored.
      if (config.tieWordEmbeddings && name === family.tensorName("lm_head.weight")) continue;
      throw new CheckpointError(
        reader.file,
        name,
        `unexpected tensor: not a parameter of the model that ${configFile} describes`,
      );
    }
    return new CheckpointWeights(
      source,
      byTensor,
      new Map(expected.map((p) => [p.name, p.stored])),
    );
  } catch (error) {
    await closeAll(byTensor.values());
    throw error;
  }
}

export interface SaveOptions {
  /** Storage type of the weights (default F32, which round-trips exactly). */
  dtype?: "F32" | "F16" | "BF16";
}

export interface CheckpointContents {
  config: ModelConfig;
  /** In memory, or a reader whose tensors are read one at a time as they are written. */
  weights: Weights | WeightReader;
  /** tokenizer.json as an object or as its text; omitted: no tokenizer.json is written. */
  tokenizerJson?: object | string;
  /** generation_config.json; omitted: none is written. */
  generation?: Record<string, unknown>;
}

/** Writes a checkpoint folder in the layout that loadCheckpoint (and transformers) reads. */
export async function saveCheckpoint(
  dir: string,
  contents: CheckpointContents,
  options: SaveOptions = {},
): Promise<void> {
  const { config, weights } = contents;
  const dtype = options.dtype ?? "F32";
  const weightsFile = join(dir, weightsFileName);
  const expected = parameterShapes(config);
  const tensors = new Map<string, TensorEntry>();
  for (const { name, shape } of expected) {
    if (!weights.has(name)) {
      throw new CheckpointError(weightsFile, name, "missing from the weights to save");
    }
    const stored = () => {
      const data = weights instanceof Map ? weights.get(name)! : weights.read(name);
      if (data.length !== shapeSize(shape)) {
        throw new CheckpointError(
          weightsFile,
          name,
          `has ${data.length} elements, shape ${showShape(shape)} needs ${shapeSize(shape)}`,
        );
      }
      return dtype === "F16" ? f32ToF16(data) : dtype === "BF16" ? f32ToBF16(data) : data;
    };
    // in-memory weights are checked now; a reader's are read (and checked) as they are written
    tensors.set(name, { dtype, shape, data: weights instanceof Map ? stored() : stored });
  }
  if (weights instanceof Map) {
    for (const name of weights.keys()) {
      if (!tensors.has(name)) {
        throw new CheckpointError(weightsFile, name, "is not a parameter of this config");
      }
    }
  }
  await mkdir(dir, { recursive: true });
  const json = (value: unknown) => `${JSON.stringify(value, null, 2)}\n`;
  await writeFile(join(dir, configFileName), json(configToJson(config)));
  if (contents.generation)
    await writeFile(join(dir, generationFileName), json(contents.generation));
  if (contents.tokenizerJson !== undefined) {
    const text =
      typeof contents.tokenizerJson === "string"
        ? contents.tokenizerJson
        : JSON.stringify(contents.tokenizerJson);
    await writeFile(join(dir, tokenizerFileName), text);
  }
  await writeSafetensors(weightsFile, tensors, { format: "pt" });
}
