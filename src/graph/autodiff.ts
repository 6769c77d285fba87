// Reverse-mode automatic differentiation over the graph builder's op set: from a scalar loss,
// the gradient graph is built from the same ops, so one ONNX Runtime run computes the loss and
// every gradient. Each rule is checked against finite differences (test/autodiff.test.ts).

import { type Dim, GraphError, isFloat, type Node, type Tensor } from "./graph.js";
import * as op from "./ops.js";

type Rule = (node: Node, grad: Tensor, needs: (i: number) => boolean) => (Tensor | null)[];

/** Sums a gradient over the axes along which `shape` was broadcast to produce it. */
export function unbroadcast(grad: Tensor, shape: readonly Dim[]): Tensor {
  const lead = grad.rank - shape.length;
  const keepAxes: number[] = [];
  shape.forEach((d, i) => {
    const gd = grad.shape[lead + i];
    if (d === 1 && gd !== 1) keepAxes.push(lead + i);
  });
  let g = keepAxes.length ? op.reduceSum(grad, keepAxes, true) : grad;
  if (lead > 0)
    g = op.reduceSum(
      g,
      Array.from({ length: lead }, (_, i) => i),
      false,
    );
  return g;
}

function attrInt(node: Node, name: string): number {
  const a = node.attrs[name];
  if (!a || !("i" in a)) throw new GraphError(`${node.op}: attribute ${name} missing`);
  return a.i;
}

function attrInts(node: Node, name: string): readonly number[] {
  const a = node.attrs[name];
  if (!a || !("ints" in a)) throw new GraphError(`${node.op}: attribute ${name} missing`);
  return a.ints;
}

function constantInput(node: Node, index: number): number[] {
  const t = node.inputs[index] as Tensor;
  const values = t.graph.valuesOf(t);
  if (!values)
    throw new GraphError(`${node.op}: input ${index} must be a constant to differentiate`);
  return values;
}

const normAxis = (axis: number, rank: number) => (axis < 0 ? axis + rank : axis);

