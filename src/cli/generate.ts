// `unmask generate`: continue code from a prompt. The canvas is the prompt followed by --length
// masks that the denoise loop fills; with --ar the autoregressive twin writes left to right.

import type { GenerateResult } from "../diffusion/api.js";
import { type Plan, planGenerate } from "../host/decode.js";
import { type CommandSpec, parse, stringOption, UsageError } from "./args.js";
import { type Command, type Context, readText } from "./command.js";
import {
  arOptions,
  asUsageError,
  decodeFlags,
  decodeOptions,
  drive,
  finish,
  jsonSection,
  liveCanvasFor,
  loadForFlags,
  strategiesSection,
} from "./decode.js";
import { canvasLook, idsText } from "./text.js";

const spec: CommandSpec = {
  name: "generate",
  usage: ["generate [options] [PROMPT | -]", "generate [options] --file FILE"],
  description: `
Continues code from PROMPT: the canvas is the prompt followed by --length masked positions, and
the model fills them over a few denoising steps (or, with --ar, the autoregressive twin writes
one token per step). PROMPT "-" reads the prompt from stdin; no prompt at all generates from an
empty canvas. The generated code ends at the first end-of-text token.

On a terminal the canvas redraws after every step (masked positions ░, tokens just revealed in
green, re-masked ones in red), then the prompt and the generated code are printed with a summary
line. Piped, only the prompt and the generated code are printed. Ctrl-C stops at the next step
and prints what is there.`,
  options: [
    {
      name: "file",
      type: "string",
      short: "f",
      value: "FILE",
      description: "read the prompt from FILE",
    },
    ...decodeOptions("tokens to generate (default: 128, or what the model's context leaves)"),
    ...arOptions,
  ],
  examples: [
    `unmask generate "export function fibonacci(n: number): number {"`,
    "unmask generate -f prompt.ts --length 64 --strategy fast-dllm",
    "cat prompt.ts | unmask generate - --json",
    `unmask generate "const sum = (a: number, b: number) =>" --ar   # the autoregressive twin`,
    "unmask generate -m ./my-checkpoint --steps 16 --temperature 0.5 --seed 7 'class Stack<T> {'",
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
    let plan: Plan<GenerateResult>;
    try {
      plan = planGenerate(loaded, flags.settings, promptIds);
    } catch (error) {
      throw asUsageError(error);
    }
    const outcome = await drive(
      plan.start,
      context.interrupt,
      flags.maxTimeMs,
      liveCanvasFor(flags, canvasLook(loaded, [0, plan.canvasLength])),
    );
    // generated ids, cut at the first end token (masks remain where a run was stopped)
    const { tokens } = outcome.result;
    const text = idsText(loaded, tokens);
    return finish(
      flags,
      loaded,
      outcome,
      {
        command: "generate",
        text,
        tokens: tokens.filter((t) => t !== config.maskTokenId).length,
        counts: { prompt: promptIds.length, canvas: plan.canvasLength },
        extra: { prompt },
      },
      loadMs,
      prompt + text,
    );
  } finally {
    await loaded.model.dispose();
  }
}

export const generate: Command = { spec, run };
