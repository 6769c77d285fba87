// Golden transcripts of the embedded model (llama2.c style): greedy decoding with three presets
// from a fixed prompt, pinned token by token. A change to the engine, the step statistics or the
// denoise loop that moves any token shows up here; a deliberate change re-pins them and says why
// in its commit.

import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { packageRoot } from "../src/cli/package.js";
import { denoise } from "../src/diffusion/denoise.js";
import type { PresetName } from "../src/diffusion/options.js";
import { loadCheckpoint } from "../src/format/index.js";
import { OnnxModel } from "../src/model/engine.js";

const prompt = "export function clamp(x: number, lo: number, hi: number): number {\n";
const promptIds = [
  455, 597, 5862, 47, 127, 65, 573, 51, 828, 65, 573, 51, 461, 112, 65, 573, 484, 573, 278, 17,
];

/** Pinned with the host-side statistics of commit 9b3b643 (before in-graph statistics). */
const pinned: Record<string, { forwards: number; tokens: number[] }> = {
  llada: {
    forwards: 32,
    tokens: [
      132, 390, 1110, 573, 2727, 278, 270, 684, 526, 65, 573, 66, 270, 684, 526, 65, 573, 66, 270,
      684, 526, 65, 573, 66, 270, 684, 302, 47, 56, 65, 573, 51,
    ],
  },
  "fast-dllm-dual": {
    forwards: 32,
    tokens: [
      132, 390, 1110, 855, 277, 278, 270, 127, 47, 270, 127, 127, 65, 573, 51, 270, 127, 65, 573,
      51, 270, 127, 65, 573, 51, 270, 127, 65, 573, 51, 270, 127,
    ],
  },
  "dream-topk-margin": {
    forwards: 32,
    tokens: [
      132, 390, 1110, 573, 573, 278, 270, 684, 331, 65, 573, 66, 270, 684, 331, 65, 573, 66, 270,
      684, 397, 47, 127, 127, 65, 573, 51, 331, 127, 65, 573, 51,
    ],
  },
};

let model: OnnxModel;
let maskId: number;
before(async () => {
  const checkpoint = await loadCheckpoint(join(packageRoot(), "models", "unmask-code"));
  assert.deepEqual(checkpoint.tokenizer.encode(prompt), promptIds);
  maskId = checkpoint.config.maskTokenId!;
  model = await OnnxModel.create(checkpoint.config, checkpoint.weights, { threads: 1 });
});
after(async () => {
  await model.dispose();
});

for (const [preset, expected] of Object.entries(pinned)) {
  test(`embedded model, ${preset}, greedy: the pinned transcript`, async () => {
    const canvas = new Int32Array(promptIds.length + 32).fill(maskId);
    canvas.set(promptIds);
    const run = denoise(
      model,
      { tokens: canvas, openEnded: true },
      { preset: preset as PresetName, stopAtEos: false },
    );
    let next = await run.next();
    while (!next.done) next = await run.next();
    assert.deepEqual(Array.from(next.value.canvas.subarray(promptIds.length)), expected.tokens);
    assert.equal(next.value.forwards, expected.forwards);
  });
}
