// Public surface of engine/runtime: the Engine facade, its scheduler, and the worker client.
export { Engine } from './engine';
export type { EngineLoadOptions, EngineGenerateRequest, EngineCompleteRequest, EngineChatRequest, EngineWarning } from './engine';
export { Scheduler } from './scheduler';
export type { GenerationRequest, GenerationResult, StreamChunk, SchedulerOptions, SchedulerStats, SchedulerTokenizer } from './scheduler';
export { SimpleKvStore, KvManagerStore } from './kv-store';
export { ChunkReuse } from './chunk-reuse';
export type { ChunkReuseMode, ChunkReuseOptions, ChunkReuseReport, ChunkAcquired, ContextSpan } from './chunk-reuse';
export type { KvStore, KvStats, KvAcquired } from './kv-store';
export { draftNgram, simulateSpeculative, SpeculativeStats } from './speculative';
export { StopStringFilter } from './stop-strings';
export { argmax, chainSamplerFactory, greedySampler, isGreedy } from './token-sampler';
export type { TokenSampler, SamplerFactory } from './token-sampler';
export { EngineHost } from './host';
export { EngineClient, EngineRequestError, TokenStream } from './client';
export type { EngineClientOptions, StreamResult } from './client';
