// Loading a checkpoint holds at most ~1.3× the weights' fp32 bytes at its peak: tensors are read
// one at a time, F32 straight into their final arrays, F16/BF16 through a small scratch buffer.
// The peak is measured where it can happen: the loader allocates a buffer only to read file bytes
// into it, so the array-buffer memory is sampled as each read of the file completes (a timer
// could not fire inside the loader's synchronous reads).

import assert from "node:assert/strict";
import fs from "node:fs";
import { syncBuiltinESMExports } from "node:module";
import { test } from "node:test";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { loadCheckpoint, saveCheckpoint } from "../src/format/index.js";
import { parameterShapes } from "../src/model/config.js";
import { seededWeights, tinyConfig, withTempDir } from "./format-helpers.js";

setFlagsFromString("--expose-gc");
const collect = runInNewContext("gc") as () => void;
/**
 * Runs `body` with `sample` called after every synchronous file read of the process (the loader
 * reads with fs.readSync); the function is put back as it was afterwards.
 */
async function afterEachRead<T>(sample: () => void, body: () => Promise<T>): Promise<T> {
  const read = fs.readSync;
  fs.readSync = ((...args: Parameters<typeof fs.readSync>) => {
    const n = read(...args);
    sample();
    return n;
  }) as typeof fs.readSync;
  syncBuiltinESMExports(); // the loader's named import sees the wrapper
  try {
    return await body();
  } finally {
    fs.readSync = read;
    syncBuiltinESMExports();
  }
}

/** A full collection, and time for V8 to release the freed array buffers' memory. */
async function gc(): Promise<void> {
  for (let i = 0; i < 3; i++) {
    collect();
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

for (const dtype of ["F32", "F16"] as const) {
  test(`loading a ${dtype} checkpoint peaks below 1.3× the fp32 weight bytes`, async (t) => {
    // ~8M parameters (32 MB in fp32): large next to the loader's own buffers.
    const config = tinyConfig({
      vocab_size: 4096,
      hidden_size: 256,
      num_hidden_layers: 4,
      num_attention_heads: 4,
      num_key_value_heads: 4,
      intermediate_size: 1024,
    });
    const weightBytes =
      4 * parameterShapes(config).reduce((n, p) => n + p.shape.reduce((a, b) => a * b, 1), 0);
    await withTempDir(async (dir) => {
      await saveCheckpoint(dir, { config, weights: seededWeights(config) }, { dtype });
      await gc();
      const before = process.memoryUsage().arrayBuffers;
      let peak = before;
      let samples = 0;
      const sample = () => {
        samples++;
        peak = Math.max(peak, process.memoryUsage().arrayBuffers);
      };
      const checkpoint = await afterEachRead(sample, () =>
        loadCheckpoint(dir, { tokenizer: false }),
      );
      sample();
      assert.equal(checkpoint.weights.size, parameterShapes(config).length);
      assert.ok(samples > checkpoint.weights.size, `sampled after each of ${samples - 1} reads`);
      const ratio = (peak - before) / weightBytes;
      t.diagnostic(`peak: ${ratio.toFixed(3)}× the fp32 weight bytes`);
      assert.ok(ratio >= 0.99 && ratio <= 1.3, `peak ${ratio.toFixed(3)}× the weights' bytes`);
    });
  });
}
