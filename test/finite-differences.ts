// The gradient check every training-step test shares: central finite differences of a float64
// reference loss at random coordinates of every parameter, against the step's analytic gradient.

import assert from "node:assert/strict";
import { Rng } from "../src/model/random.js";
import type { ParameterLayout } from "../src/train/step.js";

export function assertGradientsMatch(
  layout: readonly ParameterLayout[],
  params: Float32Array,
  grad: Float32Array,
  referenceLoss: (params: Float32Array) => number,
  { seed = 11, trials = 1, h = 1e-3 } = {},
): void {
  const rng = new Rng(seed);
  for (const p of layout) {
    for (let trial = 0; trial < trials; trial++) {
      const i = p.offset + rng.int(p.size);
      const x = params[i];
      params[i] = x + h;
      const plus = referenceLoss(params);
      params[i] = x - h;
      const minus = referenceLoss(params);
      params[i] = x;
      const numeric = (plus - minus) / (2 * h);
      assert.ok(
        Math.abs(numeric - grad[i]) <= 2e-3 * Math.max(0.1, Math.abs(numeric)),
        `${p.name}[${i - p.offset}]: analytic ${grad[i]}, numeric ${numeric}`,
      );
    }
  }
}
