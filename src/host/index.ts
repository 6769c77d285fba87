// The decode service: the public surface of src/host.

export {
  type Control,
  checkRequest,
  type FixBounds,
  generationLength,
  type Outcome,
  type Plan,
  planFix,
  planGenerate,
  planInfill,
  type RunReport,
  runReport,
  type Stop,
  settle,
  supervise,
} from "./decode.js";
export { IgnoredOptionError, ModelNotFoundError, WrongModelError } from "./errors.js";
export {
  type Decoder,
  decoderOf,
  defaultArModelName,
  defaultModelName,
  type LoadedModel,
  loadModel,
  resolveModelDir,
} from "./models.js";
export {
  arOptions,
  checkModelFor,
  checkSettings,
  type DecodeSettings,
  diffusionOptions,
} from "./options.js";
