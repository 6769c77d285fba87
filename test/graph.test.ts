import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { test } from "node:test";
import { Graph, GraphError } from "../src/graph/graph.js";
import * as op from "../src/graph/ops.js";
import { floatTensor, Session } from "../src/runtime/session.js";

test("a MatMul + Add graph runs and matches plain arithmetic", async () => {
  const g = new Graph();
  const x = g.input("x", "float32", ["n", 3]);
  const w = g.initializer("w", "float32", [3, 2], Float32Array.from([1, 2, 3, 4, 5, 6]));
  const y = op.add(op.matmul(x, w), 1);
  assert.deepEqual(y.shape, ["n", 2]);
  g.output(y, "y");
  const s = await Session.fromGraph(g);
  const out = await s.run({ x: floatTensor(Float32Array.from([1, 0, 0, 0, 1, 1]), [2, 3]) });
  assert.deepEqual(Array.from(out.y.data as Float32Array), [2, 3, 9, 11]);
  assert.deepEqual(out.y.dims, [2, 2]);
  await s.release();
});

test("outputRenamed names a node's output in place: no Identity, its readers still read it", async () => {
  const g = new Graph();
  const x = g.input("x", "float32", ["n", 2]);
  const h = op.mul(x, 2); // an output that another node reads
  const y = op.add(h, 1);
  g.outputRenamed(h, "h");
  assert.throws(() => g.outputRenamed(y, "h"), /duplicate tensor name "h"/);
  g.outputRenamed(y, "y");
  assert.ok(!g.nodes.some((n) => n.op === "Identity"));
  g.outputRenamed(x, "x2"); // an input is not renamed: an Identity
  assert.equal(g.nodes.filter((n) => n.op === "Identity").length, 1);
  const s = await Session.fromGraph(g);
  const out = await s.run({ x: floatTensor(Float32Array.from([1, 2, 3, 4]), [2, 2]) });
  assert.deepEqual(Array.from(out.h.data as Float32Array), [2, 4, 6, 8]);
  assert.deepEqual(Array.from(out.y.data as Float32Array), [3, 5, 7, 9]);
  assert.deepEqual(Array.from(out.x2.data as Float32Array), [1, 2, 3, 4]);
  await s.release();
});

test("shapes are checked when a node is built", () => {
  const g = new Graph();
  const a = g.input("a", "float32", [2, 3]);
  const b = g.input("b", "float32", [4, 5]);
  assert.throws(
    () => op.matmul(a, b),
    (e: unknown) => e instanceof GraphError && /inner dimensions/.test(e.message),
  );
  assert.throws(() => op.add(a, b), /do not broadcast/);
  assert.throws(() => op.reshape(a, [4, 2]), /cannot reshape/);
  assert.throws(() => op.transpose(a, [0, 0]), /not a permutation/);
  assert.throws(() => op.softmax(a, 2), /axis 2 out of range/);
  assert.deepEqual(op.reshape(op.concat([a, a], 0), [-1]).shape, [12]);
  assert.deepEqual(op.slice(a, [1], [3], [1]).shape, [2, 2]);
  assert.deepEqual(op.gather(b, g.input("i", "int32", ["n"]), 1).shape, [4, "n"]);
});

test("a graph whose weights go through an external-data file runs the same, leaving no file", async () => {
  const build = () => {
    const g = new Graph();
    const x = g.input("x", "float32", [1, 300]);
    const w1 = g.initializer(
      "w1",
      "float32",
      [300, 300],
      Float32Array.from({ length: 90000 }, (_, i) => Math.sin(i)),
    );
    const w2 = g.initializer(
      "w2",
      "float32",
      [300, 7],
      Float32Array.from({ length: 2100 }, (_, i) => Math.cos(i)),
    );
    g.output(op.matmul(op.matmul(x, w1), w2), "y");
    return g;
  };
  const feed = {
    x: floatTensor(
      Float32Array.from({ length: 300 }, (_, i) => i / 300),
      [1, 300],
    ),
  };
  const inline = await Session.fromGraph(build());
  const before = readdirSync(tmpdir()).filter((f) => f.startsWith("unmask-")).length;
  const external = await Session.fromGraph(build(), { externalDataAbove: 0 });
  assert.equal(readdirSync(tmpdir()).filter((f) => f.startsWith("unmask-")).length, before);
  const a = (await inline.run(feed)).y.data as Float32Array;
  const b = (await external.run(feed)).y.data as Float32Array;
  assert.deepEqual(Array.from(b), Array.from(a));
  await inline.release();
  await external.release();
});
