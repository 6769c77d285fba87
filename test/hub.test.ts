// `unmask pull` against a local test hub: a node:http server that serves tiny repositories in the
// hub's URL layout (revision API, paginated tree API, resolve with Range), and misbehaves on cue:
// it cuts a connection midway, serves corrupted bytes, or lists a path-traversing file name.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { loadCheckpoint, saveCheckpoint } from "../src/format/checkpoint.js";
import {
  ChecksumError,
  HubError,
  HubHttpError,
  parseRepoRef,
  pullRepo,
  UnsafeListingError,
} from "../src/format/hub.js";
import { cli } from "./cli-helpers.js";
import { seededWeights, tinyConfig, tinyTokenizerJson, withTempDir } from "./format-helpers.js";

interface HubFile {
  path: string;
  data: Buffer;
  lfs: boolean;
}

interface Repo {
  commit: string;
  files: HubFile[];
  /** Extra raw listing entries (a hostile listing). */
  extraListing?: Record<string, unknown>[];
  /**
   * path → bytes after which the first download of it stalls, until the client reports having
   * them (see cutWhenReceived): then the connection is cut.
   */
  cutAfter?: Map<string, number>;
  /** paths served with one byte flipped. */
  corrupt?: Set<string>;
}

const repos = new Map<string, Repo>();
const requests: { url: string; range?: string; auth?: string }[] = [];
let served = 0; // bytes of file content sent
const stalled = new Map<string, ServerResponse>();

/** An onProgress that cuts a stalled download once the client has written what was sent. */
const cutWhenReceived = (path: string, bytes: number) => (p: { path: string; done: number }) => {
  if (p.path === path && p.done === bytes) stalled.get(path)?.socket?.destroy();
};
let endpoint = "";

const sha = (algorithm: string, data: Buffer) => createHash(algorithm).update(data).digest("hex");
const gitOid = (data: Buffer) =>
  sha("sha1", Buffer.concat([Buffer.from(`blob ${data.length}\0`), data]));

function listing(repo: Repo): Record<string, unknown>[] {
  const entries: Record<string, unknown>[] = repo.files.map((f) => ({
    type: "file",
    path: f.path,
    size: f.data.length,
    oid: gitOid(f.data),
    ...(f.lfs
      ? { lfs: { oid: sha("sha256", f.data), size: f.data.length, pointerSize: 130 } }
      : {}),
  }));
  return [...entries, ...(repo.extraListing ?? [])];
}

function handle(req: IncomingMessage, res: ServerResponse) {
  const url = new URL(req.url ?? "/", "http://hub");
  requests.push({ url: url.pathname, range: req.headers.range, auth: req.headers.authorization });
  const json = (v: unknown, headers: Record<string, string> = {}) => {
    res.writeHead(200, { "content-type": "application/json", ...headers });
    res.end(JSON.stringify(v));
  };
  let m = /^\/api\/models\/([^/]+\/[^/]+)\/revision\/(.+)$/.exec(url.pathname);
  if (m) {
    const repo = repos.get(m[1]);
    if (!repo) return void res.writeHead(404).end();
    return json({
      id: m[1],
      sha: repo.commit,
      siblings: repo.files.map((f) => ({ rfilename: f.path })),
    });
  }
  m = /^\/api\/models\/([^/]+\/[^/]+)\/tree\/([0-9a-f]{40})$/.exec(url.pathname);
  if (m) {
    const repo = repos.get(m[1]);
    if (!repo || m[2] !== repo.commit) return void res.writeHead(404).end();
    // two pages, as the hub paginates long listings through the Link header
    const all = listing(repo);
    const cut = Math.ceil(all.length / 2);
    if (url.searchParams.get("cursor") === "2") return json(all.slice(cut));
    return json(all.slice(0, cut), {
      link: `<${endpoint}/api/models/${m[1]}/tree/${m[2]}?recursive=true&cursor=2>; rel="next"`,
    });
  }
  m = /^\/([^/]+\/[^/]+)\/resolve\/([0-9a-f]{40})\/(.+)$/.exec(url.pathname);
  const repo = m ? repos.get(m[1]) : undefined;
  const file = repo?.files.find((f) => f.path === decodeURIComponent(m![3]));
  if (!repo || !file) return void res.writeHead(404).end();
  let data = file.data;
  if (repo.corrupt?.has(file.path)) {
    data = Buffer.from(data);
    data[data.length >> 1] ^= 0xff;
  }
  const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
  const start = range ? Number(range[1]) : 0;
  const body = data.subarray(start);
  const etag = file.lfs ? sha("sha256", file.data) : gitOid(file.data);
  res.writeHead(range ? 206 : 200, {
    "content-length": String(body.length),
    etag: `"${etag}"`,
    ...(file.lfs ? { "x-linked-etag": `"${etag}"` } : {}),
    ...(range ? { "content-range": `bytes ${start}-${data.length - 1}/${data.length}` } : {}),
  });
  const cut = repo.cutAfter?.get(file.path);
  if (cut !== undefined) {
    repo.cutAfter!.delete(file.path); // only the first download is cut
    served += cut - start;
    res.write(body.subarray(0, cut - start));
    stalled.set(file.path, res);
    return;
  }
  served += body.length;
  res.end(body);
}

