// Diffusion decoding and its AR baseline: the public surface of src/diffusion.

export {
  type CallOptions,
  complete,
  type EditOptions,
  type EditResult,
  type EditSpan,
  edit,
  type FixOptions,
  type FixResult,
  fix,
  type GenerateArOptions,
  type GenerateOptions,
  type GenerateResult,
  type GenerateSpeculativeOptions,
  generate,
  generateAr,
  generateSpeculative,
  type Hole,
  type InfillOptions,
  type InfillPart,
  type InfillResult,
  infill,
  type Run,
  streamEdit,
  streamFix,
  streamGenerate,
  streamGenerateAr,
  streamGenerateSpeculative,
  streamInfill,
} from "./api.js";
export { type ArOptions, decodeAr, resolveArOptions } from "./ar.js";
export {
  benchDecode,
  type DecodeBenchOptions,
  type DecodeBenchResult,
  type DecodeSpeed,
} from "./bench.js";
export { denoise, renderCanvas } from "./denoise.js";
export { DecodeAbortedError, DecodeOptionError } from "./errors.js";
export {
  type CacheKind,
  type ConfidenceKind,
  cacheKinds,
  confidenceKinds,
  type DiffusionOptions,
  type EosMode,
  eosModes,
  type PresetName,
  presetNames,
  presets,
  resolveOptions,
  type SamplerKind,
  type ScheduleKind,
  type SelectionKind,
  samplerKinds,
  scheduleKinds,
  selectionKinds,
} from "./options.js";
export { decodeSpeculative, type SpeculativeOptions } from "./speculative.js";
export type {
  CanvasSpec,
  DecodeResult,
  DecodeText,
  PositionChange,
  StepEvent,
  StopReason,
  TextCodec,
} from "./types.js";
