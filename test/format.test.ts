import assert from "node:assert/strict";
import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, test } from "node:test";
import {
  bf16ToF32,
  CheckpointError,
  f16ToF32,
  f32ToBF16,
  f32ToF16,
  loadCheckpoint,
  openCheckpoint,
  readSafetensors,
  SafetensorsError,
  SafetensorsReader,
  saveCheckpoint,
  type TensorEntry,
  Tokenizer,
  TokenizerError,
  writeSafetensors,
} from "../src/format/index.js";
import { ConfigError, parameterShapes } from "../src/model/config.js";
import {
  seededWeights,
  tinyConfig,
  tinyConfigJson,
  tinyTokenizerJson,
  withTempDir,
} from "./format-helpers.js";

type ErrorClass = new (...args: never[]) => Error;

/** Asserts that `promise` rejects with an instance of `cls` whose message matches `fragment`. */
async function rejectsWith(promise: Promise<unknown>, cls: ErrorClass, fragment: RegExp) {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof cls, `expected ${cls.name}, got ${String(error)}`);
    assert.match(error.message, fragment);
    return true;
  });
}

/** A safetensors file from a header (object or raw text) and a data section. */
function rawSafetensors(header: unknown, data: Uint8Array, headerLength?: bigint): Uint8Array {
  const json = new TextEncoder().encode(
    typeof header === "string" ? header : JSON.stringify(header),
  );
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, headerLength ?? BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

const f32 = (shape: number[], begin: number) => ({
  dtype: "F32",
  shape,
  data_offsets: [begin, begin + 4 * shape.reduce((a, b) => a * b, 1)],
});

describe("half precision", () => {
  test("F16 known values, ±0, subnormals, inf, NaN", () => {
    const cases: [number, number][] = [
      [0x0000, 0],
      [0x8000, -0],
      [0x0001, 2 ** -24],
      [0x8001, -(2 ** -24)],
      [0x03ff, 1023 * 2 ** -24],
      [0x0400, 2 ** -14],
      [0x3c00, 1],
      [0xc000, -2],
      [0x3555, 0.333251953125],
      [0x7bff, 65504],
      [0x7c00, Infinity],
      [0xfc00, -Infinity],
    ];
    const out = f16ToF32(Uint16Array.from(cases.map((c) => c[0])));
    for (const [i, [, want]] of cases.entries()) {
      assert.ok(Object.is(out[i], want), `${i}: ${out[i]} ≠ ${want}`);
    }
    const nan = f16ToF32(Uint16Array.of(0x7e00, 0xfe01, 0x7c01));
    assert.ok(nan.every(Number.isNaN));
  });

  test("BF16 known values, ±0, subnormals, inf, NaN", () => {
    const cases: [number, number][] = [
      [0x0000, 0],
      [0x8000, -0],
      [0x0001, 2 ** -133],
      [0x3f80, 1],
      [0xc049, -3.140625],
      [0x7f7f, 3.3895313892515355e38],
      [0x7f80, Infinity],
      [0xff80, -Infinity],
    ];
    const out = bf16ToF32(Uint16Array.from(cases.map((c) => c[0])));
    for (const [i, [, want]] of cases.entries()) {
      assert.ok(Object.is(out[i], want), `${i}: ${out[i]} ≠ ${want}`);
    }
    assert.ok(Number.isNaN(bf16ToF32(Uint16Array.of(0x7fc0))[0]));
  });

  test("every F16 and BF16 value survives widening and narrowing", () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const viaF16 = f32ToF16(f16ToF32(all));
    const viaBF16 = f32ToBF16(bf16ToF32(all));
    for (let i = 0; i < 65536; i++) {
      const f16NaN = (i & 0x7c00) === 0x7c00 && (i & 0x3ff) !== 0;
      const bf16NaN = (i & 0x7f80) === 0x7f80 && (i & 0x7f) !== 0;
      if (f16NaN) assert.equal(viaF16[i] & 0x7e00, 0x7e00, `F16 NaN ${i}`);
      else assert.equal(viaF16[i], i, `F16 ${i}`);
      if (bf16NaN) assert.equal(viaBF16[i] & 0x7fc0, 0x7fc0, `BF16 NaN ${i}`);
      else assert.equal(viaBF16[i], i, `BF16 ${i}`);
    }
  });

  test("narrowing rounds to nearest, ties to even, and overflows to inf", () => {
    const x = Float32Array.of(
      1 + 2 ** -11,
      1 + 3 * 2 ** -11,
      65519,
      65520,
      1e6,
      2 ** -25,
      2 ** -25 * 1.5,
      -1e-10,
    );
    assert.deepEqual(
      [...f32ToF16(x)],
      [0x3c00, 0x3c02, 0x7bff, 0x7c00, 0x7c00, 0x0000, 0x0001, 0x8000],
    );
    const y = Float32Array.of(1 + 2 ** -8, 1 + 3 * 2 ** -8, 3.4e38);
    assert.deepEqual([...f32ToBF16(y)], [0x3f80, 0x3f82, 0x7f80]);
  });
});

