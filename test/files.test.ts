// Files as users have them, through the command line as a process (src/cli/files.ts): a file that
// is not UTF-8 (Latin-1, binary) refused and left as it was; a byte order mark and CRLF line
// endings kept, the generated lines too; a read-only file refused before any generation; a write
// that fails midway (injected) leaves the original intact and no temporary file; --write stopped
// by --max-time exits non-zero; files ten times the model's context edited in their middle with
// every byte outside the span unchanged; and the diffs of edit and fix applied with `git apply`.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  chmod,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rm,
  stat,
  symlink,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { cli, type Ran, writeModel } from "./cli-helpers.js";

const CONTEXT = 64; // the tiny model's context, in tokens
let dir = "";
let model = "";
let slowModel = "";

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "unmask-files-"));
  model = join(dir, "model");
  slowModel = join(dir, "model-slow");
  await writeModel(model, {}, { hidden: 16, layers: 2, context: CONTEXT });
  // big enough that a 400-token canvas takes many steps of real work: something to stop
  await writeModel(slowModel, {}, { hidden: 256, layers: 4, context: 512 });
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A fresh folder for one case, holding `name` with `bytes`. */
async function fileIn(name: string, bytes: string | Uint8Array): Promise<string> {
  const folder = await mkdtemp(join(dir, "case-"));
  const path = join(folder, name);
  await writeFile(path, bytes);
  return path;
}

function assertRefused(r: Ran, pattern: RegExp): void {
  assert.notEqual(r.code, 0, r.stderr);
  assert.match(r.stderr, pattern);
  assert.doesNotMatch(r.stderr, /\n\s+at /, "no stack trace");
}

/** The three commands that write FILE, each with what it needs to run on a small file. */
const writers = (path: string) => [
  ["infill", "-m", model, path, "--write"],
  ["edit", "-m", model, path, "--lines", "1", "--write"],
  ["fix", "-m", model, path, "--below", "1", "--write"],
];

test("a Latin-1 file is refused by infill, edit and fix, named with byte and line, unchanged", async () => {
  const bytes = Buffer.concat([
    Buffer.from("ab c\ncaf"),
    Buffer.from([0xe9]), // é in Latin-1: not UTF-8
    Buffer.from(" <FILL:2>\n"),
  ]);
  const path = await fileIn("latin1.txt", bytes);
  for (const args of writers(path)) {
    const r = await cli(args);
    assertRefused(r, /latin1\.txt: not valid UTF-8 at byte 8 \(line 2\)/);
    assert.deepEqual(await readFile(path), bytes, `${args[0]} left the bytes as they were`);
  }
});

test("a binary file is refused (invalid UTF-8, or a NUL byte), unchanged", async () => {
  const png = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13]);
  const pngPath = await fileIn("image.png", png);
  const nul = Buffer.from("ab\nc\0c <FILL>\n");
  const nulPath = await fileIn("data.bin", nul);
  for (const args of writers(pngPath)) {
    assertRefused(await cli(args), /image\.png: not valid UTF-8 at byte 0 \(line 1\)/);
    assert.deepEqual(await readFile(pngPath), png);
  }
  for (const args of writers(nulPath)) {
    assertRefused(await cli(args), /data\.bin: a binary file \(NUL byte\) at byte 4 \(line 2\)/);
    assert.deepEqual(await readFile(nulPath), nul);
  }
});

test("a byte order mark is kept by infill and fix, and is not shown to the model", async () => {
  const source = "\uFEFFab c\n<FILL:3>\nc ab\n";
  const path = await fileIn("bom.txt", source);
  const json = await cli(["infill", "-m", model, path, "--json"]);
  assert.equal(json.code, 0, json.stderr);
  const out = JSON.parse(json.stdout);
  assert.equal(out.tokens.canvas, 4 + 3 + 5, "no token for the BOM"); // "ab c\n", hole, "\nc ab\n"
  const written = await cli(["infill", "-m", model, path, "--write"]);
  assert.equal(written.code, 0, written.stderr);
  const bytes = await readFile(path);
  assert.deepEqual(bytes.subarray(0, 3), Buffer.from([0xef, 0xbb, 0xbf]));
  assert.equal(bytes.toString("utf8"), `\uFEFFab c\n${out.fills[0]}\nc ab\n`);

  const fixed = await cli([
    "fix",
    "-m",
    model,
    path,
    "--below",
    "1",
    "--max-fraction",
    "0.5",
    "--write",
  ]);
  assert.equal(fixed.code, 0, fixed.stderr);
  assert.deepEqual((await readFile(path)).subarray(0, 3), Buffer.from([0xef, 0xbb, 0xbf]));
});

