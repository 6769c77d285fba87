// Prompt templates: a chat (a list of messages) as the one text a model continues. A model whose
// tokenizer_config.json carries a `chat_template` gets it rendered by @huggingface/jinja (the
// Jinja subset Hugging Face templates use); a model without one gets the plain template below.
// And fill-in-the-middle: a causal model whose vocabulary has FIM sentinels fills a hole from a
// PSM prompt built of them (fimTokens here; the prompt: src/diffusion/api.ts fimPrompt).

import { Template } from "@huggingface/jinja";
import type { FimTokens } from "../diffusion/types.js";
import { TokenizerError } from "./errors.js";
import type { Tokenizer } from "./tokenizer.js";

export interface ChatMessage {
  role: string;
  content: string;
}

/**
 * The plain chat template: each message as `<role>: <content>` followed by a blank line, then
 * `assistant: ` for the model to continue. Documented in the README (unmask serve).
 */
export function plainChatPrompt(messages: readonly ChatMessage[]): string {
  return `${messages.map((m) => `${m.role}: ${m.content}\n\n`).join("")}assistant: `;
}

/** Special-token spellings a Jinja template may refer to (`bos_token`, `eos_token`...). */
export type TemplateTokens = Record<string, string>;

/** A compiled Jinja template (compile once per model, render per request). */
export class PromptTemplate {
  private readonly template: Template;

  /** Throws FormatError naming `source` when the template does not parse. */
  constructor(
    text: string,
    readonly source: string,
  ) {
    try {
      this.template = new Template(text);
    } catch (cause) {
      throw new TokenizerError(
        source,
        `chat_template does not parse: ${(cause as Error).message}`,
        {
          cause,
        },
      );
    }
  }

  /**
   * Renders the messages with the generation prompt added (the assistant's turn opened). A
   * template that raises (e.g. "roles must alternate") is a TokenizerError with its message.
   */
  render(messages: readonly ChatMessage[], tokens: TemplateTokens = {}): string {
    try {
      return this.template.render({
        messages: messages.map((m) => ({ role: m.role, content: m.content })),
        add_generation_prompt: true,
        ...tokens,
      });
    } catch (cause) {
      throw new TokenizerError(this.source, `chat_template: ${(cause as Error).message}`, {
        cause,
      });
    }
  }
}

/**
 * Tokens besides the FIM sentinels that end a middle: Qwen2.5-Coder's examples/Qwen2.5-Coder.md
 * stops FIM generation at <|fim_pad|>, <|file_sep|>, <|repo_name|> and the three sentinels (with
 * <|im_end|> and <|endoftext|>, the model's own end tokens); StarCoder's vocabulary spells them
 * without the bars.
 */
const fimStopSpellings = [
  "<|fim_pad|>",
  "<|file_sep|>",
  "<|repo_name|>",
  "<fim_pad>",
  "<file_sep>",
  "<repo_name>",
];

/**
 * The FIM sentinels of a tokenizer (its `specialTokens`: Qwen2.5-Coder's <|fim_prefix|>,
 * <|fim_suffix|>, <|fim_middle|>, StarCoder's <fim_prefix>..., DeepSeek-Coder's <｜fim▁begin｜>...,
 * our own [FIM_PREFIX]...), or null when its vocabulary lacks any of the three. The prompt leads
 * with what the tokenizer's post-processor adds to a text (a BOS), as the model cards tokenize
 * the prompt's text with the special tokens.
 */
export function fimTokens(tokenizer: Tokenizer): FimTokens | null {
  const { fimPrefix, fimSuffix, fimMiddle } = tokenizer.specialTokens;
  if (fimPrefix === null || fimSuffix === null || fimMiddle === null) return null;
  const others = fimStopSpellings
    .map((s) => tokenizer.tokenToId(s))
    .filter((id): id is number => id !== null);
  return {
    lead: tokenizer.encode("", { addSpecialTokens: true }),
    prefix: fimPrefix,
    suffix: fimSuffix,
    middle: fimMiddle,
    stops: [...new Set([fimPrefix, fimSuffix, fimMiddle, ...others])],
  };
}
