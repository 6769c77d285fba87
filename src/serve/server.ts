// `unmask serve`: an HTTP server on node:http over the decode service. OpenAI-compatible
// completions and chat (SSE streaming in OpenAI's chunk format), llama.cpp-shaped /infill, the
// denoising stream the playground draws, /v1/models, /health and the page itself. Concurrent
// requests share forward passes (BatchingModel) within a bounded number of slots and a bounded
// queue; a client that goes away cancels its run at the next step. The contract, with every
// event's shape: /work/coord/api-server.md (and the README's "unmask serve" section).

import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import {
  type FixResult,
  fimPrompt,
  type GenerateResult,
  type InfillPart,
  type InfillResult,
} from "../diffusion/api.js";
import { renderCanvas } from "../diffusion/denoise.js";
import { resolveOptions } from "../diffusion/options.js";
import type { DecodeResult, PositionChange, StepEvent } from "../diffusion/types.js";
import { type ChatMessage, plainChatPrompt } from "../format/template.js";
import {
  type FixBounds,
  fimOf,
  type Outcome,
  type Plan,
  planFix,
  planGenerate,
  planInfill,
  round,
  supervise,
} from "../host/decode.js";
import { type Decoder, decoderOf, type LoadedModel } from "../host/models.js";
import { type DecodeSettings, diffusionOptions } from "../host/options.js";
import { endTokenIds } from "../model/config.js";
import type { PageAsset } from "../web/assets.js";
import { BatchingModel } from "./batch.js";
import { asApiError, type Body, checkN, field, notFound, settingsOf, stopsOf } from "./fields.js";
import {
  ApiError,
  EventStream,
  invalid,
  keyMatches,
  parseJsonObject,
  readBody,
  sendError,
  sendJson,
} from "./http.js";
import { QueueFullError, Slots } from "./slots.js";
import { canvasPieces, SettledText } from "./text.js";

export interface ServeOptions {
  /** The models to serve; the first diffusion model is the default. */
  models: LoadedModel[];
  /** Required as `Authorization: Bearer KEY` on the API routes when set. */
  apiKey?: string;
  /** Requests decoding at once (default 8). */
  slots?: number;
  /** Requests waiting for a slot at most (default 32); beyond, 429. */
  queue?: number;
  /** Largest request body in bytes (default 1 MiB). */
  maxBodyBytes?: number;
  /** A request's decoding stops after this long (default 60 s). */
  timeLimitMs?: number;
  /** Rows of one batched forward call at most (default 16; 1 turns batching off). */
  maxBatchRows?: number;
  /**
   * How long a free engine waits for the decodes of its last batched call to come back when
   * fewer are queued (their clients between two requests), in ms (default 5; 0: never waits).
   */
  gatherMs?: number;
  /** The playground's files by URL path (`/` is the page). */
  assets?: (pathname: string) => Promise<PageAsset | undefined>;
  /** Where the server notes what it does (default: nowhere). */
  log?: (line: string) => void;
}

interface Served {
  loaded: LoadedModel;
  decoder: Decoder;
  batching: BatchingModel;
}

/** Why a run was aborted by the server (not by the time limit). */
class ClientGone extends Error {}
class StopMatched extends Error {}
class ShuttingDown extends Error {}

const defaultMaxTokens = 64;
const defaultInfillTokens = 32;

export class UnmaskServer {
  readonly http: Server;
  private readonly models = new Map<string, Served>();
  private readonly defaultModel: string;
  readonly slots: Slots;
  private readonly inFlight = new Set<AbortController>();
  private closing = false;
  private readonly o: Required<Omit<ServeOptions, "apiKey" | "assets">> &
    Pick<ServeOptions, "apiKey" | "assets">;

