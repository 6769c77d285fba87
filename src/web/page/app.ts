// The playground: an editor, a mode, the knobs; Run streams POST /v1/denoise into a lane that
// draws every step (paced so the eye can follow, or in real time), the race adds a lane for the
// AR twin fed the same prompt at the same time; after a run the timeline scrubs through it.
// Stop aborts the fetch, which closes the connection, which cancels the run on the server.

import {
  denoise,
  healthy,
  listModels,
  listStrategies,
  type ModelInfo,
  plainWords,
  type Strategy,
  setApiKey,
  Unreachable,
} from "./api.js";
import { denoiseBody, type Knobs, selectedLines } from "./request.js";
import { type Frame, Trace } from "./trace.js";
import { describe, drawEditor, drawFrame } from "./view.js";

type Tab = "generate" | "infill" | "edit" | "fix";

function byId<T extends HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (el === null) throw new Error(`the page has no #${id}`);
  return el as T;
}

const ui = {
  server: byId("server"),
  hint: byId("hint"),
  editor: byId<HTMLTextAreaElement>("editor"),
  editorView: byId("editor-view"),
  hole: byId<HTMLButtonElement>("hole"),
  below: byId<HTMLInputElement>("below"),
  strategy: byId<HTMLSelectElement>("strategy"),
  maxTokens: byId<HTMLInputElement>("max-tokens"),
  steps: byId<HTMLInputElement>("steps"),
  blockLength: byId<HTMLInputElement>("block-length"),
  threshold: byId<HTMLInputElement>("threshold"),
  temperature: byId<HTMLInputElement>("temperature"),
  seed: byId<HTMLInputElement>("seed"),
  speed: byId<HTMLSelectElement>("speed"),
  race: byId<HTMLInputElement>("race"),
  heat: byId<HTMLInputElement>("heat"),
  apiKey: byId<HTMLInputElement>("api-key"),
  run: byId<HTMLButtonElement>("run"),
  stop: byId<HTMLButtonElement>("stop"),
  message: byId("message"),
  lanes: byId("lanes"),
  timeline: byId<HTMLInputElement>("timeline"),
  stepLabel: byId("step-label"),
  timelineUnit: byId("timeline-unit"),
  inspector: byId("inspector"),
  useResult: byId<HTMLButtonElement>("use-result"),
  laneTemplate: byId<HTMLTemplateElement>("lane"),
};

const hints: Record<Tab, string> = {
  generate: "Write the start of some code; the model continues it.",
  infill:
    "Mark the missing code with <FILL> (16 tokens) or <FILL:n>; the code around it stays as it is.",
  edit: "Select the lines to regenerate: they become a hole of Tokens tokens, the rest is held fixed.",
  fix: "The model scores every token of the code, re-masks the ones it finds least likely and writes them again.",
};

const examples: Record<Tab, string> = {
  generate: "export function debounce(fn: () => void, ms: number) {\n",
  infill: "function clamp(x: number, lo: number, hi: number): number {\n  <FILL:12>\n}\n",
  edit: "export function sum(xs: number[]): number {\n  let total = 0;\n  for (const x of xs) total += x;\n  return total;\n}\n",
  fix: "export function max(xs: number[]): number {\n  let best = xs[0];\n  for (const x of xs) if (x < best) best = x;\n  return best;\n}\n",
};

// ---------------------------------------------------------------------------------------------
// state

let tab: Tab = "generate";
let models: { diffusion?: ModelInfo; ar?: ModelInfo } = {};
let strategies: Strategy[] = [];
let lanes: Lane[] = [];
let controller: AbortController | undefined;
/** The request of the last run and what it asked for (to use the result as input). */
let last: { tab: Tab; source: string } | undefined;

const stored = (key: string) => localStorage.getItem(`unmask.${key}`);
const store = (key: string, value: string) => localStorage.setItem(`unmask.${key}`, value);

// ---------------------------------------------------------------------------------------------
// a lane: one run drawn step by step

type LaneStatus = "waiting" | "running" | "done" | "stopped" | "failed";

