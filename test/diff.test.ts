// src/cli/diff.ts against `diff -u` as GNU diffutils prints it (the expected texts below were
// written out from `diff -u --label a/f --label b/f` and checked by hand), on every edge a patch
// tool trips on; and every patch applied with `git apply` and with `patch` to an old file in a
// temporary folder, which must then hold the new text byte for byte.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { unifiedDiff } from "../src/cli/diff.js";

const lines = (from: number, to: number) => {
  let s = "";
  for (let i = from; i <= to; i++) s += `line ${i}\n`;
  return s;
};
const change = (text: string, line: number, to: string) => {
  const ls = text.split(/(?<=\n)/);
  ls[line - 1] = to;
  return ls.join("");
};

const cases: { name: string; before: string; after: string; expected: string }[] = [
  {
    name: "no final newline, changed last line",
    before: "a\nb\nc",
    after: "a\nb\nC",
    expected: `--- a/f
+++ b/f
@@ -1,3 +1,3 @@
 a
 b
-c
\\ No newline at end of file
+C
\\ No newline at end of file
`,
  },
  {
    name: "final newline added",
    before: "a\nb\nc",
    after: "a\nb\nc\n",
    expected: `--- a/f
+++ b/f
@@ -1,3 +1,3 @@
 a
 b
-c
\\ No newline at end of file
+c
`,
  },
  {
    name: "final newline removed",
    before: "a\nb\nc\n",
    after: "a\nb\nc",
    expected: `--- a/f
+++ b/f
@@ -1,3 +1,3 @@
 a
 b
-c
+c
\\ No newline at end of file
`,
  },
  {
    name: "first line changed",
    before: lines(1, 6),
    after: "first\nline 2\nline 3\nline 4\nline 5\nline 6\n",
    expected: `--- a/f
+++ b/f
@@ -1,4 +1,4 @@
-line 1
+first
 line 2
 line 3
 line 4
`,
  },
  {
    name: "last line changed",
    before: lines(1, 6),
    after: change(lines(1, 6), 6, "last\n"),
    expected: `--- a/f
+++ b/f
@@ -3,4 +3,4 @@
 line 3
 line 4
 line 5
-line 6
+last
`,
  },
  {
    name: "empty file to text",
    before: "",
    after: "x\ny\n",
    expected: `--- a/f
+++ b/f
@@ -0,0 +1,2 @@
+x
+y
`,
  },
  {
    name: "text to empty file",
    before: "x\ny\n",
    after: "",
    expected: `--- a/f
+++ b/f
@@ -1,2 +0,0 @@
-x
-y
`,
  },
  {
    name: "crlf",
    before: "a\r\nb\r\nc\r\nd\r\n",
    after: "a\r\nB\r\nc\r\nd\r\n",
    expected: `--- a/f
+++ b/f
@@ -1,4 +1,4 @@
 a\r
-b\r
+B\r
 c\r
 d\r
`,
  },
  {
    name: "merged hunks (gap of 6)",
    before: lines(1, 20),
    after: change(change(lines(1, 20), 5, "five\n"), 12, "twelve\n"),
    expected: `--- a/f
+++ b/f
@@ -2,14 +2,14 @@
 line 2
 line 3
 line 4
-line 5
+five
 line 6
 line 7
 line 8
 line 9
 line 10
 line 11
-line 12
+twelve
 line 13
 line 14
 line 15
`,
  },
  {
    name: "separate hunks (gap of 7)",
    before: lines(1, 20),
    after: change(change(lines(1, 20), 5, "five\n"), 13, "thirteen\n"),
    expected: `--- a/f
+++ b/f
@@ -2,7 +2,7 @@
 line 2
 line 3
 line 4
-line 5
+five
 line 6
 line 7
 line 8
@@ -10,7 +10,7 @@
 line 10
 line 11
 line 12
-line 13
+thirteen
 line 14
 line 15
 line 16
`,
  },
  {
    name: "pure insertion",
    before: lines(1, 8),
    after: `${lines(1, 4)}new a\nnew b\n${lines(5, 8)}`,
    expected: `--- a/f
+++ b/f
@@ -2,6 +2,8 @@
 line 2
 line 3
 line 4
+new a
+new b
 line 5
 line 6
 line 7
`,
  },
  {
    name: "pure deletion",
    before: lines(1, 8),
    after: lines(1, 3) + lines(6, 8),
    expected: `--- a/f
+++ b/f
@@ -1,8 +1,6 @@
 line 1
 line 2
 line 3
-line 4
-line 5
 line 6
 line 7
 line 8
`,
  },
  {
    name: "one-line file (no counts of 1)",
    before: "a\n",
    after: "b\n",
    expected: `--- a/f
+++ b/f
@@ -1 +1 @@
-a
+b
`,
  },
];

let dir = "";
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "unmask-diff-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Applies `patch` to a file holding `old` with `tool`; resolves to the file's bytes after. */
async function apply(tool: "git" | "patch", old: string, patch: string): Promise<string> {
  await writeFile(join(dir, "f"), old);
  await writeFile(join(dir, "p.diff"), patch);
  const argv =
    tool === "git" ? ["git", "apply", "p.diff"] : ["patch", "-p1", "--quiet", "-i", "p.diff"];
  const r = spawnSync(argv[0], argv.slice(1), { cwd: dir, encoding: "utf8" });
  assert.equal(r.status, 0, `${tool}: ${r.stderr}${r.stdout}`);
  return readFile(join(dir, "f"), "utf8");
}

for (const c of cases) {
  test(`diff: ${c.name}`, async () => {
    const patch = unifiedDiff(c.before, c.after, ["a/f", "b/f"]);
    assert.equal(patch, c.expected);
    assert.equal(await apply("git", c.before, patch), c.after, "git apply");
    assert.equal(await apply("patch", c.before, patch), c.after, "patch");
  });
}

test("diff: equal texts give no diff; color paints only changed lines", () => {
  assert.equal(unifiedDiff("a\nb", "a\nb", ["a/f", "b/f"]), "");
  const painted = unifiedDiff("a\nb\n", "a\nc\n", ["a/f", "b/f"], { color: true });
  assert.equal(
    painted,
    "--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n a\n\x1b[31m-b\x1b[39m\n\x1b[32m+c\x1b[39m\n",
  );
});