test("a CRLF file keeps CRLF on every line, the generated ones too", async () => {
  const source = "ab\r\nc c\r\nab ab\r\nc\r\n";
  const path = await fileIn("crlf.txt", source);
  const args = ["edit", "-m", model, path, "--lines", "2-3", "--length", "24"];
  const json = await cli([...args, "--json"]);
  assert.equal(json.code, 0, json.stderr);
  const { replacement } = JSON.parse(json.stdout);
  assert.doesNotMatch(replacement, /\r/, "the model sees LF");
  assert.match(replacement, /\n/, "the generated lines hold a line break (seeded model)");
  const written = await cli([...args, "--write"]);
  assert.equal(written.code, 0, written.stderr);
  const after = await readFile(path, "utf8");
  assert.equal(after, `ab\r\n${replacement.replace(/\n/g, "\r\n")}\r\nc\r\n`);
  assert.doesNotMatch(after, /[^\r]\n/, "no line ends in a bare LF");
});

test("a read-only file is refused before the model is loaded or anything generated", async () => {
  const source = "ab c\n<FILL:3>\n";
  const path = await fileIn("readonly.txt", source);
  await chmod(path, 0o444);
  for (const args of writers(path)) {
    // a model folder that does not exist: the file's problem must be found first
    const r = await cli(args.map((a) => (a === model ? join(dir, "no-model") : a)));
    assertRefused(r, /readonly\.txt: cannot --write: the file is read-only \(mode 0444\)/);
    assert.equal(await readFile(path, "utf8"), source);
  }
});

