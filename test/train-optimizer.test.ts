import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { AdamW, clipGradNorm, decayMask, globalNorm } from "../src/train/optimizer.js";
import { learningRate } from "../src/train/schedule.js";

const close = (a: number, b: number, tol: number, what: string) =>
  assert.ok(Math.abs(a - b) <= tol, `${what}: ${a} vs ${b}`);

describe("AdamW", () => {
  // Two steps on three parameters, the first two decayed (a "matrix"), the third not (a "norm"),
  // with lr 0.1, β = (0.9, 0.999), ε = 1e-8, λ = 0.01. Expected values by hand in float64,
  // textbook form: p ← p(1 − lrλ); m̂ = m/(1 − β₁ᵗ); v̂ = v/(1 − β₂ᵗ); p ← p − lr·m̂/(√v̂ + ε).
  const options = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 };
  const grads = [Float32Array.from([0.5, -1, 2]), Float32Array.from([0.1, 0.3, -0.4])];

  it("matches a hand-computed two-step run", () => {
    const params = Float32Array.from([1, -2, 0.5]);
    const adam = new AdamW(3, Uint8Array.from([1, 1, 0]), options);
    adam.update(params, grads[0], 0.1);
    // Step 1 moves each parameter by lr·sign(g) after the decay: 1·0.999 − 0.1, …
    close(params[0], 0.899000002, 1e-7, "p0 after step 1");
    close(params[1], -1.898000001, 1e-7, "p1 after step 1");
    close(params[2], 0.4000000005, 1e-7, "p2 after step 1");
    adam.update(params, grads[1], 0.1);
    close(params[0], 0.8177969063826518, 1e-6, "p0 after step 2");
    close(params[1], -1.8533171424282264, 1e-6, "p1 after step 2");
    close(params[2], 0.3488973931360799, 1e-6, "p2 after step 2");
    assert.equal(adam.step, 2);
    close(adam.m[0], 0.9 * 0.05 + 0.1 * 0.1, 1e-8, "m0");
    close(adam.v[2], 0.999 * 0.004 + 0.001 * 0.16, 1e-8, "v2");
  });

  it("is deterministic and resumable from its moments and step", () => {
    const run = (split: boolean) => {
      const params = Float32Array.from([1, -2, 0.5]);
      let adam = new AdamW(3, Uint8Array.from([1, 1, 0]), options);
      adam.update(params, grads[0], 0.1);
      if (split) {
        const next = new AdamW(3, Uint8Array.from([1, 1, 0]), options);
        next.m.set(adam.m);
        next.v.set(adam.v);
        next.step = adam.step;
        adam = next;
      }
      adam.update(params, grads[1], 0.05);
      return params;
    };
    assert.deepEqual(run(true), run(false));
  });

  it("decays tensors of rank ≥ 2 only (nanoGPT)", () => {
    const mask = decayMask(
      [
        { shape: [2, 2], offset: 0, size: 4 },
        { shape: [3], offset: 4, size: 3 },
        { shape: [1, 2], offset: 7, size: 2 },
      ],
      9,
    );
    assert.deepEqual([...mask], [1, 1, 1, 1, 0, 0, 0, 1, 1]);
  });
});

describe("gradient clipping", () => {
  it("scales to the max norm and returns the norm before clipping", () => {
    const g = Float32Array.from([3, 4]);
    assert.equal(clipGradNorm(g, 1), 5);
    close(globalNorm(g), 1, 1e-6, "clipped norm");
    close(g[0] / g[1], 0.75, 1e-7, "direction kept");
  });

  it("leaves a small gradient alone, and clip 0 disables it", () => {
    const g = Float32Array.from([0.3, 0.4]);
    assert.equal(clipGradNorm(g, 1), Math.hypot(Math.fround(0.3), Math.fround(0.4)));
    assert.deepEqual(g, Float32Array.from([0.3, 0.4]));
    const big = Float32Array.from([30, 40]);
    clipGradNorm(big, 0);
    assert.deepEqual(big, Float32Array.from([30, 40]));
  });
});

describe("learning-rate schedule (linear warm-up, cosine decay)", () => {
  const o = { lr: 1e-3, minLr: 1e-4, warmupSteps: 9, decaySteps: 109 };

  it("warms up linearly to the peak", () => {
    close(learningRate(0, o), 1e-4, 1e-15, "step 0");
    close(learningRate(4, o), 5e-4, 1e-15, "step 4");
    close(learningRate(8, o), 9e-4, 1e-15, "step 8");
    close(learningRate(9, o), 1e-3, 1e-15, "end of warm-up");
  });

  it("decays along a cosine to the floor and stays there", () => {
    close(learningRate(59, o), (1e-3 + 1e-4) / 2, 1e-15, "half way");
    close(learningRate(34, o), 1e-4 + 0.9e-3 * 0.5 * (1 + Math.cos(Math.PI / 4)), 1e-15, "quarter");
    close(learningRate(109, o), 1e-4, 1e-15, "end");
    assert.equal(learningRate(500, o), 1e-4);
  });

  it("is monotone after warm-up", () => {
    for (let s = 10; s < 120; s++) assert.ok(learningRate(s, o) <= learningRate(s - 1, o));
  });
});
