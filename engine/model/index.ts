// Public surface of engine/model: architecture descriptions and weight access.
export type { Architecture, ModelConfig, ModelWeights, RopeConfig, TensorView } from './types';
export type { GgufLike, GgufTensorLike } from './gguf-like';
export { configFromGguf, SUPPORTED_ARCHITECTURES } from './config';
export { loadWeights, weightsFromTensors } from './weights';
export { layerTensorNames, lmHeadName, requiredTensorNames, TOKEN_EMBD, OUTPUT, OUTPUT_NORM, OUTPUT_NORM_BIAS } from './tensor-names';
export type { LayerTensorNames } from './tensor-names';