const server = createServer(handle);
before(async () => {
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => {
  server.closeAllConnections();
  server.close();
});

/** A tiny checkpoint (config, tokenizer, weights) as hub files; the weights are LFS files. */
async function tinyRepo(commitSeed: string): Promise<Repo> {
  return withTempDir(async (dir) => {
    const config = tinyConfig();
    await saveCheckpoint(dir, {
      config,
      weights: seededWeights(config, 3),
      tokenizerJson: tinyTokenizerJson(),
    });
    const files = await Promise.all(
      ["config.json", "tokenizer.json", "model.safetensors"].map(async (path) => ({
        path,
        data: await readFile(join(dir, path)),
        lfs: path.endsWith(".safetensors"),
      })),
    );
    files.push({ path: "docs/README.md", data: Buffer.from("# tiny\n"), lfs: false });
    return { commit: sha("sha1", Buffer.from(commitSeed)), files };
  });
}

/** Every file under `dir`, relative. */
function tree(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, encoding: "utf8" }).sort();
}

test("OWNER/NAME[@REV] is parsed; anything else is refused", () => {
  assert.deepEqual(parseRepoRef("a/b"), { repo: "a/b", revision: "main" });
  assert.deepEqual(parseRepoRef("GSAI-ML/LLaDA-8B-Instruct@v1.0"), {
    repo: "GSAI-ML/LLaDA-8B-Instruct",
    revision: "v1.0",
  });
  for (const bad of ["a", "a/b/c", "../x/y", "a/..", "/a/b", "a/b@"]) {
    assert.throws(() => parseRepoRef(bad), /expected OWNER\/NAME/, bad);
  }
});

test("pulls a repository into the hub's layout; the snapshot loads; a second pull downloads nothing", async () => {
  repos.set("tiny/model", await tinyRepo("one"));
  const repo = repos.get("tiny/model")!;
  await withTempDir(async (cache) => {
    requests.length = 0;
    const result = await pullRepo(parseRepoRef("tiny/model"), {
      endpoint,
      cache,
      token: "hf_test",
    });
    const root = join(cache, "models--tiny--model");
    assert.equal(result.commit, repo.commit);
    assert.equal(result.snapshot, join(root, "snapshots", repo.commit));
    assert.equal(result.files, 4);
    assert.equal(readFileSync(join(root, "refs", "main"), "utf8"), repo.commit);
    for (const f of repo.files) {
      const hash = f.lfs ? sha("sha256", f.data) : gitOid(f.data);
      const link = join(result.snapshot, f.path);
      assert.ok(lstatSync(link).isSymbolicLink(), f.path);
      assert.ok(readlinkSync(link).endsWith(join("blobs", hash)), f.path);
      assert.deepEqual(readFileSync(link), f.data, f.path);
    }
    assert.ok(
      requests.every((r) => r.auth === "Bearer hf_test"),
      "HF_TOKEN on every request",
    );
    const ckpt = await loadCheckpoint(result.snapshot);
    assert.deepEqual(ckpt.config, tinyConfig());

    const again = await pullRepo(parseRepoRef("tiny/model@main"), { endpoint, cache });
    assert.equal(again.downloaded, 0);
  });
});

test("a download cut midway resumes with a Range request, in the same run and in the next", async () => {
  const repo = await tinyRepo("two");
  const weights = repo.files.find((f) => f.path === "model.safetensors")!;
  const half = weights.data.length >> 1;
  repos.set("tiny/cut", repo);
  await withTempDir(async (cache) => {
    // same run: the connection drops after half the file, the retry asks for the rest
    repo.cutAfter = new Map([[weights.path, half]]);
    requests.length = 0;
    served = 0;
    const result = await pullRepo(parseRepoRef("tiny/cut"), {
      endpoint,
      cache,
      onProgress: cutWhenReceived(weights.path, half),
    });
    const ranges = requests.filter((r) => r.url.endsWith(weights.path)).map((r) => r.range);
    assert.deepEqual(ranges, [undefined, `bytes=${half}-`]);
    assert.deepEqual(readFileSync(join(result.snapshot, weights.path)), weights.data);
    const total = repo.files.reduce((n, f) => n + f.data.length, 0);
    assert.equal(served, total, "no byte served twice");
  });
  await withTempDir(async (cache) => {
    // next run: no retries left in the first, so it fails and leaves the partial file behind
    repo.cutAfter = new Map([[weights.path, half]]);
    await assert.rejects(
      pullRepo(parseRepoRef("tiny/cut"), {
        endpoint,
        cache,
        retries: 0,
        onProgress: cutWhenReceived(weights.path, half),
      }),
      (e: unknown) => e instanceof HubError && /pull again to resume/.test(e.message),
    );
    const blobs = join(cache, "models--tiny--cut", "blobs");
    const partial = tree(blobs).find((f) => f.endsWith(".incomplete"))!;
    assert.equal(readFileSync(join(blobs, partial)).length, half);
    requests.length = 0;
    const result = await pullRepo(parseRepoRef("tiny/cut"), { endpoint, cache });
    assert.deepEqual(
      requests.filter((r) => r.url.endsWith(weights.path)).map((r) => r.range),
      [`bytes=${half}-`],
    );
    assert.deepEqual(readFileSync(join(result.snapshot, weights.path)), weights.data);
    assert.ok(!tree(blobs).some((f) => f.endsWith(".incomplete")));
  });
});

