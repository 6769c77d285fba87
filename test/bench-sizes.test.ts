// `bench sizes` (src/bench/sizes.ts): the roofline estimate's arithmetic, and the measurement's
// shape on a tiny model (no timing is asserted: these machines are shared).

import assert from "node:assert/strict";
import { test } from "node:test";
import { bench110M, forwardFlops } from "../src/bench/forward.js";
import {
  benchSizes,
  matmulPeak,
  memoryBandwidth,
  parameterCount,
  rooflineSeconds,
} from "../src/bench/sizes.js";
import { tinyModelConfig } from "./tiny-config.js";

test("roofline: weight reads bound a token of a large model, compute a long block", () => {
  const p = parameterCount(bench110M);
  assert.ok(p > 100e6 && p < 120e6, `${p}`);
  const read = (4 * p) / memoryBandwidth;
  assert.equal(rooflineSeconds(bench110M, 1), read, "one token: the weight reads");
  assert.equal(rooflineSeconds(bench110M, 512), forwardFlops(bench110M, 512) / matmulPeak);
  assert.ok(rooflineSeconds(bench110M, 512) > read, "512 positions: compute-bound");
});

test("benchSizes times an AR token against each block, with the roofline ratio beside it", async () => {
  const config = tinyModelConfig();
  const rows = await benchSizes({
    shapes: [{ name: "tiny", config }],
    blocks: [2, 4],
    context: 16,
    runs: 1,
  });
  assert.equal(rows.length, 1);
  assert.equal(rows[0].parameters, parameterCount(config));
  assert.deepEqual(
    rows[0].steps.map((s) => s.block),
    [2, 4],
  );
  for (const s of rows[0].steps) {
    assert.ok(s.ar_ms > 0 && s.step_ms > 0);
    assert.equal(s.ratio, s.step_ms / s.ar_ms);
    assert.equal(s.roofline_ratio, rooflineSeconds(config, s.block) / rooflineSeconds(config, 1));
  }
  await assert.rejects(
    benchSizes({ shapes: [{ name: "tiny", config }], blocks: [60], context: 16 }),
    /context 16 \+ block exceeds 64/,
  );
});
