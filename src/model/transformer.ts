// The forward pass of the model family as an ONNX graph: a LLaMA/Qwen2-style decoder whose
// attention mask is data (full for diffusion, causal for AR, block-causal for block diffusion).
// Reads top to bottom like the paper: embed; per layer RMSNorm → attention → residual →
// RMSNorm → SwiGLU MLP → residual; final norm; LM head at the chosen positions.
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
}

export interface TransformerOutputs {
  /** float32 [B, P, V] (or [B, N, V] without logitIndex) */
  logits: Tensor;
  /** Per layer float32 [B, Hkv, T, D]: context then fresh keys/values. */
  present: { key: Tensor; value: Tensor }[];
}

/** Supplies a parameter by its Hugging Face name: an initializer, or a graph input in training. */
export type ParameterSource = (name: string) => Tensor;

/**
 * x @ Wᵀ for each linear weight in `names` (the projections of one input: a layer's q, k and v,
 * its gate and up, or one weight) in a form of their own (quantized, src/model/quant.ts), a
 * tensor per name; or undefined: then the float weights from the ParameterSource.
 */
export type LinearSource = (x: Tensor, names: readonly string[]) => Tensor[] | undefined;

/**
 * cos and sin of the rotary angles of `positions` [B, N], [B, N, D] float32, HF "rotate_half"
 * layout: angle = position · θ^(−2i/D) for i < D/2, duplicated over both halves. The product is
 * taken in float64 and reduced modulo 2π before the float32 cos/sin, so a position of 100k keeps
 * the table's precision (~1e-7) without a table sized by max_position_embeddings.
 */
