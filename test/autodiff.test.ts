// Every gradient rule against central finite differences, in float64.

import assert from "node:assert/strict";
import { after, test } from "node:test";
import { gradients } from "../src/graph/autodiff.js";
import { Graph, type Tensor } from "../src/graph/graph.js";
import * as op from "../src/graph/ops.js";
import { Rng } from "../src/model/random.js";
import { type HostTensor, Session } from "../src/runtime/session.js";

interface Case {
  name: string;
  shapes: number[][];
  build: (xs: Tensor[]) => Tensor;
  /** inputs drawn in (lo, hi) */
  range?: [number, number];
  /** finite-difference step and tolerance, for cases that pass through float32 */
  step?: number;
  tolerance?: number;
}

const cases: Case[] = [
  { name: "Add (broadcast)", shapes: [[2, 3], [3]], build: ([a, b]) => op.add(a, b) },
  {
    name: "Sub (broadcast)",
    shapes: [
      [2, 1],
      [2, 3],
    ],
    build: ([a, b]) => op.sub(a, b),
  },
  {
    name: "Mul (broadcast)",
    shapes: [
      [2, 3],
      [1, 3],
    ],
    build: ([a, b]) => op.mul(a, b),
  },
  {
    name: "Div",
    shapes: [
      [2, 3],
      [2, 3],
    ],
    build: ([a, b]) => op.div(a, b),
    range: [0.5, 2],
  },
  { name: "Pow (constant exponent 2)", shapes: [[5]], build: ([a]) => op.pow(a, 2) },
  { name: "Pow (constant exponent 3)", shapes: [[5]], build: ([a]) => op.pow(a, 3) },
  { name: "Neg", shapes: [[4]], build: ([a]) => op.neg(a) },
  { name: "Sqrt", shapes: [[4]], build: ([a]) => op.sqrt(a), range: [0.5, 2] },
  { name: "Reciprocal", shapes: [[4]], build: ([a]) => op.reciprocal(a), range: [0.5, 2] },
  { name: "Exp", shapes: [[4]], build: ([a]) => op.exp(a) },
  { name: "Log", shapes: [[4]], build: ([a]) => op.log(a), range: [0.5, 2] },
  { name: "Sigmoid", shapes: [[4]], build: ([a]) => op.sigmoid(a) },
  { name: "Tanh", shapes: [[4]], build: ([a]) => op.tanh(a) },
  { name: "Softmax", shapes: [[2, 5]], build: ([a]) => op.softmax(a, -1) },
  { name: "Softmax (axis 0)", shapes: [[3, 2]], build: ([a]) => op.softmax(a, 0) },
  { name: "LogSoftmax", shapes: [[2, 5]], build: ([a]) => op.logSoftmax(a, -1) },
  {
    name: "MatMul 2-D",
    shapes: [
      [2, 3],
      [3, 4],
    ],
    build: ([a, b]) => op.matmul(a, b),
  },
  {
    name: "MatMul batch @ weight",
    shapes: [
      [2, 3, 4],
      [4, 2],
    ],
    build: ([a, b]) => op.matmul(a, b),
  },
  {
    name: "MatMul broadcast batch",
    shapes: [
      [2, 3, 2, 4],
      [2, 1, 4, 3],
    ],
    build: ([a, b]) => op.matmul(a, b),
  },
  { name: "Transpose", shapes: [[2, 3, 4]], build: ([a]) => op.transpose(a, [2, 0, 1]) },
  { name: "Reshape", shapes: [[2, 6]], build: ([a]) => op.reshape(a, [3, -1]) },
  {
    name: "Unsqueeze/Squeeze",
    shapes: [[2, 3]],
    build: ([a]) => op.squeeze(op.mul(op.unsqueeze(a, [1]), op.unsqueeze(a, [1])), [1]),
  },
  { name: "ReduceSum", shapes: [[2, 3, 2]], build: ([a]) => op.reduceSum(a, [1], false) },
  { name: "ReduceMean (keepdims)", shapes: [[2, 3]], build: ([a]) => op.reduceMean(a, [-1], true) },
  {
    name: "Where",
    shapes: [
      [2, 3],
      [2, 3],
    ],
    build: ([a, b]) => op.where(op.less(a, b), a, op.mul(b, b)),
  },
  {
    name: "Concat",
    shapes: [
      [2, 3],
      [2, 2],
    ],
    build: ([a, b]) => op.concat([op.mul(a, a), b], 1),
  },
  { name: "Slice", shapes: [[3, 5]], build: ([a]) => op.slice(a, [1], [4], [1]) },
  {
    name: "Slice (negative start)",
    shapes: [[4, 3]],
    build: ([a]) => op.slice(a, [-2], [2 ** 62], [0]),
  },
  {
    name: "Gather (repeated indices)",
    shapes: [[4, 3]],
    build: ([a]) => op.gather(a, a.graph.constant([2, 0, 2, 3], "int32", [2, 2])),
  },
  {
    name: "Cast float64 → float32 → float64",
    shapes: [[3]],
    build: ([a]) => op.cast(op.mul(op.cast(a, "float32"), 1), "float64"),
    step: 1e-2,
    tolerance: 1e-4,
  },
  {
    name: "Expand",
    shapes: [[1, 3]],
    build: ([a]) => op.expand(a, a.graph.constant([2, 3]), [2, 3]),
  },
  {
    // float32 only (com.microsoft): through casts, with fixed angle tables and rows out of order
    name: "RotaryEmbedding (two heads of 4, float32)",
    shapes: [[2, 3, 8]],
    build: ([a]) => {
      const g = a.graph;
      const angles = Array.from({ length: 12 }, (_, i) => 0.7 * i - 3);
      const cos = g.constant(angles.map(Math.cos), "float32", [6, 2]);
      const sin = g.constant(angles.map(Math.sin), "float32", [6, 2]);
      const rows = g.constant([5, 0, 3, 1, 2, 4], "int64", [2, 3]);
      const turned = op.rotaryEmbedding(op.cast(a, "float32"), rows, cos, sin);
      return op.cast(turned, "float64");
    },
    step: 1e-2,
    tolerance: 1e-4,
  },
  {
    name: "a tensor used twice (accumulation)",
    shapes: [[3]],
    build: ([a]) => op.mul(op.exp(a), a),
  },
];

