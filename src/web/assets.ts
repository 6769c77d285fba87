// The playground's files as `unmask serve` hands them out: the built page folder (index.html,
// style.css and the compiled modules, next to this file in dist), listed once, so that only
// those files are ever read — no path from a request reaches the file system. Also
// /strategies.json: the presets for the page's menu, with the knobs each one takes as the decode
// service's own validator decides (the page copies no list and no rule).

import { readdir, readFile } from "node:fs/promises";
import { extname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { presetNames, presets } from "../diffusion/options.js";
import { IgnoredOptionError } from "../host/errors.js";
import { checkSettings, type DecodeSettings } from "../host/options.js";

/** The built page: dist/src/web/page (the build copies index.html and style.css there). */
export const pageDir = fileURLToPath(new URL("./page/", import.meta.url));

const contentTypes: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".png": "image/png",
  ".svg": "image/svg+xml",
};

export interface PageAsset {
  body: Buffer;
  contentType: string;
}

let files: Promise<Map<string, string>> | undefined;

/** URL path → file, for every servable file of the page folder ("/" is index.html). */
function listing(): Promise<Map<string, string>> {
  files ??= readdir(pageDir).then((names) => {
    const map = new Map<string, string>();
    for (const name of names) {
      if (contentTypes[extname(name)] !== undefined) map.set(`/${name}`, join(pageDir, name));
    }
    if (!map.has("/index.html")) {
      throw new Error(
        `the playground is not built: ${pageDir} has no index.html (run npm run build)`,
      );
    }
    map.set("/", join(pageDir, "index.html"));
    return map;
  });
  return files;
}

/** Each request field the page offers, with a value the validator accepts when it is read. */
const knobs: Record<string, Partial<DecodeSettings>> = {
  steps: { steps: 8 },
  block_length: { blockLength: 8 },
  threshold: { threshold: 0.9 },
  temperature: { temperature: 0.5 },
  seed: { seed: 1 },
};

export interface StrategyInfo {
  name: string;
  description: string;
  /** The /v1/denoise fields the strategy reads (the server refuses the others). */
  options: string[];
}

/** Every preset, first the default, with the fields the decode service accepts for it. */
export function strategies(): StrategyInfo[] {
  const accepts = (settings: DecodeSettings) => {
    try {
      checkSettings(settings);
      return true;
    } catch (e) {
      if (e instanceof IgnoredOptionError) return false;
      throw e;
    }
  };
  return presetNames.map((name) => ({
    name,
    description: presets[name].description,
    options: Object.keys(knobs).filter((k) =>
      accepts({ decoder: "diffusion", strategy: name, ...knobs[k] }),
    ),
  }));
}

/** The page's file at a URL path (query and fragment stripped by the caller), or undefined. */
export async function pageAsset(pathname: string): Promise<PageAsset | undefined> {
  if (pathname === "/strategies.json") {
    const body = Buffer.from(JSON.stringify(strategies()));
    return { body, contentType: "application/json; charset=utf-8" };
  }
  const file = (await listing()).get(pathname);
  if (file === undefined) return undefined;
  return { body: await readFile(file), contentType: contentTypes[extname(file)] };
}