  constructor(options: ServeOptions) {
    this.o = {
      slots: 8,
      queue: 32,
      maxBodyBytes: 1 << 20,
      timeLimitMs: 60_000,
      maxBatchRows: 16,
      gatherMs: 5,
      log: () => {},
      ...options,
    };
    for (const loaded of options.models) {
      const batching = new BatchingModel(
        loaded.model,
        this.o.maxBatchRows,
        undefined,
        this.o.gatherMs,
      );
      this.models.set(loaded.name, {
        loaded: { ...loaded, model: batching },
        decoder: decoderOf(loaded.config),
        batching,
      });
    }
    const first =
      options.models.find((m) => decoderOf(m.config) === "diffusion") ?? options.models[0];
    if (first === undefined) throw new Error("serve: no model to serve");
    this.defaultModel = first.name;
    this.slots = new Slots(this.o.slots, this.o.queue);
    this.http = createServer((req, res) => {
      this.handle(req, res).catch((error: unknown) => this.fail(res, error));
    });
  }

  /** Listens on host:port (port 0: any free one); resolves to the address. */
  listen(port: number, host: string): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.http.once("error", reject);
      this.http.listen(port, host, () => {
        this.http.off("error", reject);
        resolve(this.http.address() as AddressInfo);
      });
    });
  }

  /**
   * Graceful shutdown: new requests get 503, waiting ones are refused, runs in flight may finish
   * within `graceMs` and are cancelled after it; resolves once the server is closed.
   */
  async shutdown(graceMs = 10_000): Promise<void> {
    this.closing = true;
    this.slots.drain(new ShuttingDown());
    const closed = new Promise<void>((resolve) => this.http.close(() => resolve()));
    this.http.closeIdleConnections();
    const deadline = setTimeout(() => {
      for (const c of this.inFlight) c.abort(new ShuttingDown());
    }, graceMs);
    while (this.inFlight.size > 0) await new Promise((r) => setTimeout(r, 10));
    clearTimeout(deadline);
    this.http.closeAllConnections();
    await closed;
  }

  /** Batching counts of every model (forward calls asked, engine calls made). */
  batchStats(): Record<string, { calls: number; batches: number }> {
    return Object.fromEntries([...this.models].map(([name, m]) => [name, m.batching.stats]));
  }

  private fail(res: ServerResponse, error: unknown): void {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    if (error instanceof ApiError) {
      sendError(res, error);
      return;
    }
    // never a stack trace to a client: the message stays in the server's log
    this.o.log(
      `internal error: ${error instanceof Error ? (error.stack ?? error.message) : error}`,
    );
    sendError(res, new ApiError(500, "server_error", "internal_error", "internal server error"));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://localhost");
    const path = url.pathname;
    const method = req.method ?? "GET";
    if (method === "GET" && path === "/health") {
      const status = this.closing ? "shutting_down" : "ok";
      sendJson(res, this.closing ? 503 : 200, {
        status,
        models: [...this.models.keys()],
        slots: { busy: this.slots.state.busy, total: this.slots.total },
        queue: { waiting: this.slots.state.waiting, max: this.slots.maxQueue },
      });
      return;
    }
    const routes: Record<string, (body: Body, res: ServerResponse) => Promise<void>> = {
      "/v1/completions": (b, r) => this.completions(b, r, "text"),
      "/v1/chat/completions": (b, r) => this.completions(b, r, "chat"),
      "/infill": (b, r) => this.infill(b, r),
      "/v1/denoise": (b, r) => this.denoise(b, r),
    };
    const api = path in routes || path === "/v1/models";
    if (!api) {
      const asset = method === "GET" ? await this.o.assets?.(path) : undefined;
      if (asset === undefined) {
        throw new ApiError(404, "invalid_request_error", "not_found", `no route ${method} ${path}`);
      }
      res.writeHead(200, {
        "Content-Type": asset.contentType,
        "Content-Length": asset.body.length,
      });
      res.end(asset.body);
      return;
    }
    if (this.o.apiKey !== undefined && !keyMatches(req.headers.authorization, this.o.apiKey)) {
      throw new ApiError(
        401,
        "authentication_error",
        "invalid_api_key",
        "missing or wrong API key (send Authorization: Bearer KEY)",
      );
    }
    if (this.closing) {
      throw new ApiError(503, "server_busy", "shutting_down", "the server is shutting down", null, {
        "Retry-After": "5",
      });
    }
    if (path === "/v1/models") {
      if (method !== "GET") throw methodNotAllowed(method, path);
      sendJson(res, 200, { object: "list", data: [...this.models.values()].map(modelCard) });
      return;
    }
    if (method !== "POST") throw methodNotAllowed(method, path);
    const body = parseJsonObject(await readBody(req, this.o.maxBodyBytes));
    await routes[path](body, res);
  }

  private modelFor(body: Body): Served {
    const name = field<string>(body, "model", "string") ?? this.defaultModel;
    const served = this.models.get(name);
    if (served === undefined) throw notFound(name, [...this.models.keys()]);
    return served;
  }

  /**
   * Runs a plan in a slot: the client's going away, a stop sequence (`onStep` returning true)
   * and the time limit end it at the next step. Resolves to the outcome, or to null when the
   * client is gone.
   */
  private async run<R extends DecodeResult>(
    res: ServerResponse,
    plan: Plan<R>,
    onStep: (event: StepEvent) => boolean,
  ): Promise<Outcome<R> | null> {
    const controller = new AbortController();
    const onClose = () => {
      if (!res.writableFinished) controller.abort(new ClientGone());
    };
    res.on("close", onClose);
    this.inFlight.add(controller);
    let release: (() => void) | undefined;
    try {
      try {
        release = await this.slots.acquire(controller.signal);
      } catch (error) {
        if (error instanceof QueueFullError) {
          throw new ApiError(
            429,
            "server_busy",
            "queue_full",
            `the server is busy: ${error.message}`,
            null,
            {
              "Retry-After": "1",
            },
          );
        }
        if (error instanceof ShuttingDown) {
          throw new ApiError(
            503,
            "server_busy",
            "shutting_down",
            "the server is shutting down",
            null,
            {
              "Retry-After": "5",
            },
          );
        }
        if (error instanceof ClientGone) return null;
        throw error;
      }
      const run = supervise(plan.start, {
        signal: controller.signal,
        maxTimeMs: this.o.timeLimitMs,
      });
      for (;;) {
        const next = await run.next();
        if (next.done === true) {
          const reason = controller.signal.reason;
          if (reason instanceof ClientGone) return null;
          if (reason instanceof ShuttingDown) {
            throw new ApiError(
              503,
              "server_busy",
              "shutting_down",
              "the server shut down during the request",
            );
          }
          return next.value;
        }
        if (onStep(next.value)) controller.abort(new StopMatched());
      }
    } finally {
      release?.();
      this.inFlight.delete(controller);
      res.off("close", onClose);
    }
  }

  private timeout(): ApiError {
    return new ApiError(
      504,
      "timeout_error",
      "request_timeout",
      `decoding took longer than the server's limit of ${this.o.timeLimitMs / 1000} s`,
    );
  }

  // -------------------------------------------------------------------------------------------
  // /v1/completions and /v1/chat/completions

  private async completions(body: Body, res: ServerResponse, kind: "text" | "chat"): Promise<void> {
    const served = this.modelFor(body);
    const { loaded } = served;
    checkN(body);
    const stream = field<boolean>(body, "stream", "boolean") ?? false;
    const stops = stopsOf(body);
    const settings = settingsOf(body, served.decoder, "max_tokens");
    const prompt = kind === "text" ? promptOf(body) : chatPromptOf(body, loaded);
    const promptIds = loaded.tokenizer.encode(prompt);
    let plan: Plan<GenerateResult>;
    try {
      plan = planGenerate(loaded, settings, promptIds, defaultMaxTokens);
    } catch (error) {
      throw asApiError(error, "max_tokens");
    }
    const id = `${kind === "text" ? "cmpl" : "chatcmpl"}-${randomUUID()}`;
    const created = Math.floor(Date.now() / 1000);
    const object = kind === "text" ? "text_completion" : "chat.completion";
    const settled = new SettledText(
      loaded,
      plan.view,
      maskOf(served),
      stops,
      stepwise(settings, stream, stops),
    );
    const chunk = (
      text: string | null,
      finish: string | null,
      extra: Record<string, unknown> = {},
    ) => {
      const choice =
        kind === "text"
          ? { index: 0, text: text ?? "", finish_reason: finish, logprobs: null }
          : {
              index: 0,
              delta: text === null ? {} : { content: text },
              finish_reason: finish,
              logprobs: null,
            };
      return {
        id,
        object: `${object}${kind === "chat" ? ".chunk" : ""}`,
        created,
        model: loaded.name,
        choices: [choice],
        ...extra,
      };
    };
    const events = stream ? new EventStream(res) : null;
    if (events !== null && kind === "chat")
      events.send({
        ...chunk(null, null),
        choices: [
          {
            index: 0,
            delta: { role: "assistant", content: "" },
            finish_reason: null,
            logprobs: null,
          },
        ],
      });
    let outcome: Outcome<GenerateResult> | null;
    try {
      outcome = await this.run(res, plan, (event) => {
        const delta = settled.step(event.canvas);
        if (delta !== "") events?.send(chunk(delta, null));
        return settled.stopped;
      });
    } catch (error) {
      if (events === null) throw error;
      events.send(errorBody(error));
      events.end(true);
      return;
    }
    if (outcome === null) return; // the client is gone
    if (outcome.stop === "max_time") {
      if (events === null) throw this.timeout();
      events.send(this.timeout().body());
      events.end(true);
      return;
    }
    const tokens = outcome.result.tokens;
    const { delta, full } = settled.finish(tokens);
    const finish =
      settled.stopped || tokens.length < plan.view[1] - plan.view[0] ? "stop" : "length";
    const usage = {
      prompt_tokens: promptIds.length,
      completion_tokens: tokens.length,
      total_tokens: promptIds.length + tokens.length,
    };
    if (events !== null) {
      if (delta !== "") events.send(chunk(delta, null));
      events.send(chunk(kind === "text" ? "" : null, finish, { usage }));
      events.end(true);
      return;
    }
    const choice =
      kind === "text"
        ? { index: 0, text: full, finish_reason: finish, logprobs: null }
        : {
            index: 0,
            message: { role: "assistant", content: full },
            finish_reason: finish,
            logprobs: null,
          };
    sendJson(res, 200, { id, object, created, model: loaded.name, choices: [choice], usage });
  }

  // -------------------------------------------------------------------------------------------
  // /infill (llama.cpp server's shape)

  private async infill(body: Body, res: ServerResponse): Promise<void> {
    const served = this.modelFor(body);
    const { loaded } = served;
    const prefix = field<string>(body, "input_prefix", "string") ?? "";
    const suffix = field<string>(body, "input_suffix", "string") ?? "";
    const middle = field<string>(body, "prompt", "string") ?? "";
    const extra = field<unknown[]>(body, "input_extra", "array") ?? [];
    const stream = field<boolean>(body, "stream", "boolean") ?? false;
    const nPredict = field<number>(body, "n_predict", "integer");
    if (nPredict !== undefined && nPredict < -1) {
      throw invalid("n_predict", `n_predict: expected an integer ≥ -1, got ${nPredict}`);
    }
    const stops = stopsOf(body);
    const context = extra
      .map((chunk, i) => {
        const c = chunk as { text?: unknown; filename?: unknown };
        if (typeof c !== "object" || c === null || typeof c.text !== "string") {
          throw invalid(
            `input_extra[${i}]`,
            `input_extra[${i}]: expected { filename, text }`,
            "invalid_type",
          );
        }
        return c.text.endsWith("\n") ? c.text : `${c.text}\n`;
      })
      .join("");
    const t0 = performance.now();
    if (nPredict === 0) {
      // editors' warm-up: no decoding, an empty answer at once
      const answer = infillAnswer(loaded.name, "", 0, 0, "limit", 0);
      if (stream) {
        const events = new EventStream(res);
        events.send(answer);
        events.end(false);
      } else sendJson(res, 200, answer);
      return;
    }
    const hole = nPredict === undefined || nPredict === -1 ? defaultInfillTokens : nPredict;
    // the hole's size is the settings' length; a causal model fills it through its FIM tokens
    // (its budget), a diffusion model on one canvas
    const settings = settingsOf({ ...body, n_predict: hole }, served.decoder, "n_predict");
    const ar = served.decoder === "autoregressive";
    let sentinels = 0;
    try {
      if (ar) sentinels = fimPrompt(fimOf(loaded), [], []).length;
    } catch (error) {
      throw asApiError(error, "n_predict");
    }
    const { tokenizer, config } = loaded;
    const room = config.maxPositions - hole - sentinels;
    if (room < 0) {
      throw invalid(
        "n_predict",
        `n_predict: ${hole} is larger than the model's context of ${config.maxPositions}`,
      );
    }
    const before = tokenizer.encode(context + prefix + middle);
    const after = tokenizer.encode(suffix);
    // a window around the hole: the suffix gets at most half of the room, the prefix the rest
    const keepAfter = Math.min(after.length, Math.max(room - before.length, Math.floor(room / 2)));
    const keepBefore = Math.min(before.length, room - keepAfter);
    const parts: InfillPart[] = [];
    if (keepBefore > 0) parts.push(before.slice(before.length - keepBefore));
    parts.push({ hole });
    if (keepAfter > 0) parts.push(after.slice(0, keepAfter));
    const truncated = keepBefore < before.length || keepAfter < after.length;
    let plan: Plan<InfillResult>;
    try {
      plan = planInfill(loaded, settings, parts, "trim");
    } catch (error) {
      throw asApiError(error, "n_predict");
    }
    const view: [number, number] = ar ? plan.view : [keepBefore, keepBefore + hole];
    const settled = new SettledText(
      loaded,
      view,
      maskOf(served),
      stops,
      stepwise(settings, stream, stops),
    );
    const events = stream ? new EventStream(res) : null;
    let outcome: Outcome<InfillResult> | null;
    try {
      outcome = await this.run(res, plan, (event) => {
        const delta = settled.step(event.canvas);
        if (delta !== "") events?.send({ content: delta, stop: false });
        return settled.stopped;
      });
    } catch (error) {
      if (events === null) throw error;
      events.send(errorBody(error));
      events.end(false);
      return;
    }
    if (outcome === null) return;
    if (outcome.stop === "max_time") {
      if (events === null) throw this.timeout();
      events.send(this.timeout().body());
      events.end(false);
      return;
    }
    const fill = outcome.result.fills[0];
    const { delta, full } = settled.finish(fill);
    const stopType = settled.stopped ? "word" : fill.length < hole ? "eos" : "limit";
    const answer = {
      ...infillAnswer(
        loaded.name,
        full,
        fill.length,
        plan.inputTokens,
        stopType,
        performance.now() - t0,
      ),
      truncated,
    };
    if (events === null) {
      sendJson(res, 200, answer);
      return;
    }
    if (delta !== "") events.send({ content: delta, stop: false });
    events.send({ ...answer, content: "" });
    events.end(false);
  }

  // -------------------------------------------------------------------------------------------
  // /v1/denoise: every step of the canvas, for the playground

  private async denoise(body: Body, res: ServerResponse): Promise<void> {
    const served = this.modelFor(body);
    const { loaded } = served;
    const settings = settingsOf(body, served.decoder, "max_tokens");
    const { tokenizer } = loaded;
    const prompt = field<string>(body, "prompt", "string");
    const rawParts = field<unknown[]>(body, "parts", "array");
    const source = field<string>(body, "source", "string");
    const forms = [prompt, rawParts, source].filter((f) => f !== undefined).length;
    if (forms !== 1) {
      throw invalid(
        null,
        "give one of prompt (generation), parts (infill) or source (fix: the model rewrites the tokens it finds least likely)",
      );
    }
    const bounds: FixBounds = {};
    const below = field<number>(body, "below", "number");
    const maxFraction = field<number>(body, "max_fraction", "number");
    if (source === undefined) {
      const stray =
        below !== undefined ? "below" : maxFraction !== undefined ? "max_fraction" : null;
      if (stray !== null) {
        throw invalid(stray, `${stray}: only fix (a source) reads it`, "ignored_option");
      }
    } else {
      if (below !== undefined) bounds.below = below;
      if (maxFraction !== undefined) bounds.maxFraction = maxFraction;
    }
    let plan: Plan<GenerateResult> | Plan<InfillResult> | Plan<FixResult>;
    try {
      if (rawParts !== undefined || source !== undefined) {
        if (served.decoder !== "diffusion") {
          const what = source !== undefined ? "source (fix)" : "parts (infill)";
          throw invalid(
            "model",
            `model ${loaded.name} is autoregressive: ${what} needs a diffusion model`,
          );
        }
      }
      if (source !== undefined) {
        if (source === "") throw invalid("source", "source: empty, nothing to fix");
        plan = planFix(loaded, settings, tokenizer.encode(source), bounds);
      } else if (rawParts !== undefined) {
        const parts = rawParts.map((p, i): InfillPart => {
          if (typeof p === "string") return tokenizer.encode(p);
          const hole = (p as { hole?: unknown })?.hole;
          if (typeof hole === "number" && Number.isSafeInteger(hole) && hole >= 1) return { hole };
          throw invalid(
            `parts[${i}]`,
            `parts[${i}]: expected a string or { "hole": n } with n ≥ 1`,
            "invalid_type",
          );
        });
        plan = planInfill(loaded, settings, parts, "fixed");
      } else {
        plan = planGenerate(loaded, settings, tokenizer.encode(prompt!), defaultMaxTokens);
      }
    } catch (error) {
      throw asApiError(error, "max_tokens");
    }
    const maskId = loaded.config.maskTokenId ?? -1;
    const pieceCache = new Map<number, string>();
    const piece = (t: number) => {
      let p = pieceCache.get(t);
      if (p === undefined) {
        p = tokenizer.decode([t], { skipSpecialTokens: true });
        pieceCache.set(t, p);
      }
      return p;
    };
    const isAr = served.decoder === "autoregressive";
    const decode = (ids: ArrayLike<number>) => tokenizer.decode(ids, { skipSpecialTokens: true });
    const pieces = (canvas: ArrayLike<number>) =>
      canvasPieces(canvas, isAr ? -1 : maskId, piece, decode);
    const change = (c: PositionChange) => ({ ...c, piece: piece(c.token) });
    const view = plan.view;
    const events = new EventStream(res);
    const initial = plan.initial;
    events.send({
      type: "start",
      model: loaded.name,
      decoder: served.decoder,
      strategy: isAr ? "ar" : (settings.strategy ?? "llada"),
      mask_token_id: maskId,
      end_token_ids: endTokenIds(loaded.config),
      canvas_length: plan.canvasLength,
      view,
      tokens: Array.from(initial),
      pieces: pieces(initial),
    });
    const t0 = performance.now();
    // positions the run has written and still holds (a fix's re-masked input is not one of them)
    const held = new Set<number>();
    let outcome: Outcome<DecodeResult> | null;
    try {
      outcome = await this.run(res, plan as Plan<DecodeResult>, (event) => {
        for (const c of event.remasked) held.delete(c.position);
        for (const c of event.revealed) held.add(c.position);
        const revealed = held.size;
        const elapsed = performance.now() - t0;
        events.send({
          type: "step",
          step: event.step,
          block: event.block,
          forwards: event.forwards,
          masked: event.masked,
          tokens: Array.from(event.canvas),
          pieces: pieces(event.canvas),
          text: renderCanvas(
            event.canvas,
            view[0],
            Math.min(view[1], event.canvas.length),
            decode,
            isAr ? -1 : maskId,
          ),
          revealed: event.revealed.map(change),
          remasked: event.remasked.map(change),
          elapsed_ms: round(elapsed),
          tokens_per_s: round(elapsed > 0 ? revealed / (elapsed / 1000) : 0),
        });
        return false;
      });
    } catch (error) {
      events.send({ type: "error", ...errorBody(error) });
      events.end(true);
      return;
    }
    if (outcome === null) return;
    const r = outcome.result;
    // generate: the continuation; infill: the canvas, its holes' tokens written; fix: the
    // canvas, its re-masked tokens written again (and which of them changed)
    let answer: number[];
    let text: string;
    let fixed: { remasked: number[]; changed: number[] } | undefined;
    if ("tokens" in r) {
      answer = (r as GenerateResult).tokens;
      text = decode(answer);
    } else if ("fills" in r) {
      answer = (r as InfillResult).fills.flat();
      text = decode(r.canvas);
    } else {
      const f = r as FixResult;
      answer = f.remasked.map((i) => f.canvas[i]);
      text = decode(f.canvas);
      fixed = { remasked: f.remasked, changed: f.changed };
    }
    const generated = answer.filter((t) => t !== maskId || isAr).length;
    const full = fixed !== undefined || answer.length === view[1] - view[0];
    events.send({
      type: "result",
      text,
      ...fixed,
      finish_reason: outcome.stop === "max_time" ? "time_limit" : full ? "length" : "stop",
      stop_reason: outcome.stop,
      steps: r.steps,
      forward_passes: r.forwards,
      remasks: r.remasks,
      usage: {
        prompt_tokens: plan.inputTokens,
        completion_tokens: generated,
        total_tokens: plan.inputTokens + generated,
      },
      timings: {
        decode_ms: round(outcome.decodeMs),
        tokens_per_s: round(outcome.decodeMs > 0 ? generated / (outcome.decodeMs / 1000) : 0),
      },
    });
    events.end(true);
  }
}