describe("safetensors", () => {
  test("writes aligned, sorted files and reads them back in every dtype", async () => {
    await withTempDir(async (dir) => {
      const file = join(dir, "t.safetensors");
      const tensors = new Map<string, TensorEntry>([
        ["z", { dtype: "F32", shape: [2, 3], data: Float32Array.of(1, 2, 3, 4, 5, -6) }],
        ["b16", { dtype: "BF16", shape: [2], data: Uint16Array.of(0x3f80, 0xc000) }],
        ["h", { dtype: "F16", shape: [3], data: Uint16Array.of(0x3c00, 0x8001, 0x7c00) }],
        ["d", { dtype: "F64", shape: [1], data: Float64Array.of(0.1) }],
        ["i", { dtype: "I32", shape: [], data: Int32Array.of(-7) }],
        ["empty", { dtype: "F32", shape: [0, 4], data: new Float32Array(0) }],
      ]);
      await writeSafetensors(file, tensors, { format: "pt" });
      const bytes = await readFile(file);
      const n = Number(bytes.readBigUInt64LE(0));
      assert.equal((8 + n) % 8, 0);
      const header = bytes.subarray(8, 8 + n).toString("utf8");
      assert.match(header, / *$/);
      const keys = Object.keys(JSON.parse(header));
      assert.deepEqual(keys, ["__metadata__", "d", "empty", "i", "z", "b16", "h"]);

      const reader = await SafetensorsReader.open(file);
      try {
        assert.deepEqual(reader.metadata, { format: "pt" });
        assert.deepEqual([...(await reader.readFloat32("z"))], [1, 2, 3, 4, 5, -6]);
        assert.deepEqual([...(await reader.readFloat32("b16"))], [1, -2]);
        assert.deepEqual([...(await reader.readFloat32("h"))], [1, -(2 ** -24), Infinity]);
        assert.deepEqual([...(await reader.readFloat32("d"))], [Math.fround(0.1)]);
        assert.equal((await reader.readFloat32("empty")).length, 0);
        const i = await reader.readBytes("i");
        assert.equal(new DataView(i.buffer).getInt32(0, true), -7);
        await rejectsWith(reader.readFloat32("i"), SafetensorsError, /"i".*not a floating-point/);
        await rejectsWith(reader.readFloat32("nope"), SafetensorsError, /"nope".*no such tensor/);
      } finally {
        await reader.close();
      }
    });
  });

  test("converts F16 tensors larger than one read chunk", async () => {
    await withTempDir(async (dir) => {
      const file = join(dir, "big.safetensors");
      const bits = new Uint16Array(600_000).map((_, i) => (i * 7919) & 0xffff);
      await writeSafetensors(
        file,
        new Map([["w", { dtype: "F16", shape: [bits.length], data: bits }]]),
      );
      const { tensors } = await readSafetensors(file);
      assert.deepEqual(tensors.get("w"), f16ToF32(bits));
    });
  });

  const data12 = new Uint8Array(12);
  const corrupt: [string, Uint8Array, RegExp][] = [
    ["a file shorter than the length prefix", new Uint8Array(5), /too short/],
    [
      "an absurd header length",
      rawSafetensors({}, new Uint8Array(0), 2n ** 60n),
      /exceeds the limit/,
    ],
    [
      "a header length larger than the file",
      rawSafetensors({}, new Uint8Array(0), 1000n),
      /larger than the file/,
    ],
    [
      "a header that is not JSON",
      rawSafetensors("{not json", new Uint8Array(0)),
      /not valid UTF-8 JSON/,
    ],
    ["a header that is a JSON list", rawSafetensors([], new Uint8Array(0)), /not a JSON object/],
    [
      "an unknown dtype",
      rawSafetensors({ w: { ...f32([3], 0), dtype: "F8_E9" } }, data12),
      /"w".*unknown dtype "F8_E9"/,
    ],
    [
      "a negative dimension",
      rawSafetensors({ w: { ...f32([3], 0), shape: [-3] } }, data12),
      /"w".*shape/,
    ],
    ["truncated data", rawSafetensors({ w: f32([4], 0) }, data12), /"w".*truncated/],
    [
      "offsets out of range",
      rawSafetensors({ w: { ...f32([3], 0), data_offsets: [8, 4] } }, data12),
      /"w".*data_offsets/,
    ],
    [
      "non-integer offsets",
      rawSafetensors({ w: { ...f32([3], 0), data_offsets: [0, "12"] } }, data12),
      /"w".*data_offsets/,
    ],
    [
      "shape × dtype ≠ byte length",
      rawSafetensors({ w: { ...f32([2], 0), data_offsets: [0, 12] } }, data12),
      /"w".*needs 8 bytes.*hold 12/,
    ],
    [
      "overlapping offsets",
      rawSafetensors({ a: f32([2], 0), b: f32([2], 4) }, data12),
      /"b".*overlap.*"a"/,
    ],
    [
      "a gap between tensors",
      rawSafetensors({ a: f32([1], 0), b: f32([1], 8) }, data12),
      /"b".*gap/,
    ],
    ["trailing bytes", rawSafetensors({ a: f32([2], 0) }, data12), /cover 8 bytes.*holds 12/],
    [
      "non-string metadata",
      rawSafetensors({ __metadata__: { n: 1 }, a: f32([3], 0) }, data12),
      /__metadata__/,
    ],
  ];
  for (const [what, bytes, fragment] of corrupt) {
    test(`rejects ${what}`, async () => {
      await withTempDir(async (dir) => {
        const file = join(dir, "bad.safetensors");
        await writeFile(file, bytes);
        await rejectsWith(SafetensorsReader.open(file), SafetensorsError, fragment);
        await rejectsWith(SafetensorsReader.open(file), SafetensorsError, /bad\.safetensors/);
      });
    });
  }

  test("refuses to write data that does not match its shape", async () => {
    await withTempDir(async (dir) => {
      const tensors = new Map([
        ["w", { dtype: "F32" as const, shape: [3], data: new Float32Array(2) }],
      ]);
      await rejectsWith(
        writeSafetensors(join(dir, "x.safetensors"), tensors),
        SafetensorsError,
        /"w".*needs 12 bytes/,
      );
    });
  });
});

