import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { BpeTokenizer, SPECIAL_IDS, trainBpe } from "../src/train/bpe.js";
import { type DataPosition, PackedRows, RowSampler, tokenizeCorpus } from "../src/train/data.js";

const root = mkdtempSync(join(tmpdir(), "unmask-train-data-"));
after(() => rmSync(root, { recursive: true, force: true }));

const docs = [
  "export function add(a: number, b: number): number {\n  return a + b;\n}\n",
  "const x = [1, 2, 3].map((v) => v * 2); // héllo ✓\n",
  "class Stack<T> {\n  private items: T[] = [];\n  push(item: T) {\n    this.items.push(item);\n  }\n}\n",
  "if (a [MASK] b) { throw new Error('no'); }\n",
];

let tokenizer: BpeTokenizer;
const corpus = join(root, "train.jsonl");

before(async () => {
  tokenizer = new BpeTokenizer(await trainBpe(docs, { vocabSize: 300 }));
  writeFileSync(
    corpus,
    `${docs.map((text, i) => JSON.stringify({ path: `f${i}.ts`, text })).join("\n")}\n`,
  );
});

describe("tokenizeCorpus", () => {
  it("joins documents with EOS, counts bytes, and caches the ids", async () => {
    const first = await tokenizeCorpus({ corpus, tokenizer });
    assert.equal(first.cached, false);
    const expected: number[] = [];
    for (const d of docs) expected.push(...tokenizer.encodeOrdinary(d), SPECIAL_IDS.eos);
    assert.deepEqual([...first.tokens], expected);
    assert.ok(first.tokens instanceof Uint16Array);
    assert.equal(first.documents, docs.length);
    assert.equal(
      first.bytes,
      docs.reduce((n, d) => n + Buffer.byteLength(d), 0),
    );
    // "[MASK]" in source text is text, never the mask id.
    assert.equal(first.tokens.filter((t) => t === SPECIAL_IDS.mask).length, 0);
    assert.equal(statSync(first.file).size, expected.length * 2);

    const second = await tokenizeCorpus({ corpus, tokenizer });
    assert.equal(second.cached, true);
    assert.equal(second.file, first.file);
    assert.deepEqual(second.tokens, first.tokens);
    assert.equal(second.bytes, first.bytes);
  });

  it("keys the cache on the corpus content and the tokenizer", async () => {
    const other = join(root, "other.jsonl");
    writeFileSync(other, `${JSON.stringify({ text: docs[0] })}\n`);
    const a = await tokenizeCorpus({ corpus: other, tokenizer });
    writeFileSync(other, `${JSON.stringify({ text: docs[1] })}\n`);
    const b = await tokenizeCorpus({ corpus: other, tokenizer });
    assert.equal(b.cached, false);
    assert.notEqual(a.file, b.file);
    const small = new BpeTokenizer({ merges: tokenizer.model.merges.slice(0, 5) });
    const c = await tokenizeCorpus({ corpus: other, tokenizer: small });
    assert.equal(c.cached, false);
    assert.notEqual(c.file, b.file);
    assert.ok(readdirSync(join(root, "tokens")).every((f) => !f.includes(".tmp")));
  });

  it("names the line of a malformed document", async () => {
    const bad = join(root, "bad.jsonl");
    writeFileSync(bad, `${JSON.stringify({ text: "ok" })}\n{"text": 3}\n`);
    await assert.rejects(tokenizeCorpus({ corpus: bad, tokenizer }), /bad\.jsonl:2/);
  });
});

describe("PackedRows and RowSampler", () => {
  const tokens = Uint16Array.from({ length: 10 * 8 + 5 }, (_, i) => i);
  const rows = new PackedRows(tokens, 8);

  it("cuts the stream into whole rows", () => {
    assert.equal(rows.count, 10);
    const out = new Int32Array(8);
    rows.copyRow(3, out);
    assert.deepEqual([...out], [24, 25, 26, 27, 28, 29, 30, 31]);
    assert.throws(() => rows.copyRow(10, out), RangeError);
  });

  /** The first token of each row read: identifies the row. */
  const read = (s: RowSampler, n: number) => {
    const out = new Int32Array(n * 8);
    s.next(n, out);
    return Array.from({ length: n }, (_, r) => out[r * 8] / 8);
  };

  it("visits every row once per epoch, in a seeded shuffled order", () => {
    const a = read(new RowSampler(rows, 1), 30);
    const b = read(new RowSampler(rows, 1), 30);
    assert.deepEqual(a, b);
    for (let e = 0; e < 3; e++) {
      assert.deepEqual(
        [...a.slice(e * 10, e * 10 + 10)].sort((x, y) => x - y),
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
      );
    }
    assert.notDeepEqual(a.slice(0, 10), a.slice(10, 20), "each epoch has its own order");
    assert.notDeepEqual(a, read(new RowSampler(rows, 2), 30), "the seed changes the order");
  });

  it("resumes exactly from a saved position, across epoch boundaries", () => {
    const whole = read(new RowSampler(rows, 5), 25);
    for (const k of [0, 3, 10, 17]) {
      const s = new RowSampler(rows, 5);
      const head = read(s, k);
      const saved: DataPosition = JSON.parse(JSON.stringify(s.position()));
      const resumed = new RowSampler(rows, 5);
      resumed.restore(saved);
      assert.deepEqual([...head, ...read(resumed, 25 - k)], whole, `split at ${k}`);
    }
    assert.throws(() => new RowSampler(rows, 6).restore({ seed: 5, epoch: 0, index: 0 }), /seed/);
  });
});
