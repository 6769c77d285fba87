// The pieces of src/cli/files.ts and the line chunks of src/diffusion/window.ts on their own:
// decoding and encoding back are exact for every form of file (BOM, CRLF, mixed endings), the
// first bad byte is found where it is, chunks cover a text in pieces that fit, and a fix's change
// is put back into text the tokenizer does not reproduce.

import assert from "node:assert/strict";
import { test } from "node:test";
import { spliceChange } from "../src/cli/edit.js";
import { decodeText, encodeText, NotTextError } from "../src/cli/files.js";
import { lineChunks } from "../src/diffusion/window.js";

test("decodeText then encodeText gives back the same bytes, for every form of text file", () => {
  for (const [text, bom, crlf] of [
    ["a\nb\n", false, false],
    ["a\r\nb\r\n", false, true],
    ["a\r\nb", false, true],
    ["a\r\r\nb\rc\r\n", false, true],
    ["a\r\nb\nc\r\n", false, false], // mixed endings: left as they are
    ["\uFEFFa\r\nb\r\n", true, true],
    ["\uFEFF", true, false],
    ["", false, false],
    ["é ✓ 𝄞\n", false, false],
  ] as const) {
    const bytes = Buffer.from(text, "utf8");
    const file = decodeText("f", bytes);
    assert.equal(file.bom, bom, JSON.stringify(text));
    assert.equal(file.crlf, crlf, JSON.stringify(text));
    if (crlf) assert.equal(file.text, text.replace(/^\uFEFF/, "").replace(/\r\n/g, "\n"));
    assert.ok(!file.text.startsWith("\uFEFF"));
    assert.deepEqual(encodeText(file, file.text), bytes);
  }
  // new lines of a CRLF file get CRLF
  const crlf = decodeText("f", Buffer.from("a\r\nb\r\n"));
  assert.equal(encodeText(crlf, "a\nx\ny\nb\n").toString(), "a\r\nx\r\ny\r\nb\r\n");
});

test("the first byte that is not UTF-8: its offset and line", () => {
  const cases: [number[], number, number][] = [
    [[0x61, 0x0a, 0x62, 0xe9, 0x63], 3, 2], // Latin-1 é, then ASCII
    [[0xe9], 0, 1],
    [[0x61, 0xe2, 0x9c], 1, 1], // a 3-byte character cut at the end
    [[0x61, 0x0a, 0x0a, 0xe2, 0x9c, 0x93, 0xff], 6, 3], // after a valid ✓
    [[0xef, 0xbb, 0xbf, 0x80], 3, 1], // after a BOM, a lone continuation byte
  ];
  for (const [bytes, offset, line] of cases) {
    assert.throws(
      () => decodeText("x.txt", Uint8Array.from(bytes)),
      (e: unknown) => e instanceof NotTextError && e.offset === offset && e.line === line,
      JSON.stringify(bytes),
    );
  }
});

/** One token per character: a budget is a count of characters. */
const chars = { encode: (s: string) => Array.from(s, (c) => c.charCodeAt(0)) };

test("lineChunks: whole lines in order, each within the budget; a longer line is an error", () => {
  const text = "aaaa\nbb\ncccccc\nd\ne\nffff";
  const chunks = lineChunks(text, 8, chars);
  assert.deepEqual(
    chunks.map(([a, b]) => text.slice(a, b)),
    ["aaaa\nbb\n", "cccccc\n", "d\ne\nffff"],
  );
  assert.equal(chunks[0][0], 0);
  assert.equal(chunks[chunks.length - 1][1], text.length);
  assert.throws(
    () => lineChunks("ab\nabcdefghij\n", 8, chars),
    /line 2 has 11 tokens, more than the 8/,
  );
});

test("spliceChange: only the changed lines change, the others taken from the source", () => {
  // the tokenizer dropped "é" (before = decode(encode(source))): the change is put in place
  const source = "café = 1;\nx = 2;\ny = 3;\n";
  assert.equal(
    spliceChange(source, "caf = 1;\nx = 2;\ny = 3;\n", "caf = 1;\nx = 5;\ny = 3;\n", "f"),
    "café = 1;\nx = 5;\ny = 3;\n",
  );
  assert.equal(spliceChange("ab", "ab", "ab", "f"), "ab");
  assert.equal(spliceChange("a\nb\nc", "a\nb\nc", "a\nB\nb2\nc", "f"), "a\nB\nb2\nc");
  // a change on a line the tokenizer does not reproduce cannot be put back exactly
  assert.throws(
    () => spliceChange("café\n", "caf\n", "cax\n", "f.ts"),
    /f\.ts: the tokenizer does not reproduce the changed lines/,
  );
});
