// `unmask serve`: the HTTP server (src/serve) on the embedded pair or the folders named, until
// SIGTERM or Ctrl-C, which stop it gracefully (new requests refused, runs in flight finished or
// cancelled after a grace period, exit 0).

import { type LoadedModel, loadModel, resolveModelDir } from "../host/models.js";
import { UnmaskServer } from "../serve/server.js";
import { pageAsset } from "../web/assets.js";
import {
  type CommandSpec,
  intOption,
  numberOption,
  type Parsed,
  parse,
  stringOption,
  UsageError,
} from "./args.js";
import type { Command, Context } from "./command.js";
import { asUsageError, type LoadFlags, loadFlags, loadOptions } from "./decode.js";

const spec: CommandSpec = {
  name: "serve",
  usage: ["serve [options]"],
  description: `
Serves the models over HTTP: OpenAI-compatible POST /v1/completions and /v1/chat/completions
(stream: true for Server-Sent Events), GET /v1/models, llama.cpp-shaped POST /infill for editor
plugins, POST /v1/denoise (every denoising step as an event), GET /health, and the playground
page at /. By default the embedded pair is served (unmask-code and its AR twin unmask-code-ar);
--model and --ar-model serve other checkpoint folders, by their folder names. Concurrent requests
share forward passes (batched rows); beyond --slots running and --queue waiting a request gets
429 with Retry-After. Listens on 127.0.0.1 unless --host says otherwise; with an API key
(--api-key or UNMASK_API_KEY) the API routes need "Authorization: Bearer KEY". SIGTERM or Ctrl-C
stops taking requests, lets running ones finish (cancelled after 10 s) and exits 0.`,
  options: [
    {
      name: "host",
      type: "string",
      value: "ADDR",
      description: "address to listen on (default 127.0.0.1)",
    },
    {
      name: "port",
      type: "string",
      value: "N",
      description: "port (default 8080; 0: any free port)",
    },
    {
      name: "model",
      type: "string",
      short: "m",
      value: "DIR",
      description: "checkpoint folder to serve instead of the embedded unmask-code",
    },
    {
      name: "ar-model",
      type: "string",
      value: "DIR",
      description: "checkpoint folder to serve instead of the embedded AR twin unmask-code-ar",
    },
    // --family reads the --model folder only: the AR twin is of its own family
    ...loadOptions.map((o) =>
      o.name === "family" ? { ...o, description: `${o.description}; the --model folder only` } : o,
    ),
    {
      name: "api-key",
      type: "string",
      value: "KEY",
      description: "require this API key (default: $UNMASK_API_KEY, else none)",
    },
    {
      name: "slots",
      type: "string",
      value: "N",
      description: "requests decoding at once (default 8)",
    },
    {
      name: "queue",
      type: "string",
      value: "N",
      description: "requests waiting for a slot at most (default 32)",
    },
    {
      name: "time-limit",
      type: "string",
      value: "SECONDS",
      description: "a request's decoding stops after this long (default 60)",
    },
  ],
  examples: [
    "unmask serve                                  # http://127.0.0.1:8080, the embedded pair",
    "unmask serve --port 9000 --api-key secret",
    `curl -s localhost:8080/v1/completions -d '{"prompt": "function add(a, b) {", "max_tokens": 32}'`,
    `curl -sN localhost:8080/v1/denoise -d '{"prompt": "const xs = [", "strategy": "fast-dllm"}'`,
  ],
  sections: [
    ["HTTP contract", '  Routes, bodies, events and errors: README.md, section "unmask serve".'],
  ],
};

/**
 * The pair --model and --ar-model name (default: the embedded pair), loaded as `load` says
 * (its family for the diffusion model only).
 */
export async function loadPair(parsed: Parsed, load: LoadFlags = {}): Promise<LoadedModel[]> {
  let dirs: string[];
  try {
    dirs = [
      resolveModelDir(stringOption(parsed, "model"), "diffusion", "--model"),
      resolveModelDir(stringOption(parsed, "ar-model"), "autoregressive", "--ar-model"),
    ];
  } catch (error) {
    throw asUsageError(error);
  }
  const { family: _, ...engine } = load;
  return [await loadModel(dirs[0], load), await loadModel(dirs[1], engine)];
}

async function run(argv: string[], context: Context): Promise<number> {
  const parsed = parse(spec, argv);
  const host = stringOption(parsed, "host") ?? "127.0.0.1";
  const port = intOption(parsed, "port", 0, 65535) ?? 8080;
  const slots = intOption(parsed, "slots", 1) ?? 8;
  const queue = intOption(parsed, "queue", 0) ?? 32;
  const timeLimit =
    numberOption(parsed, "time-limit", (v) => (v > 0 ? null : "expected seconds > 0")) ?? 60;
  const apiKey = stringOption(parsed, "api-key") ?? process.env.UNMASK_API_KEY;
  if (apiKey === "") throw new UsageError("--api-key: empty (give a key, or leave it out)");
  const load = loadFlags(parsed);
  const models = await loadPair(parsed, load);
  const names = models.map((m) => m.name);
  if (new Set(names).size < names.length) {
    throw new UsageError(
      `--model and --ar-model: two folders named ${names[0]}; serve folders with distinct names`,
    );
  }
  const options: ConstructorParameters<typeof UnmaskServer>[0] = {
    models,
    slots,
    queue,
    timeLimitMs: timeLimit * 1000,
    log: (line) => process.stderr.write(`unmask serve: ${line}\n`),
  };
  if (apiKey !== undefined) options.apiKey = apiKey;
  options.assets = pageAsset;
  const server = new UnmaskServer(options);
  let address: Awaited<ReturnType<UnmaskServer["listen"]>>;
  try {
    address = await server.listen(port, host);
  } catch (cause) {
    throw new UsageError(`--port ${port}: cannot listen on ${host}: ${(cause as Error).message}`, {
      cause,
    });
  }
  const shown = address.family === "IPv6" ? `[${address.address}]` : address.address;
  process.stderr.write(
    `unmask serve: listening on http://${shown}:${address.port} (models: ${names.join(", ")}${load.quant === undefined ? "" : `; ${load.quant} weights`}${load.device === undefined ? "" : `; on ${load.device}`}${apiKey === undefined ? "" : "; API key required"})\n`,
  );
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once("SIGTERM", stop);
    context.interrupt.addEventListener("abort", stop, { once: true });
  });
  process.stderr.write("unmask serve: shutting down\n");
  await server.shutdown();
  for (const m of models) await m.model.dispose();
  return 0;
}

export const serve: Command = { spec, run };
