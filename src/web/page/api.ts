// The page's side of `unmask serve`: the models it offers, its health, the denoising stream; and
// every failure told in plain words (what happened, what to do), never a bare status code.

import { InputError } from "./request.js";
import { sseData } from "./sse.js";
import type { ApiError, DenoiseEvent, ResultEvent, StartEvent, StepEvent } from "./trace.js";

export interface Strategy {
  name: string;
  description: string;
  /** The body fields the strategy accepts (the server refuses the others). */
  options: string[];
}

export interface ModelInfo {
  id: string;
  decoder: "diffusion" | "autoregressive";
  context_length: number;
}

/** The server answered with an error (status and OpenAI-shaped body), or sent one mid-stream. */
export class ServerError extends Error {
  override name = "ServerError";
  constructor(
    readonly status: number,
    readonly error: ApiError,
    readonly retryAfter?: number,
  ) {
    super(error.message);
  }
}

/** No answer at all: the server is down, restarting or unreachable. */
export class Unreachable extends Error {
  override name = "Unreachable";
}

let apiKey = "";
/** The key for a server started with --api-key (sent as a Bearer token). */
export function setApiKey(key: string): void {
  apiKey = key.trim();
}

async function call(path: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  if (apiKey !== "") headers.set("Authorization", `Bearer ${apiKey}`);
  let response: Response;
  try {
    response = await fetch(path, { ...init, headers });
  } catch (e) {
    if (e instanceof DOMException && e.name === "AbortError") throw e;
    throw new Unreachable(`no answer from ${path}`, { cause: e });
  }
  if (!response.ok) {
    let error: ApiError = { message: `${response.status} ${response.statusText}` };
    try {
      const body = (await response.json()) as { error?: ApiError };
      if (body.error?.message) error = body.error;
    } catch {
      // not JSON (a proxy's page, say): keep the status line
    }
    const retry = Number(response.headers.get("Retry-After"));
    throw new ServerError(
      response.status,
      error,
      Number.isFinite(retry) && retry > 0 ? retry : undefined,
    );
  }
  return response;
}

export async function listModels(): Promise<ModelInfo[]> {
  const body = (await (await call("/v1/models")).json()) as { data: ModelInfo[] };
  return body.data;
}

/** The diffusion strategies, the default first, with the fields each one reads. */
export async function listStrategies(): Promise<Strategy[]> {
  return (await (await call("strategies.json")).json()) as Strategy[];
}

/** Whether the server answers its health check. */
export async function healthy(): Promise<boolean> {
  try {
    await call("/health");
    return true;
  } catch {
    return false;
  }
}

/** Streams one run; aborting `signal` closes the connection, which cancels the run on the server. */
export async function* denoise(
  body: Record<string, unknown>,
  signal: AbortSignal,
): AsyncGenerator<StartEvent | StepEvent | ResultEvent> {
  const response = await call("/v1/denoise", {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
    body: JSON.stringify(body),
    signal,
  });
  if (response.body === null) throw new Unreachable("the stream has no body");
  let ended = false;
  try {
    for await (const data of sseData(response.body)) {
      const event = JSON.parse(data) as DenoiseEvent | { error: ApiError };
      if ("error" in event) throw new ServerError(response.status, event.error);
      yield event;
      if (event.type === "result") ended = true;
    }
  } catch (e) {
    if (e instanceof ServerError || signal.aborted) throw e;
    throw new Unreachable("the connection broke during the run", { cause: e });
  }
  if (!ended) throw new Unreachable("the stream ended before the run finished");
}

/** What went wrong, for a person. */
export function plainWords(e: unknown): string {
  if (e instanceof InputError) return e.message;
  if (e instanceof Unreachable) {
    return (
      "The server does not answer — it may be stopped or restarting. " +
      "The page keeps checking and says so when it is back; then press Run again."
    );
  }
  if (e instanceof ServerError) {
    const { status, error, retryAfter } = e;
    const wait = retryAfter === undefined ? "" : ` Try again in ${retryAfter} s.`;
    if (status === 401) return "The server wants an API key: enter it under Settings.";
    if (status === 429) return `The server is busy: every decoding slot is taken.${wait}`;
    if (status === 503) return `The server is shutting down or overloaded.${wait}`;
    if (status === 504)
      return "The run took longer than the server's time limit; ask for fewer tokens or steps.";
    if (status >= 500 || error.type === "server_error")
      return `The server failed: ${error.message}`;
    if (status === 200) return `The run failed on the server: ${error.message}`;
    return `The server refused the request: ${error.message}`;
  }
  if (e instanceof Error) return `Something went wrong in the page: ${e.message}`;
  return "Something went wrong in the page.";
}
