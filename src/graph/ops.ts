// ONNX operators (opset 17) as typed functions over symbolic tensors. Each infers its output
// shape and rejects inconsistent inputs when the graph is built, naming the op and the shapes.

import {
  type Attr,
  type Dim,
  type DType,
  GraphError,
  onnxType,
  type Shape,
  type Tensor,
} from "./graph.js";

const fmt = (s: Shape): string => `[${s.join(", ")}]`;

function fail(op: string, message: string): never {
  throw new GraphError(`${op}: ${message}`);
}

/** Numpy-style broadcasting of two shapes; symbolic dims are accepted against anything. */
export function broadcastShapes(op: string, a: Shape, b: Shape): Dim[] {
  const rank = Math.max(a.length, b.length);
  const out: Dim[] = [];
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    if (da === db || db === 1) out.push(da);
    else if (da === 1) out.push(db);
    else if (typeof da === "number" && typeof db === "number") {
      fail(op, `shapes ${fmt(a)} and ${fmt(b)} do not broadcast`);
    } else out.push(typeof da === "number" ? da : db);
  }
  return out;
}

function normAxis(op: string, axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) fail(op, `axis ${axis} out of range for rank ${rank}`);
  return a;
}

function sameType(op: string, ...ts: Tensor[]): DType {
  const dtype = ts[0].dtype;
  for (const t of ts) {
    if (t.dtype !== dtype) fail(op, `dtype mismatch: ${ts.map((x) => x.toString()).join(" vs ")}`);
  }
  return dtype;
}

function unary(op: string, x: Tensor, attrs: Record<string, Attr> = {}): Tensor {
  return x.graph.node(op, [x], [{ dtype: x.dtype, shape: x.shape }], attrs)[0];
}

function binary(op: string, a: Tensor, b: Tensor, outType?: DType): Tensor {
  const dtype = sameType(op, a, b);
  const shape = broadcastShapes(op, a.shape, b.shape);
  return a.graph.node(op, [a, b], [{ dtype: outType ?? dtype, shape }])[0];
}

/** A tensor, or a number turned into a scalar constant of the other operand's dtype. */
type Operand = Tensor | number;
function pair(a: Operand, b: Operand): [Tensor, Tensor] {
  if (typeof a === "number" && typeof b === "number") throw new GraphError("two plain numbers");
  const ta = typeof a === "number" ? (b as Tensor).graph.scalar(a, (b as Tensor).dtype) : a;
  const tb = typeof b === "number" ? ta.graph.scalar(b, ta.dtype) : b;
  return [ta, tb];
}

export const add = (a: Operand, b: Operand): Tensor => binary("Add", ...pair(a, b));
export const sub = (a: Operand, b: Operand): Tensor => binary("Sub", ...pair(a, b));
export const mul = (a: Operand, b: Operand): Tensor => binary("Mul", ...pair(a, b));
export const div = (a: Operand, b: Operand): Tensor => binary("Div", ...pair(a, b));
export const pow = (a: Operand, b: Operand): Tensor => binary("Pow", ...pair(a, b));
export const equal = (a: Operand, b: Operand): Tensor => binary("Equal", ...pair(a, b), "bool");
export const less = (a: Operand, b: Operand): Tensor => binary("Less", ...pair(a, b), "bool");
export const greater = (a: Operand, b: Operand): Tensor => binary("Greater", ...pair(a, b), "bool");
export const max = (a: Operand, b: Operand): Tensor => binary("Max", ...pair(a, b));
export const lessOrEqual = (a: Operand, b: Operand): Tensor =>
  binary("LessOrEqual", ...pair(a, b), "bool");