class Lane {
  readonly el: HTMLElement;
  readonly pre: HTMLElement;
  private readonly stats: HTMLElement;
  trace?: Trace;
  /** The step drawn (-1: the canvas before the first step). */
  shown = -1;
  frame?: Frame;
  status: LaneStatus = "waiting";
  /** Steps that arrived but are not drawn yet (paced playback). */
  private timer: number | undefined;
  private drainedResolve: (() => void) | undefined;
  private ended = false;

  constructor(
    title: string,
    private readonly pace: number,
  ) {
    const fragment = ui.laneTemplate.content.cloneNode(true) as DocumentFragment;
    this.el = fragment.querySelector(".lane") as HTMLElement;
    (this.el.querySelector("h2") as HTMLElement).textContent = title;
    this.pre = this.el.querySelector(".canvas") as HTMLElement;
    this.stats = this.el.querySelector(".stats") as HTMLElement;
    this.setStatus("waiting");
  }

  begin(trace: Trace) {
    this.trace = trace;
    this.setStatus("running");
    this.show(-1);
  }

  /** A step or the result arrived: draw it now (real time) or when its turn comes. */
  arrived() {
    const trace = this.trace;
    if (trace === undefined) return;
    if (this.pace === 0) this.show(trace.steps.length - 1);
    else if (this.timer === undefined) this.tick();
  }

  private tick() {
    const trace = this.trace;
    if (trace === undefined) return;
    if (this.shown < trace.steps.length - 1) {
      this.show(this.shown + 1);
      this.timer = window.setTimeout(() => this.tick(), this.pace);
    } else {
      this.timer = undefined;
      if (this.ended) this.drainedResolve?.();
    }
  }

  /** Resolves once every step that arrived is drawn. */
  drained(): Promise<void> {
    this.ended = true;
    const trace = this.trace;
    if (this.timer === undefined || trace === undefined || this.shown >= trace.steps.length - 1) {
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      this.drainedResolve = resolve;
    });
  }

  /** Stops the playback where it is. */
  halt() {
    if (this.timer !== undefined) window.clearTimeout(this.timer);
    this.timer = undefined;
    this.drainedResolve?.();
  }

  show(k: number) {
    const trace = this.trace;
    if (trace === undefined) return;
    this.shown = k;
    this.frame = trace.frame(k);
    drawFrame(this.pre, this.frame);
    this.el.dataset.step = String(k + 1);
    this.renderStats();
    if (this === lanes[0]) syncTimeline();
  }

  setStatus(status: LaneStatus) {
    this.status = status;
    this.el.dataset.status = status;
    this.renderStats();
  }

  private renderStats() {
    const trace = this.trace;
    const frame = this.frame;
    let text: string = this.status;
    if (trace !== undefined && frame !== undefined) {
      const total = trace.steps.length;
      const revealed = trace.revealedCount(this.shown);
      const seconds = frame.elapsedMs / 1000;
      const rate = seconds > 0 ? revealed / seconds : 0;
      const perPass = frame.forwards > 0 ? revealed / frame.forwards : 0;
      text =
        `${this.status} · step ${this.shown + 1}/${total} · ${frame.masked} masked · ` +
        `${revealed} token${revealed === 1 ? "" : "s"} · ${Math.round(rate)} tok/s · ` +
        `${frame.forwards} forward pass${frame.forwards === 1 ? "" : "es"}` +
        (perPass > 0 ? ` (${perPass.toFixed(2)} tok/pass)` : "");
    }
    this.stats.textContent = text;
    this.stats.classList.toggle("done", this.status === "done");
  }
}

// ---------------------------------------------------------------------------------------------
// running

function numberOf(input: HTMLInputElement): number | undefined {
  const label = input.closest("label");
  if (input.value.trim() === "" || input.disabled || label?.hidden) return undefined;
  return Number(input.value);
}

