#!/usr/bin/env node
// `unmask`: the command line. Dispatches to a subcommand; every error ends here and is printed
// as `unmask: <message>` on stderr without a stack trace (UNMASK_DEBUG=1 shows it, and a line
// per decoding step), with exit code 2 for bad usage, 1 for a failure, 130 when Ctrl-C stopped
// the work.

import { getEventListeners } from "node:events";
import { helpText, optionTable, UsageError } from "./args.js";
import { type Command, Interrupted } from "./command.js";
import { packageVersion } from "./package.js";

/**
 * The subcommands, in the order `unmask --help` lists them. Each is loaded when it runs, so that
 * a command starts without the code of the others (training graphs, corpus tools...).
 */
const commands: { name: string; summary: string; load: () => Promise<Command> }[] = [
  {
    name: "generate",
    summary: "continue code from a prompt (argument, file or stdin)",
    load: async () => (await import("./generate.js")).generate,
  },
  {
    name: "infill",
    summary: "fill the holes of a file (<FILL> markers), or between --prefix and --suffix",
    load: async () => (await import("./infill.js")).infill,
  },
  {
    name: "edit",
    summary: "regenerate lines A-B of a file, the rest held fixed",
    load: async () => (await import("./edit.js")).edit,
  },
  {
    name: "fix",
    summary: "let the model find and rewrite the tokens it finds least likely; show a diff",
    load: async () => (await import("./edit.js")).fix,
  },
  {
    name: "serve",
    summary: "serve the models over HTTP: OpenAI-compatible completions, /infill, denoising stream",
    load: async () => (await import("./serve.js")).serve,
  },
  {
    name: "corpus",
    summary: "assemble the training corpus from the pinned npm packages; train the tokenizer",
    load: async () => (await import("./corpus.js")).corpus,
  },
  {
    name: "train",
    summary: "train a model on the corpus (diffusion, block diffusion or the AR twin), with resume",
    load: async () => (await import("./train.js")).trainCommand,
  },
  {
    name: "distill",
    summary: "write a distillation set: corpus prompts continued by a causal teacher's greedy text",
    load: async () => (await import("./distill.js")).distill,
  },
  {
    name: "eval",
    summary: "evaluate a model: held-out bits per byte, infill exact match, syntax-valid samples",
    load: async () => (await import("./eval.js")).evalCommand,
  },
  {
    name: "bench",
    summary: "measure speed: forward pass and training step against the engine's MatMul peak",
    load: async () => (await import("./bench.js")).bench,
  },
  {
    name: "pull",
    summary: "download a model repository from the Hugging Face hub into the local cache",
    load: async () => (await import("./pull.js")).pull,
  },
];

function topHelp(): string {
  const width = Math.max(...commands.map((c) => c.name.length)) + 4;
  return `Usage: unmask <command> [options]

Text-diffusion language models for code, on ONNX Runtime: a canvas of masks becomes code over a
few denoising steps.

Commands:
${commands.map((c) => `  ${c.name.padEnd(width)}${c.summary}`).join("\n")}

Options:
${optionTable([
  { name: "help", type: "boolean", short: "h", description: "show this help and exit" },
  { name: "version", type: "boolean", short: "v", description: "print the version and exit" },
]).join("\n")}

Run 'unmask <command> --help' for a command's options and examples.
`;
}

async function main(argv: string[], interrupt: AbortSignal): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    const about = name === "help" ? commands.find((c) => c.name === rest[0]) : undefined;
    if (about !== undefined) return main([about.name, "--help"], interrupt);
    process.stdout.write(topHelp());
    return name === undefined ? 2 : 0;
  }
  if (name === "--version" || name === "-v") {
    process.stdout.write(`unmask ${packageVersion()}\n`);
    return 0;
  }
  const entry = commands.find((c) => c.name === name);
  if (entry === undefined) {
    const what = name.startsWith("-")
      ? `unknown option ${name}`
      : `unknown command ${JSON.stringify(name)}`;
    throw new UsageError(
      `${what} (commands: ${commands.map((c) => c.name).join(", ")}; see 'unmask --help')`,
    );
  }
  const command = await entry.load();
  const options = rest.includes("--") ? rest.slice(0, rest.indexOf("--")) : rest;
  if (options.includes("--help") || options.includes("-h")) {
    process.stdout.write(helpText(command.spec));
    return 0;
  }
  return command.run(rest, { interrupt });
}

/** The exit code and message of an error that reached the top. */
export function report(error: unknown): number {
  if (error instanceof Interrupted) {
    process.stderr.write("unmask: interrupted\n");
    return 130;
  }
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`unmask: ${message}\n`);
  if (process.env.UNMASK_DEBUG && error instanceof Error && error.stack) {
    process.stderr.write(`${error.stack}\n`);
  }
  return error instanceof UsageError ? 2 : 1;
}

// Ctrl-C aborts the work in progress where it listens for that (a denoising run, training),
// which then stops at its next step, reports what it has and exits 130; elsewhere, and on a
// second Ctrl-C, the process exits 130 at once.
const interrupt = new AbortController();
process.on("SIGINT", () => {
  if (interrupt.signal.aborted || getEventListeners(interrupt.signal, "abort").length === 0) {
    process.exit(130);
  }
  interrupt.abort(new Interrupted());
});
// A closed pipe (`unmask generate … | head`) is not an error.
process.stdout.on("error", (error: NodeJS.ErrnoException) => {
  if (error.code === "EPIPE") process.exit(0);
  throw error;
});

main(process.argv.slice(2), interrupt.signal).then(
  (code) => {
    process.exitCode = interrupt.signal.aborted && code === 0 ? 130 : code;
  },
  (error: unknown) => {
    process.exitCode = report(error);
  },
);
