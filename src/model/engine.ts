// The ONNX Runtime implementation of LanguageModel: one graph per model that covers every
// variant (full canvas, logits at chosen positions, cached context for block / dual-cache /
// AR decoding, batched rows), with the weights as initializers.

import { f32ToF16 } from "../format/half.js";
import { Graph, type Tensor } from "../graph/graph.js";
import * as op from "../graph/ops.js";
import {
  floatTensor,
  type HostTensor,
  int32Tensor,
  Session,
  type SessionOptions,
} from "../runtime/session.js";
import { type ModelConfig, parameterShapes, type WeightReader, type Weights } from "./config.js";
import { foldedConfig, foldResidual, graphRotationBlock } from "./fold.js";
import {
  blockAccuracy,
  blockBits,
  blockLinear,
  channelLinear,
  type QuantType,
  quantizeBlocks,
  quantizeChannels,
  quantizeTokens,
  untiedHead,
} from "./quant.js";
import { resolveForwardRequest, WeightsError } from "./request.js";
import { statsFeeds, statsInputs, stepStatistics } from "./stats.js";
import { type LinearSource, lmHead, type ParameterSource, transformer } from "./transformer.js";
import type { ForwardRequest, ForwardResult, KvCache, LanguageModel } from "./types.js";

export interface EngineOptions extends SessionOptions {
  /**
   * How weights are stored in the graph: float32, or float16 (half the graph's size, cast to
   * float32 inside the graph: the form a GPU or browser backend computes in half precision).
   */
  weightType?: "float32" | "float16";
  /**
   * Quantize linear weights while the graph is built (src/model/quant.ts): int8 (rotated, per
   * output channel, activations per token: MatMulIntegerToFloat) for the layers and the LM head,
   * or int4 in blocks of 16 inputs (MatMulNBits) for the layers, int4-lean the same in float32
   * arithmetic (less memory while loading, slower). Embeddings and norms (and the head under
   * int4) stay in weightType.
   */
  quant?: QuantType;
}

/**
 * Builds the inference graph: weights become initializers, each read (and converted or
 * quantized) when the graph is serialised — from a WeightReader, that streams a checkpoint into
 * the session one tensor at a time.
 */
