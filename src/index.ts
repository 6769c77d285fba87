// unmask: text-diffusion language models for code, in TypeScript on ONNX Runtime.
// The public entry point: the engine, checkpoint loading, the samplers and the training pieces.

export * from "./diffusion/index.js";
export { type EvalReport, evaluateModel } from "./eval/evaluate.js";
export {
  ChecksumError,
  HubError,
  HubHttpError,
  parseRepoRef,
  pullRepo,
  UnsafeListingError,
} from "./format/hub.js";
export * from "./format/index.js";
export { gradients } from "./graph/autodiff.js";
export { Graph, GraphError, Tensor } from "./graph/graph.js";
export * as op from "./graph/ops.js";
export * from "./host/index.js";
export {
  type AttentionKind,
  ConfigError,
  configToJson,
  endTokenIds,
  type ModelConfig,
  parameterCount,
  parameterShapes,
  parseModelConfig,
  type Weights,
} from "./model/config.js";
export { buildInferenceGraph, type EngineOptions, OnnxModel } from "./model/engine.js";
export { detectFamily, type Family, type FamilyName, familyNames } from "./model/families.js";
export { type QuantType, quantTypes } from "./model/quant.js";
export { Rng, randomWeights } from "./model/random.js";
export { ReferenceModel } from "./model/reference.js";
export { ForwardRequestError, WeightsError } from "./model/request.js";
export type { ForwardRequest, ForwardResult, KvCache, LanguageModel } from "./model/types.js";
export { DeviceError, RuntimeError, Session } from "./runtime/session.js";
export { createTrainStep, type LossBatch, type TrainStep } from "./train/step.js";
