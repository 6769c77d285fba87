// `unmask pull OWNER/NAME[@REV]`: a model repository from a Hugging Face hub (or a mirror at
// HF_ENDPOINT) into a local cache in the hub's own layout, which huggingface_hub reads too:
//   <cache>/models--OWNER--NAME/blobs/<hash>            each file once, named by its hash
//   <cache>/models--OWNER--NAME/snapshots/<commit>/<path> → ../../blobs/<hash> (symlinks)
//   <cache>/models--OWNER--NAME/refs/<rev>               the commit a branch or tag named
// with plain HTTP (fetch) against the hub's API:
//   GET /api/models/{repo}/revision/{rev}                 → { sha }: the commit
//   GET /api/models/{repo}/tree/{commit}?recursive=true   → [{ type, path, oid, size, lfs? }]
//                                                           (pages follow the Link: rel="next")
//   GET /{repo}/resolve/{commit}/{path}                   → the file (redirects followed)
// A file is fetched into blobs/<hash>.incomplete, resumed with a Range request where a partial
// one is there (after a cut connection, in this run or an earlier one), and becomes a blob only
// when its hash is the listing's: sha256 for LFS files (the hub's X-Linked-Etag), the git blob
// sha1 for the others (their ETag). A path in the listing that would leave the snapshot folder is
// refused before anything is written.

import { createHash } from "node:crypto";
import { createReadStream, existsSync } from "node:fs";
import { mkdir, open, rename, rm, stat, symlink, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, isAbsolute, join, relative, resolve, sep } from "node:path";

/** Base class of pull's typed errors: what went wrong, with the repository or file concerned. */
export class HubError extends Error {
  override name = "HubError";
}

/** The hub answered with an HTTP error (401/403: HF_TOKEN; 404: no such repository/revision). */
export class HubHttpError extends HubError {
  override name = "HubHttpError";
  constructor(
    readonly url: string,
    readonly status: number,
    message: string,
  ) {
    super(`${url}: HTTP ${status}: ${message}`);
  }
}

/** A downloaded file's size or hash is not the listing's: it is deleted, never used. */
export class ChecksumError extends HubError {
  override name = "ChecksumError";
  constructor(
    readonly path: string,
    readonly expected: string,
    readonly actual: string,
  ) {
    super(
      `${path}: downloaded file does not match the repository listing (expected ${expected}, got ${actual}); deleted`,
    );
  }
}

/** The listing names a file that would be written outside the snapshot folder, or is malformed. */
export class UnsafeListingError extends HubError {
  override name = "UnsafeListingError";
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(`repository listing: ${JSON.stringify(path)}: ${message}`);
  }
}

export interface RepoRef {
  /** "owner/name" */
  repo: string;
  /** Branch, tag or commit (default "main"). */
  revision: string;
}

/** Parses OWNER/NAME[@REV]; throws HubError on anything else. */
export function parseRepoRef(text: string): RepoRef {
  const m = /^([A-Za-z0-9][\w.-]*)\/([A-Za-z0-9][\w.-]*)(?:@([\w./-]+))?$/.exec(text);
  if (m === null || m[1].includes("..") || m[2].includes("..")) {
    throw new HubError(`${JSON.stringify(text)}: expected OWNER/NAME or OWNER/NAME@REVISION`);
  }
  return { repo: `${m[1]}/${m[2]}`, revision: m[3] ?? "main" };
}

/** The cache folder: HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub. */
export function defaultHubCache(env: NodeJS.ProcessEnv = process.env): string {
  if (env.HF_HUB_CACHE) return env.HF_HUB_CACHE;
  if (env.HF_HOME) return join(env.HF_HOME, "hub");
  return join(homedir(), ".cache", "huggingface", "hub");
}

export interface PullProgress {
  path: string;
  /** Bytes of the file on disk so far (a resumed file starts above 0). */
  done: number;
  size: number;
  /** "skip": already in the cache; "resume": continuing a partial download. */
  state: "skip" | "start" | "resume" | "progress" | "done";
}

export interface PullOptions {
  /** Default HF_ENDPOINT, else https://huggingface.co. */
  endpoint?: string;
  /** Default HF_TOKEN; sent as `Authorization: Bearer`. */
  token?: string;
  /** Default defaultHubCache(). */
  cache?: string;
  /** Attempts per file after a cut connection, each resuming where the last stopped (default 5). */
  retries?: number;
  onProgress?: (p: PullProgress) => void;
  fetch?: typeof fetch;
}

