// The forward pass of the model family as an ONNX graph: a LLaMA/Qwen2-style decoder whose
// attention mask is data (full for diffusion, causal for AR, block-causal for block diffusion).
// Reads top to bottom like the paper: embed; per layer RMSNorm → attention (q/k head norms where
// the config has them) → residual → RMSNorm → SwiGLU MLP → residual; final norm at the chosen
// positions; LM head (`lmHead`).
// B = rows, N = fresh tokens, C = cached context positions, T = C + N, P = positions with logits.

import type { Graph, Tensor } from "../graph/graph.js";
import * as op from "../graph/ops.js";
import type { ModelConfig } from "./config.js";

export interface TransformerInputs {
  /** int32 [B, N] */
  ids: Tensor;
  /** int32 [B, N], absolute positions: the rotary angles and the config's mask come from them */
  positions: Tensor;
  /**
   * float32, broadcastable to [B, N, T], additive: a caller's own mask. With `modelMask` false it
   * replaces the config's mask, else it is added to it.
   */
  bias?: Tensor;
  /** bool []: whether the config's mask (causal, block-causal) applies; default always. */
  modelMask?: Tensor;
  /** Per layer float32 [B, Hkv, C, D] keys and values of cached positions (rotary applied). */
  past?: { key: Tensor; value: Tensor }[];
  /** int32 [B, P]: flat indices into the B×N hidden states at which to compute logits. */
  logitIndex?: Tensor;
  /**
   * Whether row b of logitIndex indexes batch b's own positions (b·N ≤ index < (b + 1)·N): then
   * the last layer's queries, attention output and MLP run on those rows alone.
   */
  logitRowsByBatch?: boolean;
}

export interface TransformerOutputs {
  /** float32 [B, P, H] (or [B, N, H] without logitIndex): the final norm's output. */
  hidden: Tensor;
  /** The LM head's weight [V, H] by name (the embedding when tied); see `lmHead`. */
  head: string;
  /** Per layer float32 [B, Hkv, T, D]: context then fresh keys/values. */
  present: { key: Tensor; value: Tensor }[];
}

/** Supplies a parameter by its Hugging Face name: an initializer, or a graph input in training. */
export interface ParameterSource {
  (name: string): Tensor;
  /**
   * The weights `names` ([out, in] each, of one input width) side by side, [Σ out, in], and each
   * one's out; where the source has it. The engine's is one initializer: a Concat of initializers
   * is folded by onnxruntime into a second copy of them while the session is made (peak RSS
   * loading a 2.3 GB float32 checkpoint: 4.1–4.5 GB against 2.9 GB without it).
   */
  joined?(names: readonly string[]): { weight: Tensor; widths: number[] };
}

/**
 * A linear layer's output up to a factor per row, as an int8 product leaves it
 * (src/model/quant.ts): y = value · rowScale, rowScale [..., 1]; y = value without one. The
 * transformer multiplies it in where it costs least: in the rotary tables for q and k, in the
 * next product's row scale for up (down's input quantization does not see a factor per row).
 */
export interface Projection {
  value: Tensor;
  rowScale?: Tensor;
}

/** y of a Projection. */
const applied = (y: Projection): Tensor => (y.rowScale ? op.mul(y.value, y.rowScale) : y.value);

/**
 * (x · inputScale) @ Wᵀ for each linear weight in `names` (the projections of one input: a
 * layer's q, k and v, its gate and up, or one weight) in a form of their own (quantized,
 * src/model/quant.ts), a Projection per name; or undefined: then the float weights from the
 * ParameterSource. inputScale [..., 1], when given, is a factor per row the input still owes.
 */
export type LinearSource = (
  x: Tensor,
  names: readonly string[],
  inputScale?: Tensor,
) => Projection[] | undefined;

/** The rotary angles of a forward pass's tokens, for `op.rotaryEmbedding`. */
export interface RotaryTables {
  /** float32 [B·N, D/2]: cos and sin of token b·N + n's angles */
  cos: Tensor;
  sin: Tensor;
  /** int64 [B, N]: each token's row in them, b·N + n */
  rows: Tensor;
}

/**
 * The rotary angles of `positions` [B, N], HF "rotate_half" layout: angle = position ·
 * θ^(−2i/D) / f for i < D/2 (f: the linear scaling factor, 1 without). The product is taken in
 * float64 and reduced modulo 2π before the float32 cos/sin, so a position of 100k keeps the
 * table's precision (~1e-7) without a table sized by max_position_embeddings.
 */