describe("tokenizer", () => {
  test("encodes without special tokens, decodes code exactly, finds special tokens", () => {
    const tok = Tokenizer.fromJson(tinyTokenizerJson());
    assert.equal(tok.vocabSize, 13);
    assert.deepEqual(tok.specialTokens, {
      mask: 1,
      pad: 0,
      bos: 2,
      eos: 3,
      fimPrefix: 4,
      fimMiddle: 5,
      fimSuffix: 6,
    });
    const ids = tok.encode("ab c\n[MASK]ba");
    assert.deepEqual(ids, [12, 10, 9, 11, 1, 8, 7]);
    assert.equal(tok.decode(Int32Array.from(ids)), "ab c\n[MASK]ba");
    assert.equal(tok.decode(ids, { skipSpecialTokens: true }), "ab c\nba");
    assert.equal(tok.decode([]), "");
    assert.equal(tok.tokenToId("ab"), 12);
    assert.equal(tok.tokenToId("zz"), null);
    assert.equal(tok.idToToken(10), "Ġ");
    assert.equal(tok.idToToken(99), null);
    assert.throws(() => tok.decode([99]), /token id 99 is not in the vocabulary/);
  });

  test("tokenizer_config.json names take precedence over the spelling table", () => {
    const tok = Tokenizer.fromJson(tinyTokenizerJson(), { eos_token: { content: "[PAD]" } });
    assert.equal(tok.specialTokens.eos, 0);
  });

  test("invalid tokenizer.json is a TokenizerError naming the file", () => {
    const check = (json: unknown, fragment: RegExp) =>
      assert.throws(
        () => Tokenizer.fromJson(json, {}, "x/tokenizer.json"),
        (e: unknown) =>
          e instanceof TokenizerError &&
          /^x\/tokenizer\.json: /.test(e.message) &&
          fragment.test(e.message),
      );
    check([], /expected a JSON object/);
    check(
      { ...tinyTokenizerJson(), model: { type: "Nope", vocab: {} } },
      /unknown model type "Nope"/,
    );
    check({ ...tinyTokenizerJson(), added_tokens: {} }, /added_tokens/);
    check({ ...tinyTokenizerJson(), pre_tokenizer: { type: "Nope" } }, /unsupported or invalid/);
  });
});