test("a corrupted file is rejected by its checksum and deleted, LFS or not", async () => {
  for (const path of ["model.safetensors", "config.json"]) {
    const repo = await tinyRepo(`three-${path}`);
    repo.corrupt = new Set([path]);
    repos.set("tiny/corrupt", repo);
    await withTempDir(async (cache) => {
      await assert.rejects(
        pullRepo(parseRepoRef("tiny/corrupt"), { endpoint, cache }),
        (e: unknown) => {
          assert.ok(e instanceof ChecksumError, String(e));
          assert.equal(e.path, path);
          assert.match(e.expected, path.endsWith(".safetensors") ? /^sha256 / : /^sha1 /);
          return true;
        },
      );
      const root = join(cache, "models--tiny--corrupt");
      const file = repo.files.find((f) => f.path === path)!;
      const hash = file.lfs ? sha("sha256", file.data) : gitOid(file.data);
      assert.ok(!tree(join(root, "blobs")).some((f) => f.startsWith(hash)), "nothing kept");
      assert.ok(!existsSync(join(root, "snapshots", repo.commit, path)));
    });
  }
});

test("a path-traversing file name in the listing is refused before anything is written", async () => {
  for (const path of [
    "../../evil.txt",
    "docs/../../../evil.txt",
    "/etc/evil",
    "a\\..\\evil",
    "a//b",
  ]) {
    const repo = await tinyRepo("four");
    repo.extraListing = [{ type: "file", path, size: 4, oid: "0".repeat(40) }];
    repos.set("tiny/evil", repo);
    await withTempDir(async (parent) => {
      const cache = join(parent, "cache");
      await assert.rejects(
        pullRepo(parseRepoRef("tiny/evil"), { endpoint, cache }),
        (e: unknown) => e instanceof UnsafeListingError && e.path === path,
        path,
      );
      assert.deepEqual(tree(parent), [], `${path}: something was written`);
    });
  }
});

test("HTTP errors are typed: an unknown repository is a 404 naming it; no hub is a HubError", async () => {
  await withTempDir(async (cache) => {
    await assert.rejects(
      pullRepo(parseRepoRef("a/b"), { endpoint: "http://127.0.0.1:9", cache }),
      (e: unknown) => e instanceof HubError && /cannot reach the hub/.test(e.message),
    );
    await assert.rejects(
      pullRepo(parseRepoRef("nobody/nothing"), { endpoint, cache }),
      (e: unknown) =>
        e instanceof HubHttpError && e.status === 404 && /nobody\/nothing/.test(e.message),
    );
  });
});

test("unmask pull (HF_ENDPOINT, HF_TOKEN) prints the snapshot, which generate --quant runs", async () => {
  repos.set("tiny/cli", await tinyRepo("five"));
  await withTempDir(async (cache) => {
    requests.length = 0;
    const r = await cli(["pull", "tiny/cli", "--cache", cache, "--json"], {
      env: { HF_ENDPOINT: endpoint, HF_TOKEN: "hf_cli" },
    });
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { snapshot: string; commit: string; files: number };
    assert.equal(out.commit, repos.get("tiny/cli")!.commit);
    assert.equal(out.files, 4);
    assert.ok(requests.length > 0 && requests.every((q) => q.auth === "Bearer hf_cli"));
    const g = await cli([
      "generate",
      "ab",
      "-m",
      out.snapshot,
      "-n",
      "4",
      "--quant",
      "int4",
      "--json",
    ]);
    assert.equal(g.code, 0, g.stderr);
    assert.equal(typeof (JSON.parse(g.stdout) as { text: unknown }).text, "string");
    const bad = await cli(["pull", "not a repo"]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /OWNER\/NAME/);
  });
});