/** Gradient rules: for node outputs' gradient `g`, the gradient of each input (null: none). */
const rules: Record<string, Rule> = {
  Identity: (_n, g) => [g],
  Add: (n, g, needs) => {
    const [a, b] = n.inputs as Tensor[];
    return [needs(0) ? unbroadcast(g, a.shape) : null, needs(1) ? unbroadcast(g, b.shape) : null];
  },
  Sub: (n, g, needs) => {
    const [a, b] = n.inputs as Tensor[];
    return [
      needs(0) ? unbroadcast(g, a.shape) : null,
      needs(1) ? unbroadcast(op.neg(g), b.shape) : null,
    ];
  },
  Mul: (n, g, needs) => {
    const [a, b] = n.inputs as Tensor[];
    return [
      needs(0) ? unbroadcast(op.mul(g, b), a.shape) : null,
      needs(1) ? unbroadcast(op.mul(g, a), b.shape) : null,
    ];
  },
  Div: (n, g, needs) => {
    const [a, b] = n.inputs as Tensor[];
    const out = n.outputs[0];
    return [
      needs(0) ? unbroadcast(op.div(g, b), a.shape) : null,
      needs(1) ? unbroadcast(op.neg(op.div(op.mul(g, out), b)), b.shape) : null,
    ];
  },
  Pow: (n, g, needs) => {
    if (needs(1))
      throw new GraphError("Pow: gradient with respect to the exponent is not supported");
    const [a] = n.inputs as Tensor[];
    const [e] = constantInput(n, 1);
    const da = e === 2 ? op.mul(a, 2) : op.mul(op.pow(a, e - 1), e);
    return [unbroadcast(op.mul(g, da), a.shape), null];
  },
  Neg: (_n, g) => [op.neg(g)],
  Sqrt: (n, g) => [op.div(g, op.mul(n.outputs[0], 2))],
  Reciprocal: (n, g) => [op.neg(op.mul(g, op.mul(n.outputs[0], n.outputs[0])))],
  Exp: (n, g) => [op.mul(g, n.outputs[0])],
  Log: (n, g) => [op.div(g, n.inputs[0] as Tensor)],
  Sigmoid: (n, g) => {
    const y = n.outputs[0];
    return [op.mul(g, op.mul(y, op.sub(1, y)))];
  },
  Tanh: (n, g) => {
    const y = n.outputs[0];
    return [op.mul(g, op.sub(1, op.mul(y, y)))];
  },
  Softmax: (n, g) => {
    const y = n.outputs[0];
    const axis = attrInt(n, "axis");
    return [op.mul(y, op.sub(g, op.reduceSum(op.mul(g, y), [axis], true)))];
  },
  LogSoftmax: (n, g) => {
    const y = n.outputs[0];
    const axis = attrInt(n, "axis");
    return [op.sub(g, op.mul(op.exp(y), op.reduceSum(g, [axis], true)))];
  },
  MatMul: (n, g, needs) => {
    const [a, b] = n.inputs as Tensor[];
    const swapLast = (t: Tensor) =>
      op.transpose(t, [...Array.from({ length: t.rank - 2 }, (_, i) => i), t.rank - 1, t.rank - 2]);
    let ga: Tensor | null = null;
    let gb: Tensor | null = null;
    if (needs(0)) ga = unbroadcast(op.matmul(g, swapLast(b)), a.shape);
    if (needs(1)) {
      if (b.rank === 2 && a.rank > 2) {
        // A weight shared by every row: flatten the batch into one product [K, M·…] @ [M·…, N].
        const k = a.shape[a.rank - 1] as number;
        const n2 = b.shape[1] as number;
        gb = op.matmul(op.transpose(op.reshape(a, [-1, k]), [1, 0]), op.reshape(g, [-1, n2]));
      } else {
        gb = unbroadcast(op.matmul(swapLast(a), g), b.shape);
      }
    }
    return [ga, gb];
  },
  RotaryEmbedding: (n, g, needs) => {
    // a rotation by the angles per pair of channels: its transpose turns by the opposite angles
    if (needs(2) || needs(3)) throw new GraphError("RotaryEmbedding: the angle tables are data");
    const [, ids, cos, sin] = n.inputs as Tensor[];
    return [op.rotaryEmbedding(g, ids, cos, op.neg(sin)), null, null, null];
  },
  Transpose: (n, g) => {
    const perm = attrInts(n, "perm");
    const inverse = new Array<number>(perm.length);
    perm.forEach((p, i) => {
      inverse[p] = i;
    });
    return [op.transpose(g, inverse)];
  },
  Reshape: (n, g) => [op.reshapeAs(g, n.inputs[0] as Tensor), null],
  Flatten: (n, g) => [op.reshapeAs(g, n.inputs[0] as Tensor)],
  Unsqueeze: (n, g) => [op.squeeze(g, constantInput(n, 1)), null],
  Squeeze: (n, g) => [op.unsqueeze(g, constantInput(n, 1)), null],
  Cast: (n, g) => {
    const x = n.inputs[0] as Tensor;
    return [isFloat(x.dtype) ? op.cast(g, x.dtype) : null];
  },
  Expand: (n, g) => [unbroadcast(g, (n.inputs[0] as Tensor).shape), null],
  ReduceSum: (n, g) => {
    const x = n.inputs[0] as Tensor;
    const axes = constantInput(n, 1);
    const kept = attrInt(n, "keepdims")
      ? g
      : op.unsqueeze(g, axes.map((a) => normAxis(a, x.rank)).sort());
    return [op.expandAs(kept, x), null];
  },
  ReduceMean: (n, g) => {
    const x = n.inputs[0] as Tensor;
    const axes = attrInts(n, "axes").map((a) => normAxis(a, x.rank));
    const count = axes.reduce((c, a) => {
      const d = x.shape[a];
      if (typeof d !== "number")
        throw new GraphError(`ReduceMean: gradient needs a known size on axis ${a}`);
      return c * d;
    }, 1);
    const kept = attrInt(n, "keepdims") ? g : op.unsqueeze(g, [...axes].sort());
    return [op.expandAs(op.div(kept, count), x)];
  },
  Where: (n, g, needs) => {
    const [cond, a, b] = n.inputs as Tensor[];
    return [
      null,
      needs(1) ? unbroadcast(op.where(cond, g, 0), a.shape) : null,
      needs(2) ? unbroadcast(op.where(cond, 0, g), b.shape) : null,
    ];
  },
  Concat: (n, g) => {
    const inputs = n.inputs as Tensor[];
    const axis = attrInt(n, "axis");
    let offset = 0;
    return inputs.map((x) => {
      const size = x.shape[axis];
      if (typeof size !== "number")
        throw new GraphError(`Concat: gradient needs known sizes on axis ${axis}`);
      const part = op.slice(g, [offset], [offset + size], [axis]);
      offset += size;
      return part;
    });
  },
  Slice: (n, g) => {
    const x = n.inputs[0] as Tensor;
    const starts = constantInput(n, 1);
    const ends = constantInput(n, 2);
    const axes = constantInput(n, 3).map((a) => normAxis(a, x.rank));
    const before = new Array<number>(x.rank).fill(0);
    const after = new Array<number>(x.rank).fill(0);
    axes.forEach((a, k) => {
      const d = x.shape[a];
      if (typeof d !== "number")
        throw new GraphError(`Slice: gradient needs a known size on axis ${a}`);
      const clamp = (v: number) => Math.max(0, Math.min(d, v < 0 ? v + d : v));
      before[a] = clamp(starts[k]);
      after[a] = d - clamp(ends[k]);
    });
    return [op.pad(g, before, after), null, null, null];
  },
  GatherElements: (n, g, needs) => {
    if (needs(1)) throw new GraphError("GatherElements: indices are not differentiable");
    const [data, indices] = n.inputs as Tensor[];
    const zeros = op.full(op.shapeOf(data), data.shape, 0, data.dtype);
    return [op.scatterElementsAdd(zeros, indices, g, attrInt(n, "axis")), null];
  },
  Gather: (n, g, needs) => {
    if (needs(1)) throw new GraphError("Gather: indices are not differentiable");
    const [data, indices] = n.inputs as Tensor[];
    if (attrInt(n, "axis") !== 0) throw new GraphError("Gather: gradient only along axis 0");
    const zeros = op.full(op.shapeOf(data), data.shape, 0, data.dtype);
    const at = op.unsqueeze(op.cast(indices, "int64"), [-1]); // [..., 1]
    return [op.scatterNDAdd(zeros, at, g), null];
  },
};

