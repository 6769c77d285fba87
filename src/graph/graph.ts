// A small typed builder for ONNX graphs: symbolic tensors with shapes checked when a node is
// built, nodes, initializers, and serialisation to an ONNX ModelProto (see ops.ts for the ops).

import { ProtoWriter } from "./protobuf.js";

export type DType =
  | "float32"
  | "float16"
  | "float64"
  | "int32"
  | "int64"
  | "int8"
  | "uint8"
  | "bool";
/** A dimension: a number when known when the graph is built, else a symbolic name. */
export type Dim = number | string;
export type Shape = readonly Dim[];
export type TensorData =
  | Float32Array
  | Float64Array
  | Int32Array
  | BigInt64Array
  | Int8Array
  | Uint8Array
  | Uint16Array;

export type Attr =
  | { i: number }
  | { f: number }
  | { s: string }
  | { ints: readonly number[] }
  | { floats: readonly number[] };

export class GraphError extends Error {
  override name = "GraphError";
}

/** A value of the graph: an input, an initializer or a node's output. */
export class Tensor {
  constructor(
    readonly graph: Graph,
    /** Unique in its graph; a node's output may be renamed once, as it becomes a graph output. */
    public name: string,
    readonly dtype: DType,
    readonly shape: Shape,
    /** The node that computes it; undefined for inputs and initializers. */
    readonly producer?: Node,
  ) {}

  get rank(): number {
    return this.shape.length;
  }

  toString(): string {
    return `${this.name}: ${this.dtype}[${this.shape.join(", ")}]`;
  }
}

export interface Node {
  op: string;
  domain: string;
  inputs: readonly (Tensor | null)[];
  outputs: Tensor[];
  attrs: Readonly<Record<string, Attr>>;
}

export interface Initializer {
  tensor: Tensor;
  /**
   * The values, or a function that reads them when the graph is serialised (weights streamed
   * from a checkpoint one tensor at a time, never all held at once).
   */
  data: TensorData | (() => TensorData);
  /** The values' size in bytes (known from the shape and dtype before a lazy tensor is read). */
  byteLength: number;
}

/** Bytes per element of each dtype. */
export const dtypeSize: Record<DType, number> = {
  float32: 4,
  float16: 2,
  float64: 8,
  int32: 4,
  int64: 8,
  int8: 1,
  uint8: 1,
  bool: 1,
};

/** ONNX TensorProto.DataType codes (also the `to` of Cast). */
export const onnxType: Record<DType, number> = {
  float32: 1,
  uint8: 2,
  int8: 3,
  int32: 6,
  int64: 7,
  bool: 9,
  float16: 10,
  float64: 11,
};

export const isFloat = (t: DType): boolean => t === "float32" || t === "float16" || t === "float64";

export class Graph {
  readonly nodes: Node[] = [];
  readonly inputs: Tensor[] = [];
  readonly outputs: Tensor[] = [];
  readonly initializers: Initializer[] = [];
  private readonly names = new Set<string>();
  private readonly constants = new Map<string, Tensor>();
  private counter = 0;

  constructor(readonly name = "unmask") {}

  /** A name with the given stem that no tensor has yet (not reserved). */
  freeName(stem: string): string {
    let name = stem;
    while (this.names.has(name)) name = `${stem}_${++this.counter}`;
    return name;
  }

  private claim(name: string): string {
    if (this.names.has(name)) throw new GraphError(`duplicate tensor name ${JSON.stringify(name)}`);
    this.names.add(name);
    return name;
  }

  input(name: string, dtype: DType, shape: Shape): Tensor {
    const t = new Tensor(this, this.claim(name), dtype, shape);
    this.inputs.push(t);
    return t;
  }

  /**
   * A named weight (or other constant) stored in the model: its values, or a function that reads
   * them when the graph is serialised (checked against the shape then).
   */
  initializer(
    name: string,
    dtype: DType,
    shape: Shape,
    data: TensorData | (() => TensorData),
  ): Tensor {
    const count = shape.reduce<number>((n, d) => n * (d as number), 1);
    if (shape.some((d) => typeof d !== "number")) {
      throw new GraphError(`initializer ${name}: shape must be concrete, got [${shape}]`);
    }
    if (typeof data !== "function") checkCount(name, shape, count, data);
    const t = new Tensor(this, this.claim(name), dtype, shape);
    this.initializers.push({ tensor: t, data, byteLength: count * dtypeSize[dtype] });
    return t;
  }