export interface PullResult {
  commit: string;
  /** The snapshot folder: a checkpoint folder loadCheckpoint reads. */
  snapshot: string;
  files: number;
  /** Bytes downloaded in this run (resumed files count only what was missing). */
  downloaded: number;
}

interface ListedFile {
  path: string;
  size: number;
  /** "sha256" (LFS) or "sha1" (git blob). */
  algorithm: "sha256" | "sha1";
  hash: string;
}

/** Checks a listed path: relative, forward slashes, no "." / ".." / empty segments. */
function safePath(path: unknown): string {
  if (typeof path !== "string" || path.length === 0) {
    throw new UnsafeListingError(String(path), "not a file path");
  }
  if (path.includes("\\") || path.includes("\0") || path.startsWith("/") || isAbsolute(path)) {
    throw new UnsafeListingError(path, "absolute or not a plain relative path: refused");
  }
  if (path.split("/").some((s) => s === "" || s === "." || s === "..")) {
    throw new UnsafeListingError(path, "has an empty, '.' or '..' segment: refused");
  }
  return path;
}

function isHex(v: unknown, length: number): v is string {
  return typeof v === "string" && v.length === length && /^[0-9a-f]+$/.test(v);
}

/** One entry of the tree listing, validated. */
function listedFile(entry: Record<string, unknown>): ListedFile {
  const path = safePath(entry.path);
  const lfs = entry.lfs as Record<string, unknown> | undefined;
  if (lfs !== undefined && lfs !== null) {
    if (!isHex(lfs.oid, 64) || typeof lfs.size !== "number") {
      throw new UnsafeListingError(path, "its lfs entry has no sha256 oid and size");
    }
    return { path, size: lfs.size, algorithm: "sha256", hash: lfs.oid };
  }
  if (!isHex(entry.oid, 40) || typeof entry.size !== "number") {
    throw new UnsafeListingError(path, "has no git oid and size");
  }
  return { path, size: entry.size, algorithm: "sha1", hash: entry.oid };
}

/** The hash the listing's algorithm gives for a file (the git blob hash for sha1). */
async function hashFile(file: string, algorithm: "sha256" | "sha1"): Promise<string> {
  const h = createHash(algorithm);
  if (algorithm === "sha1") h.update(`blob ${(await stat(file)).size}\0`);
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest("hex");
}

/** The next page of a paginated listing, from a `Link: <url>; rel="next"` header. */
function nextPage(link: string | null): string | null {
  const m = link === null ? null : /<([^>]+)>;\s*rel="next"/.exec(link);
  return m === null ? null : m[1];
}