test("a write that fails midway leaves the original intact and no temporary file", async () => {
  const marked = "ab c\nab\n<FILL:6>\nc\n";
  const plain = "ab c\nab\nc ab c\nc\n";
  const path = await fileIn("full-disk.txt", marked);
  const folder = join(path, "..");
  for (const [args, source] of [
    [writers(path)[0], marked],
    [writers(path)[1], plain],
    [writers(path)[2], plain],
  ] as const) {
    await writeFile(path, source);
    const r = await cli(args, { env: { UNMASK_TEST_FAIL_WRITE: "3" } });
    assertRefused(
      r,
      /full-disk\.txt: not written \(no space left on device \(injected\)\); the file is as it was/,
    );
    assert.equal(await readFile(path, "utf8"), source, `${args[0]}: the original intact`);
    assert.deepEqual(await readdir(folder), ["full-disk.txt"], "no temporary file left");
  }
  // and without the injected failure the same write goes through, the mode kept
  await writeFile(path, marked);
  await chmod(path, 0o640);
  const ok = await cli(writers(path)[0]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.doesNotMatch(await readFile(path, "utf8"), /<FILL/);
  assert.deepEqual(await readdir(folder), ["full-disk.txt"]);
  assert.equal((await stat(path)).mode & 0o777, 0o640);
  // a symbolic link stays a link: the file it points to is replaced
  const link = join(await mkdtemp(join(dir, "link-")), "link.txt");
  await writeFile(path, marked);
  await symlink(path, link);
  const viaLink = await cli(writers(link)[0]);
  assert.equal(viaLink.code, 0, viaLink.stderr);
  assert.ok((await lstat(link)).isSymbolicLink());
  assert.doesNotMatch(await readFile(path, "utf8"), /<FILL/);
  assert.deepEqual(await readdir(folder), ["full-disk.txt"]);
});

test("--write stopped by --max-time leaves the file untouched and exits non-zero", async () => {
  const source = "ab\n<FILL:400>\nc\n";
  const path = await fileIn("stopped.txt", source);
  const r = await cli(["infill", "-m", slowModel, path, "--write", "--max-time", "0.5"]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /stopped\.txt not written: the run was stopped at --max-time/);
  assert.equal(await readFile(path, "utf8"), source);
});

test("malformed <FILL> markers are errors naming file, line and marker", async () => {
  for (const [text, line, marker] of [
    ["ab\n<FILL:abc>\n", 2, "<FILL:abc>"],
    ["ab\nc\nc <FILL:0>\n", 3, "<FILL:0>"],
    ["<FILL:3\nab\n", 1, "<FILL:3"],
  ] as const) {
    const path = await fileIn("marks.txt", text);
    const r = await cli(["infill", "-m", model, path]);
    assert.equal(r.code, 2, r.stderr);
    assert.ok(
      r.stderr.includes(`marks.txt:${line}: malformed hole marker ${JSON.stringify(marker)}`),
      r.stderr,
    );
  }
});

/** A file of `lines` lines of 6 tokens each ("ab c ab\n": ab, space, c, space, ab, newline). */
function longText(lines: number): string {
  let s = "";
  for (let i = 0; i < lines; i++) s += i % 2 === 0 ? "ab c ab\n" : "c ab c\n";
  return s;
}

test("a file ten times the context: infill, edit and fix in windows, bytes outside unchanged", async () => {
  const head = longText(60);
  const tail = longText(61);
  assert.ok((60 + 1 + 61) * 6 > 10 * CONTEXT, "more than ten contexts of tokens");
  // infill: a <FILL> in the middle line
  const path = await fileIn("long.txt", `${head}c <FILL:6> c\n${tail}`);
  const filled = await cli(["infill", "-m", model, path, "--json"]);
  assert.equal(filled.code, 0, filled.stderr);
  const f = JSON.parse(filled.stdout);
  assert.ok(f.tokens.canvas <= CONTEXT, `canvas of ${f.tokens.canvas}`);
  assert.ok(f.window[0] > 0 && f.window[1] < head.length + tail.length, "a window, not the file");
  const written = await cli(["infill", "-m", model, path, "--write"]);
  assert.equal(written.code, 0, written.stderr);
  assert.deepEqual(
    await readFile(path),
    Buffer.from(`${head}c ${f.fills[0]} c\n${tail}`),
    "bytes outside the hole as they were",
  );

  // edit: the middle lines of a long file
  const source = head + tail;
  await writeFile(path, source);
  const edited = await cli(["edit", "-m", model, path, "--lines", "60-61", "--write", "--json"]);
  assert.equal(edited.code, 0, edited.stderr);
  const e = JSON.parse(edited.stdout);
  assert.ok(e.tokens.canvas <= CONTEXT);
  const lines = source.split(/(?<=\n)/);
  const before = lines.slice(0, 59).join("");
  const afterSpan = lines.slice(61).join("");
  const bytes = await readFile(path);
  assert.deepEqual(bytes.subarray(0, before.length), Buffer.from(before));
  assert.deepEqual(
    bytes.subarray(bytes.length - afterSpan.length - 1),
    Buffer.from(`\n${afterSpan}`),
  );
  assert.equal(bytes.toString("utf8"), `${before}${e.replacement}\n${afterSpan}`);

  // fix: in chunks that each fit
  await writeFile(path, source);
  const fixed = await cli(["fix", "-m", model, path, "--json"]);
  assert.equal(fixed.code, 0, fixed.stderr);
  const x = JSON.parse(fixed.stdout);
  assert.ok(x.chunks >= 10, `${x.chunks} chunks`);
  assert.ok(x.tokens.source > 10 * CONTEXT, `${x.tokens.source} tokens`);
  const fixWritten = await cli(["fix", "-m", model, path, "--write"]);
  assert.equal(fixWritten.code, 0, fixWritten.stderr);
  assert.equal(await readFile(path, "utf8"), x.text);

  // a hole larger than the context: both numbers named
  await writeFile(path, `${head}<FILL:65>\n`);
  const big = await cli(["infill", "-m", model, path]);
  assert.equal(big.code, 2, big.stderr);
  assert.match(
    big.stderr,
    /long\.txt: the hole's tokens take 65 tokens, more than the model's context of 64 tokens/,
  );
  await writeFile(path, source);
  const wide = await cli(["edit", "-m", model, path, "--lines", "2-3", "--length", "70"]);
  assert.equal(wide.code, 2, wide.stderr);
  assert.match(
    wide.stderr,
    /the new lines 2-3 take 70 tokens, more than the model's context of 64/,
  );
});

test("the diffs of edit --diff and fix apply with git apply (CRLF, no final newline)", async () => {
  const folder = await mkdtemp(join(dir, "git-"));
  await mkdir(join(folder, "src"));
  const source = "ab c\r\nc ab\r\nab ab\r\nc\r\nab c ab\r\nc";
  const rel = join("src", "f.txt");
  for (const args of [
    ["edit", "-m", model, rel, "--lines", "4-6", "--length", "10", "--json"],
    ["fix", "-m", model, rel, "--below", "1", "--max-fraction", "0.5", "--json"],
  ]) {
    await writeFile(join(folder, rel), source);
    const r = await cli(args, { cwd: folder });
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.notEqual(out.diff, "", `${args[0]} changed something`);
    await writeFile(join(folder, "change.diff"), out.diff);
    const applied = spawnSync("git", ["apply", "change.diff"], { cwd: folder, encoding: "utf8" });
    assert.equal(applied.status, 0, applied.stderr);
    assert.equal(await readFile(join(folder, rel), "utf8"), out.text, `${args[0]}: git apply`);
    assert.notEqual(out.text, source);
  }
});