  /** The values of an initializer, as numbers (for constants such as axes and exponents). */
  valuesOf(t: Tensor): number[] | undefined {
    const init = this.initializers.find((i) => i.tensor === t);
    if (!init) return undefined;
    return Array.from(valuesOfInitializer(init) as ArrayLike<number | bigint>, Number);
  }

  /** A small constant, shared between uses with the same value. */
  constant(values: readonly number[], dtype: DType = "int64", shape?: Shape): Tensor {
    const dims = shape ?? [values.length];
    const key = `${dtype}|${dims.join(",")}|${values.join(",")}`;
    const cached = this.constants.get(key);
    if (cached) return cached;
    const data = makeData(dtype, values);
    const t = this.initializer(this.freeName("const"), dtype, dims, data);
    this.constants.set(key, t);
    return t;
  }

  /** A scalar constant of the given dtype. */
  scalar(value: number, dtype: DType = "float32"): Tensor {
    return this.constant([value], dtype, []);
  }

  /** Adds a node; `outputs` gives dtype and shape of each output (already inferred). */
  node(
    op: string,
    inputs: readonly (Tensor | null)[],
    outputs: readonly { dtype: DType; shape: Shape; name?: string }[],
    attrs: Record<string, Attr> = {},
    domain = "",
  ): Tensor[] {
    for (const t of inputs) {
      if (t && t.graph !== this)
        throw new GraphError(`${op}: input ${t.name} is from another graph`);
    }
    const node: Node = { op, domain, inputs, outputs: [], attrs };
    for (const o of outputs) {
      node.outputs.push(
        new Tensor(
          this,
          this.claim(this.freeName(o.name ?? op.toLowerCase())),
          o.dtype,
          o.shape,
          node,
        ),
      );
    }
    this.nodes.push(node);
    return node.outputs;
  }

  /** Marks a tensor as a graph output under the given name. */
  output(t: Tensor, name?: string): Tensor {
    let out = t;
    if (name !== undefined && name !== t.name) {
      if (this.names.has(name))
        throw new GraphError(`duplicate tensor name ${JSON.stringify(name)}`);
      if (t.producer !== undefined && !this.outputs.includes(t)) {
        // the node writes the output itself: an Identity would copy it (32 MB of logits)
        this.names.delete(t.name);
        t.name = this.claim(name);
      } else out = this.node("Identity", [t], [{ dtype: t.dtype, shape: t.shape, name }])[0];
    }
    this.outputs.push(out);
    return out;
  }

  /**
   * Marks a node's output as a graph output under `name` by renaming it where it is made and
   * read: `output` adds an Identity, which onnxruntime runs as a copy when the tensor has other
   * readers (a vocabulary-wide row of logits, a layer's keys). Returns the renamed tensor; `t`
   * itself must not be used to build anything after.
   */
  outputRenamed(t: Tensor, name: string): Tensor {
    const node = t.producer;
    if (node === undefined || name === t.name || this.outputs.includes(t)) {
      return this.output(t, name);
    }
    if (this.names.has(name)) throw new GraphError(`duplicate tensor name ${JSON.stringify(name)}`);
    const renamed = new Tensor(this, this.claim(name), t.dtype, t.shape, node);
    node.outputs[node.outputs.indexOf(t)] = renamed;
    for (const n of this.nodes) {
      if (n.inputs.includes(t)) n.inputs = n.inputs.map((i) => (i === t ? renamed : i));
    }
    this.outputs.push(renamed);
    return renamed;
  }