export function buildInferenceGraph(
  config: ModelConfig,
  weights: Weights | WeightReader,
  weightType: EngineOptions["weightType"] = "float32",
  quant?: QuantType,
): Graph {
  const g = new Graph("unmask-forward");
  if (quant === "int8") {
    // the residual stream rotated offline: q/k/v, gate/up and the head read it as it is
    weights = foldResidual(config, weights);
    config = foldedConfig(config);
  }
  const expected = new Map(parameterShapes(config).map((p) => [p.name, p.shape]));
  const made = new Map<string, Tensor>();
  /** The weight's values, read when called (checked to exist now). */
  const reader = (name: string): (() => Float32Array) => {
    if (!expected.has(name)) throw new WeightsError(name, "not a parameter of this config");
    if (!weights.has(name)) throw new WeightsError(name, "missing weight");
    return weights instanceof Map ? () => weights.get(name)! : () => weights.read(name);
  };
  /** A float weight's initializer `key` (float16 ones cast to float32 in the graph), made once. */
  const floatInitializer = (key: string, shape: number[], read: () => Float32Array): Tensor => {
    let t = made.get(key);
    if (!t) {
      t =
        weightType === "float16"
          ? op.cast(
              g.initializer(key, "float16", shape, () => f32ToF16(read())),
              "float32",
            )
          : g.initializer(key, "float32", shape, read);
      made.set(key, t);
    }
    return t;
  };
  const shapeOf = (name: string) => expected.get(name) as number[];
  const param: ParameterSource = Object.assign(
    (name: string) => floatInitializer(name, shapeOf(name), reader(name)),
    {
      joined(names: readonly string[]) {
        const reads = names.map(reader);
        const widths = names.map((name) => shapeOf(name)[0]);
        const inDim = shapeOf(names[0])[1];
        const rows = widths.reduce((a, b) => a + b, 0);
        const weight = floatInitializer(names.join("+"), [rows, inDim], () => {
          const side = new Float32Array(rows * inDim);
          let at = 0;
          for (const read of reads) {
            const w = read();
            side.set(w, at);
            at += w.length;
          }
          return side;
        });
        return { weight, widths };
      },
    },
  );
  /**
   * Linear weights in their quantized form, quantized when their turn comes: int8 for every
   * linear layer and the LM head of the folded model (the weights of one input share one
   * quantization of it), int4 for the layers' linear weights.
   */
  const zeroPoints = new Map<string, Tensor>();
  const linearOf: LinearSource = (x, names, inputScale) => {
    if (quant === undefined) return undefined;
    const int4 = quant === "int4" || quant === "int4-lean";
    if (int4 && !names[0].startsWith("model.layers.") && names[0] !== untiedHead) return undefined;
    const inDim = shapeOf(names[0])[1];
    const outs = names.map((name) => shapeOf(name)[0]);
    const reads = names.map(reader);
    if (int4) {
      const input = inputScale ? op.mul(x, inputScale) : x;
      return names.map((name, i) => {
        const bits = blockBits(name);
        const quantized = () => quantizeBlocks(reads[i](), outs[i], inDim, bits);
        return {
          value: blockLinear(input, name, outs[i], inDim, bits, quantized, blockAccuracy(quant)),
        };
      });
    }
    // one quantization of the shared input, a product per weight (no split copies after); the
    // quantization is the same for a row times any factor, which the row scale then carries
    const block = graphRotationBlock(names[0], inDim);
    const rows = x.shape.slice(0, -1).join("×"); // inputs with as many rows share zero points
    const x8 = quantizeTokens(x, block, zeroPoints.get(rows));
    zeroPoints.set(rows, x8.zeros);
    const rowScale = inputScale ? op.mul(x8.scale, inputScale) : x8.scale;
    return names.map((name, i) => ({
      value: channelLinear(x8, name, outs[i], inDim, () =>
        quantizeChannels(reads[i](), outs[i], inDim, block),
      ),
      rowScale,
    }));
  };
  const ids = g.input("input_ids", "int32", ["batch", "seq"]);
  const positions = g.input("position_ids", "int32", ["batch", "seq"]);
  // a caller's own mask, broadcast to [batch, seq, total]; [1, 1, 1] zeros when there is none
  const bias = g.input("attn_bias", "float32", ["bias_batch", "bias_seq", "bias_total"]);
  const modelMask = config.attention === "full" ? undefined : g.input("model_mask", "bool", []);
  const logitIndex = g.input("logit_index", "int32", ["batch", "npos"]);
  const past = [];
  for (let l = 0; l < config.numLayers; l++) {
    const shape = ["batch", config.numKvHeads, "past", config.headDim];
    past.push({
      key: g.input(`past_key_${l}`, "float32", shape),
      value: g.input(`past_value_${l}`, "float32", shape),
    });
  }
  const out = transformer(
    g,
    config,
    param,
    { ids, positions, bias, modelMask, past, logitIndex, logitRowsByBatch: true },
    linearOf,
  );
  // the logits of the rows asked for, [R, V] (R = rows × positions): one product, as the head's
  // weight is read from memory whatever the number of rows (8 MB for the embedded models); the
  // hidden states made [R, H] before it, as a Reshape of the logits after copied them
  const rows = op.reshape(out.hidden, [-1, config.hiddenSize]); // [R, H]
  const logits = lmHead({ ...out, hidden: rows }, param, linearOf); // [R, V]
  const stats = stepStatistics(logits, config.vocabSize, statsInputs(g));
  // outputs renamed in place (an Identity would copy the logits and the K/V on every call)
  g.outputRenamed(logits, "logits");
  g.outputRenamed(stats.ids, "top_ids");
  g.outputRenamed(stats.logProbs, "top_logprobs");
  g.outputRenamed(stats.logSumExp, "logsumexp");
  g.outputRenamed(stats.entropy, "entropy");
  g.outputRenamed(stats.scoreLogProbs, "score_logprobs");
  out.present.forEach((kv, l) => {
    g.outputRenamed(kv.key, `present_key_${l}`);
    g.outputRenamed(kv.value, `present_value_${l}`);
  });
  return g;
}

