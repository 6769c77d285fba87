// The tokenizer of a checkpoint: a thin, typed wrapper around @huggingface/tokenizers (a pure JS
// port of Hugging Face `tokenizers`) that reads a standard tokenizer.json. It adds what the
// diffusion code needs: ids as plain numbers, no special tokens unless asked, decoding that
// leaves code's spacing alone, and the special tokens (mask, pad, FIM...) found by their spelling.

import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { Tokenizer as HfTokenizer } from "@huggingface/tokenizers";
import { TokenizerError } from "./errors.js";

/** The special tokens the samplers and trainers use; null where the vocabulary has none. */
export interface SpecialTokens {
  mask: number | null;
  pad: number | null;
  bos: number | null;
  eos: number | null;
  fimPrefix: number | null;
  fimMiddle: number | null;
  fimSuffix: number | null;
}

/**
 * Known spellings of each special token, tried in order; the first one in the vocabulary wins.
 * Our own trainer writes the bracketed spellings. A tokenizer_config.json entry (`mask_token`,
 * `pad_token`, `bos_token`, `eos_token`) takes precedence over this table.
 */
export const specialTokenSpellings: Readonly<Record<keyof SpecialTokens, readonly string[]>> = {
  mask: ["[MASK]", "<|mask|>", "<|mdm_mask|>", "<mask>", "<|MASK|>"],
  pad: ["[PAD]", "<|pad|>", "<pad>", "<|endoftext|>"],
  bos: ["[BOS]", "<|begin_of_text|>", "<|startoftext|>", "<s>"],
  eos: ["[EOS]", "<|endoftext|>", "<|end_of_text|>", "</s>", "<|eot_id|>", "<|im_end|>"],
  // ours, Qwen2.5-Coder's, StarCoder's, DeepSeek-Coder's (its README: <｜fim▁begin｜> prefix
  // <｜fim▁hole｜> suffix <｜fim▁end｜>, the same PSM order)
  fimPrefix: ["[FIM_PREFIX]", "<|fim_prefix|>", "<fim_prefix>", "<｜fim▁begin｜>"],
  fimMiddle: ["[FIM_MIDDLE]", "<|fim_middle|>", "<fim_middle>", "<｜fim▁end｜>"],
  fimSuffix: ["[FIM_SUFFIX]", "<|fim_suffix|>", "<fim_suffix>", "<｜fim▁hole｜>"],
};

/** Tokenizer models that @huggingface/tokenizers runs (the `model.type` of tokenizer.json). */
const modelTypes = ["BPE", "WordPiece", "Unigram"];

/** tokenizer_config.json keys that name a special token. */
const configKeys: Partial<Record<keyof SpecialTokens, string>> = {
  mask: "mask_token",
  pad: "pad_token",
  bos: "bos_token",
  eos: "eos_token",
};

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** A tokenizer_config.json token entry: a string or a serialised AddedToken `{ content }`. */
function tokenSpelling(v: unknown): string | null {
  if (typeof v === "string") return v;
  if (isObject(v) && typeof v.content === "string") return v.content;
  return null;
}

export interface EncodeOptions {
  /** Apply the tokenizer's post-processor (e.g. add BOS). Default false. */
  addSpecialTokens?: boolean;
}

export interface DecodeOptions {
  /** Drop special tokens from the text. Default false. */
  skipSpecialTokens?: boolean;
}

export class Tokenizer {
  /** One more than the largest token id (added tokens included). */
  readonly vocabSize: number;
  readonly specialTokens: SpecialTokens;
  private readonly vocab: readonly (string | undefined)[];