export function rotary(config: ModelConfig, positions: Tensor): RotaryTables {
  const g = positions.graph;
  const half = config.headDim / 2;
  const inverse = new Float64Array(half);
  const factor = config.ropeLinearFactor ?? 1; // linear RoPE scaling divides the frequencies
  for (let i = 0; i < half; i++) inverse[i] = config.ropeTheta ** (-i / half) / factor;
  const frequencies = g.initializer(g.freeName("rope.inv_freq"), "float64", [half], inverse);
  const flat = op.reshape(positions, [-1]); // [B·N]
  const angle = op.mul(op.unsqueeze(op.cast(flat, "float64"), [1]), frequencies); // [B·N, D/2]
  const reduced = op.cast(op.fmod(angle, 2 * Math.PI), "float32");
  const count = op.gather(op.shapeOf(flat), g.scalar(0, "int64")); // B·N
  const rows = op.reshapeAs(op.range(count, flat.shape[0]), positions); // [B, N]
  return { cos: op.cos(reduced), sin: op.sin(reduced), rows };
}

/**
 * The config's attention mask as an additive bias [B, N, C + N] (0 or −∞), or undefined for
 * "full". Query at position q sees key at position k when ⌊k / s⌋ ≤ ⌊q / s⌋, s = 1 for "causal"
 * and the block size for "block_causal" (block ids). Cached key j sits at position j (a prefix).
 */
export function attentionMask(
  config: ModelConfig,
  positions: Tensor,
  pastKey?: Tensor,
): Tensor | undefined {
  if (config.attention === "full") return undefined;
  const g = positions.graph;
  const size = g.scalar(config.attention === "block_causal" ? config.blockSize : 1, "int32");
  const block = (p: Tensor) => op.div(p, size); // integer division: positions are ≥ 0
  const query = op.unsqueeze(block(positions), [2]); // [B, N, 1]
  const zero = g.scalar(0);
  const never = g.scalar(Number.NEGATIVE_INFINITY);
  const visible = (key: Tensor) => op.where(op.lessOrEqual(key, query), zero, never);
  const fresh = visible(op.unsqueeze(block(positions), [1])); // [B, N, N]
  if (pastKey === undefined) return fresh;
  const length = op.gather(op.shapeOf(pastKey), g.scalar(2, "int64")); // C
  const cached = op.cast(op.range(length, pastKey.shape[2]), "int32"); // [C]
  const context = visible(op.unsqueeze(block(cached), [0, 1])); // [B, N, C]
  return op.concat([context, fresh], 2); // [B, N, C + N]
}

/** RMSNorm: x / sqrt(mean(x²) + eps) · w, in the form ORT fuses into SimplifiedLayerNorm. */
function rmsNorm(x: Tensor, weight: Tensor, eps: number): Tensor {
  const meanSquare = op.reduceMean(op.pow(x, 2), [-1]); // [..., 1]
  return op.mul(op.div(x, op.sqrt(op.add(meanSquare, eps))), weight);
}

/** x @ W^T (+ b) for a PyTorch-layout weight [out, in]. */
function linear(x: Tensor, weight: Tensor, bias?: Tensor): Tensor {
  const y = op.matmul(x, op.transpose(weight, [1, 0]));
  return bias ? op.add(y, bias) : y;
}