export function rotary(config: ModelConfig, positions: Tensor): { cos: Tensor; sin: Tensor } {
  const g = positions.graph;
  const d = config.headDim;
  const inverse = new Float64Array(d);
  for (let i = 0; i < d / 2; i++)
    inverse[i] = inverse[i + d / 2] = config.ropeTheta ** ((-2 * i) / d);
  const frequencies = g.initializer(g.freeName("rope.inv_freq"), "float64", [d], inverse);
  const angle = op.mul(op.unsqueeze(op.cast(positions, "float64"), [2]), frequencies); // [B, N, D]
  const reduced = op.cast(op.fmod(angle, 2 * Math.PI), "float32"); // [B, N, D]
  return { cos: op.cos(reduced), sin: op.sin(reduced) };
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

/** x·cos + rotate_half(x)·sin, with rotate_half(x) = [-x2, x1] over the last axis. */
function rotate(x: Tensor, cos: Tensor, sin: Tensor, headDim: number): Tensor {
  const half = headDim / 2;
  const x1 = op.slice(x, [0], [half], [-1]);
  const x2 = op.slice(x, [half], [headDim], [-1]);
  const rotated = op.concat([op.neg(x2), x1], -1);
  return op.add(op.mul(x, cos), op.mul(rotated, sin));
}

export function transformer(
  g: Graph,
  config: ModelConfig,
  param: ParameterSource,
  inputs: TransformerInputs,
  linearOf: LinearSource = () => undefined,
): TransformerOutputs {
  const { hiddenSize: h, headDim: d, numKvHeads: hkv, rmsNormEps: eps } = config;
  const groups = config.numHeads / hkv; // query heads per kv head
  const angles = rotary(config, inputs.positions);
  const cosK = op.unsqueeze(angles.cos, [1]); // [B, 1, N, D]
  const sinK = op.unsqueeze(angles.sin, [1]); // [B, 1, N, D]
  const cosQ = op.unsqueeze(cosK, [1]); // [B, 1, 1, N, D]
  const sinQ = op.unsqueeze(sinK, [1]); // [B, 1, 1, N, D]
  let mask = attentionMask(config, inputs.positions, inputs.past?.[0]?.key); // [B, N, T]
  if (mask !== undefined && inputs.modelMask !== undefined) {
    mask = op.where(inputs.modelMask, mask, 0);
  }
  const sum = mask && inputs.bias ? op.add(mask, inputs.bias) : (mask ?? inputs.bias);
  const bias = sum && op.unsqueeze(sum, [1, 2]); // [B, 1, 1, N, T]
  // Scaling q before the product is cheaper than scaling the scores.
  const scale = g.scalar(1 / Math.sqrt(d));

  let x = op.gather(param("model.embed_tokens.weight"), inputs.ids); // [B, N, H]
  const present: TransformerOutputs["present"] = [];
  for (let l = 0; l < config.numLayers; l++) {
    const p = `model.layers.${l}.`;
    /** The layer's projections `names` ([out, in] weights) of x, each plus its bias if any. */
    const project = (x: Tensor, names: readonly string[], bias = false) => {
      const full = names.map((name) => `${p}${name}.weight`);
      const ys = linearOf(x, full) ?? full.map((name) => linear(x, param(name)));
      return ys.map((y, i) => (bias ? op.add(y, param(`${p}${names[i]}.bias`)) : y));
    };

    // Attention, grouped-query: query head j uses kv head floor(j / groups).
    const a = rmsNorm(x, param(`${p}input_layernorm.weight`), eps); // [B, N, H]
    const [q0, k0, v0] = project(
      a,
      ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"],
      config.qkvBias,
    ); // [B, N, Hq·D], [B, N, Hkv·D], [B, N, Hkv·D]
    const q1 = op.transpose(op.reshape(q0, [0, 0, hkv, groups, d]), [0, 2, 3, 1, 4]); // [B, Hkv, G, N, D]
    const k1 = op.transpose(op.reshape(k0, [0, 0, hkv, d]), [0, 2, 1, 3]); // [B, Hkv, N, D]
    const v1 = op.transpose(op.reshape(v0, [0, 0, hkv, d]), [0, 2, 1, 3]); // [B, Hkv, N, D]
    const q = op.mul(rotate(q1, cosQ, sinQ, d), scale); // [B, Hkv, G, N, D]
    const kNew = rotate(k1, cosK, sinK, d); // [B, Hkv, N, D]
    const past = inputs.past?.[l];
    const k = past ? op.concat([past.key, kNew], 2) : kNew; // [B, Hkv, T, D]
    const v = past ? op.concat([past.value, v1], 2) : v1; // [B, Hkv, T, D]
    present.push({ key: k, value: v });
    let scores = op.matmul(q, op.unsqueeze(op.transpose(k, [0, 1, 3, 2]), [2])); // [B, Hkv, G, N, T]
    if (bias) scores = op.add(scores, bias);
    const probs = op.softmax(scores, -1); // [B, Hkv, G, N, T]
    const heads = op.matmul(probs, op.unsqueeze(v, [2])); // [B, Hkv, G, N, D]
    const merged = op.reshape(op.transpose(heads, [0, 3, 1, 2, 4]), [0, 0, -1]); // [B, N, Hq·D]
    x = op.add(x, project(merged, ["self_attn.o_proj"])[0]); // [B, N, H]

    // SwiGLU MLP: down(silu(gate(m)) · up(m)).
    const m = rmsNorm(x, param(`${p}post_attention_layernorm.weight`), eps); // [B, N, H]
    const [gate, up] = project(m, ["mlp.gate_proj", "mlp.up_proj"]); // [B, N, I] each
    const act = op.mul(op.mul(gate, op.sigmoid(gate)), up); // [B, N, I]
    x = op.add(x, project(act, ["mlp.down_proj"])[0]); // [B, N, H]
  }

  let hidden = rmsNorm(x, param("model.norm.weight"), eps); // [B, N, H]
  if (inputs.logitIndex) {
    hidden = op.gather(op.reshape(hidden, [-1, h]), inputs.logitIndex); // [B, P, H]
  }
  const head = config.tieWordEmbeddings ? "model.embed_tokens.weight" : "lm_head.weight";
  const logits = (linearOf(hidden, [head]) ?? [linear(hidden, param(head))])[0]; // [B, P, V]
  return { logits, present };
}