/**
 * The gradients of a scalar `loss` with respect to each of `wrt` (graph inputs or any tensors
 * the loss depends on). A tensor the loss does not depend on gets a zero gradient.
 */
export function gradients(loss: Tensor, wrt: readonly Tensor[]): Tensor[] {
  const g = loss.graph;
  if (loss.rank !== 0 || !isFloat(loss.dtype)) {
    throw new GraphError(`gradients: loss must be a float scalar, got ${loss}`);
  }
  // Tensors that depend on some `wrt` (forward sweep; nodes are in topological order).
  const dependsOnWrt = new Set<Tensor>(wrt);
  for (const node of g.nodes) {
    if (node.inputs.some((t) => t && dependsOnWrt.has(t))) {
      for (const o of node.outputs) if (isFloat(o.dtype)) dependsOnWrt.add(o);
    }
  }
  const grads = new Map<Tensor, Tensor>([[loss, g.scalar(1, loss.dtype)]]);
  const accumulate = (t: Tensor, dt: Tensor) => {
    const prev = grads.get(t);
    grads.set(t, prev ? op.add(prev, dt) : dt);
  };
  const nodes = [...g.nodes];
  for (let k = nodes.length - 1; k >= 0; k--) {
    const node = nodes[k];
    if (node.outputs.length !== 1) continue;
    const gOut = grads.get(node.outputs[0]);
    if (!gOut) continue;
    const needs = (i: number) => {
      const t = node.inputs[i];
      return t !== null && dependsOnWrt.has(t);
    };
    if (!node.inputs.some((_, i) => needs(i))) continue;
    const rule = rules[node.op];
    if (!rule) throw new GraphError(`gradients: no rule for op ${node.op}`);
    const inputGrads = rule(node, gOut, needs);
    inputGrads.forEach((dt, i) => {
      const t = node.inputs[i];
      if (dt && t && needs(i)) accumulate(t, dt);
    });
  }
  return wrt.map((t) => grads.get(t) ?? op.full(op.shapeOf(t), t.shape, 0, t.dtype));
}