  private constructor(
    private readonly inner: HfTokenizer,
    /** The file it was read from, for error messages. */
    readonly file: string,
    config: Record<string, unknown>,
  ) {
    this.vocab = inner.model?.vocab ?? [];
    this.vocabSize = this.vocab.length;
    const special: Partial<SpecialTokens> = {};
    for (const key of Object.keys(specialTokenSpellings) as (keyof SpecialTokens)[]) {
      const configKey = configKeys[key];
      const fromConfig = configKey === undefined ? null : tokenSpelling(config[configKey]);
      const spellings = [
        ...(fromConfig === null ? [] : [fromConfig]),
        ...specialTokenSpellings[key],
      ];
      special[key] = null;
      for (const s of spellings) {
        const id = this.tokenToId(s);
        if (id !== null) {
          special[key] = id;
          break;
        }
      }
    }
    this.specialTokens = special as SpecialTokens;
  }

  /**
   * Builds a tokenizer from a parsed tokenizer.json and optional tokenizer_config.json object.
   * Throws TokenizerError naming `file` when the JSON is not a tokenizer the library can run.
   */
  static fromJson(json: unknown, config: unknown = {}, file = "tokenizer.json"): Tokenizer {
    if (!isObject(json)) throw new TokenizerError(file, "expected a JSON object");
    if (!isObject(json.model)) throw new TokenizerError(file, 'expected a "model" object');
    const type = json.model.type;
    if (typeof type !== "string" || !modelTypes.includes(type)) {
      throw new TokenizerError(
        file,
        `unknown model type ${JSON.stringify(type)} (supported: ${modelTypes.join(", ")})`,
      );
    }
    if (json.added_tokens !== undefined && !Array.isArray(json.added_tokens)) {
      throw new TokenizerError(file, "added_tokens must be a list");
    }
    if (!isObject(config)) throw new TokenizerError(file, "tokenizer config must be an object");
    // The library wants every stage key present; absent means none.
    const full = {
      normalizer: null,
      pre_tokenizer: null,
      post_processor: null,
      decoder: null,
      added_tokens: [],
      ...json,
    };
    // Code is whitespace-sensitive: never "clean up" spaces before punctuation unless asked.
    const options = {
      ...config,
      clean_up_tokenization_spaces: config.clean_up_tokenization_spaces === true,
    };
    let inner: HfTokenizer;
    try {
      inner = new HfTokenizer(full, options);
    } catch (cause) {
      throw new TokenizerError(file, `unsupported or invalid tokenizer: ${String(cause)}`, {
        cause,
      });
    }
    return new Tokenizer(inner, file, config);
  }

  /** Reads a tokenizer.json, and the tokenizer_config.json next to it when there is one. */
  static async load(file: string): Promise<Tokenizer> {
    const json = await readJson(file);
    const configFile = join(dirname(file), "tokenizer_config.json");
    const config = existsSync(configFile) ? await readJson(configFile) : {};
    return Tokenizer.fromJson(json, config, file);
  }

  /** Token ids of `text`; special tokens are added only with `addSpecialTokens`. */
  encode(text: string, options: EncodeOptions = {}): number[] {
    return this.inner.encode(text, { add_special_tokens: options.addSpecialTokens ?? false }).ids;
  }

  /** The text of `ids`. Throws TokenizerError on an id outside the vocabulary. */
  decode(ids: ArrayLike<number>, options: DecodeOptions = {}): string {
    if (ids.length === 0) return "";
    const list = Array.from(ids);
    for (const id of list) {
      if (!Number.isInteger(id) || this.vocab[id] === undefined) {
        throw new TokenizerError(this.file, `token id ${id} is not in the vocabulary`);
      }
    }
    return this.inner.decode(list, { skip_special_tokens: options.skipSpecialTokens ?? false });
  }

  tokenToId(token: string): number | null {
    return this.inner.token_to_id(token) ?? null;
  }

  idToToken(id: number): string | null {
    return this.vocab[id] ?? null;
  }
}

async function readJson(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (cause) {
    throw new TokenizerError(file, `cannot read: ${String(cause)}`, { cause });
  }
  try {
    return JSON.parse(text);
  } catch (cause) {
    throw new TokenizerError(file, `invalid JSON: ${String(cause)}`, { cause });
  }
}
