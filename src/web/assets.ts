// The playground's files as `unmask serve` hands them out: the built page folder (index.html,
// style.css and the compiled modules, next to this file in dist), listed once, so that only
// those files are ever read — no path from a request reaches the file system.

import { readdir, readFile } from "node:fs/promises";
import { extname, join } from "node:path";
import { fileURLToPath } from "node:url";

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

/** The page's file at a URL path (query and fragment stripped by the caller), or undefined. */
export async function pageAsset(pathname: string): Promise<PageAsset | undefined> {
  const file = (await listing()).get(pathname);
  if (file === undefined) return undefined;
  return { body: await readFile(file), contentType: contentTypes[extname(file)] };
}
