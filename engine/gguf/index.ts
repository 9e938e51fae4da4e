export { GgufValueType, GGUF_MAGIC, GGUF_DEFAULT_ALIGNMENT } from './types';
export type { GgufValue, GgufMetadataEntry, GgufTensorInfo } from './types';
export { GgufFile, openGguf, parseGguf } from './reader';
export { GgufBuilder, writeGguf, ggufToBytes } from './writer';
export type { GgufWriteSpec, GgufTensorSpec } from './writer';
