import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Tokenizer } from "@huggingface/tokenizers";
import {
  BpeTokenizer,
  BYTE_OFFSET,
  bpeFromTokenizerJson,
  bpeToTokenizerJson,
  FIRST_MERGE_ID,
  SPECIAL_IDS,
  SPECIAL_TOKENS,
  TokenizerJsonError,
  trainBpe,
} from "../src/train/bpe.js";
import { CODE_SPLIT_PATTERN, preTokenize } from "../src/train/pretokenize.js";

/** A small deterministic corpus of indented TypeScript-like code (mulberry32 PRNG). */
function syntheticCode(files: number, seed = 1): string[] {
  let s = seed >>> 0;
  const rand = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];
  const names = [
    "value",
    "index",
    "result",
    "options",
    "count",
    "items",
    "node",
    "key",
    "__proto__",
  ];
  const types = ["number", "string", "boolean", "readonly string[]", "Map<string, number>"];
  const out: string[] = [];
  for (let f = 0; f < files; f++) {
    const lines: string[] = [`import { ${pick(names)} } from "./${pick(names)}.js";`, ""];
    for (let fn = 0; fn < 4; fn++) {
      const a = pick(names);
      const b = pick(names);
      lines.push(`export function ${a}To${b}(${a}: ${pick(types)}, ${b} = ${f * 7 + fn}) {`);
      lines.push(`  const total = ${a}.length + ${b};`);
      lines.push(`  for (let i = 0; i < total; i++) {`);
      lines.push(`    if (${a}[i] !== ${b}) {`);
      lines.push(`      return { ${a}, ${b}: i * 2 };`);
      lines.push(`    }`);
      lines.push(`  }`);
      lines.push(`  // TODO: ${pick(names)} → ${pick(names)} ✓`);
      lines.push(`  return null;`);
      lines.push(`}`);
      lines.push("");
    }
    out.push(lines.join(f % 5 === 0 ? "\r\n" : "\n"));
  }
  return out;
}

const TRICKY = [
  "",
  "a",
  " ",
  "\n",
  "\t\tindented with tabs\n\t\t\tmore",
  "windows\r\nline\r\n  endings\r\n",
  "old mac\rline",
  "emoji 👩‍💻 and 🎉🎉 flags 🇫🇷",
  "中文字符 and ﾊﾝｶｸ and Ελληνικά",
  "combining e\u0301 and a\u0308",
  "nul \u0000 and \u0001 control \u007f",
  "nbsp\u00a0and line sep\u2028para\u2029 bom \ufeff",
  "const __proto__ = { constructor: 1, toString: 2 };",
  "x".repeat(5000),
  " ".repeat(300) + "y",
  "a  =  b;   // trailing   \n",
  'const s = "[MASK] in a string"; // [PAD][BOS][EOS]',
  "[FIM_PREFIX]def f():[FIM_SUFFIX]\n[FIM_MIDDLE]",
  "[MASK",
  "[[MASK]]",
  "number 1234567 and 0xFF_FF and 3.14e-10",
];

const corpus = syntheticCode(60);
const model = await trainBpe(corpus, { vocabSize: 500 });
const json = bpeToTokenizerJson(model);
const ours = new BpeTokenizer(model);
// Through a JSON round trip, as a file on disk would be read.
const theirs = new Tokenizer(JSON.parse(JSON.stringify(json)), {
  clean_up_tokenization_spaces: false,
});

describe("pre-tokenizer", () => {
  test("tokenizers.js compiles the Split pattern unchanged", () => {
    // tokenizers.js rewrites Oniguruma syntax; an unchanged source means identical splitting.
    const sequence = theirs.pre_tokenizer as unknown as { tokenizers: { pattern: RegExp }[] };
    const pattern = sequence.tokenizers[0].pattern;
    assert.equal(pattern.source, CODE_SPLIT_PATTERN);
    assert.equal(pattern.flags, "gu");
  });

  test("keeps a newline with the following indentation", () => {
    assert.deepEqual(preTokenize("if (x) {\n    return a_b1  + $c;\n\n  }\r\n"), [
      "if",
      " (",
      "x",
      ")",
      " {",
      "\n    ",
      "return",
      " a_b1",
      " ",
      " +",
      " $c",
      ";",
      "\n\n  ",
      "}",
      "\r\n",
    ]);
    assert.deepEqual(preTokenize("x = 1234567;"), ["x", " =", " 123", "456", "7", ";"]);
  });

  test("pieces always join back to the text", () => {
    for (const s of [...TRICKY, ...corpus.slice(0, 5)]) assert.equal(preTokenize(s).join(""), s);
  });
});