export const neg = (x: Tensor): Tensor => unary("Neg", x);
export const abs = (x: Tensor): Tensor => unary("Abs", x);
export const sqrt = (x: Tensor): Tensor => unary("Sqrt", x);
export const reciprocal = (x: Tensor): Tensor => unary("Reciprocal", x);
export const exp = (x: Tensor): Tensor => unary("Exp", x);
export const log = (x: Tensor): Tensor => unary("Log", x);
export const sigmoid = (x: Tensor): Tensor => unary("Sigmoid", x);
export const tanh = (x: Tensor): Tensor => unary("Tanh", x);
export const identity = (x: Tensor): Tensor => unary("Identity", x);
export const not = (x: Tensor): Tensor => unary("Not", x);

export function softmax(x: Tensor, axis = -1): Tensor {
  return unary("Softmax", x, { axis: { i: normAxis("Softmax", axis, x.rank) } });
}
export function logSoftmax(x: Tensor, axis = -1): Tensor {
  return unary("LogSoftmax", x, { axis: { i: normAxis("LogSoftmax", axis, x.rank) } });
}

export function where(cond: Tensor, a: Operand, b: Operand): Tensor {
  if (cond.dtype !== "bool") fail("Where", `condition must be bool, got ${cond.dtype}`);
  const [ta, tb] = pair(a, b);
  const dtype = sameType("Where", ta, tb);
  const shape = broadcastShapes("Where", broadcastShapes("Where", cond.shape, ta.shape), tb.shape);
  return cond.graph.node("Where", [cond, ta, tb], [{ dtype, shape }])[0];
}

export function matmul(a: Tensor, b: Tensor): Tensor {
  const dtype = sameType("MatMul", a, b);
  if (a.rank < 2 || b.rank < 2)
    fail("MatMul", `needs rank ≥ 2, got ${fmt(a.shape)} @ ${fmt(b.shape)}`);
  const k1 = a.shape[a.rank - 1];
  const k2 = b.shape[b.rank - 2];
  if (typeof k1 === "number" && typeof k2 === "number" && k1 !== k2) {
    fail("MatMul", `inner dimensions differ: ${fmt(a.shape)} @ ${fmt(b.shape)}`);
  }
  const batch = broadcastShapes("MatMul", a.shape.slice(0, -2), b.shape.slice(0, -2));
  const shape = [...batch, a.shape[a.rank - 2], b.shape[b.rank - 1]];
  return a.graph.node("MatMul", [a, b], [{ dtype, shape }])[0];
}

function reduceShape(op: string, x: Tensor, axes: readonly number[], keepdims: boolean): Dim[] {
  const norm = axes.map((a) => normAxis(op, a, x.rank));
  const out: Dim[] = [];
  x.shape.forEach((d, i) => {
    if (!norm.includes(i)) out.push(d);
    else if (keepdims) out.push(1);
  });
  return out;
}

/** ReduceMean/ReduceMax (axes as attribute in opset 17). */
function reduceAttr(op: string, x: Tensor, axes: readonly number[], keepdims: boolean): Tensor {
  const shape = reduceShape(op, x, axes, keepdims);
  return x.graph.node(op, [x], [{ dtype: x.dtype, shape }], {
    axes: { ints: axes },
    keepdims: { i: keepdims ? 1 : 0 },
  })[0];
}
export const reduceMean = (x: Tensor, axes: readonly number[], keepdims = true): Tensor =>
  reduceAttr("ReduceMean", x, axes, keepdims);
export const reduceMax = (x: Tensor, axes: readonly number[], keepdims = true): Tensor =>
  reduceAttr("ReduceMax", x, axes, keepdims);

/** ReduceSum (axes as an input since opset 13). */
export function reduceSum(x: Tensor, axes: readonly number[], keepdims = true): Tensor {
  const shape = reduceShape("ReduceSum", x, axes, keepdims);
  return x.graph.node("ReduceSum", [x, x.graph.constant(axes)], [{ dtype: x.dtype, shape }], {
    keepdims: { i: keepdims ? 1 : 0 },
  })[0];
}