describe("checkpoint", () => {
  const config = tinyConfig();
  const weights = seededWeights(config);
  const tokenizerJson = tinyTokenizerJson();

  test("round-trips a tiny checkpoint exactly in F32", async () => {
    await withTempDir(async (dir) => {
      const generation = { mask_token_id: 1, steps: 8 };
      await saveCheckpoint(dir, { config, weights, tokenizerJson, generation });
      const loaded = await loadCheckpoint(dir);
      assert.deepEqual(loaded.config, config);
      assert.deepEqual(loaded.generation, generation);
      assert.deepEqual([...loaded.weights.keys()], [...weights.keys()]);
      for (const [name, w] of weights) assert.deepEqual(loaded.weights.get(name), w, name);
      assert.equal(loaded.tokenizer.specialTokens.mask, 1);
      assert.equal(loaded.tokenizer.decode(loaded.tokenizer.encode("ab\n c")), "ab\n c");
    });
  });

  test("F16 storage gives the F16-rounded weights", async () => {
    await withTempDir(async (dir) => {
      await saveCheckpoint(dir, { config, weights }, { dtype: "F16" });
      const loaded = await loadCheckpoint(dir, { tokenizer: false });
      assert.equal(loaded.tokenizer, null);
      for (const [name, w] of weights)
        assert.deepEqual(loaded.weights.get(name), f16ToF32(f32ToF16(w)));
    });
  });

  test("loads a sharded checkpoint and checks its index", async () => {
    await withTempDir(async (dir) => {
      await saveCheckpoint(dir, { config, weights, tokenizerJson });
      await rm(join(dir, "model.safetensors"));
      const names = [...weights.keys()];
      const shapes = new Map(parameterShapes(config).map((p) => [p.name, p.shape]));
      const shards = [names.slice(0, 5), names.slice(5)];
      const weightMap: Record<string, string> = {};
      for (const [i, part] of shards.entries()) {
        const file = `model-0000${i + 1}-of-00002.safetensors`;
        const tensors = new Map<string, TensorEntry>();
        for (const name of part) {
          tensors.set(name, { dtype: "F32", shape: shapes.get(name)!, data: weights.get(name)! });
          weightMap[name] = file;
        }
        await writeSafetensors(join(dir, file), tensors);
      }
      const index = join(dir, "model.safetensors.index.json");
      await writeFile(index, JSON.stringify({ metadata: {}, weight_map: weightMap }));
      const loaded = await loadCheckpoint(dir);
      for (const [name, w] of weights) assert.deepEqual(loaded.weights.get(name), w, name);

      const moved = { ...weightMap, [names[0]]: "model-00002-of-00002.safetensors" };
      await writeFile(index, JSON.stringify({ weight_map: moved }));
      await rejectsWith(loadCheckpoint(dir), SafetensorsError, /index\.json.*does not hold it/);
      const { [names[1]]: _, ...omitted } = weightMap;
      await writeFile(index, JSON.stringify({ weight_map: omitted }));
      await rejectsWith(loadCheckpoint(dir), SafetensorsError, /index\.json.*omits it/);
      await writeFile(
        index,
        JSON.stringify({ weight_map: { ...weightMap, x: "gone.safetensors" } }),
      );
      await rejectsWith(
        loadCheckpoint(dir),
        SafetensorsError,
        /index\.json.*shard gone\.safetensors/,
      );
      await writeFile(
        index,
        JSON.stringify({ weight_map: { ...weightMap, x: "../evil.safetensors" } }),
      );
      await rejectsWith(loadCheckpoint(dir), SafetensorsError, /index\.json.*not a file name/);
    });
  });

  test("config errors name the file and the field", async () => {
    await withTempDir(async (dir) => {
      await saveCheckpoint(dir, { config, weights, tokenizerJson });
      const file = join(dir, "config.json");
      const check = async (json: string, field: string, fragment: RegExp) => {
        await writeFile(file, json);
        await assert.rejects(loadCheckpoint(dir), (e: unknown) => {
          assert.ok(e instanceof ConfigError, String(e));
          assert.equal(e.field, field);
          assert.match(e.message, fragment);
          assert.match(e.message, /config\.json/);
          return true;
        });
      };
      await check(
        JSON.stringify(tinyConfigJson({ hidden_act: "gelu" })),
        "hidden_act",
        /unsupported activation "gelu"/,
      );
      const { hidden_size: _, ...missing } = tinyConfigJson();
      await check(JSON.stringify(missing), "hidden_size", /missing required field/);
      await check("{ vocab_size: 16", "(file)", /cannot read as JSON/);
    });
  });

  test("a missing tokenizer.json is a CheckpointError naming it", async () => {
    await withTempDir(async (dir) => {
      await saveCheckpoint(dir, { config, weights });
      await rejectsWith(loadCheckpoint(dir), CheckpointError, /tokenizer\.json: not found/);
      assert.equal((await loadCheckpoint(dir, { tokenizer: false })).weights.size, weights.size);
    });
  });

  test("missing, unexpected and misshapen tensors are CheckpointErrors naming the tensor", async () => {
    await withTempDir(async (dir) => {
      await saveCheckpoint(dir, { config, weights, tokenizerJson });
      const file = join(dir, "model.safetensors");
      const rewrite = async (edit: (t: Map<string, TensorEntry>) => void) => {
        const tensors = new Map<string, TensorEntry>();
        const reader = await SafetensorsReader.open(file);
        for (const [name, info] of reader.tensors) {
          tensors.set(name, {
            dtype: "F32",
            shape: info.shape,
            data: await reader.readFloat32(name),
          });
        }
        await reader.close();
        edit(tensors);
        await writeSafetensors(file, tensors);
      };
      const q = "model.layers.1.self_attn.q_proj.weight";
      await rewrite((t) => t.set(q, { ...t.get(q)!, shape: [4, 16] }));
      await rejectsWith(
        loadCheckpoint(dir),
        CheckpointError,
        /q_proj\.weight.*shape \[4, 16\] in the file.*needs \[8, 8\]/,
      );
      await rewrite((t) => t.delete(q));
      await rejectsWith(
        loadCheckpoint(dir),
        CheckpointError,
        /model\.safetensors.*q_proj\.weight.*missing.*\[8, 8\]/,
      );
      await rewrite((t) => t.set(q, { dtype: "F32", shape: [8, 8], data: new Float32Array(64) }));
      await rewrite((t) =>
        t.set("extra.weight", { dtype: "F32", shape: [1], data: new Float32Array(1) }),
      );
      await rejectsWith(loadCheckpoint(dir), CheckpointError, /"extra\.weight".*unexpected tensor/);
    });
  });

  test("tied embeddings: lm_head.weight may be absent, or present and ignored", async () => {
    await withTempDir(async (dir) => {
      const tied = tinyConfig({ tie_word_embeddings: true });
      const tiedWeights = seededWeights(tied, 7);
      assert.equal(tiedWeights.has("lm_head.weight"), false);
      await saveCheckpoint(dir, { config: tied, weights: tiedWeights });
      assert.equal(
        (await loadCheckpoint(dir, { tokenizer: false })).weights.size,
        tiedWeights.size,
      );
      const tensors = await SafetensorsReader.open(join(dir, "model.safetensors"));
      const entries = new Map<string, TensorEntry>();
      for (const [name, info] of tensors.tensors) {
        entries.set(name, {
          dtype: "F32",
          shape: info.shape,
          data: await tensors.readFloat32(name),
        });
      }
      await tensors.close();
      entries.set("lm_head.weight", { dtype: "F32", shape: [16, 8], data: new Float32Array(128) });
      await writeSafetensors(join(dir, "model.safetensors"), entries);
      const loaded = await loadCheckpoint(dir, { tokenizer: false });
      assert.equal(loaded.weights.has("lm_head.weight"), false);
      assert.deepEqual(
        loaded.weights.get("model.embed_tokens.weight"),
        tiedWeights.get("model.embed_tokens.weight"),
      );
    });
  });

  test("saving weights that do not match the config is a CheckpointError", async () => {
    await withTempDir(async (dir) => {
      const bad = new Map(weights);
      bad.set("model.norm.weight", new Float32Array(3));
      await rejectsWith(
        saveCheckpoint(dir, { config, weights: bad }),
        CheckpointError,
        /model\.norm\.weight.*3 elements/,
      );
    });
  });
});

