// Public surface of engine/sampling.
export { Sampler, argmax, softmax, topKIndices } from './sampler';
export type { SamplerOptions } from './sampler';
export { SeededRng } from './rng';
export { StopStrings, isStopToken } from './stop';
export type { StopResult } from './stop';
