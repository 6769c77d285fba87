#!/usr/bin/env node
// `unmask`: the command line. Dispatches to a subcommand; every error ends here and is printed
// as `unmask: <message>` on stderr without a stack trace (UNMASK_DEBUG=1 shows it), with exit
// code 2 for bad usage, 1 for a failure, 130 when Ctrl-C stopped the work.

import { helpText, optionTable, UsageError } from "./args.js";
import { bench } from "./bench.js";
import type { Command } from "./command.js";
import { corpus } from "./corpus.js";
import { Interrupted } from "./decode.js";
import { edit, fix } from "./edit.js";
import { generate } from "./generate.js";
import { infill } from "./infill.js";
import { packageVersion } from "./model.js";

/** The subcommands, in the order `unmask --help` lists them. */
const commands: Command[] = [generate, infill, edit, fix, bench, corpus];

function topHelp(): string {
  const width = Math.max(...commands.map((c) => c.spec.name.length)) + 4;
  return `Usage: unmask <command> [options]

Text-diffusion language models for code, on ONNX Runtime: a canvas of masks becomes code over a
few denoising steps.

Commands:
${commands.map((c) => `  ${c.spec.name.padEnd(width)}${c.spec.summary}`).join("\n")}

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
    const about = name === "help" ? commands.find((c) => c.spec.name === rest[0]) : undefined;
    if (about !== undefined) return main([about.spec.name, "--help"], interrupt);
    process.stdout.write(topHelp());
    return name === undefined ? 2 : 0;
  }
  if (name === "--version" || name === "-v") {
    process.stdout.write(`unmask ${packageVersion()}\n`);
    return 0;
  }
  const command = commands.find((c) => c.spec.name === name);
  if (command === undefined) {
    const what = name.startsWith("-")
      ? `unknown option ${name}`
      : `unknown command ${JSON.stringify(name)}`;
    throw new UsageError(
      `${what} (commands: ${commands.map((c) => c.spec.name).join(", ")}; see 'unmask --help')`,
    );
  }
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

// Ctrl-C aborts the work in progress (which then prints what it has and exits 130); a second
// Ctrl-C exits at once.
const interrupt = new AbortController();
process.on("SIGINT", () => {
  if (interrupt.signal.aborted) process.exit(130);
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
