// A real headless Chromium for the playground's end-to-end tests: Debian's `chromium` driven by
// playwright-core (no browser download), a fresh profile per launch, screenshots written to
// .cache/screenshots/ (git-ignored) as the tests' artefacts. Where no Chromium is installed the
// tests are skipped with the reason — except under UNMASK_REQUIRE_BROWSER=1 (.ci/run sets it),
// where a missing browser fails them.

import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BrowserContext, chromium, type Page } from "playwright-core";

export const chromiumPath = process.env.UNMASK_CHROMIUM ?? "/usr/bin/chromium";
export const screenshotDir = join(".cache", "screenshots");

/** Why the browser tests cannot run here, or undefined when they can. */
export function browserMissing(): string | undefined {
  if (existsSync(chromiumPath)) return undefined;
  const why = `no Chromium at ${chromiumPath} (apt-get install chromium, or set UNMASK_CHROMIUM)`;
  if (process.env.UNMASK_REQUIRE_BROWSER === "1") throw new Error(why);
  return why;
}

export interface Browser {
  context: BrowserContext;
  /** A new tab, its console errors and uncaught exceptions collected in `errors`. */
  open(url: string, viewport?: { width: number; height: number }): Promise<Page>;
  /** What the pages logged as errors. */
  errors: string[];
  /** Saves a screenshot of `page` as .cache/screenshots/<name>.png; returns the path. */
  screenshot(page: Page, name: string): Promise<string>;
  close(): Promise<void>;
}

export async function launch(): Promise<Browser> {
  const profile = mkdtempSync(join(tmpdir(), "unmask-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  const errors: string[] = [];
  mkdirSync(screenshotDir, { recursive: true });
  return {
    context,
    errors,
    async open(url, viewport = { width: 1280, height: 900 }) {
      const page = await context.newPage();
      await page.setViewportSize(viewport);
      page.on("pageerror", (e) => errors.push(`uncaught: ${e.message}`));
      page.on("console", (m) => {
        if (m.type() === "error") errors.push(`console: ${m.text()}`);
      });
      await page.goto(url);
      return page;
    },
    async screenshot(page, name) {
      const path = join(screenshotDir, `${name}.png`);
      await page.screenshot({ path, fullPage: true });
      return path;
    },
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
