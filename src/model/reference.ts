// The float64 reference of the model family's forward pass: slow, obvious, and the yardstick that
// the ONNX Runtime engine is tested against position by position. It reads like llama2.c's
// run.c forward(): embed → per layer [RMSNorm → q, k, v (→ q/k head RMSNorm) → RoPE →
// grouped-query attention → o_proj → residual → RMSNorm → SwiGLU MLP → residual] → final RMSNorm
// → LM head. Everything is computed in float64; the LanguageModel interface hands results back as
// float32, `forward64` as float64.
//
// Notation in shape comments: R rows (canvases), n fresh positions per row, C cached (context)
// positions, L = C + n keys per row, H hidden size, NH query heads, KV key/value heads, D head
// dim, M MLP width, V vocabulary, p positions per row at which logits are asked for.

import { type ModelConfig, parameterShapes, type Weights } from "./config.js";
import { defaultAttentionBias, resolveForwardRequest, WeightsError } from "./request.js";
import { hostStepStats } from "./stats.js";
import type { ForwardRequest, ForwardResult, KvCache, LanguageModel } from "./types.js";

/** A KvCache in float64, as `forward64` returns it (the reference keeps its own cache exact). */
export interface KvCache64 {
  rows: number;
  length: number;
  keys: Float64Array[];
  values: Float64Array[];
}

export interface ForwardRequest64 extends Omit<ForwardRequest, "context"> {
  context?: KvCache | KvCache64;
}

export interface ForwardResult64 {
  /** [rows, positions, vocabSize] */
  logits: Float64Array;
  positions: number;
  kv?: KvCache64;
}

/**
 * Rotary position embedding, Hugging Face LLaMA convention ("rotate_half", not interleaved), in
 * place on x[offset, offset + headDim): with inv_freq[i] = θ^(−2i/D) for i < D/2 and
 * angle = position · inv_freq (duplicated over both halves),
 * x' = x·cos + rotate_half(x)·sin, rotate_half(x) = [−x[D/2:], x[:D/2]].
 */
export function applyRotary(
  x: Float64Array,
  offset: number,
  headDim: number,
  position: number,
  theta: number,
): void {
  const half = headDim / 2;
  for (let i = 0; i < half; i++) {
    const angle = position / theta ** ((2 * i) / headDim);
    const cos = Math.cos(angle);
    const sin = Math.sin(angle);
    const a = x[offset + i]; // first half
    const b = x[offset + half + i]; // second half
    x[offset + i] = a * cos - b * sin;
    x[offset + half + i] = b * cos + a * sin;
  }
}

/** RMSNorm: x · 1/√(mean(x²) + eps) · w, per row of width h. [t, h] → [t, h] */
function rmsNorm(x: Float64Array, t: number, h: number, w: Float64Array, eps: number) {
  const out = new Float64Array(t * h);
  for (let r = 0; r < t; r++) {
    let ss = 0;
    for (let i = 0; i < h; i++) ss += x[r * h + i] * x[r * h + i];
    const scale = 1 / Math.sqrt(ss / h + eps);
    for (let i = 0; i < h; i++) out[r * h + i] = x[r * h + i] * scale * w[i];
  }
  return out;
}

/** y = x Wᵀ + b with W of PyTorch shape [out, in]. [t, in] → [t, out] */
function linear(
  x: Float64Array,
  t: number,
  inDim: number,
  outDim: number,
  w: Float64Array,
  b?: Float64Array,
) {
  const y = new Float64Array(t * outDim);
  for (let r = 0; r < t; r++) {
    for (let o = 0; o < outDim; o++) {
      let s = b === undefined ? 0 : b[o];
      for (let i = 0; i < inDim; i++) s += x[r * inDim + i] * w[o * inDim + i];
      y[r * outDim + o] = s;
    }
  }
  return y;
}

const silu = (x: number) => x / (1 + Math.exp(-x));

export class ReferenceModel implements LanguageModel {
  private readonly weights = new Map<string, Float64Array>();