/** Downloads `repo` at `revision` into the cache; see the header. */
export async function pullRepo(ref: RepoRef, options: PullOptions = {}): Promise<PullResult> {
  const endpoint = (
    options.endpoint ??
    process.env.HF_ENDPOINT ??
    "https://huggingface.co"
  ).replace(/\/+$/, "");
  const token = options.token ?? process.env.HF_TOKEN;
  const cache = resolve(options.cache ?? defaultHubCache());
  const retries = options.retries ?? 5;
  const progress = options.onProgress ?? (() => {});
  const doFetch = options.fetch ?? fetch;
  const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};

  const get = async (url: string, extra: Record<string, string> = {}) => {
    let res: Response;
    try {
      res = await doFetch(url, { headers: { ...headers, ...extra }, redirect: "follow" });
    } catch (cause) {
      throw new HubError(
        `${url}: cannot reach the hub: ${String((cause as Error).cause ?? cause)}`,
        {
          cause,
        },
      );
    }
    if (!res.ok) {
      const why =
        res.status === 401 || res.status === 403
          ? "not authorised (set HF_TOKEN for a gated or private repository)"
          : res.status === 404
            ? `no such repository, revision or file (${ref.repo}@${ref.revision})`
            : res.statusText;
      await res.body?.cancel();
      throw new HubHttpError(url, res.status, why);
    }
    return res;
  };
  const api = `${endpoint}/api/models/${ref.repo}`;
  const rev = encodeURIComponent(ref.revision);
  const info = (await (await get(`${api}/revision/${rev}`)).json()) as { sha?: unknown };
  if (!isHex(info.sha, 40))
    throw new HubError(`${api}/revision/${rev}: no commit sha in the answer`);
  const commit = info.sha;

  const files: ListedFile[] = [];
  for (let url: string | null = `${api}/tree/${commit}?recursive=true`; url !== null; ) {
    const res = await get(url);
    const page = (await res.json()) as Record<string, unknown>[];
    if (!Array.isArray(page)) throw new HubError(`${url}: expected a list of entries`);
    for (const entry of page) if (entry.type === "file") files.push(listedFile(entry));
    url = nextPage(res.headers.get("link"));
    if (url !== null && !url.startsWith(endpoint)) url = new URL(url, endpoint).href;
  }

  const root = join(cache, `models--${ref.repo.replace("/", "--")}`);
  const blobs = join(root, "blobs");
  const snapshot = join(root, "snapshots", commit);
  for (const f of files) {
    const target = resolve(snapshot, f.path);
    if (relative(snapshot, target).startsWith(`..${sep}`) || !target.startsWith(snapshot + sep)) {
      throw new UnsafeListingError(f.path, "would be written outside the snapshot folder");
    }
  }
  await mkdir(blobs, { recursive: true });

  let downloaded = 0;
  for (const f of files) {
    const blob = join(blobs, f.hash);
    if (existsSync(blob)) {
      progress({ path: f.path, done: f.size, size: f.size, state: "skip" });
    } else {
      downloaded += await fetchBlob(f, blob);
    }
    const link = join(snapshot, f.path);
    await mkdir(dirname(link), { recursive: true });
    await rm(link, { force: true });
    await symlink(relative(dirname(link), blob), link);
  }
  if (ref.revision !== commit) {
    const refFile = join(root, "refs", ref.revision);
    if (!resolve(refFile).startsWith(join(root, "refs") + sep)) {
      throw new HubError(`${ref.revision}: not a usable revision name`);
    }
    await mkdir(dirname(refFile), { recursive: true });
    await writeFile(refFile, commit);
  }
  return { commit, snapshot, files: files.length, downloaded };

  /** Downloads one file into `blob` through `blob.incomplete`; returns the bytes fetched. */
  async function fetchBlob(f: ListedFile, blob: string): Promise<number> {
    const partial = `${blob}.incomplete`;
    const url = `${endpoint}/${ref.repo}/resolve/${commit}/${f.path.split("/").map(encodeURIComponent).join("/")}`;
    let fetched = 0;
    for (let attempt = 0; ; attempt++) {
      let have = existsSync(partial) ? (await stat(partial)).size : 0;
      if (have > f.size) {
        await rm(partial);
        have = 0;
      }
      progress({ path: f.path, done: have, size: f.size, state: have > 0 ? "resume" : "start" });
      try {
        if (have < f.size) {
          const res = await get(url, have > 0 ? { range: `bytes=${have}-` } : {});
          // a server that ignores Range sends the whole file again: start over
          const append = have > 0 && res.status === 206;
          if (have > 0 && !append) have = 0;
          const handle = await open(partial, append ? "a" : "w");
          try {
            for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
              await handle.write(chunk);
              have += chunk.length;
              fetched += chunk.length;
              progress({ path: f.path, done: have, size: f.size, state: "progress" });
            }
          } finally {
            await handle.close();
          }
        }
        break;
      } catch (error) {
        if (error instanceof HubError) throw error;
        if (attempt >= retries) {
          throw new HubError(
            `${f.path}: the download was cut ${attempt + 1} times (the partial file is kept: pull again to resume): ${String(error)}`,
            { cause: error },
          );
        }
      }
    }
    const size = (await stat(partial)).size;
    const actual = size === f.size ? await hashFile(partial, f.algorithm) : `${size} bytes`;
    const expected = size === f.size ? f.hash : `${f.size} bytes`;
    if (actual !== expected) {
      await rm(partial, { force: true });
      throw new ChecksumError(f.path, `${f.algorithm} ${expected}`, `${actual}`);
    }
    await rename(partial, blob);
    progress({ path: f.path, done: f.size, size: f.size, state: "done" });
    return fetched;
  }
}