const sessions: Session[] = [];
after(async () => {
  for (const s of sessions) await s.release();
});

for (const c of cases) {
  test(`gradient of ${c.name} matches finite differences`, async () => {
    const rng = new Rng(7);
    const [lo, hi] = c.range ?? [-1.5, 1.5];
    const g = new Graph();
    const xs = c.shapes.map((s, i) => g.input(`x${i}`, "float64", s));
    const y = c.build(xs);
    // A random linear functional of the output, so every output element matters.
    const count = y.shape.reduce<number>((n, d) => n * (d as number), 1);
    const r = g.initializer(
      "r",
      "float64",
      y.shape,
      Float64Array.from({ length: count }, () => rng.next() - 0.5),
    );
    const loss = op.reduceSum(
      op.mul(y, r),
      Array.from({ length: y.rank }, (_, i) => i),
      false,
    );
    g.output(loss, "loss");
    gradients(loss, xs).forEach((t, i) => {
      g.output(t, `grad${i}`);
    });
    const session = await Session.fromGraph(g, { threads: 1 });
    sessions.push(session);

    const values = c.shapes.map((s) =>
      Float64Array.from(
        { length: s.reduce((a, b) => a * b, 1) },
        () => lo + (hi - lo) * rng.next(),
      ),
    );
    const feeds = (): Record<string, HostTensor> =>
      Object.fromEntries(
        values.map((v, i) => [`x${i}`, { type: "float64", data: v, dims: c.shapes[i] }]),
      );
    const out = await session.run(feeds());
    const lossAt = async () =>
      ((await session.run(feeds(), ["loss"])).loss.data as Float64Array)[0];
    const h = c.step ?? 1e-6;
    for (let i = 0; i < values.length; i++) {
      const analytic = out[`grad${i}`].data as Float64Array;
      assert.equal(analytic.length, values[i].length, `grad${i} size`);
      for (let j = 0; j < values[i].length; j++) {
        const x = values[i][j];
        values[i][j] = x + h;
        const plus = await lossAt();
        values[i][j] = x - h;
        const minus = await lossAt();
        values[i][j] = x;
        const numeric = (plus - minus) / (2 * h);
        assert.ok(
          Math.abs(numeric - analytic[j]) <= (c.tolerance ?? 1e-6) * Math.max(1, Math.abs(numeric)),
          `input ${i}[${j}]: analytic ${analytic[j]}, numeric ${numeric}`,
        );
      }
    }
  });
}