  /** Checks every weight of `parameterShapes(config)` is present with its size (WeightsError). */
  constructor(
    readonly config: ModelConfig,
    weights: Weights,
  ) {
    for (const { name, shape } of parameterShapes(config)) {
      const w = weights.get(name);
      const size = shape.reduce((a, b) => a * b, 1);
      if (w === undefined) throw new WeightsError(name, "missing");
      if (w.length !== size) {
        throw new WeightsError(name, `has ${w.length} values, expected [${shape}] = ${size}`);
      }
      this.weights.set(name, Float64Array.from(w));
    }
  }

  async forward(request: ForwardRequest): Promise<ForwardResult> {
    const { logits, positions, kv } = this.forward64(request);
    const result: ForwardResult = {
      logits: request.logits === false ? new Float32Array(0) : Float32Array.from(logits),
      positions,
    };
    if (request.stats !== undefined) {
      result.stats = hostStepStats(
        logits,
        logits.length / this.config.vocabSize,
        this.config.vocabSize,
        request.stats,
      );
    }
    if (kv !== undefined) {
      result.kv = {
        rows: kv.rows,
        length: kv.length,
        keys: kv.keys.map((k) => Float32Array.from(k)),
        values: kv.values.map((v) => Float32Array.from(v)),
      };
    }
    return result;
  }

  async dispose(): Promise<void> {}

