// The format seam: Hugging Face checkpoint folders (config, safetensors weights, tokenizer).

export {
  type Checkpoint,
  type CheckpointContents,
  CheckpointWeights,
  configFileName,
  generationFileName,
  type LoadOptions,
  loadCheckpoint,
  type OpenCheckpoint,
  openCheckpoint,
  type SaveOptions,
  saveCheckpoint,
  tokenizerFileName,
  weightsFileName,
} from "./checkpoint.js";
export { CheckpointError, FormatError, SafetensorsError, TokenizerError } from "./errors.js";
export { bf16ToF32, f16ToF32, f32ToBF16, f32ToF16 } from "./half.js";
export {
  type Dtype,
  dtypeBytes,
  floatDtypes,
  maxHeaderBytes,
  parseSafetensorsHeader,
  readSafetensors,
  type SafetensorsHeader,
  SafetensorsReader,
  shapeSize,
  type TensorEntry,
  type TensorInfo,
  writeSafetensors,
} from "./safetensors.js";
export { closeAll, indexFileName, openShards, readShardIndex } from "./sharded.js";
export {
  type ChatMessage,
  fimTokens,
  PromptTemplate,
  plainChatPrompt,
  type TemplateTokens,
} from "./template.js";
export {
  type DecodeOptions,
  type EncodeOptions,
  type SpecialTokens,
  specialTokenSpellings,
  Tokenizer,
} from "./tokenizer.js";