function methodNotAllowed(method: string, path: string): ApiError {
  return new ApiError(
    405,
    "invalid_request_error",
    "method_not_allowed",
    `${method} ${path}: method not allowed`,
  );
}

function modelCard(m: Served) {
  const card: Record<string, unknown> = {
    id: m.loaded.name,
    object: "model",
    created: 0,
    owned_by: "unmask",
    decoder: m.decoder,
    context_length: m.loaded.config.maxPositions,
  };
  if (m.decoder === "diffusion") card.mask_token_id = m.loaded.config.maskTokenId;
  return card;
}

function promptOf(body: Body): string {
  const prompt = field<string | unknown[]>(body, "prompt", "string", "array") ?? "";
  if (typeof prompt === "string") return prompt;
  if (prompt.length === 1 && typeof prompt[0] === "string") return prompt[0];
  throw invalid("prompt", "prompt: expected a string (or an array of one string)", "invalid_type");
}

function chatPromptOf(body: Body, loaded: LoadedModel): string {
  const raw = field<unknown[]>(body, "messages", "array");
  if (raw === undefined || raw.length === 0) {
    throw invalid("messages", "messages: expected a non-empty array of { role, content }");
  }
  const messages = raw.map((m, i): ChatMessage => {
    const { role, content } = (m ?? {}) as { role?: unknown; content?: unknown };
    if (typeof role !== "string" || typeof content !== "string") {
      throw invalid(
        `messages[${i}]`,
        `messages[${i}]: expected { role: string, content: string }`,
        "invalid_type",
      );
    }
    return { role, content };
  });
  if (loaded.chatTemplate === null) return plainChatPrompt(messages);
  const { tokenizer } = loaded;
  const spell = (id: number | null) => (id === null ? "" : tokenizer.decode([id]));
  try {
    return loaded.chatTemplate.render(messages, {
      bos_token: spell(loaded.config.bosTokenId),
      eos_token: spell(loaded.config.eosTokenId),
    });
  } catch (error) {
    throw invalid("messages", (error as Error).message);
  }
}