  /** The forward pass in float64 throughout, context and returned cache included. */
  forward64(request: ForwardRequest64): ForwardResult64 {
    const cfg = this.config;
    const r = resolveForwardRequest(cfg, request);
    const { rows: R, n, contextLength: C, positions, logitsAt, p } = r;
    const attentionBias = r.attentionBias ?? defaultAttentionBias(cfg, R, n, C, positions); // [R, n, C + n] or null
    const { hiddenSize: H, numHeads: NH, numKvHeads: KV, headDim: D } = cfg;
    const { intermediateSize: M, vocabSize: V, rmsNormEps: eps, ropeTheta: theta } = cfg;
    const T = R * n; // fresh tokens over all rows
    const L = C + n; // keys per row: context first, then fresh
    const group = NH / KV; // query heads per key/value head
    const scale = 1 / Math.sqrt(D);
    const context = request.context;

    // token embeddings
    const embed = this.weight("model.embed_tokens.weight"); // [V, H]
    const x = new Float64Array(T * H); // [R, n, H], the residual stream
    for (let t = 0; t < T; t++) {
      const id = request.tokens[t];
      x.set(embed.subarray(id * H, (id + 1) * H), t * H);
    }

    const kv: KvCache64 | undefined = request.returnKv
      ? { rows: R, length: L, keys: [], values: [] }
      : undefined;
    for (let l = 0; l < cfg.numLayers; l++) {
      const w = (name: string) => this.weight(`model.layers.${l}.${name}`);
      const bias = (name: string) => (cfg.qkvBias ? w(name) : undefined);

      // attention: RMSNorm, then q, k, v projections
      const xn = rmsNorm(x, T, H, w("input_layernorm.weight"), eps); // [R, n, H]
      let q = linear(xn, T, H, NH * D, w("self_attn.q_proj.weight"), bias("self_attn.q_proj.bias")); // [R, n, NH, D]
      let k = linear(xn, T, H, KV * D, w("self_attn.k_proj.weight"), bias("self_attn.k_proj.bias")); // [R, n, KV, D]
      const v = linear(
        xn,
        T,
        H,
        KV * D,
        w("self_attn.v_proj.weight"),
        bias("self_attn.v_proj.bias"),
      ); // [R, n, KV, D]

      // Qwen3 / SDAR: RMSNorm over each query and key head's D values, before the rotary
      if (cfg.qkNorm === true) {
        q = rmsNorm(q, T * NH, D, w("self_attn.q_norm.weight"), eps); // [R, n, NH, D]
        k = rmsNorm(k, T * KV, D, w("self_attn.k_norm.weight"), eps); // [R, n, KV, D]
      }

      // rotary embeddings on q and k at each token's absolute position (divided by the linear
      // scaling factor: the same angles as transformers' inv_freq / factor)
      for (let t = 0; t < T; t++) {
        const at = positions[t] / (cfg.ropeLinearFactor ?? 1);
        for (let h = 0; h < NH; h++) applyRotary(q, (t * NH + h) * D, D, at, theta);
        for (let g = 0; g < KV; g++) applyRotary(k, (t * KV + g) * D, D, at, theta);
      }

      // all keys and values of each row, context first: [R, KV, L, D]
      const keys = new Float64Array(R * KV * L * D);
      const values = new Float64Array(R * KV * L * D);
      for (let r = 0; r < R; r++) {
        for (let g = 0; g < KV; g++) {
          const rowHead = (r * KV + g) * L; // first key of (r, g)
          if (context !== undefined) {
            for (let j = 0; j < C; j++) {
              const src = ((r * KV + g) * C + j) * D; // context is [R, KV, C, D]
              for (let d = 0; d < D; d++) {
                keys[(rowHead + j) * D + d] = context.keys[l][src + d];
                values[(rowHead + j) * D + d] = context.values[l][src + d];
              }
            }
          }
          for (let j = 0; j < n; j++) {
            const src = ((r * n + j) * KV + g) * D; // fresh k, v are [R, n, KV, D]
            keys.set(k.subarray(src, src + D), (rowHead + C + j) * D);
            values.set(v.subarray(src, src + D), (rowHead + C + j) * D);
          }
        }
      }
      kv?.keys.push(keys);
      kv?.values.push(values);

      // scaled dot-product attention; query head h reads key/value head ⌊h / group⌋
      const att = new Float64Array(T * NH * D); // [R, n, NH, D]
      const scores = new Float64Array(L); // [L]
      for (let r = 0; r < R; r++) {
        for (let i = 0; i < n; i++) {
          for (let h = 0; h < NH; h++) {
            const qo = ((r * n + i) * NH + h) * D;
            const kvo = (r * KV + Math.floor(h / group)) * L * D;
            let max = Number.NEGATIVE_INFINITY;
            for (let j = 0; j < L; j++) {
              let s = 0;
              for (let d = 0; d < D; d++) s += q[qo + d] * keys[kvo + j * D + d];
              s *= scale;
              if (attentionBias !== null) s += attentionBias[(r * n + i) * L + j];
              scores[j] = s;
              if (s > max) max = s;
            }
            let sum = 0;
            for (let j = 0; j < L; j++) {
              scores[j] = Math.exp(scores[j] - max);
              sum += scores[j];
            }
            for (let j = 0; j < L; j++) {
              const weight = scores[j] / sum;
              for (let d = 0; d < D; d++) att[qo + d] += weight * values[kvo + j * D + d];
            }
          }
        }
      }
      const o = linear(att, T, NH * D, H, w("self_attn.o_proj.weight")); // [R, n, H]
      for (let i = 0; i < T * H; i++) x[i] += o[i]; // residual

      // MLP: down(silu(gate(x)) · up(x))
      const xm = rmsNorm(x, T, H, w("post_attention_layernorm.weight"), eps); // [R, n, H]
      const gate = linear(xm, T, H, M, w("mlp.gate_proj.weight")); // [R, n, M]
      const up = linear(xm, T, H, M, w("mlp.up_proj.weight")); // [R, n, M]
      for (let i = 0; i < T * M; i++) gate[i] = silu(gate[i]) * up[i];
      const down = linear(gate, T, M, H, w("mlp.down_proj.weight")); // [R, n, H]
      for (let i = 0; i < T * H; i++) x[i] += down[i]; // residual
    }

    // the hidden state behind each requested logit row; under logit shift, one to the left
    const picked = new Float64Array(R * p * H); // [R, p, H]
    for (let r = 0; r < R; r++) {
      for (let s = 0; s < p; s++) {
        const i = logitsAt[r * p + s];
        const source = cfg.logitShift ? Math.max(i - 1, 0) : i;
        picked.set(x.subarray((r * n + source) * H, (r * n + source + 1) * H), (r * p + s) * H);
      }
    }
    const final = rmsNorm(picked, R * p, H, this.weight("model.norm.weight"), eps); // [R, p, H]
    const head = this.weight(
      cfg.tieWordEmbeddings ? "model.embed_tokens.weight" : "lm_head.weight",
    ); // [V, H]
    const logits = linear(final, R * p, H, V, head); // [R, p, V]
    return kv === undefined ? { logits, positions: p } : { logits, positions: p, kv };
  }

  private weight(name: string): Float64Array {
    const w = this.weights.get(name);
    if (w === undefined) throw new WeightsError(name, "missing");
    return w;
  }
}