describe("byte-level BPE", () => {
  test("vocabulary layout: specials, bytes, merges", () => {
    assert.equal(ours.vocabSize, 500);
    assert.equal(model.merges.length, 500 - FIRST_MERGE_ID);
    SPECIAL_TOKENS.forEach((t, i) => {
      assert.equal(json.model.vocab[t], i);
    });
    assert.equal(SPECIAL_IDS.mask, 0);
    assert.equal(json.model.vocab.Ġ, BYTE_OFFSET + 0x20);
    assert.equal(json.added_tokens.length, SPECIAL_TOKENS.length);
    assert.ok(json.added_tokens.every((t) => t.special && !t.normalized));
  });

  test("newline + indentation tokens are learned", () => {
    for (const indent of ["\n  ", "\n    ", "\n      "]) {
      const ids = ours.encodeOrdinary(indent);
      assert.equal(ids.length, 1, JSON.stringify(indent));
    }
    const ids = ours.encode("\n    return null;");
    assert.equal(ours.decode([ids[0]]), "\n    ");
    assert.equal(ours.decode([ids[1]]), "return");
  });

  test("decode(encode(s)) === s on tricky strings", () => {
    for (const s of TRICKY) {
      assert.equal(ours.decode(ours.encode(s)), s, JSON.stringify(s));
      assert.equal(ours.decode(ours.encodeOrdinary(s)), s, JSON.stringify(s));
    }
  });

  test("agrees with tokenizers.js on tricky strings and the corpus", () => {
    for (const s of [...TRICKY, ...corpus, ...syntheticCode(20, 99)]) {
      const ids = ours.encode(s);
      assert.deepEqual(theirs.encode(s).ids, ids, JSON.stringify(s.slice(0, 80)));
      if (ids.length > 0) assert.equal(theirs.decode(ids), s);
    }
  });

  test("lone surrogates become U+FFFD in both encoders", () => {
    const s = "a\ud800b\udfffc";
    const ids = ours.encode(s);
    assert.deepEqual(theirs.encode(s).ids, ids);
    assert.equal(ours.decode(ids), "a\ufffdb\ufffdc");
  });

  test("special-token strings: encode matches them, encodeOrdinary never does", () => {
    const s = "x = '[MASK]';[EOS]";
    const ids = ours.encode(s);
    assert.ok(ids.includes(SPECIAL_IDS.mask) && ids.includes(SPECIAL_IDS.eos));
    assert.deepEqual(theirs.encode(s).ids, ids);
    const ordinary = ours.encodeOrdinary(s);
    assert.ok(ordinary.every((id) => id >= BYTE_OFFSET));
    assert.equal(ours.decode(ordinary), s);
  });

  test("training is deterministic and accepts async iterables", async () => {
    async function* gen() {
      for (const s of corpus) yield s;
    }
    const again = await trainBpe(gen(), { vocabSize: 500 });
    assert.equal(JSON.stringify(bpeToTokenizerJson(again)), JSON.stringify(json));
  });

  test("the incremental trainer equals a naive recount-every-merge trainer", async () => {
    const small = syntheticCode(8, 7);
    const fast = await trainBpe(small, { vocabSize: 400, minFrequency: 1 });
    assert.deepEqual(fast.merges, naiveTrain(small, 400 - FIRST_MERGE_ID));
  });

  test("stops when pairs run out", async () => {
    const tiny = await trainBpe(["abab"], { vocabSize: 8192 });
    assert.deepEqual(tiny.merges, [[BYTE_OFFSET + 97, BYTE_OFFSET + 98]]);
    await assert.rejects(trainBpe([], { vocabSize: 10 }), RangeError);
  });

  test("tokenizer.json reads back, and a foreign one is rejected", () => {
    const back = bpeFromTokenizerJson(JSON.parse(JSON.stringify(json)));
    assert.deepEqual(back.merges, model.merges);
    const bad = JSON.parse(JSON.stringify(json));
    bad.pre_tokenizer.pretokenizers[0].pattern.Regex = "\\s+";
    assert.throws(() => bpeFromTokenizerJson(bad), TokenizerJsonError);
    const swapped = JSON.parse(JSON.stringify(json));
    swapped.model.merges.reverse();
    assert.throws(() => bpeFromTokenizerJson(swapped), TokenizerJsonError);
    assert.throws(() => bpeFromTokenizerJson({ model: { type: "WordPiece" } }), TokenizerJsonError);
  });
});

/** Slow twin of `trainBpe`: recount every pair from scratch before each merge. */
function naiveTrain(texts: string[], merges: number): [number, number][] {
  const freq = new Map<string, number>();
  for (const t of texts) for (const p of preTokenize(t)) freq.set(p, (freq.get(p) ?? 0) + 1);
  const words = [...freq].map(([p, f]) => ({
    sym: [...new TextEncoder().encode(p)].map((b) => b + BYTE_OFFSET),
    f,
  }));
  const out: [number, number][] = [];
  while (out.length < merges) {
    const counts = new Map<string, number>();
    for (const { sym, f } of words) {
      for (let i = 0; i + 1 < sym.length; i++) {
        const k = `${sym[i]},${sym[i + 1]}`;
        counts.set(k, (counts.get(k) ?? 0) + f);
      }
    }
    let best: [number, number] | null = null;
    let bestCount = 0;
    for (const [k, c] of counts) {
      const [a, b] = k.split(",").map(Number);
      if (
        c > bestCount ||
        (c === bestCount && best && (a < best[0] || (a === best[0] && b < best[1])))
      ) {
        best = [a, b];
        bestCount = c;
      }
    }
    if (best === null) break;
    const id = FIRST_MERGE_ID + out.length;
    out.push(best);
    for (const w of words) {
      const next: number[] = [];
      for (let i = 0; i < w.sym.length; i++) {
        if (i + 1 < w.sym.length && w.sym[i] === best[0] && w.sym[i + 1] === best[1]) {
          next.push(id);
          i++;
        } else next.push(w.sym[i]);
      }
      w.sym = next;
    }
  }
  return out;
}