export function transpose(x: Tensor, perm: readonly number[]): Tensor {
  if (perm.length !== x.rank || [...perm].sort().some((p, i) => p !== i)) {
    fail("Transpose", `perm [${perm}] is not a permutation of rank ${x.rank}`);
  }
  const shape = perm.map((p) => x.shape[p]);
  return x.graph.node("Transpose", [x], [{ dtype: x.dtype, shape }], { perm: { ints: perm } })[0];
}

const product = (dims: readonly Dim[]): Dim =>
  dims.every((d) => typeof d === "number")
    ? (dims as number[]).reduce((a, b) => a * b, 1)
    : dims.filter((d) => d !== 1).join("*") || 1;

/** ONNX Reshape: 0 copies the input's dimension, -1 is inferred. */
export function reshape(x: Tensor, spec: readonly number[]): Tensor {
  if (spec.filter((d) => d === -1).length > 1) fail("Reshape", `more than one -1 in [${spec}]`);
  const shape: Dim[] = spec.map((d, i) => {
    if (d === 0) {
      if (i >= x.rank) fail("Reshape", `0 at index ${i} beyond input rank ${x.rank}`);
      return x.shape[i];
    }
    return d;
  });
  const inferIndex = shape.indexOf(-1);
  if (inferIndex >= 0) {
    const known = shape.filter((_, i) => i !== inferIndex);
    const total = product(x.shape);
    const part = product(known);
    if (typeof total === "number" && typeof part === "number") {
      if (part === 0 || total % part !== 0) {
        fail("Reshape", `cannot reshape ${fmt(x.shape)} to [${spec}]`);
      }
      shape[inferIndex] = total / part;
    } else {
      // Symbolic: drop the factors that cancel, name the rest.
      const rest = x.shape.filter((d) => !known.includes(d));
      shape[inferIndex] = product(rest);
    }
  } else {
    const total = product(x.shape);
    const out = product(shape);
    if (typeof total === "number" && typeof out === "number" && total !== out) {
      fail("Reshape", `cannot reshape ${fmt(x.shape)} (${total} values) to [${spec}]`);
    }
  }
  return x.graph.node("Reshape", [x, x.graph.constant(spec)], [{ dtype: x.dtype, shape }])[0];
}

export function concat(xs: readonly Tensor[], axis: number): Tensor {
  const op = "Concat";
  if (xs.length === 0) fail(op, "no inputs");
  const dtype = sameType(op, ...xs);
  const rank = xs[0].rank;
  const a = normAxis(op, axis, rank);
  const shape: Dim[] = [...xs[0].shape];
  for (const x of xs) {
    if (x.rank !== rank) fail(op, `rank mismatch: ${xs.map((t) => fmt(t.shape)).join(", ")}`);
    x.shape.forEach((d, i) => {
      if (i !== a && typeof d === "number" && typeof shape[i] === "number" && d !== shape[i]) {
        fail(op, `dimension ${i} differs: ${xs.map((t) => fmt(t.shape)).join(", ")}`);
      }
    });
  }
  shape[a] = product(xs.map((x) => x.shape[a])) === 0 ? 0 : sumDims(xs.map((x) => x.shape[a]));
  return xs[0].graph.node(op, xs, [{ dtype, shape }], { axis: { i: a } })[0];
}

function sumDims(dims: readonly Dim[]): Dim {
  return dims.every((d) => typeof d === "number")
    ? (dims as number[]).reduce((a, b) => a + b, 0)
    : dims.join("+");
}

const INT_MAX = 2 ** 62;

