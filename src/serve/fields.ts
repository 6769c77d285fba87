// Request bodies as the decode service's settings: each known field's JSON type is checked here
// (a wrong type is a 400 naming the field), ranges and sense by the service's one validator
// (whose errors are mapped back to the field names the client used). Unknown fields are ignored,
// as OpenAI clients expect.

import { DecodeOptionError } from "../diffusion/errors.js";
import type { PresetName } from "../diffusion/options.js";
import { IgnoredOptionError } from "../host/errors.js";
import type { Decoder } from "../host/models.js";
import { checkSettings, type DecodeSettings } from "../host/options.js";
import { ApiError, invalid } from "./http.js";

export type Body = Record<string, unknown>;

type Kind = "string" | "number" | "integer" | "boolean" | "array" | "object";

function isKind(value: unknown, kind: Kind): boolean {
  switch (kind) {
    case "integer":
      return typeof value === "number" && Number.isSafeInteger(value);
    case "number":
      return typeof value === "number" && Number.isFinite(value);
    case "array":
      return Array.isArray(value);
    case "object":
      return typeof value === "object" && value !== null && !Array.isArray(value);
    default:
      return typeof value === kind;
  }
}

/** A field of one of `kinds`, or undefined when absent or null. */
export function field<T>(body: Body, name: string, ...kinds: Kind[]): T | undefined {
  const value = body[name];
  if (value === undefined || value === null) return undefined;
  if (!kinds.some((k) => isKind(value, k))) {
    throw invalid(
      name,
      `${name}: expected ${kinds.join(" or ")}, got ${JSON.stringify(value)}`,
      "invalid_type",
    );
  }
  return value as T;
}

/** The JSON field behind each settings parameter (the length's field depends on the route). */
const fieldOf: Record<string, string> = {
  strategy: "strategy",
  preset: "strategy",
  steps: "steps",
  blockLength: "block_length",
  threshold: "threshold",
  temperature: "temperature",
  seed: "seed",
  topK: "top_k",
  topP: "top_p",
  maxFraction: "max_fraction",
};

/** A decode service error as a 400 naming the client's field (`lengthField`: max_tokens or n_predict). */
export function asApiError(error: unknown, lengthField: string): unknown {
  if (!(error instanceof DecodeOptionError)) return error;
  const name =
    error.parameter === "length" || error.parameter === "genLength"
      ? lengthField
      : (fieldOf[error.parameter] ?? error.parameter);
  const message = `${name}: ${error.message.slice(error.parameter.length + 2)}`;
  return invalid(
    name,
    message,
    error instanceof IgnoredOptionError ? "ignored_option" : "invalid_value",
  );
}

/** The decoding fields of a body as settings for `decoder`, checked (`lengthField` names the length). */
export function settingsOf(body: Body, decoder: Decoder, lengthField: string): DecodeSettings {
  const s: DecodeSettings = { decoder };
  const strategy = field<string>(body, "strategy", "string");
  if (strategy !== undefined) s.strategy = strategy as PresetName;
  const numbers: [keyof DecodeSettings, string, Kind][] = [
    ["steps", "steps", "integer"],
    ["blockLength", "block_length", "integer"],
    ["threshold", "threshold", "number"],
    ["temperature", "temperature", "number"],
    ["topK", "top_k", "integer"],
    ["topP", "top_p", "number"],
    ["seed", "seed", "integer"],
    ["length", lengthField, "integer"],
  ];
  for (const [key, name, kind] of numbers) {
    const v = field<number>(body, name, kind);
    if (v !== undefined) (s as unknown as Record<string, unknown>)[key] = v;
  }
  try {
    return checkSettings(s);
  } catch (error) {
    throw asApiError(error, lengthField);
  }
}

/** `stop`: a string or up to 4 strings (empty ones dropped). */
export function stopsOf(body: Body): string[] {
  const stop = field<string | unknown[]>(body, "stop", "string", "array");
  if (stop === undefined) return [];
  const list = typeof stop === "string" ? [stop] : stop;
  if (list.length > 4 || !list.every((s) => typeof s === "string")) {
    throw invalid("stop", "stop: expected a string or an array of at most 4 strings");
  }
  return (list as string[]).filter((s) => s !== "");
}

/** Refuses `n` other than 1 (one choice per request). */
export function checkN(body: Body): void {
  const n = field<number>(body, "n", "integer");
  if (n !== undefined && n !== 1) throw invalid("n", `n: only 1 choice per request, got ${n}`);
}

export function notFound(model: string, known: string[]): ApiError {
  return new ApiError(
    404,
    "invalid_request_error",
    "model_not_found",
    `model ${JSON.stringify(model)} is not loaded (loaded: ${known.join(", ")})`,
    "model",
  );
}