/** The mask the answer's settled text stops at (none for the AR decoder). */
function maskOf(served: Served): number {
  return served.decoder === "diffusion" ? (served.loaded.config.maskTokenId ?? -1) : -1;
}

/**
 * Whether the answer's text is read step by step: streamed or watched for stop sequences, and
 * revealed tokens stay (not under strategies that re-mask).
 */
function stepwise(settings: DecodeSettings, stream: boolean, stops: string[]): boolean {
  return (
    (stream || stops.length > 0) &&
    (settings.decoder === "autoregressive" ||
      resolveOptions(diffusionOptions(settings)).remaskBelow === 0)
  );
}

function infillAnswer(
  model: string,
  content: string,
  predicted: number,
  evaluated: number,
  stopType: string,
  ms: number,
) {
  return {
    content,
    stop: true,
    model,
    tokens_predicted: predicted,
    tokens_evaluated: evaluated,
    stop_type: stopType,
    truncated: false,
    timings: {
      predicted_n: predicted,
      predicted_ms: round(ms),
      predicted_per_second: round(ms > 0 ? predicted / (ms / 1000) : 0),
    },
  };
}

function errorBody(error: unknown) {
  return error instanceof ApiError
    ? error.body()
    : new ApiError(500, "server_error", "internal_error", "internal server error").body();
}
