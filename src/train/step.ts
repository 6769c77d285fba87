// One training step as one ONNX graph: the model's forward pass over a batch, the weighted
// cross-entropy at the positions that carry loss (LM head only there), and, by reverse-mode
// autodiff, the gradient of every parameter. Parameters live in one flat Float32Array (so AdamW
// is a single loop) and are fed as views into it.

import { gradients } from "../graph/autodiff.js";
import { Graph, type Tensor } from "../graph/graph.js";
import * as op from "../graph/ops.js";
import { type ModelConfig, parameterShapes } from "../model/config.js";
import { lmHead, transformer } from "../model/transformer.js";
import {
  floatTensor,
  type HostTensor,
  int32Tensor,
  Session,
  type SessionOptions,
} from "../runtime/session.js";

export interface ParameterLayout {
  name: string;
  shape: number[];
  /** Offset into the flat parameter buffer. */
  offset: number;
  size: number;
}

export interface LossBatch {
  /** [rows, length] model input (masked, for diffusion). */
  tokens: Int32Array;
  rows: number;
  /**
   * [rows, length] positions (rotary angles, the config's mask); default 0..length − 1 per row.
   */
  positions?: Int32Array;
  /**
   * [length, length] additive attention bias (0 or −∞) shared by every row; when given it
   * replaces the config's mask (BD3-LM's [x_t ; x_0] mask, DiffuLLaMA's annealed mask).
   */
  attentionBias?: Float32Array;
  /**
   * [K] flat indices (row·length + position) of the hidden states whose logits carry loss (the
   * objective applies the model's logit shift).
   */
  lossIndex: Int32Array;
  /** [K] the target token at each of those positions. */
  targets: Int32Array;
  /** [K] the weight of each position's cross-entropy (normaliser included). */
  weights: Float32Array;
  /** Weight of the certainty-forcing term (a step built with StepLoss.certainty); default 0. */
  certaintyWeight?: number;
}

export interface TrainStep {
  readonly config: ModelConfig;
  readonly layout: ParameterLayout[];
  readonly parameterCount: number;
  /**
   * loss = Σ_k weights[k]·(−log p(targets[k])) at lossIndex[k] (+ the StepLoss terms); writes
   * dLoss/dParams to grad.
   */
  run(params: Float32Array, batch: LossBatch, grad: Float32Array): Promise<number>;
  dispose(): Promise<void>;
}

export function parameterLayout(config: ModelConfig): ParameterLayout[] {
  let offset = 0;
  return parameterShapes(config).map(({ name, shape }) => {
    const size = shape.reduce((a, b) => a * b, 1);
    const entry = { name, shape, offset, size };
    offset += size;
    return entry;
  });
}

/**
 * Terms added to the weighted cross-entropy. `certainty`: dParallel's certainty forcing (Chen et
 * al. 2025, "dParallel: Learnable Parallel Decoding for dLLMs", arXiv:2509.26488; czg1225/
 * dParallel `llada_train.py`): a batch's `certaintyWeight` × the mean entropy of
 * softmax(logits / temperature) over the loss positions whose argmax already is the target (the
 * gate carries no gradient), so the model grows sure where it is right. The reference uses
 * weight 2, temperature 0.5, and trains on the model's own generations.
 */
/** dParallel's temperature of the certainty term. */
export const certaintyTemperature = 0.5;

export interface StepLoss {
  certainty?: { temperature: number };
}