/** Slice with constant starts/ends along the given axes (step 1). */
export function slice(
  x: Tensor,
  starts: readonly number[],
  ends: readonly number[],
  axes: readonly number[],
): Tensor {
  const op = "Slice";
  const shape: Dim[] = [...x.shape];
  axes.forEach((axis, k) => {
    const a = normAxis(op, axis, x.rank);
    const d = x.shape[a];
    const s = starts[k];
    const e = Math.min(ends[k], INT_MAX);
    if (typeof d === "number") {
      const clamp = (v: number) => Math.max(0, Math.min(d, v < 0 ? v + d : v));
      shape[a] = Math.max(0, clamp(e) - clamp(s));
    } else if (s >= 0 && e >= INT_MAX) {
      shape[a] = s === 0 ? d : `${d}-${s}`;
    } else if (s < 0 && e >= INT_MAX) {
      shape[a] = -s;
    } else if (s >= 0 && e >= 0) {
      shape[a] = e - s;
    } else {
      shape[a] = `slice(${d})`;
    }
  });
  const g = x.graph;
  return g.node(
    op,
    [x, g.constant(starts), g.constant(ends.map((e) => Math.min(e, INT_MAX))), g.constant(axes)],
    [{ dtype: x.dtype, shape }],
  )[0];
}

/** x[..., :end, ...] along `axis`, `end` an int64 [1] tensor given at run time; `dim` names the result's length. */
export function sliceTo(x: Tensor, end: Tensor, axis: number, dim: Dim): Tensor {
  if (end.dtype !== "int64" || end.rank !== 1) fail("Slice", `end must be int64 [1], got ${end}`);
  const a = normAxis("Slice", axis, x.rank);
  const shape = x.shape.map((d, i) => (i === a ? dim : d));
  const g = x.graph;
  return g.node(
    "Slice",
    [x, g.constant([0]), end, g.constant([a])],
    [{ dtype: x.dtype, shape }],
  )[0];
}

export function gather(data: Tensor, indices: Tensor, axis = 0): Tensor {
  if (indices.dtype !== "int32" && indices.dtype !== "int64") {
    fail("Gather", `indices must be int32 or int64, got ${indices.dtype}`);
  }
  const a = normAxis("Gather", axis, data.rank);
  const shape = [...data.shape.slice(0, a), ...indices.shape, ...data.shape.slice(a + 1)];
  return data.graph.node("Gather", [data, indices], [{ dtype: data.dtype, shape }], {
    axis: { i: a },
  })[0];
}

export function cast(x: Tensor, to: DType): Tensor {
  if (x.dtype === to) return x;
  return x.graph.node("Cast", [x], [{ dtype: to, shape: x.shape }], { to: { i: onnxType[to] } })[0];
}

export function unsqueeze(x: Tensor, axes: readonly number[]): Tensor {
  const rank = x.rank + axes.length;
  const norm = axes.map((a) => normAxis("Unsqueeze", a, rank));
  const shape: Dim[] = [];
  let k = 0;
  for (let i = 0; i < rank; i++) shape.push(norm.includes(i) ? 1 : x.shape[k++]);
  return x.graph.node("Unsqueeze", [x, x.graph.constant(axes)], [{ dtype: x.dtype, shape }])[0];
}

export function squeeze(x: Tensor, axes: readonly number[]): Tensor {
  const norm = axes.map((a) => normAxis("Squeeze", a, x.rank));
  for (const a of norm) {
    const d = x.shape[a];
    if (typeof d === "number" && d !== 1) fail("Squeeze", `axis ${a} of ${fmt(x.shape)} is not 1`);
  }
  const shape = x.shape.filter((_, i) => !norm.includes(i));
  return x.graph.node("Squeeze", [x, x.graph.constant(axes)], [{ dtype: x.dtype, shape }])[0];
}

/** x as a matrix [d0·…·d(axis−1), d(axis)·…] (ONNX Flatten). */
export function flatten(x: Tensor, axis: number): Tensor {
  const a = axis === x.rank ? axis : normAxis("Flatten", axis, x.rank);
  const side = (dims: readonly Dim[]): Dim =>
    dims.every((d) => typeof d === "number")
      ? (dims as number[]).reduce((p, d) => p * d, 1)
      : dims.join("*");
  const shape = [side(x.shape.slice(0, a)), side(x.shape.slice(a))];
  return x.graph.node("Flatten", [x], [{ dtype: x.dtype, shape }], { axis: { i: a } })[0];
}

/** The runtime shape of a tensor, as int64[rank]. */
export function shapeOf(x: Tensor): Tensor {
  return x.graph.node("Shape", [x], [{ dtype: "int64", shape: [x.rank] }])[0];
}