export function transformer(
  g: Graph,
  config: ModelConfig,
  param: ParameterSource,
  inputs: TransformerInputs,
  linearOf: LinearSource = () => undefined,
): TransformerOutputs {
  const { headDim: d, numKvHeads: hkv, rmsNormEps: eps } = config;
  const groups = config.numHeads / hkv; // query heads per kv head
  const angles = rotary(config, inputs.positions);
  let mask = attentionMask(config, inputs.positions, inputs.past?.[0]?.key); // [B, N, T]
  if (mask !== undefined && inputs.modelMask !== undefined) {
    mask = op.where(inputs.modelMask, mask, 0);
  }
  const sum = mask && inputs.bias ? op.add(mask, inputs.bias) : (mask ?? inputs.bias);
  // The last layer's queries, attention output and MLP count only at the rows with logits: with
  // logitRowsByBatch they run on logitIndex's rows alone (its keys and values, as every layer's,
  // on all N rows), else the final norm's output is gathered.
  const index = inputs.logitIndex;
  const trimLast = index !== undefined && inputs.logitRowsByBatch === true && config.numLayers > 0;
  /** The rows [B, P, …] of a [B, N, …] tensor at the flat indices logitIndex. */
  const rowsOf = (t: Tensor) => op.gather(op.flatten(t, 2), index!);
  const bias = sum && op.unsqueeze(sum, [1, 2]); // [B, 1, 1, N, T]
  /**
   * A projection [B, S, heads · D] turned by the angles of its tokens' rows [B, S] in the tables,
   * after the head norm `norm` where the config has one (Qwen3 / SDAR: RMSNorm over each head's
   * D values). The rotation is linear: a row scale of all N tokens goes into the tables.
   */
  const turn = (y: Projection, rows: Tensor, norm: string) => {
    if (config.qkNorm === true) {
      const x = applied(y);
      const normed = rmsNorm(op.reshape(x, [0, 0, -1, d]), param(norm), eps);
      return op.rotaryEmbedding(op.reshapeAs(normed, x), rows, angles.cos, angles.sin);
    }
    if (y.rowScale === undefined || rows !== angles.rows) {
      return op.rotaryEmbedding(applied(y), rows, angles.cos, angles.sin);
    }
    const scale = op.reshape(y.rowScale, [-1, 1]); // [B·N, 1]
    return op.rotaryEmbedding(y.value, rows, op.mul(angles.cos, scale), op.mul(angles.sin, scale));
  };
  // Scaling q before the product is cheaper than scaling the scores.
  const scale = g.scalar(1 / Math.sqrt(d));

  let x = op.gather(param("model.embed_tokens.weight"), inputs.ids); // [B, N, H]
  const present: TransformerOutputs["present"] = [];
  for (let l = 0; l < config.numLayers; l++) {
    const p = `model.layers.${l}.`;
    /**
     * The layer's projections `names` (of [out, in] weights `${name}.weight`) of x, each plus its
     * bias when `bias`: in their own form when the LinearSource has one (quantized, one product
     * for the weights of one input), else float weights through one MatMul of their
     * concatenation (one larger product runs faster than several small ones), sliced apart after.
     */
    const project = (
      x: Tensor,
      names: readonly string[],
      bias = false,
      inputScale?: Tensor,
    ): Projection[] => {
      const full = names.map((name) => `${p}${name}.weight`);
      const ys =
        linearOf(x, full, inputScale) ?? floatLinear(inputScale ? op.mul(x, inputScale) : x, full);
      if (!bias) return ys;
      return ys.map((y, i) => ({ value: op.add(applied(y), param(`${p}${names[i]}.bias`)) }));
    };
    /** The float form: one weight's MatMul, or one of the weights side by side sliced apart. */
    const floatLinear = (x: Tensor, full: readonly string[]): Projection[] => {
      if (full.length === 1) return [{ value: linear(x, param(full[0])) }];
      const { weight, widths } = param.joined?.(full) ?? concatenated(full);
      const y = linear(x, weight);
      let at = 0;
      return widths.map((width) => {
        at += width;
        return { value: op.slice(y, [at - width], [at], [-1]) };
      });
    };
    /** The weights `full` side by side in the graph (a source without `joined`: training's). */
    const concatenated = (full: readonly string[]) => {
      const weights = full.map((name) => param(name));
      return { weight: op.concat(weights, 0), widths: weights.map((w) => w.shape[0] as number) };
    };

    // Attention, grouped-query: query head j uses kv head floor(j / groups).
    const a = rmsNorm(x, param(`${p}input_layernorm.weight`), eps); // [B, N, H]
    let q0: Projection; // [B, Q, Hq·D]: Q = N, or P in the last layer with logitIndex
    let k0: Projection; // [B, N, Hkv·D]
    let v0: Projection; // [B, N, Hkv·D]
    let queryRows = angles.rows; // [B, Q]: the queries' rows in the rotary tables
    const trimmed = trimLast && l === config.numLayers - 1;
    if (trimmed) {
      [k0, v0] = project(a, ["self_attn.k_proj", "self_attn.v_proj"], config.qkvBias);
      [q0] = project(rowsOf(a), ["self_attn.q_proj"], config.qkvBias);
      x = rowsOf(x); // [B, P, H]
      queryRows = op.cast(index!, "int64"); // flat indices b·N + n: the tables' rows
    } else {
      [q0, k0, v0] = project(
        a,
        ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"],
        config.qkvBias,
      );
    }
    // the head norms (where the config has them), then the rotary embedding, then heads apart
    const q1 = turn(q0, queryRows, `${p}self_attn.q_norm.weight`); // [B, Q, Hq·D]
    const k1 = turn(k0, angles.rows, `${p}self_attn.k_norm.weight`); // [B, N, Hkv·D]
    const q2 = op.transpose(op.reshape(q1, [0, 0, hkv, groups, d]), [0, 2, 3, 1, 4]); // [B, Hkv, G, Q, D]
    const q = op.mul(q2, scale);
    const kNew = op.transpose(op.reshape(k1, [0, 0, hkv, d]), [0, 2, 1, 3]); // [B, Hkv, N, D]
    const v1 = op.transpose(op.reshape(applied(v0), [0, 0, hkv, d]), [0, 2, 1, 3]); // [B, Hkv, N, D]
    const past = inputs.past?.[l];
    const k = past ? op.concat([past.key, kNew], 2) : kNew; // [B, Hkv, T, D]
    const v = past ? op.concat([past.value, v1], 2) : v1; // [B, Hkv, T, D]
    present.push({ key: k, value: v });
    // kᵀ taken after the unsqueeze, so that onnxruntime folds it into the product (FusedMatMul)
    let scores = op.matmul(q, op.transpose(op.unsqueeze(k, [2]), [0, 1, 2, 4, 3])); // [B, Hkv, G, Q, T]
    if (sum && trimmed) {
      scores = op.add(scores, op.unsqueeze(rowsOf(expandRows(sum, inputs.ids, k)), [1, 2])); // [B, 1, 1, P, T]
    } else if (bias) scores = op.add(scores, bias);
    const probs = op.softmax(scores, -1); // [B, Hkv, G, Q, T]
    const heads = op.matmul(probs, op.unsqueeze(v, [2])); // [B, Hkv, G, Q, D]
    const merged = op.reshape(op.transpose(heads, [0, 3, 1, 2, 4]), [0, 0, -1]); // [B, Q, Hq·D]
    x = op.add(x, applied(project(merged, ["self_attn.o_proj"])[0])); // [B, Q, H]

    // SwiGLU MLP: down(silu(gate(m)) · up(m)), up's row scale owed by down's input.
    const m = rmsNorm(x, param(`${p}post_attention_layernorm.weight`), eps); // [B, Q, H]
    const [gate0, up] = project(m, ["mlp.gate_proj", "mlp.up_proj"]); // [B, Q, I]
    const gate = applied(gate0);
    const act = op.mul(op.mul(gate, op.sigmoid(gate)), up.value); // [B, Q, I]
    const down = project(act, ["mlp.down_proj"], false, up.rowScale)[0]; // [B, Q, H]
    x = op.add(x, applied(down));
  }

  let hidden = rmsNorm(x, param("model.norm.weight"), eps); // [B, N or P, H]
  if (index !== undefined && !trimLast) hidden = rowsOf(hidden); // [B, P, H]
  const head = config.tieWordEmbeddings ? "model.embed_tokens.weight" : "lm_head.weight";
  return { hidden, head, present };
}

/** An attention bias broadcastable to [B, N, T] (T = keys' axis 2) expanded to it. */
function expandRows(bias: Tensor, ids: Tensor, keys: Tensor): Tensor {
  const total = op.gather(op.shapeOf(keys), ids.graph.constant([2])); // [1]: T
  const shape = op.concat([op.shapeOf(ids), total], 0); // [3]: B, N, T
  return op.expand(bias, shape, [ids.shape[0], ids.shape[1], keys.shape[2]]);
}

/** The logits [B, P, V] of the transformer's output: its head in the LinearSource's form, else float. */
export function lmHead(
  out: TransformerOutputs,
  param: ParameterSource,
  linearOf: LinearSource = () => undefined,
): Tensor {
  return applied(
    (linearOf(out.hidden, [out.head]) ?? [{ value: linear(out.hidden, param(out.head)) }])[0],
  );
}
