/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
// The playground end to end: `unmask serve` as a real process on a free port, the page in a real
// headless Chromium. Screenshots of every mode go to .cache/screenshots/ (git-ignored).

import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import type { Page } from "playwright-core";
import { type Browser, browserMissing, launch } from "./browser.js";

const cli = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
const skip = browserMissing();
/** A guard against a hang, not a speed assertion: the shared CI machine may be slow. */
const patience = 240_000;

interface Served {
  url: string;
  port: number;
  child: ChildProcess;
}

/** Starts `unmask serve` (port 0: any free one) and resolves once it listens. */
function serve(port = 0): Promise<Served> {
  const child = spawn(process.execPath, [cli, "serve", "--port", String(port)], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  return new Promise((resolve, reject) => {
    let log = "";
    child.stderr?.setEncoding("utf8");
    child.stderr?.on("data", (chunk: string) => {
      log += chunk;
      const m = /listening on (http:\/\/[^\s]+:(\d+))/.exec(log);
      if (m) resolve({ url: `${m[1]}/`, port: Number(m[2]), child });
    });
    child.on("exit", (code) => reject(new Error(`unmask serve exited with ${code}:\n${log}`)));
  });
}

function stopServer(served: Served): Promise<void> {
  return new Promise((resolve) => {
    if (served.child.exitCode !== null) return resolve();
    served.child.once("exit", () => resolve());
    served.child.kill("SIGTERM");
  });
}

let server: Served;
let browser: Browser;

before(async () => {
  if (skip) return;
  server = await serve();
  browser = await launch();
});

after(async () => {
  if (skip) return;
  await browser.close();
  await stopServer(server);
  const uncaught = browser.errors.filter((e) => e.startsWith("uncaught"));
  assert.deepEqual(uncaught, [], "the page threw");
});

async function openPage(viewport?: { width: number; height: number }): Promise<Page> {
  const page = await browser.open(server.url, viewport);
  page.setDefaultTimeout(patience);
  await page.waitForFunction(() => document.querySelector("#server")?.textContent?.includes("+"));
  return page;
}

/** Clicks Run (or presses a key) and waits until every lane has ended. */
async function run(page: Page, how: () => Promise<void> = () => page.click("#run")) {
  await how();
  await page.waitForFunction(() =>
    [...document.querySelectorAll<HTMLElement>(".lane")].every((l) =>
      ["done", "failed", "stopped"].includes(l.dataset.status ?? ""),
    ),
  );
}

/** The text drawn on each lane's canvas. */
function canvases(page: Page): Promise<string[]> {
  return page.$$eval(".lane .canvas", (els) => els.map((e) => e.textContent ?? ""));
}

function statuses(page: Page): Promise<string[]> {
  return page.$$eval(".lane", (els) => els.map((e) => (e as HTMLElement).dataset.status ?? ""));
}

/** What the API's non-streamed completion says for the same request. */
async function completion(body: Record<string, unknown>): Promise<string> {
  const response = await fetch(`${server.url}v1/completions`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  assert.equal(response.status, 200);
  const json = (await response.json()) as { choices: { text: string }[] };
  return json.choices[0].text;
}

const masks = (text: string) => [...text].filter((c) => c === "░").length;

test("Generate: every step drawn, the timeline scrubs back, the end is the API's answer for the seed", {
  skip,
}, async () => {
  const page = await openPage();
  const prompt = "export function clamp(x: number, lo: number, hi: number) {\n";
  await page.fill("#editor", prompt);
  await page.fill("#max-tokens", "24");
  await page.fill("#temperature", "0.8");
  await page.fill("#seed", "7");
  await page.selectOption("#speed", "40");
  // every frame the page draws, as the user saw it
  await page.evaluate(() => {
    const seen: string[] = [];
    (window as unknown as { seen: string[] }).seen = seen;
    const lanes = document.querySelector("#lanes") as HTMLElement;
    new MutationObserver(() => {
      const text = lanes.querySelector(".canvas")?.textContent ?? "";
      if (text !== "" && seen.at(-1) !== text) seen.push(text);
    }).observe(lanes, { subtree: true, childList: true });
  });
  await run(page, () => page.keyboard.press("Control+Enter"));
  assert.deepEqual(await statuses(page), ["done"]);
  const seen = await page.evaluate(() => (window as unknown as { seen: string[] }).seen);
  const steps = Number(await page.getAttribute("#timeline", "max"));
  assert.ok(steps >= 2, `${steps} steps`);
  assert.ok(seen.length >= steps, `${seen.length} frames drawn for ${steps} steps`);
  const counts = seen.map(masks);
  assert.ok(counts.filter((n) => n > 0).length >= 2, "at least two frames still hold masks");
  for (let i = 1; i < counts.length; i++) assert.ok(counts[i] <= counts[i - 1], "masks only go");

  const api = await completion({
    model: "unmask-code",
    prompt,
    max_tokens: 24,
    temperature: 0.8,
    seed: 7,
  });
  const [final] = await canvases(page);
  assert.equal(final, prompt + api, "the last frame is the API's completion for the same seed");
  assert.equal(seen.at(-1), final);
  await browser.screenshot(page, "generate");

  // the timeline, from the keyboard: the canvas before the first step, then after it
  await page.focus("#timeline");
  await page.keyboard.press("Home");
  assert.equal(masks((await canvases(page))[0]), 24);
  await page.keyboard.press("ArrowRight");
  assert.ok(masks((await canvases(page))[0]) < 24);
  await page.keyboard.press("End");
  assert.equal((await canvases(page))[0], final);
  // each revealed token says how sure the model was
  await page.hover(".lane .t.token");
  assert.match(
    (await page.textContent("#inspector")) ?? "",
    /confidence \d\.\d{3} · revealed at step \d+/,
  );
  await page.close();
});

test("Infill: the code around the hole is kept byte for byte", { skip }, async () => {
  const page = await openPage();
  await page.keyboard.press("Alt+2");
  const prefix = "function area(w: number, h: number): number {\n\t// width × height\n  return ";
  const suffix = ";\n}\n\nconst s = 'x';\n";
  await page.fill("#editor", `${prefix}<FILL:6>${suffix}`);
  await page.selectOption("#speed", "0");
  await run(page);
  assert.deepEqual(await statuses(page), ["done"]);
  const [drawn] = await canvases(page);
  assert.equal(masks(drawn), 0);
  await browser.screenshot(page, "infill");
  // the result, byte for byte around the hole
  await page.click("#use-result");
  const text = await page.inputValue("#editor");
  assert.ok(text.startsWith(prefix), JSON.stringify(text));
  assert.ok(text.endsWith(suffix), JSON.stringify(text));
  assert.ok(text.length > prefix.length + suffix.length, "the hole was filled");
  assert.ok(!text.includes("<FILL"));
  // the canvas as drawn token by token is the same text ("×" spans two tokens of the embedded
  // tokenizer: it is drawn whole, not as two broken halves)
  assert.equal(drawn, text);
  await page.close();
});

test("Edit: the selected lines are regenerated, every other line kept byte for byte", {
  skip,
}, async () => {
  const page = await openPage();
  await page.keyboard.press("Alt+3");
  const head = "export function sum(xs: number[]): number {\n";
  const body = "  let total = 0;\n  for (const x of xs) total += x;";
  const tail = "\n  return total;\n}\n";
  await page.fill("#editor", head + body + tail);
  // select lines 2-3 (what a mouse drag or Shift+arrows would do)
  await page.evaluate(
    ([a, b]) => {
      const editor = document.querySelector("#editor") as HTMLTextAreaElement;
      editor.setSelectionRange(a, b);
      editor.dispatchEvent(new Event("select"));
    },
    [head.length, head.length + body.length],
  );
  assert.equal(await page.$$eval(".sel-line", (els) => els.length), 2, "lines 2 and 3 marked");
  await page.fill("#max-tokens", "10");
  await page.selectOption("#speed", "0");
  await run(page);
  assert.deepEqual(await statuses(page), ["done"]);
  await browser.screenshot(page, "edit");
  await page.click("#use-result");
  const text = await page.inputValue("#editor");
  assert.ok(text.startsWith(head) && text.endsWith(tail), JSON.stringify(text));
  await page.close();
});

test("Fix: the least likely tokens flash as they are re-masked, the rest is kept", {
  skip,
}, async () => {
  const page = await openPage();
  await page.keyboard.press("Alt+4");
  const source =
    "export function max(xs: number[]): number {\n  let best = xs[0]; // → the first\n  for (const x of xs) if (x < best) best = x;\n  return best;\n}\n";
  await page.fill("#editor", source);
  await page.fill("#below", "1");
  await page.selectOption("#speed", "0");
  await run(page);
  assert.deepEqual(await statuses(page), ["done"]);
  // the first step is the scoring pass: its re-masked tokens are drawn as masks that flash
  await page.focus("#timeline");
  await page.fill("#timeline", "1");
  await page.dispatchEvent("#timeline", "input");
  const flashing = await page.$$eval(".lane .t.remasked.mask", (els) => els.length);
  assert.ok(flashing > 0, "re-masked tokens flash at the scoring step");
  const [scored] = await canvases(page);
  assert.equal(masks(scored), flashing);
  await browser.screenshot(page, "fix");
  // the end: no mask left; the text outside the re-masked tokens is the source's
  await page.fill("#timeline", await page.$eval("#timeline", (e) => (e as HTMLInputElement).max));
  await page.dispatchEvent("#timeline", "input");
  const [drawn] = await canvases(page);
  assert.equal(masks(drawn), 0);
  await page.click("#use-result");
  const text = await page.inputValue("#editor");
  assert.equal(text, drawn);
  const kept = scored.split("░").filter((s) => s !== "");
  let at = 0;
  for (const piece of kept) {
    const found = text.indexOf(piece, at);
    assert.ok(found >= 0, `kept text ${JSON.stringify(piece)} is in the result`);
    at = found + piece.length;
  }
  await page.close();
});

test("Stop (Esc) stops the run mid-way; the server is free for the next one", {
  skip,
}, async () => {
  const page = await openPage();
  await page.fill("#editor", "class Queue<T> {\n");
  await page.fill("#max-tokens", "220");
  await page.selectOption("#speed", "120");
  await page.click("#run");
  await page.waitForFunction(
    () => Number(document.querySelector<HTMLElement>(".lane")?.dataset.step) >= 1,
  );
  await page.keyboard.press("Escape");
  await page.waitForSelector('.lane[data-status="stopped"]');
  assert.ok(masks((await canvases(page))[0]) > 0, "stopped before the canvas was clean");
  assert.equal(await page.isDisabled("#use-result"), true, "no result came: the stream was closed");
  assert.equal(await page.isDisabled("#run"), false);
  await browser.screenshot(page, "stopped");
  // the slot is given back (the server cancels a closed stream at its next step)
  for (;;) {
    const health = (await (await fetch(`${server.url}health`)).json()) as {
      slots: { busy: number };
    };
    if (health.slots.busy === 0) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  await page.fill("#max-tokens", "8");
  await run(page);
  assert.deepEqual(await statuses(page), ["done"]);
  await page.close();
});

test("The race: diffusion and the AR twin side by side, both finish with counters", {
  skip,
}, async () => {
  const page = await openPage();
  const prompt = "function fib(n: number): number {\n";
  await page.fill("#editor", prompt);
  await page.fill("#max-tokens", "24");
  await page.check("#race");
  await run(page);
  assert.deepEqual(await statuses(page), ["done", "done"]);
  const stats = await page.$$eval(".lane .stats", (els) => els.map((e) => e.textContent ?? ""));
  for (const s of stats) assert.match(s, /\d+ tok\/s · \d+ forward passes/);
  const [, ar] = await canvases(page);
  const api = await completion({ model: "unmask-code-ar", prompt, max_tokens: 24, seed: 0 });
  assert.equal(ar, prompt + api, "the AR lane ends with the AR model's completion");
  assert.equal(await page.textContent("#timeline-unit"), "Time");
  await browser.screenshot(page, "race");
  await page.close();
});

test("Server errors reach the user in plain words; the page recovers when the server restarts", {
  skip,
}, async () => {
  const page = await openPage();
  await page.fill("#max-tokens", "5000");
  await run(page);
  const refused = (await page.textContent("#message")) ?? "";
  assert.match(refused, /^The server refused the request: .*max_tokens/);
  await browser.screenshot(page, "error");

  await stopServer(server);
  await page.fill("#max-tokens", "8");
  await run(page);
  assert.match((await page.textContent("#message")) ?? "", /does not answer/);
  assert.equal(await page.getAttribute("#server", "class"), "server down");
  server = await serve(server.port);
  await page.waitForFunction(() =>
    document.querySelector("#message")?.textContent?.includes("back"),
  );
  await run(page);
  assert.deepEqual(await statuses(page), ["done"]);
  await page.close();
});

test("On a phone's width nothing runs off the side (a threshold strategy)", { skip }, async () => {
  const page = await openPage({ width: 390, height: 844 });
  await page.fill("#max-tokens", "16");
  await page.selectOption("#speed", "0");
  // a threshold strategy: the knobs it does not read are off (the server would refuse them)
  await page.selectOption("#strategy", "fast-dllm");
  assert.equal(await page.isDisabled("#steps"), true);
  assert.equal(await page.isDisabled("#threshold"), false);
  await page.fill("#threshold", "0.5");
  await run(page);
  assert.deepEqual(await statuses(page), ["done"]);
  const overflow = await page.evaluate(
    () => document.documentElement.scrollWidth - document.documentElement.clientWidth,
  );
  assert.equal(overflow, 0);
  await browser.screenshot(page, "phone");
  await page.close();
});