const noBias = new Float32Array(1);
const statNames = ["top_ids", "top_logprobs", "logsumexp", "entropy"];

export class OnnxModel implements LanguageModel {
  private disposed = false;

  private constructor(
    readonly config: ModelConfig,
    private readonly session: Session,
  ) {}

  /**
   * Compiles the model. With a WeightReader the weights are streamed tensor by tensor into the
   * session (through an external-data file when the graph is large), never all held at once.
   */
  static async create(
    config: ModelConfig,
    weights: Weights | WeightReader,
    options: EngineOptions = {},
  ): Promise<OnnxModel> {
    const graph = buildInferenceGraph(config, weights, options.weightType, options.quant);
    return new OnnxModel(config, await Session.fromGraph(graph, options));
  }

  async forward(request: ForwardRequest): Promise<ForwardResult> {
    if (this.disposed) throw new Error("OnnxModel: forward() after dispose()");
    const { config } = this;
    const r = resolveForwardRequest(config, request);
    // Flat indices into the rows × n hidden states; with the logit shift (Dream family) token i
    // is predicted from the hidden state at i - 1.
    const hiddenIndex = new Int32Array(r.logitsAt.length);
    for (let k = 0; k < hiddenIndex.length; k++) {
      const i = r.logitsAt[k];
      hiddenIndex[k] = Math.floor(k / r.p) * r.n + (config.logitShift ? Math.max(i - 1, 0) : i);
    }
    const total = r.contextLength + r.n;
    const kvDims = [r.rows, config.numKvHeads, r.contextLength, config.headDim];
    const empty = new Float32Array(0);
    const feeds: Record<string, HostTensor> = {
      input_ids: int32Tensor(request.tokens, [r.rows, r.n]),
      position_ids: int32Tensor(r.positions, [r.rows, r.n]),
      attn_bias:
        r.attentionBias === null
          ? floatTensor(noBias, [1, 1, 1])
          : floatTensor(r.attentionBias, [r.rows, r.n, total]),
      logit_index: int32Tensor(hiddenIndex, [r.rows, r.p]),
    };
    if (config.attention !== "full") {
      // the config's mask, built in the graph from the positions, unless the caller brings one
      feeds.model_mask = {
        type: "bool",
        data: Uint8Array.of(r.attentionBias === null ? 1 : 0),
        dims: [],
      };
    }
    for (let l = 0; l < config.numLayers; l++) {
      feeds[`past_key_${l}`] = floatTensor(request.context?.keys[l] ?? empty, kvDims);
      feeds[`past_value_${l}`] = floatTensor(request.context?.values[l] ?? empty, kvDims);
    }
    const stats = request.stats;
    Object.assign(feeds, statsFeeds(stats, r.rows * r.p));
    const names = request.logits === false ? [] : ["logits"];
    if (stats !== undefined) names.push(...statNames);
    if (stats?.scoreTokens !== undefined) names.push("score_logprobs");
    if (request.returnKv) {
      for (let l = 0; l < config.numLayers; l++)
        names.push(`present_key_${l}`, `present_value_${l}`);
    }
    const timing = { ms: 0 };
    const out = await this.session.run(feeds, names, timing);
    const result: ForwardResult = {
      logits: request.logits === false ? empty : (out.logits.data as Float32Array),
      positions: r.p,
      engineMs: timing.ms,
    };
    if (stats !== undefined) {
      result.stats = {
        k: stats.topK,
        temperature: stats.temperature ?? 1,
        ids: out.top_ids.data as Int32Array,
        logProbs: out.top_logprobs.data as Float32Array,
        logSumExp: out.logsumexp.data as Float32Array,
        entropy: out.entropy.data as Float32Array,
      };
      if (stats.scoreTokens !== undefined) {
        result.stats.scoreLogProbs = out.score_logprobs.data as Float32Array;
      }
    }
    if (request.returnKv) {
      const kv: KvCache = { rows: r.rows, length: total, keys: [], values: [] };
      for (let l = 0; l < config.numLayers; l++) {
        kv.keys.push(out[`present_key_${l}`].data as Float32Array);
        kv.values.push(out[`present_value_${l}`].data as Float32Array);
      }
      result.kv = kv;
    }
    return result;
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await this.session.release();
  }
}