function knobs(): Knobs {
  return {
    model: models.diffusion?.id ?? "",
    strategy: ui.strategy.value === "" ? undefined : ui.strategy.value,
    maxTokens: numberOf(ui.maxTokens),
    steps: numberOf(ui.steps),
    blockLength: numberOf(ui.blockLength),
    threshold: numberOf(ui.threshold),
    temperature: numberOf(ui.temperature),
    seed: numberOf(ui.seed),
    below: tab === "fix" ? numberOf(ui.below) : undefined,
  };
}

/** The AR twin takes the prompt and the sampling fields, not the diffusion ones. */
function arBody(body: Record<string, unknown>, ar: ModelInfo): Record<string, unknown> {
  const { strategy, steps, block_length, threshold, ...rest } = body;
  return { ...rest, model: ar.id };
}

async function run() {
  if (controller !== undefined) return;
  hideMessage();
  let body: Record<string, unknown>;
  const source = ui.editor.value;
  try {
    if (models.diffusion === undefined) await loadModels();
    body = denoiseBody(
      tab,
      source,
      { start: ui.editor.selectionStart, end: ui.editor.selectionEnd },
      knobs(),
    );
  } catch (e) {
    showMessage(plainWords(e));
    if (e instanceof Unreachable) watchServer();
    return;
  }
  const race = ui.race.checked && tab === "generate" && models.ar !== undefined;
  const pace = race ? 0 : Number(ui.speed.value);
  const runs: [Lane, Record<string, unknown>][] = [
    [
      new Lane(`Diffusion · ${models.diffusion?.id} · ${ui.strategy.value || "default"}`, pace),
      body,
    ],
  ];
  if (race && models.ar !== undefined) {
    runs.push([new Lane(`Autoregressive · ${models.ar.id}`, pace), arBody(body, models.ar)]);
  }
  lanes = runs.map(([lane]) => lane);
  ui.lanes.replaceChildren(...lanes.map((l) => l.el));
  ui.lanes.classList.toggle("race", race);
  last = { tab, source };
  controller = new AbortController();
  setRunning(true);
  const signal = controller.signal;
  const outcomes = await Promise.all(runs.map(([lane, b]) => play(lane, b, signal)));
  controller = undefined;
  setRunning(false);
  const failure = outcomes.find((o) => o !== undefined);
  if (failure !== undefined) {
    showMessage(plainWords(failure));
    if (failure instanceof Unreachable) watchServer();
  }
  ui.useResult.disabled = lanes[0]?.trace?.result === undefined;
}

/** Runs one lane to its end; returns the error that ended it, if any (a Stop is not one). */
async function play(
  lane: Lane,
  body: Record<string, unknown>,
  signal: AbortSignal,
): Promise<unknown> {
  try {
    for await (const event of denoise(body, signal)) {
      if (event.type === "start") lane.begin(new Trace(event));
      else {
        lane.trace?.add(event);
        lane.arrived();
      }
    }
    await lane.drained();
    lane.setStatus(signal.aborted ? "stopped" : "done");
    return undefined;
  } catch (e) {
    lane.halt();
    if (signal.aborted) {
      lane.setStatus("stopped");
      return undefined;
    }
    lane.setStatus("failed");
    return e;
  }
}

function stop() {
  if (controller === undefined) return;
  controller.abort();
  for (const lane of lanes) lane.halt();
}

function setRunning(running: boolean) {
  ui.run.disabled = running;
  ui.stop.disabled = !running;
  ui.timeline.disabled = running || lanes[0]?.trace === undefined;
  if (running) {
    ui.useResult.disabled = true;
    ui.stop.focus();
  } else if (document.activeElement === ui.stop || document.activeElement === document.body) {
    ui.run.focus();
  }
  syncTimeline();
}

// ---------------------------------------------------------------------------------------------
// timeline: steps of the diffusion lane; in a race, time, so that both lanes replay together

const raceTime = () => lanes.length > 1;