test("a WeightReader is written tensor by tensor and reads back as the same weights", async () => {
  const { benchWeightReader } = await import("../src/bench/forward.js");
  const config = tinyConfig();
  const reader = benchWeightReader(config);
  await withTempDir(async (dir) => {
    await saveCheckpoint(dir, { config, weights: reader }, { dtype: "F32" });
    const open = await openCheckpoint(dir, { tokenizer: false });
    try {
      for (const { name } of parameterShapes(config)) {
        assert.deepEqual(open.weights.read(name), reader.read(name), name);
      }
      assert.throws(() => open.weights.read("nope"), /tensor "nope": not a parameter/);
    } finally {
      await open.weights.close();
    }
  });
});

test("bench load's measure: a fresh process loads a checkpoint, its peak RSS against the weights", async () => {
  const { benchLoad } = await import("../src/bench/load.js");
  const config = tinyConfig({ vocab_size: 8192, mask_token_id: 0 });
  const r = await benchLoad({ config });
  assert.ok(r.weight_bytes >= 4 * r.parameters, "the float32 weights and a few graph constants");
  for (const m of [r.float32, r.bf16, r.int4, r.int4_lean]) {
    assert.ok(m.peak_rss_bytes >= m.rss_before_bytes && m.rss_before_bytes > 0);
    assert.equal(m.peak_rss_ratio, m.peak_rss_bytes / m.weight_bytes);
    assert.ok(m.load_s > 0 && m.forward_s > 0 && m.forward_again_s > 0);
  }
  assert.equal(r.float32.weight_bytes, r.weight_bytes);
  assert.equal(r.bf16.file_bytes, r.float32.file_bytes / 2);
  // int4 layers hold about an eighth of their float32 bytes, plus scales and zero points
  assert.ok(r.int4.weight_bytes < r.weight_bytes && r.int4.quant === "int4");
  // int4-lean holds the same weights, multiplied in float32
  assert.equal(r.int4_lean.weight_bytes, r.int4.weight_bytes);
  assert.equal(r.int4_lean.quant, "int4-lean");
  assert.equal(r.forward_7b_int4_s, null, "the 7B shape only when asked for");
});