  /**
   * Serialises to an ONNX ModelProto. With `externalData`, initializers of at least
   * `externalThreshold` bytes are laid out in one external file instead (for models over
   * protobuf's 2 GB limit); the returned `external` chunks must be written to that file in order.
   */
  toModel(options: { opset?: number; externalData?: string; externalThreshold?: number } = {}): {
    model: Uint8Array;
    external: Iterable<Uint8Array>;
  } {
    const opset = options.opset ?? 17;
    const toExternal: Initializer[] = [];
    let externalOffset = 0;
    const domains = new Set(this.nodes.map((n) => n.domain).filter((d) => d !== ""));
    const w = new ProtoWriter();
    w.varint(1, 8); // ir_version
    w.string(2, "unmask");
    w.message(8, (o) => o.string(1, "").varint(2, opset));
    for (const d of domains) w.message(8, (o) => o.string(1, d).varint(2, 1));
    w.message(7, (g) => {
      for (const node of this.nodes) {
        g.message(1, (n) => {
          for (const t of node.inputs) n.string(1, t ? t.name : "");
          for (const t of node.outputs) n.string(2, t.name);
          n.string(3, node.outputs[0]?.name ?? node.op);
          n.string(4, node.op);
          for (const [key, value] of Object.entries(node.attrs)) {
            n.message(5, (a) => writeAttr(a, key, value));
          }
          if (node.domain) n.string(7, node.domain);
        });
      }
      g.string(2, this.name);
      for (const init of this.initializers) {
        const { tensor, byteLength } = init;
        const toFile =
          options.externalData !== undefined && byteLength >= (options.externalThreshold ?? 1024);
        g.message(5, (t) => {
          for (const d of tensor.shape) t.varint(1, d as number);
          t.varint(2, onnxType[tensor.dtype]);
          t.string(8, tensor.name);
          if (toFile) {
            const location = options.externalData as string;
            t.message(13, (e) => e.string(1, "location").string(2, location));
            t.message(13, (e) => e.string(1, "offset").string(2, String(externalOffset)));
            t.message(13, (e) => e.string(1, "length").string(2, String(byteLength)));
            t.varint(14, 1);
          } else {
            t.bytes(9, bytesOf(valuesOfInitializer(init)));
          }
        });
        if (toFile) {
          toExternal.push(init);
          externalOffset += byteLength + padding(externalOffset + byteLength);
        }
      }
      for (const t of this.inputs) g.message(11, (v) => writeValueInfo(v, t));
      for (const t of this.outputs) g.message(12, (v) => writeValueInfo(v, t));
    });
    return { model: w.finish(), external: externalChunks(toExternal) };
  }
}

function writeAttr(a: ProtoWriter, name: string, value: Attr): void {
  a.string(1, name);
  if ("i" in value) a.varint(3, value.i).varint(20, 2);
  else if ("f" in value) a.float(2, value.f).varint(20, 1);
  else if ("s" in value) a.string(4, value.s).varint(20, 3);
  else if ("ints" in value) {
    for (const v of value.ints) a.varint(8, v);
    a.varint(20, 7);
  } else {
    for (const v of value.floats) a.float(7, v);
    a.varint(20, 6);
  }
}

function writeValueInfo(v: ProtoWriter, t: Tensor): void {
  v.string(1, t.name);
  v.message(2, (type) =>
    type.message(1, (tt) => {
      tt.varint(1, onnxType[t.dtype]);
      tt.message(2, (shape) => {
        for (const d of t.shape) {
          shape.message(1, (dim) => (typeof d === "number" ? dim.varint(1, d) : dim.string(2, d)));
        }
      });
    }),
  );
}

export function makeData(dtype: DType, values: readonly number[]): TensorData {
  switch (dtype) {
    case "float32":
      return Float32Array.from(values);
    case "float64":
      return Float64Array.from(values);
    case "int32":
      return Int32Array.from(values);
    case "int64":
      return BigInt64Array.from(values, (v) => BigInt(v));
    case "int8":
      return Int8Array.from(values);
    case "uint8":
    case "bool":
      return Uint8Array.from(values);
    case "float16":
      throw new GraphError("float16 constants are made with toFloat16()");
  }
}

/** Bytes that bring `offset` up to the next multiple of 64 (external data stays aligned). */
const padding = (offset: number) => (64 - (offset % 64)) % 64;

function checkCount(name: string, shape: Shape, count: number, data: TensorData): void {
  if (data.length !== count) {
    throw new GraphError(
      `initializer ${name}: ${data.length} values for shape [${shape}] (${count} expected)`,
    );
  }
}

/** An initializer's values, read now if they are lazy (and checked against its shape then). */
function valuesOfInitializer(init: Initializer): TensorData {
  if (typeof init.data !== "function") return init.data;
  const data = init.data();
  const { name, shape } = init.tensor;
  checkCount(name, shape, init.byteLength / dtypeSize[init.tensor.dtype], data);
  return data;
}

const bytesOf = (data: TensorData) => new Uint8Array(data.buffer, data.byteOffset, data.byteLength);

/**
 * The external-data file's contents in order, each tensor read when its turn comes (a lazy one
 * is then dropped), padded to 64-byte offsets as toModel laid them out.
 */
function* externalChunks(inits: Initializer[]): Generator<Uint8Array> {
  let offset = 0;
  for (const init of inits) {
    yield bytesOf(valuesOfInitializer(init));
    offset += init.byteLength;
    const pad = padding(offset);
    if (pad > 0) {
      yield new Uint8Array(pad);
      offset += pad;
    }
  }
}
