// Command-line parsing on node's own util.parseArgs (strict: an unknown option is an error), the
// usage error every command throws for bad input, and the help text, generated from the same
// option table the parser reads so that `--help` cannot drift from what a command accepts.

import { parseArgs } from "node:util";

/** Bad command-line input: printed as `unmask: <message>`, exit code 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

export interface OptionSpec {
  name: string;
  type: "string" | "boolean";
  short?: string;
  /** The value's placeholder in help, e.g. "N" or "DIR". */
  value?: string;
  description: string;
}

export interface CommandSpec {
  /** e.g. "generate". */
  name: string;
  /** Usage lines after "unmask ", e.g. "generate [options] [PROMPT|-]". */
  usage: string[];
  /** Paragraphs between the usage and the options. */
  description: string;
  options: OptionSpec[];
  examples: string[];
  /** Sections after the examples (e.g. "JSON output"), as [title, body]. */
  sections?: [string, string][];
  /** Positional arguments allowed at most (default 0). */
  maxPositionals?: number;
}

export const helpOption: OptionSpec = {
  name: "help",
  type: "boolean",
  short: "h",
  description: "show this help and exit",
};

export interface Parsed {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
}

/** Parses `argv` against `spec`; throws UsageError naming the command on anything unexpected. */
export function parse(spec: CommandSpec, argv: string[]): Parsed {
  const options: Record<string, { type: "string" | "boolean"; short?: string }> = {};
  for (const o of [...spec.options, helpOption]) {
    options[o.name] = o.short === undefined ? { type: o.type } : { type: o.type, short: o.short };
  }
  const see = `(see 'unmask ${spec.name} --help')`;
  let parsed: Parsed;
  try {
    const args = negativeValuesJoined(argv, spec.options);
    parsed = parseArgs({ args, options, strict: true, allowPositionals: true });
  } catch (cause) {
    const code = (cause as { code?: unknown }).code;
    const message = cause instanceof Error ? cause.message : String(cause);
    const unknown = /^Unknown option '([^']+)'/.exec(message);
    if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION" && unknown) {
      throw new UsageError(`${spec.name}: unknown option ${unknown[1]} ${see}`);
    }
    if (typeof code === "string" && code.startsWith("ERR_PARSE_ARGS")) {
      const oneLine = message.replace(/\.?\n/g, "; ").replace(/\.$/, "");
      throw new UsageError(`${spec.name}: ${oneLine} ${see}`);
    }
    throw cause;
  }
  const max = spec.maxPositionals ?? 0;
  if (parsed.values.help !== true && parsed.positionals.length > max) {
    const extra = parsed.positionals[max];
    throw new UsageError(`${spec.name}: unexpected argument ${JSON.stringify(extra)} ${see}`);
  }
  return parsed;
}

/**
 * `--steps -1` as `--steps=-1`: node's parser takes a value that starts with a dash for an option
 * (and says the argument is ambiguous); a negative number after an option that takes a value is
 * that value, so that the option's own check can say what is wrong with it.
 */
function negativeValuesJoined(argv: string[], specs: OptionSpec[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--") {
      out.push(...argv.slice(i));
      break;
    }
    const option = specs.find(
      (o) =>
        o.type === "string" &&
        (arg === `--${o.name}` || (o.short !== undefined && arg === `-${o.short}`)),
    );
    const next = argv[i + 1];
    if (option !== undefined && next !== undefined && /^-(\d|\.\d|Infinity)/.test(next)) {
      out.push(`--${option.name}=${next}`);
      i++;
    } else {
      out.push(arg);
    }
  }
  return out;
}

export function stringOption(parsed: Parsed, name: string): string | undefined {
  const v = parsed.values[name];
  return typeof v === "string" ? v : undefined;
}

export function flag(parsed: Parsed, name: string): boolean {
  return parsed.values[name] === true;
}

/** An integer option in [min, max], or undefined when absent. */
export function intOption(
  parsed: Parsed,
  name: string,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
): number | undefined {
  const raw = stringOption(parsed, name);
  if (raw === undefined) return undefined;
  const v = /^[+-]?\d+$/.test(raw.trim()) ? Number(raw) : Number.NaN;
  if (!Number.isSafeInteger(v)) {
    throw new UsageError(`--${name}: expected an integer, got ${JSON.stringify(raw)}`);
  }
  if (v < min || v > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `≥ ${min}` : `in [${min}, ${max}]`;
    throw new UsageError(`--${name}: expected an integer ${range}, got ${v}`);
  }
  return v;
}

/** A finite number option, or undefined when absent; `check` returns a complaint or null. */
export function numberOption(
  parsed: Parsed,
  name: string,
  check: (v: number) => string | null = () => null,
): number | undefined {
  const raw = stringOption(parsed, name);
  if (raw === undefined) return undefined;
  const v = raw.trim() === "" ? Number.NaN : Number(raw);
  if (!Number.isFinite(v)) {
    throw new UsageError(`--${name}: expected a number, got ${JSON.stringify(raw)}`);
  }
  const complaint = check(v);
  if (complaint !== null) throw new UsageError(`--${name}: ${complaint}, got ${v}`);
  return v;
}

/** The full `--help` text of a command. */
export function helpText(spec: CommandSpec): string {
  const lines: string[] = [];
  lines.push(`Usage: ${spec.usage.map((u) => `unmask ${u}`).join("\n       ")}`, "");
  lines.push(spec.description.trim(), "");
  lines.push("Options:");
  lines.push(...optionTable([...spec.options, helpOption]));
  if (spec.examples.length > 0) {
    lines.push("", "Examples:", ...spec.examples.map((e) => `  ${e}`));
  }
  for (const [title, body] of spec.sections ?? []) {
    lines.push("", `${title}:`, ...body.trimEnd().split("\n"));
  }
  return `${lines.join("\n")}\n`;
}

/** Options as an aligned two-column list, descriptions wrapped at 100 columns. */
export function optionTable(options: OptionSpec[]): string[] {
  const left = options.map((o) => {
    const long = `--${o.name}${o.type === "string" ? ` ${o.value ?? "VALUE"}` : ""}`;
    return `  ${o.short === undefined ? "    " : `-${o.short}, `}${long}`;
  });
  const width = Math.max(...left.map((l) => l.length)) + 2;
  const out: string[] = [];
  options.forEach((o, i) => {
    const wrapped = wrap(o.description, 100 - width);
    out.push(left[i].padEnd(width) + wrapped[0]);
    for (const more of wrapped.slice(1)) out.push(" ".repeat(width) + more);
  });
  return out;
}

/** Greedy word wrap. */
export function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(/\s+/).filter((w) => w !== "")) {
    if (line !== "" && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else {
      line = line === "" ? word : `${line} ${word}`;
    }
  }
  lines.push(line);
  return lines;
}
