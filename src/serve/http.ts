// HTTP plumbing of the server on node:http: OpenAI-shaped JSON errors, bodies read with a size
// limit, JSON answers, Server-Sent Events, and the API key compared in constant time.

import { createHash, timingSafeEqual } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";

/** An answer to the client as an OpenAI-shaped error: `{ error: { message, type, param, code } }`. */
export class ApiError extends Error {
  override name = "ApiError";
  constructor(
    readonly status: number,
    readonly type: string,
    readonly code: string,
    message: string,
    readonly param: string | null = null,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }

  body(): { error: { message: string; type: string; param: string | null; code: string } } {
    return {
      error: { message: this.message, type: this.type, param: this.param, code: this.code },
    };
  }
}

export const invalid = (param: string | null, message: string, code = "invalid_value") =>
  new ApiError(400, "invalid_request_error", code, message, param);

/** Reads the body, at most `limit` bytes (413 beyond, without reading the rest). */
export async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers["content-length"]);
  const tooLarge = () =>
    new ApiError(
      413,
      "invalid_request_error",
      "body_too_large",
      `the body is larger than ${limit} bytes`,
    );
  if (declared > limit) throw tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw tooLarge();
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/** The body as a JSON object (400 `invalid_json` otherwise). */
export function parseJsonObject(body: Buffer): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(body.toString("utf8"));
  } catch (cause) {
    throw invalid(null, `the body is not valid JSON: ${(cause as Error).message}`, "invalid_json");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw invalid(null, "the body must be a JSON object", "invalid_json");
  }
  return value as Record<string, unknown>;
}

export function sendJson(
  res: ServerResponse,
  status: number,
  value: unknown,
  headers: Record<string, string> = {},
): void {
  const body = JSON.stringify(value);
  res.writeHead(status, {
    "Content-Type": "application/json",
    "Content-Length": Buffer.byteLength(body),
    ...headers,
  });
  res.end(body);
}

export function sendError(res: ServerResponse, error: ApiError): void {
  sendJson(res, error.status, error.body(), error.headers);
}

/** A Server-Sent Events stream: `data: <json>` events, written as they come. */
export class EventStream {
  constructor(private readonly res: ServerResponse) {
    res.writeHead(200, {
      "Content-Type": "text/event-stream",
      "Cache-Control": "no-cache",
      Connection: "keep-alive",
    });
    res.flushHeaders();
  }

  send(value: unknown): void {
    if (!this.res.writableEnded) this.res.write(`data: ${JSON.stringify(value)}\n\n`);
  }

  /** Ends the stream, after `data: [DONE]` when `done`. */
  end(done: boolean): void {
    if (this.res.writableEnded) return;
    if (done) this.res.write("data: [DONE]\n\n");
    this.res.end();
  }
}

/** Whether `given` (an Authorization header) carries `key`, compared in constant time. */
export function keyMatches(given: string | undefined, key: string): boolean {
  const m = /^Bearer\s+(.+)$/i.exec(given ?? "");
  if (m === null) return false;
  // equal-length digests, so that neither the length nor the content leaks through timing
  const a = createHash("sha256").update(m[1].trim()).digest();
  const b = createHash("sha256").update(key).digest();
  return timingSafeEqual(a, b);
}