function syncTimeline() {
  const first = lanes[0];
  const trace = first?.trace;
  if (trace === undefined) {
    ui.stepLabel.textContent = "–";
    return;
  }
  ui.timelineUnit.textContent = raceTime() ? "Time" : "Step";
  if (raceTime()) {
    const end = Math.max(...lanes.map((l) => l.trace?.steps.at(-1)?.elapsed_ms ?? 0));
    ui.timeline.max = String(Math.ceil(end));
    if (controller !== undefined) ui.timeline.value = ui.timeline.max;
    ui.stepLabel.textContent = `${Number(ui.timeline.value)} ms`;
  } else {
    ui.timeline.max = String(trace.steps.length);
    ui.timeline.value = String(first.shown + 1);
    ui.stepLabel.textContent = `${first.shown + 1} / ${trace.steps.length}`;
  }
}

function scrub() {
  const value = Number(ui.timeline.value);
  if (raceTime()) {
    for (const lane of lanes) {
      if (lane.trace !== undefined) lane.show(lane.trace.stepAt(value));
    }
    ui.stepLabel.textContent = `${value} ms`;
  } else {
    lanes[0]?.show(value - 1);
  }
}

// ---------------------------------------------------------------------------------------------
// the server: models, strategies, health

async function loadModels() {
  const data = await listModels();
  models = {
    diffusion: data.find((m) => m.decoder === "diffusion"),
    ar: data.find((m) => m.decoder === "autoregressive"),
  };
  strategies = await listStrategies();
  setServer(true);
  const chosen = ui.strategy.value || stored("strategy");
  ui.strategy.replaceChildren(
    ...strategies.map((s) => {
      const option = new Option(s.name, s.name);
      option.title = s.description;
      return option;
    }),
  );
  if (chosen && strategies.some((s) => s.name === chosen)) ui.strategy.value = chosen;
  ui.race.disabled = models.ar === undefined;
  updateKnobs();
}

function setServer(up: boolean) {
  ui.server.textContent = up
    ? `server: ${[models.diffusion?.id, models.ar?.id].filter(Boolean).join(" + ")}`
    : "server: not answering — checking again…";
  ui.server.classList.toggle("down", !up);
}

let watching = false;
/** Polls the health check after a failure until the server answers again. */
async function watchServer() {
  if (watching) return;
  watching = true;
  setServer(false);
  while (!(await healthy())) await new Promise((r) => setTimeout(r, 2000));
  try {
    await loadModels();
    showMessage("The server is back. Press Run to try again.", true);
  } catch (e) {
    showMessage(plainWords(e));
  } finally {
    watching = false;
  }
}

// ---------------------------------------------------------------------------------------------
// controls

/** Enables the knobs the chosen strategy takes; shows the mode's tools. */
function updateKnobs() {
  const strategy = strategies.find((s) => s.name === ui.strategy.value);
  for (const label of document.querySelectorAll<HTMLLabelElement>("label[data-knob]")) {
    const knob = label.dataset.knob ?? "";
    const input = label.querySelector("input") as HTMLInputElement;
    label.hidden = knob === "max_tokens" && (tab === "infill" || tab === "fix");
    input.disabled =
      knob !== "max_tokens" && strategy !== undefined && !strategy.options.includes(knob);
    label.classList.toggle("disabled", input.disabled);
  }
  ui.race.closest("label")?.classList.toggle("disabled", tab !== "generate");
}

function setTab(next: Tab) {
  tab = next;
  for (const radio of document.querySelectorAll<HTMLInputElement>('input[name="mode"]')) {
    radio.checked = radio.value === next;
  }
  for (const el of document.querySelectorAll<HTMLElement>("[data-for]")) {
    el.hidden = el.dataset.for !== next;
  }
  ui.hint.textContent = hints[next];
  ui.editor.value = stored(`text.${next}`) ?? examples[next];
  redrawEditor();
  updateKnobs();
}

function redrawEditor() {
  const lines =
    tab === "edit"
      ? selectedLines(ui.editor.value, ui.editor.selectionStart, ui.editor.selectionEnd)
      : undefined;
  drawEditor(ui.editorView, ui.editor.value, lines);
  ui.editorView.scrollTop = ui.editor.scrollTop;
}