/** Broadcasts x to the runtime shape `shape` (int64), whose static form is `outShape`. */
export function expand(x: Tensor, shape: Tensor, outShape: Shape): Tensor {
  const out = broadcastShapes("Expand", x.shape, outShape);
  return x.graph.node("Expand", [x, shape], [{ dtype: x.dtype, shape: out }])[0];
}

/** Broadcasts x to the shape of `like`. */
export function expandAs(x: Tensor, like: Tensor): Tensor {
  return expand(x, shapeOf(like), like.shape);
}

/** A tensor of the runtime shape `shape` (int64) filled with `value`. */
export function full(
  shape: Tensor,
  outShape: Shape,
  value: number,
  dtype: DType = "float32",
): Tensor {
  return expand(shape.graph.scalar(value, dtype), shape, outShape);
}

/** ScatterND with reduction "add": data[indices[i]] += updates[i]. */
export function scatterNDAdd(data: Tensor, indices: Tensor, updates: Tensor): Tensor {
  if (indices.dtype !== "int64") fail("ScatterND", `indices must be int64, got ${indices.dtype}`);
  const dtype = sameType("ScatterND", data, updates);
  return data.graph.node("ScatterND", [data, indices, updates], [{ dtype, shape: data.shape }], {
    reduction: { s: "add" },
  })[0];
}

/** Reshape to the runtime shape of `like`. */
export function reshapeAs(x: Tensor, like: Tensor): Tensor {
  return x.graph.node("Reshape", [x, shapeOf(like)], [{ dtype: x.dtype, shape: like.shape }])[0];
}

/** Zero padding: `before[i]` and `after[i]` values around axis i. */
export function pad(x: Tensor, before: readonly number[], after: readonly number[]): Tensor {
  if (before.length !== x.rank || after.length !== x.rank) {
    fail("Pad", `pads for rank ${x.rank} expected, got [${before}] / [${after}]`);
  }
  const shape = x.shape.map((d, i) =>
    typeof d === "number"
      ? d + before[i] + after[i]
      : before[i] + after[i] === 0
        ? d
        : `${d}+${before[i] + after[i]}`,
  );
  return x.graph.node(
    "Pad",
    [x, x.graph.constant([...before, ...after])],
    [{ dtype: x.dtype, shape }],
    {
      mode: { s: "constant" },
    },
  )[0];
}

/** out[…, i, …] = data[…, indices[…, i, …], …] along `axis`; indices have data's rank. */
export function gatherElements(data: Tensor, indices: Tensor, axis: number): Tensor {
  if (indices.dtype !== "int32" && indices.dtype !== "int64") {
    fail("GatherElements", `indices must be int32 or int64, got ${indices.dtype}`);
  }
  if (indices.rank !== data.rank) {
    fail(
      "GatherElements",
      `indices ${fmt(indices.shape)} and data ${fmt(data.shape)} differ in rank`,
    );
  }
  const a = normAxis("GatherElements", axis, data.rank);
  return data.graph.node(
    "GatherElements",
    [data, indices],
    [{ dtype: data.dtype, shape: indices.shape }],
    {
      axis: { i: a },
    },
  )[0];
}

/**
 * ScatterElements: data[…, indices[…], …] = updates[…] along `axis`, or += with reduction
 * "add" (then repeated indices add up).
 */
export function scatterElements(
  data: Tensor,
  indices: Tensor,
  updates: Tensor,
  axis: number,
  reduction: "none" | "add" = "none",
): Tensor {
  const dtype = sameType("ScatterElements", data, updates);
  const a = normAxis("ScatterElements", axis, data.rank);
  return data.graph.node(
    "ScatterElements",
    [data, indices, updates],
    [{ dtype, shape: data.shape }],
    {
      axis: { i: a },
      reduction: { s: reduction },
    },
  )[0];
}

