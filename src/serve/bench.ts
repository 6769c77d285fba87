// The server's throughput under concurrency, measured side by side in one run: the same
// completion requests sent over loopback HTTP by one client, then by `clients` clients at once;
// tokens/s over all clients for each, and their ratio (what sharing forward passes buys).

import type { LoadedModel } from "../host/models.js";
import { UnmaskServer } from "./server.js";

export interface ServeBenchOptions {
  models: LoadedModel[];
  /** The model the requests name (default the server's default). */
  model?: string;
  /** Concurrent clients of the second measurement (default 8). */
  clients?: number;
  /** Requests each client sends per round, one after the other (default 4). */
  requests?: number;
  /**
   * Rounds, each timing one client then all clients (default 2): alternating them spreads a
   * change in the machine's load over both measurements.
   */
  rounds?: number;
  /** The request body's decoding fields (default { max_tokens: 32 }). */
  body?: Record<string, unknown>;
  prompt: string;
  progress?: (message: string) => void;
}

export interface ServeSpeed {
  clients: number;
  requests: number;
  completion_tokens: number;
  seconds: number;
  tokens_per_s: number;
}

export interface ServeBenchResult {
  model: string;
  request: Record<string, unknown>;
  single: ServeSpeed;
  concurrent: ServeSpeed;
  /** Tokens/s over all clients, concurrent against single. */
  throughput_ratio: number;
  /** Forward calls the decoders asked for and engine calls made, in the concurrent run. */
  batching: { calls: number; batches: number; rows_per_call: number };
}

/** Two measurements as one: their tokens and seconds added. */
function add(a: ServeSpeed | undefined, b: ServeSpeed): ServeSpeed {
  if (a === undefined) return b;
  const tokens = a.completion_tokens + b.completion_tokens;
  const seconds = a.seconds + b.seconds;
  return {
    clients: b.clients,
    requests: a.requests + b.requests,
    completion_tokens: tokens,
    seconds,
    tokens_per_s: tokens / seconds,
  };
}

export async function benchServe(o: ServeBenchOptions): Promise<ServeBenchResult> {
  const clients = o.clients ?? 8;
  const requests = o.requests ?? 4;
  const rounds = o.rounds ?? 2;
  const server = new UnmaskServer({ models: o.models, slots: clients, queue: clients });
  const address = await server.listen(0, "127.0.0.1");
  const url = `http://127.0.0.1:${address.port}/v1/completions`;
  const model = o.model ?? o.models[0].name;
  const body = { max_tokens: 32, ...o.body, model, prompt: o.prompt };
  const ask = async (seed: number): Promise<number> => {
    const res = await fetch(url, { method: "POST", body: JSON.stringify({ ...body, seed }) });
    const json = (await res.json()) as { usage?: { completion_tokens: number }; error?: unknown };
    if (res.status !== 200 || json.usage === undefined) {
      throw new Error(`bench serve: request failed (${res.status}): ${JSON.stringify(json)}`);
    }
    return json.usage.completion_tokens;
  };
  const measure = async (n: number): Promise<ServeSpeed> => {
    o.progress?.(`${n} client${n === 1 ? "" : "s"} × ${requests} requests…`);
    const t0 = performance.now();
    const counts = await Promise.all(
      Array.from({ length: n }, async (_, c) => {
        let tokens = 0;
        for (let k = 0; k < requests; k++) tokens += await ask(c * 1000 + k);
        return tokens;
      }),
    );
    const seconds = (performance.now() - t0) / 1000;
    const tokens = counts.reduce((a, b) => a + b, 0);
    return {
      clients: n,
      requests: n * requests,
      completion_tokens: tokens,
      seconds,
      tokens_per_s: tokens / seconds,
    };
  };
  try {
    await ask(-1); // warm-up: the first run of a graph is slower
    let single: ServeSpeed | undefined;
    let concurrent: ServeSpeed | undefined;
    let calls = 0;
    let batches = 0;
    for (let round = 0; round < rounds; round++) {
      single = add(single, await measure(1));
      const before = { ...server.batchStats()[model] };
      concurrent = add(concurrent, await measure(clients));
      const after = server.batchStats()[model];
      calls += after.calls - before.calls;
      batches += after.batches - before.batches;
    }
    if (single === undefined || concurrent === undefined) throw new Error("bench serve: no rounds");
    return {
      model,
      request: { ...body, prompt: undefined },
      single,
      concurrent,
      throughput_ratio: concurrent.tokens_per_s / single.tokens_per_s,
      batching: { calls, batches, rows_per_call: batches > 0 ? calls / batches : 0 },
    };
  } finally {
    await server.shutdown();
  }
}