/** The training graph: inputs = parameters + batch; outputs = loss and one gradient per parameter. */
export function buildTrainGraph(config: ModelConfig, extra: StepLoss = {}): Graph {
  const g = new Graph("unmask-train");
  const layout = parameterLayout(config);
  const params = new Map<string, Tensor>(
    layout.map((p) => [p.name, g.input(p.name, "float32", p.shape)]),
  );
  const ids = g.input("input_ids", "int32", ["batch", "seq"]);
  const positions = g.input("position_ids", "int32", ["batch", "seq"]);
  // a batch's own mask, [1, seq, seq]; [1, 1, 1] zeros and the config's mask when it has none
  const bias = g.input("attn_bias", "float32", [1, "bias_seq", "bias_total"]);
  const modelMask = config.attention === "full" ? undefined : g.input("model_mask", "bool", []);
  const lossIndex = g.input("loss_index", "int32", [1, "k"]);
  const targets = g.input("targets", "int32", ["k"]);
  const weights = g.input("weights", "float32", ["k"]);

  const param = (name: string) => params.get(name) as Tensor;
  const out = transformer(g, config, param, {
    ids,
    positions, // the config's mask is built from them in the graph
    bias,
    modelMask,
    logitIndex: lossIndex,
  });
  const logits = lmHead(out, param); // [1, K, V]
  const logProbs = op.logSoftmax(logits, -1); // [1, K, V]
  const picked = op.gatherElements(logProbs, op.unsqueeze(op.unsqueeze(targets, [0]), [-1]), -1); // [1, K, 1]
  let loss = op.neg(op.reduceSum(op.mul(op.squeeze(picked, [-1]), weights), [0, 1], false)); // []
  if (extra.certainty !== undefined) {
    const { temperature } = extra.certainty;
    const weight = g.input("certainty_weight", "float32", []);
    const scaled = op.div(logits, temperature); // [1, K, V]
    const entropy = op.neg(
      op.reduceSum(op.mul(op.softmax(scaled, -1), op.logSoftmax(scaled, -1)), [-1], false),
    ); // [1, K]
    const best = op.reduceMax(logProbs, [-1], true); // [1, K, 1]
    const right = op.cast(op.not(op.less(picked, best)), "float32"); // [1, K, 1], no gradient
    const count = op.max(op.reduceSum(right, [0, 1, 2], false), 1); // []
    const gated = op.reduceSum(op.mul(entropy, op.squeeze(right, [-1])), [0, 1], false); // []
    loss = op.add(loss, op.mul(op.div(gated, count), weight));
  }
  g.output(loss, "loss");
  const grads = gradients(loss, [...params.values()]);
  layout.forEach((p, i) => {
    g.output(grads[i], `grad.${p.name}`);
  });
  return g;
}

const noBias = new Float32Array(1);

export async function createTrainStep(
  config: ModelConfig,
  options: SessionOptions = {},
  extra: StepLoss = {},
): Promise<TrainStep> {
  const layout = parameterLayout(config);
  const parameterCount = layout.reduce((n, p) => n + p.size, 0);
  const session = await Session.fromGraph(buildTrainGraph(config, extra), options);
  const outputNames = ["loss", ...layout.map((p) => `grad.${p.name}`)];

  return {
    config,
    layout,
    parameterCount,
    async run(params, batch, grad) {
      const length = batch.tokens.length / batch.rows;
      let positions = batch.positions;
      if (positions === undefined) {
        positions = new Int32Array(batch.tokens.length);
        for (let i = 0; i < positions.length; i++) positions[i] = i % length;
      }
      const k = batch.lossIndex.length;
      const bias = batch.attentionBias;
      if (bias !== undefined && bias.length !== length * length) {
        throw new RangeError(`attentionBias has ${bias.length} values, expected ${length}²`);
      }
      const feeds: Record<string, HostTensor> = {
        input_ids: int32Tensor(batch.tokens, [batch.rows, length]),
        position_ids: int32Tensor(positions, [batch.rows, length]),
        attn_bias:
          bias === undefined
            ? floatTensor(noBias, [1, 1, 1])
            : floatTensor(bias, [1, length, length]),
        loss_index: int32Tensor(batch.lossIndex, [1, k]),
        targets: int32Tensor(batch.targets, [k]),
        weights: floatTensor(batch.weights, [k]),
      };
      if (extra.certainty !== undefined) {
        feeds.certainty_weight = floatTensor(Float32Array.of(batch.certaintyWeight ?? 0), []);
      } else if (batch.certaintyWeight) {
        throw new RangeError("certaintyWeight needs a step built with StepLoss.certainty");
      }
      if (config.attention !== "full") {
        feeds.model_mask = {
          type: "bool",
          data: Uint8Array.of(bias === undefined ? 1 : 0),
          dims: [],
        };
      }
      for (const p of layout) {
        feeds[p.name] = floatTensor(params.subarray(p.offset, p.offset + p.size), p.shape);
      }
      const out = await session.run(feeds, outputNames);
      for (const p of layout) grad.set(out[`grad.${p.name}`].data as Float32Array, p.offset);
      return (out.loss.data as Float32Array)[0];
    },
    dispose: () => session.release(),
  };
}