/** ScatterElements with reduction "add": data[…, indices[…], …] += updates[…] along `axis`. */
export const scatterElementsAdd = (
  data: Tensor,
  indices: Tensor,
  updates: Tensor,
  axis: number,
): Tensor => scatterElements(data, indices, updates, axis, "add");

export const cos = (x: Tensor): Tensor => unary("Cos", x);
export const sin = (x: Tensor): Tensor => unary("Sin", x);

/** Floating-point remainder with the sign of the dividend (ONNX Mod, fmod = 1). */
export function fmod(a: Operand, b: Operand): Tensor {
  const [ta, tb] = pair(a, b);
  const dtype = sameType("Mod", ta, tb);
  const shape = broadcastShapes("Mod", ta.shape, tb.shape);
  return ta.graph.node("Mod", [ta, tb], [{ dtype, shape }], { fmod: { i: 1 } })[0];
}

/**
 * The k largest values along the last axis, largest first (the lower index first among equal
 * values, as ONNX specifies), and their int64 indices. `k` is an int64 [1] tensor (k at run time
 * may not exceed the axis); `kDim` names the result's last dimension.
 */
export function topK(x: Tensor, k: Tensor, kDim: Dim): { values: Tensor; indices: Tensor } {
  if (k.dtype !== "int64" || k.rank !== 1 || (typeof k.shape[0] === "number" && k.shape[0] !== 1)) {
    fail("TopK", `k must be int64 [1], got ${k.toString()}`);
  }
  if (x.rank < 1) fail("TopK", "needs rank ≥ 1");
  const last = x.shape[x.rank - 1];
  if (typeof kDim === "number" && typeof last === "number" && kDim > last) {
    fail("TopK", `k = ${kDim} exceeds the last axis of ${fmt(x.shape)}`);
  }
  const shape = [...x.shape.slice(0, -1), kDim];
  const [values, indices] = x.graph.node(
    "TopK",
    [x, k],
    [
      { dtype: x.dtype, shape },
      { dtype: "int64", shape },
    ],
    { axis: { i: -1 }, largest: { i: 1 }, sorted: { i: 1 } },
  );
  return { values, indices };
}

/** 0, 1, …, n − 1 as int64, for the run-time length `n` (an int64 scalar) named `nDim`. */
export function range(n: Tensor, nDim: Dim): Tensor {
  if (n.dtype !== "int64" || n.rank !== 0) fail("Range", `n must be an int64 scalar, got ${n}`);
  const g = n.graph;
  return g.node(
    "Range",
    [g.scalar(0, "int64"), n, g.scalar(1, "int64")],
    [{ dtype: "int64", shape: [nDim] }],
  )[0];
}

/**
 * Rotary position embedding (com.microsoft RotaryEmbedding, "rotate_half" layout): each head of
 * x [B, S, heads · D] as x·cos + rotate_half(x)·sin, rotate_half(x) = [−x[D/2:], x[:D/2]], with
 * the angles of token (b, s) in row positionIds[b, s] (int64 [B, S]) of the tables cos and sin
 * [rows, D/2] (one pass instead of slices, a negation, a concatenation and three products).
 */
export function rotaryEmbedding(x: Tensor, positionIds: Tensor, cos: Tensor, sin: Tensor): Tensor {
  if (x.rank !== 3) fail("RotaryEmbedding", `x must be [B, S, heads · D], got ${fmt(x.shape)}`);
  if (positionIds.dtype !== "int64" || positionIds.rank !== 2) {
    fail("RotaryEmbedding", `position ids must be int64 [B, S], got ${positionIds}`);
  }
  if (cos.rank !== 2 || sin.rank !== 2) fail("RotaryEmbedding", "cos and sin must be [rows, D/2]");
  const type = sameType("RotaryEmbedding", x, cos);
  return x.graph.node(
    "RotaryEmbedding",
    [x, positionIds, cos, sin],
    [{ dtype: type, shape: x.shape }],
    {},
    "com.microsoft",
  )[0];
}
