// `unmask generate`: continue code from a prompt. The canvas is the prompt followed by --length
// masks; the denoise loop fills them (or, with --ar, the AR twin writes left to right).

import { decodeAr } from "../diffusion/ar.js";
import { denoise } from "../diffusion/denoise.js";
import type { DecodeResult, StepEvent } from "../diffusion/types.js";
import { type CommandSpec, parse, stringOption, UsageError } from "./args.js";
import { type Command, type Context, readText } from "./command.js";
import {
  decodeFlags,
  decodeOptions,
  diffusionOptions,
  drive,
  finish,
  jsonSection,
  liveCanvasFor,
  loadForFlags,
  strategiesSection,
} from "./decode.js";
import type { LoadedModel } from "./model.js";
import { maskGlyph } from "./terminal.js";

const spec: CommandSpec = {
  name: "generate",
  summary: "continue code from a prompt (argument, file or stdin)",
  usage: ["generate [options] [PROMPT | -]", "generate [options] --file FILE"],
  description: `
Continues code from PROMPT: the canvas is the prompt followed by --length masked positions, and
the model fills them over a few denoising steps. PROMPT "-" reads the prompt from stdin; no
prompt at all generates from an empty canvas. On a terminal the canvas redraws after every step;
piped, only the result is printed (the prompt followed by the generated code). Ctrl-C stops at
the next step and prints what is there.`,
  options: [
    {
      name: "file",
      type: "string",
      short: "f",
      value: "FILE",
      description: "read the prompt from FILE",
    },
    ...decodeOptions,
  ],
  examples: [
    `unmask generate "export function fibonacci(n: number): number {"`,
    "unmask generate -f prompt.ts --length 64 --strategy fast-dllm",
    `cat prompt.ts | unmask generate - --json`,
    `unmask generate "const sum = (a: number, b: number) =>" --ar   # the autoregressive twin`,
  ],
  sections: [strategiesSection(), jsonSection("generate", '"prompt" (the prompt as given)')],
  maxPositionals: 1,
};

async function run(argv: string[], context: Context): Promise<number> {
  const parsed = parse(spec, argv);
  const flags = decodeFlags(parsed);
  const file = stringOption(parsed, "file");
  const given = parsed.positionals[0];
  if (file !== undefined && given !== undefined) {
    throw new UsageError("generate: give a PROMPT or --file, not both");
  }
  const source = file ?? (given === "-" ? "-" : undefined);
  const prompt = source === undefined ? (given ?? "") : await readText(source);

  const t0 = performance.now();
  const loaded = await loadForFlags(flags);
  try {
    const loadMs = performance.now() - t0;
    const { config, tokenizer } = loaded;
    const promptIds = tokenizer.encode(prompt);
    const room = config.maxPositions - promptIds.length;
    if (room < 1) {
      throw new UsageError(
        `the prompt is ${promptIds.length} tokens, but the model's context is ${config.maxPositions} positions: shorten it`,
      );
    }
    if (flags.length !== undefined && flags.length > room) {
      throw new UsageError(
        `--length ${flags.length}: the prompt's ${promptIds.length} tokens leave room for ${room} in the model's context of ${config.maxPositions}`,
      );
    }
    const length = flags.length ?? Math.min(128, room);
    const decode = (ids: ArrayLike<number>) => tokenizer.decode(ids, { skipSpecialTokens: true });
    const look = {
      view: [0, promptIds.length + length] as const,
      maskId: config.maskTokenId ?? -1,
      endTokens: endTokens(loaded),
      decode,
    };
    const start = (signal: AbortSignal): AsyncGenerator<StepEvent, DecodeResult, undefined> => {
      if (flags.ar) {
        const options = { maxTokens: length, ...sampling(flags) };
        return decodeAr(loaded.model, promptIds, options, signal);
      }
      const canvas = [...promptIds, ...new Array<number>(length).fill(config.maskTokenId ?? -1)];
      return denoise(
        loaded.model,
        { tokens: canvas, openEnded: true },
        diffusionOptions(flags),
        signal,
      );
    };
    const outcome = await drive(
      start,
      context.interrupt,
      flags.maxTimeMs,
      liveCanvasFor(flags, look),
    );
    // AR decoding may have started from BOS: what it generated is the end of its canvas
    const from = flags.ar ? outcome.result.canvas.length - outcome.result.steps : promptIds.length;
    const { text, tokens } = regionText(
      loaded,
      outcome.result.canvas,
      from,
      outcome.result.canvas.length,
    );
    return finish(
      flags,
      loaded,
      outcome,
      {
        command: "generate",
        text,
        tokens,
        counts: { prompt: promptIds.length, canvas: promptIds.length + length },
        extra: { prompt },
      },
      loadMs,
      prompt + text,
    );
  } finally {
    await loaded.model.dispose();
  }
}

function sampling(flags: { temperature: number | undefined; seed: number | undefined }) {
  const o: { temperature?: number; seed?: number } = {};
  if (flags.temperature !== undefined) o.temperature = flags.temperature;
  if (flags.seed !== undefined) o.seed = flags.seed;
  return o;
}

/** The model's end tokens (EOS, pad). */
export function endTokens(loaded: LoadedModel): number[] {
  return [loaded.config.eosTokenId, loaded.config.padTokenId].filter(
    (t): t is number => t !== null && t !== loaded.config.maskTokenId,
  );
}

/**
 * The text of canvas positions [a, b): cut at the first EOS, pad dropped, a mask still there
 * (an interrupted run) shown as the placeholder. Also counts the decoded tokens.
 */
export function regionText(
  loaded: LoadedModel,
  canvas: ArrayLike<number>,
  a: number,
  b: number,
): { text: string; tokens: number } {
  const { maskTokenId: mask, eosTokenId: eos, padTokenId: pad } = loaded.config;
  let text = "";
  let run: number[] = [];
  let tokens = 0;
  const flush = () => {
    if (run.length > 0) text += loaded.tokenizer.decode(run, { skipSpecialTokens: true });
    run = [];
  };
  for (let i = a; i < b; i++) {
    const t = canvas[i];
    if (t === eos) break;
    if (t === pad) continue;
    if (t === mask) {
      flush();
      text += maskGlyph;
      continue;
    }
    run.push(t);
    tokens++;
  }
  flush();
  return { text, tokens };
}

export const generate: Command = { spec, run };