function insertHole() {
  if (tab !== "infill") return;
  ui.editor.focus();
  ui.editor.setRangeText("<FILL:16>", ui.editor.selectionStart, ui.editor.selectionEnd, "end");
  redrawEditor();
  store(`text.${tab}`, ui.editor.value);
}

function useResult() {
  const result = lanes[0]?.trace?.result;
  if (result === undefined || last === undefined) return;
  const text = last.tab === "generate" ? last.source + result.text : result.text;
  if (tab !== last.tab) setTab(last.tab);
  ui.editor.value = text;
  store(`text.${tab}`, text);
  redrawEditor();
  ui.editor.focus();
}

function showMessage(text: string, info = false) {
  ui.message.textContent = text;
  ui.message.classList.toggle("info", info);
  ui.message.hidden = false;
}

function hideMessage() {
  ui.message.hidden = true;
  ui.message.textContent = "";
}

function inspect(event: Event) {
  const target = (event.target as HTMLElement).closest<HTMLElement>(".t");
  const laneEl = target?.closest<HTMLElement>(".lane");
  const lane = lanes.find((l) => l.el === laneEl);
  if (target === null || target === undefined || lane?.frame === undefined) return;
  const cell = lane.frame.cells[Number(target.dataset.i)];
  if (cell !== undefined)
    ui.inspector.textContent = `position ${target.dataset.i}: ${describe(cell)}`;
}

function onKey(event: KeyboardEvent) {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
    event.preventDefault();
    void run();
  } else if (event.key === "Escape" && controller !== undefined) {
    event.preventDefault();
    stop();
  } else if (event.altKey && !event.ctrlKey && !event.metaKey) {
    const tabs: Record<string, Tab> = {
      Digit1: "generate",
      Digit2: "infill",
      Digit3: "edit",
      Digit4: "fix",
    };
    if (event.code in tabs) setTab(tabs[event.code]);
    else if (event.code === "KeyH") insertHole();
    else if (event.code === "KeyM") {
      ui.heat.checked = !ui.heat.checked;
      ui.lanes.classList.toggle("heat", ui.heat.checked);
    } else return;
    event.preventDefault();
  }
}

function wire() {
  for (const radio of document.querySelectorAll<HTMLInputElement>('input[name="mode"]')) {
    radio.addEventListener("change", () => setTab(radio.value as Tab));
  }
  ui.editor.addEventListener("input", () => {
    redrawEditor();
    store(`text.${tab}`, ui.editor.value);
  });
  ui.editor.addEventListener("scroll", () => {
    ui.editorView.scrollTop = ui.editor.scrollTop;
  });
  for (const type of ["select", "keyup", "mouseup"]) {
    ui.editor.addEventListener(type, () => {
      if (tab === "edit") redrawEditor();
    });
  }
  ui.hole.addEventListener("click", insertHole);
  ui.strategy.addEventListener("change", () => {
    store("strategy", ui.strategy.value);
    updateKnobs();
  });
  ui.heat.addEventListener("change", () => ui.lanes.classList.toggle("heat", ui.heat.checked));
  ui.apiKey.value = sessionStorage.getItem("unmask.apiKey") ?? "";
  setApiKey(ui.apiKey.value);
  ui.apiKey.addEventListener("change", () => {
    setApiKey(ui.apiKey.value);
    sessionStorage.setItem("unmask.apiKey", ui.apiKey.value);
    loadModels().catch((e) => showMessage(plainWords(e)));
  });
  ui.run.addEventListener("click", () => void run());
  ui.stop.addEventListener("click", stop);
  ui.timeline.addEventListener("input", scrub);
  ui.lanes.addEventListener("pointerover", inspect);
  ui.lanes.addEventListener("click", inspect);
  ui.useResult.addEventListener("click", useResult);
  document.addEventListener("keydown", onKey);
}

wire();
setTab("generate");
lanes = [new Lane("Diffusion", 0)];
ui.lanes.replaceChildren(lanes[0].el);
loadModels().catch((e) => {
  showMessage(plainWords(e));
  if (e instanceof Unreachable) watchServer();
});
