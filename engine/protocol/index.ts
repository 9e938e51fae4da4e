// The one message protocol between the extension host (or CLI) and the engine worker.
//
// Plain JSON-serialisable data only (no classes, no typed arrays, no bigint), so messages cross
// worker_threads postMessage, stdio or HTTP unchanged. Every message is a discriminated union on
// `type`. Requests carry a caller-chosen `id`; every response or event about a request carries the
// same `id`. The worker announces PROTOCOL_VERSION in `hello` as soon as it starts; a client that
// sees another major version refuses to talk. Changes are additive only: new optional fields, new
// message types. Never rename or remove.
//
// This module imports nothing: src/ may import it without pulling in engine internals.

export const PROTOCOL_VERSION = 1;

// ---------------------------------------------------------------------------------------------
// Shared pieces

export type BackendChoice = 'auto' | 'webgpu' | 'onnx' | 'reference';
export type BackendName = 'webgpu' | 'onnx' | 'reference';

/**
 * Reuse of repository-context chunk K/V at new positions: 'off' (exact: only the radix prefix
 * cache), 'rotate' (RoPE re-rotation), 'blend' (re-rotation + CacheBlend selective recompute).
 */
export type ChunkReuseMode = 'off' | 'rotate' | 'blend';

/** Scheduling class: interactive completions preempt chat, chat preempts background warm-up. */
export type Priority = 'interactive' | 'chat' | 'background';

export interface SamplingParams {
  /** 0 (or absent) = greedy. */
  temperature?: number;
  topK?: number;
  topP?: number;
  minP?: number;
  /** llama.cpp-style repetition penalty (1 = off) over the last `penaltyLastN` tokens. */
  repeatPenalty?: number;
  presencePenalty?: number;
  frequencyPenalty?: number;
  penaltyLastN?: number;
  /** RNG seed for reproducible sampling. */
  seed?: number;
}

/** Prompt-lookup speculative decoding (no draft model). */
export interface SpeculativeParams {
  /** Max draft tokens verified per step (0 disables). */
  maxDraft?: number;
  /** n-gram length matched against the prompt / workspace text. */
  ngram?: number;
  /** Extra text (e.g. open editors) the drafter may copy from, besides the prompt. */
  workspaceText?: string[];
}

/** One piece of a prompt. Stable segments go first so their KV is reused across requests. */
export interface PromptSegment {
  text: string;
  /** What the segment is; lets the engine pick chunk caches and report reuse. */
  role?: 'header' | 'chunk' | 'prefix' | 'suffix' | 'text';
  /** Stable identity for chunk caches (e.g. file path + content hash). */
  key?: string;
  /** Parse special-token text (e.g. "<|fim_prefix|>") into special ids. Default false. */
  parseSpecial?: boolean;
}

/** A retrieved piece of another file, placed before the current file in a FIM prompt. */
export interface ContextChunk {
  filePath: string;
  text: string;
  languageId?: string;
  /** Retrieval score; higher first when the budget forces dropping chunks. */
  score?: number;
}

/** A file the engine may take repository context from (engine/context selectContext). */
export interface ContextCandidate {
  filePath: string;
  text: string;
  languageId?: string;
  /** Why it is a candidate; files the current file imports are found by the engine. */
  sources: ('open' | 'recent-edit' | 'visited')[];
  /** When it was last edited (ms since epoch): recent edits go last in the prompt, oldest first. */
  editedAt?: number;
}

/**
 * Files to choose repository context from: the engine picks chunks (imported files, open and
 * recently edited ones, nearest by similarity to the code around the cursor) within
 * `tokenBudget`, ordered stable-first so consecutive prompts share their prefix.
 */
export interface RepoContextRequest {
  candidates: ContextCandidate[];
  /** Budget for the chosen chunks, in (approximate) tokens. */
  tokenBudget: number;
  /** The start of the current file, to read its imports from (when the prefix window misses them). */
  currentHead?: string;
}

/** Fill-in-the-middle input: the engine formats it for the model family (engine/context). */
export interface FimInput {
  prefix: string;
  suffix: string;
  filePath?: string;
  languageId?: string;
  repoName?: string;
  /** Context chunks as given, before any the engine selects from `repoContext`. */
  chunks?: ContextChunk[];
  repoContext?: RepoContextRequest;
}

export type PromptInput =
  | { kind: 'text'; text: string; addSpecial?: boolean; parseSpecial?: boolean }
  | { kind: 'segments'; segments: PromptSegment[]; addSpecial?: boolean }
  | { kind: 'tokens'; tokenIds: number[] }
  | { kind: 'fim'; fim: FimInput };

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

/** Options every generating request shares. */
export interface GenerationOptions {
  priority?: Priority;
  maxTokens?: number;
  sampling?: SamplingParams;
  /** Stop strings: generation ends before the first occurrence (it is not emitted). */
  stop?: string[];
  /** Wall-clock budget from when the engine receives the request; on expiry it returns what it has. */
  deadlineMs?: number;
  /**
   * Absent: the engine's default (FIM completions draft on backends that verify drafts cheaply,
   * webgpu and onnx; plain decoding elsewhere). `{ maxDraft: 0 }` turns drafting off. Drafting
   * never changes greedy output; sampled requests ignore it.
   */
  speculative?: SpeculativeParams;
}

// ---------------------------------------------------------------------------------------------
// Requests (client -> engine)

export interface LoadModelRequest {
  type: 'loadModel';
  id: string;
  path: string;
  backend: BackendChoice;
  /** Tokens per sequence; default: the model's, capped by kvBudget. */
  contextLength?: number;
  /** KV storage to allocate, as slots (tokens) and/or bytes; the smaller wins. */
  kvBudget?: { slots?: number; bytes?: number };
  /** Max concurrent sequences decoded together. */
  maxSequences?: number;
  /** Prefill chunk size (tokens) between which higher-priority work may run. */
  prefillChunk?: number;
  /** CPU threads for CPU backends. */
  threads?: number;
  /** Directory for on-disk chunk caches; absent = memory only. */
  cacheDir?: string;
  /** Chunk K/V reuse for FIM repository context (default 'off': outputs stay exact). */
  chunkReuse?: ChunkReuseMode;
  /** CacheBlend recompute fraction for chunkReuse 'blend' (default 0.15). */
  chunkBlendRatio?: number;
}

export interface CompleteRequest extends GenerationOptions {
  type: 'complete';
  id: string;
  prompt: PromptInput;
}

export interface ChatRequest extends GenerationOptions {
  type: 'chat';
  id: string;
  messages: ChatMessage[];
}

export interface TokenizeRequest {
  type: 'tokenize';
  id: string;
  text: string;
  addSpecial?: boolean;
  parseSpecial?: boolean;
}

/** Cancels request `id`; its stream ends with finishReason 'cancelled'. Unknown ids are ignored. */
export interface CancelRequest {
  type: 'cancel';
  id: string;
}

export interface MetricsRequest {
  type: 'metrics';
  id: string;
  /** Collect garbage first when the process runs with node --expose-gc (leak checks in benches). */
  gc?: boolean;
}

export interface ClearCacheRequest {
  type: 'clearCache';
  id: string;
}

export interface ShutdownRequest {
  type: 'shutdown';
  id: string;
}

/**
 * Lists local GGUF models (Ollama, LM Studio, Hugging Face cache, `paths`) with what each is,
 * why one cannot load, and whether it fits in memory at `contextLength`. Needs no model loaded.
 * Answered by a `models` event.
 */
export interface DiscoverModelsRequest {
  type: 'discoverModels';
  id: string;
  /** Extra files or folders to search (settings, the bundled model, workspace files). */
  paths?: string[];
  /** Context length the fit check assumes (default: the model's, at most 8192). */
  contextLength?: number;
  /** Memory the model may use (default: the engine host's free memory). */
  freeBytes?: number;
}

/** Will the model at `path` fit at `contextLength`? Answered by a `fit` event. */
export interface CheckFitRequest {
  type: 'checkFit';
  id: string;
  path: string;
  contextLength?: number;
  freeBytes?: number;
}

export type EngineRequest =
  | LoadModelRequest
  | DiscoverModelsRequest
  | CheckFitRequest
  | CompleteRequest
  | ChatRequest
  | TokenizeRequest
  | CancelRequest
  | MetricsRequest
  | ClearCacheRequest
  | ShutdownRequest;

export type EngineRequestType = EngineRequest['type'];

// ---------------------------------------------------------------------------------------------
// Responses and events (engine -> client)

/** First message from a fresh worker. */
export interface HelloEvent {
  type: 'hello';
  protocolVersion: number;
}

export interface ModelInfo {
  path: string;
  name: string;
  arch: string;
  backend: BackendName;
  contextLength: number;
  /** Context length the file declares (contextLength may be smaller). */
  trainedContextLength: number;
  vocabSize: number;
  nLayers: number;
  nEmbd: number;
  /** Dominant weight type, e.g. "Q8_0". */
  weightType: string;
  kvSlots: number;
  /** The tokenizer has FIM tokens. */
  fim: boolean;
  /** The file carries a chat template. */
  chat: boolean;
  loadMs: number;
}

/** Answer to loadModel. */
export interface ReadyEvent {
  type: 'ready';
  id: string;
  protocolVersion: number;
  model: ModelInfo;
}

export interface ProgressEvent {
  type: 'progress';
  id?: string;
  /** In [0, 1]. */
  fraction: number;
  what: string;
}

export type FinishReason = 'stop' | 'eog' | 'length' | 'cancelled' | 'deadline' | 'error';

export interface Timings {
  /** Request received -> first token emitted; -1 when no token was produced (e.g. cancelled early). */
  ttftMs: number;
  /** Decode speed after the first token. */
  tokensPerSecond: number;
  promptTokens: number;
  /** Prompt tokens actually computed. */
  prefillTokens: number;
  /** Prompt tokens whose KV was reused from the cache. */
  cachedTokens: number;
  generatedTokens: number;
  totalMs: number;
  /** Speculative decoding: draft tokens proposed and accepted. */
  draftTokens?: number;
  acceptedDraftTokens?: number;
  /** Time spent waiting for higher-priority work. */
  queueMs?: number;
}

/**
 * A piece of a generated stream. Zero or more with done=false, then exactly one with done=true
 * (which may carry final text) holding finishReason and timings.
 */
export interface TokenEvent {
  type: 'token';
  id: string;
  text: string;
  tokenIds: number[];
  done: boolean;
  finishReason?: FinishReason;
  timings?: Timings;
}

export interface TokenizeResult {
  type: 'tokens';
  id: string;
  tokenIds: number[];
  /** Text of each token (for display). */
  pieces: string[];
}

export interface MetricsSnapshot {
  timeMs: number;
  uptimeMs: number;
  model?: { name: string; arch: string; backend: BackendName; contextLength: number };
  requests: { active: number; queued: number; completed: number; cancelled: number; failed: number; deadline: number };
  tokens: { prompt: number; prefilled: number; cached: number; generated: number };
  kv: {
    slotsTotal: number;
    slotsUsed: number;
    /** Slots held only by the prefix cache (reusable, evictable). */
    slotsCached: number;
    /** Prefix cache lookups that reused >= 1 token / all lookups. */
    hitRate: number;
    evictions: number;
    /** Chunk caches (present when the engine runs with chunkReuse other than 'off'). */
    chunks?: ChunkMetrics;
  };
  speculative: { drafted: number; accepted: number; acceptanceRate: number };
  latency: { ttftP50Ms: number; ttftP99Ms: number; lastTtftMs: number; lastTokensPerSecond: number };
  memory: { weightsBytes: number; kvBytes: number; scratchBytes: number; heapUsedBytes: number; rssBytes: number };
  /** Backend fallbacks and similar notes since start. */
  notes: string[];
  /** Scheduler internals (added in protocol 1, optional for older engines). */
  scheduler?: {
    /** Forward passes run. */
    steps: number;
    /** Time inside the backend's forward (busy fraction = forwardMs / uptimeMs). */
    forwardMs: number;
    /** Sequences pushed out of KV memory and resumed later. */
    preempted: number;
  };
}

/** Per-chunk KV reuse (repository-context chunks placed from chunk caches). */
export interface ChunkMetrics {
  mode: ChunkReuseMode;
  /** CacheBlend recompute fraction (0 for 'rotate'). */
  blendRatio: number;
  /** Chunk K/V entries in memory. */
  entries: number;
  /** Chunks served from the cache / encoded because they were not there. */
  hits: number;
  misses: number;
  diskEntries: number;
  diskHits: number;
  diskBytes: number;
  /** Chunk tokens whose K/V was placed instead of computed. */
  placedTokens: number;
  /** Placed tokens CacheBlend recomputed anyway. */
  recomputedTokens: number;
  /** Prefix-cache hits that reused K/V assembled from chunks by an earlier request. */
  approxPrefixHits: number;
  /** Assemblies that failed and were served by a plain prefill instead. */
  fallbacks: number;
}

export interface MetricsEvent {
  type: 'metrics';
  id?: string;
  snapshot: MetricsSnapshot;
}

/** Acknowledges clearCache and shutdown. */
export interface AckEvent {
  type: 'ack';
  id: string;
  request: EngineRequestType;
}

/** Something the user may want to know that is not an error (e.g. backend fallback). */
export interface WarningEvent {
  type: 'warning';
  id?: string;
  code: 'backend-fallback' | 'backend-lost' | 'context-truncated' | 'other';
  message: string;
  hint?: string;
}

/** A failed request (id set) or a failure of the engine itself (id absent). */
export interface ErrorEvent {
  type: 'error';
  id?: string;
  /** Error class name, e.g. "GgufError", "ModelNotSupportedError", "WorkerCrashedError". */
  name: string;
  message: string;
  /** What the user can do about it. */
  hint: string;
  /** The engine cannot continue (worker crashed, model unloaded). */
  fatal?: boolean;
}

/** Where a discovered model was found. */
export type ModelSourceName = 'ollama' | 'lmstudio' | 'huggingface' | 'configured';

/** Why a found file cannot be loaded (engine/discovery's ProblemKind). */
export interface ModelProblemInfo {
  kind: string;
  message: string;
  hint: string;
}

/** Memory check of one model at one context length. */
export interface FitInfo {
  /** 'fits' with room, 'tight' within 25% of the budget, 'too-big' over it. */
  verdict: 'fits' | 'tight' | 'too-big';
  /** Context length checked. */
  contextLength: number;
  /** Weights + KV + scratch at that context. */
  totalBytes: number;
  weightsBytes: number;
  kvBytes: number;
  /** Memory considered available. */
  budgetBytes: number;
  /** Largest context (multiple of 256) that fits; 0 if none does. */
  maxContext: number;
  /** What to change when it does not fit (smaller context, quantization, model). */
  suggestions: string[];
}

/** One local GGUF file and what it is. Header facts are absent when the header is unreadable. */
export interface DiscoveredModelInfo {
  path: string;
  /** How the owning tool names it ('qwen2.5-coder:1.5b', 'org/repo/file.gguf', file name). */
  displayName: string;
  source: ModelSourceName;
  /** File size. */
  bytes: number;
  loadable: boolean;
  /** Present when loadable is false. */
  problem?: ModelProblemInfo;
  arch?: string;
  family?: string;
  /** '1.5B', '35M'. */
  sizeLabel?: string;
  parameters?: number;
  /** 'Q4_K_M', 'Q8_0', 'F16', ... */
  quantization?: string;
  /** Context length the file declares. */
  contextLength?: number;
  /** The tokenizer has fill-in-the-middle tokens. */
  fim?: boolean;
  /** Remarks from the source (e.g. an Ollama adapter layer Cachet ignores). */
  notes?: string[];
  /** Memory check at the requested context (loadable models whose header gives the shape). */
  fit?: FitInfo;
}

/** Answer to discoverModels: loadable models first, then by name. */
export interface ModelsEvent {
  type: 'models';
  id: string;
  models: DiscoveredModelInfo[];
}

/** Answer to checkFit: `fit` when the model's shape is known, else `problem`. */
export interface FitEvent {
  type: 'fit';
  id: string;
  path: string;
  fit?: FitInfo;
  problem?: ModelProblemInfo;
}

export type EngineEvent =
  | HelloEvent
  | ModelsEvent
  | FitEvent
  | ReadyEvent
  | ProgressEvent
  | TokenEvent
  | TokenizeResult
  | MetricsEvent
  | AckEvent
  | WarningEvent
  | ErrorEvent;

export type EngineEventType = EngineEvent['type'];

// ---------------------------------------------------------------------------------------------
// Helpers (pure; no engine imports)

const REQUEST_TYPES: ReadonlySet<string> = new Set<EngineRequestType>([
  'loadModel', 'complete', 'chat', 'tokenize', 'cancel', 'metrics', 'clearCache', 'shutdown', 'discoverModels', 'checkFit',
]);
const EVENT_TYPES: ReadonlySet<string> = new Set<EngineEventType>([
  'hello', 'ready', 'progress', 'token', 'tokens', 'metrics', 'ack', 'warning', 'error', 'models', 'fit',
]);

/** Shape check of an incoming request; returns a reason string when it is malformed. */
export function validateRequest(msg: unknown): string | undefined {
  if (typeof msg !== 'object' || msg === null) return 'message is not an object';
  const m = msg as Record<string, unknown>;
  if (typeof m.type !== 'string' || !REQUEST_TYPES.has(m.type)) return `unknown request type ${JSON.stringify(m.type)}`;
  if (typeof m.id !== 'string' || m.id.length === 0) return `${m.type}: missing string id`;
  switch (m.type) {
    case 'loadModel':
      if (typeof m.path !== 'string') return 'loadModel: path must be a string';
      if (!['auto', 'webgpu', 'onnx', 'reference'].includes(m.backend as string)) return 'loadModel: backend must be auto|webgpu|onnx|reference';
      if (m.chunkReuse !== undefined && !['off', 'rotate', 'blend'].includes(m.chunkReuse as string)) return 'loadModel: chunkReuse must be off|rotate|blend';
      if (m.chunkBlendRatio !== undefined && !(typeof m.chunkBlendRatio === 'number' && m.chunkBlendRatio >= 0 && m.chunkBlendRatio <= 1)) return 'loadModel: chunkBlendRatio must be a number in [0, 1]';
      return undefined;
    case 'complete': {
      const p = m.prompt as Record<string, unknown> | undefined;
      if (typeof p !== 'object' || p === null) return 'complete: prompt missing';
      if (!['text', 'segments', 'tokens', 'fim'].includes(p.kind as string)) return 'complete: prompt.kind must be text|segments|tokens|fim';
      return undefined;
    }
    case 'chat':
      if (!Array.isArray(m.messages)) return 'chat: messages must be an array';
      return undefined;
    case 'tokenize':
      if (typeof m.text !== 'string') return 'tokenize: text must be a string';
      return undefined;
    case 'discoverModels':
      if (m.paths !== undefined && (!Array.isArray(m.paths) || m.paths.some((p) => typeof p !== 'string'))) return 'discoverModels: paths must be an array of strings';
      return undefined;
    case 'checkFit':
      if (typeof m.path !== 'string') return 'checkFit: path must be a string';
      return undefined;
    default:
      return undefined;
  }
}

export function isEngineRequest(msg: unknown): msg is EngineRequest {
  return validateRequest(msg) === undefined;
}

export function isEngineEvent(msg: unknown): msg is EngineEvent {
  return typeof msg === 'object' && msg !== null && EVENT_TYPES.has((msg as { type?: unknown }).type as string);
}

/** Turns any thrown value into an ErrorEvent (keeps CachetError's `hint`). */
export function errorEvent(err: unknown, id?: string, fatal?: boolean): ErrorEvent {
  const e = err as { name?: unknown; message?: unknown; hint?: unknown } | undefined;
  const isObj = typeof e === 'object' && e !== null;
  const ev: ErrorEvent = {
    type: 'error',
    name: isObj && typeof e.name === 'string' ? e.name : 'Error',
    message: isObj && typeof e.message === 'string' ? e.message : String(err),
    hint: isObj && typeof e.hint === 'string' ? e.hint : 'Unexpected engine error; see the Cachet log and report it.',
  };
  if (id !== undefined) ev.id = id;
  if (fatal) ev.fatal = true;
  return ev;
}

/** True for events that end a request (final token, tokenize/metrics/ack answers, ready, error). */
export function isTerminalEvent(ev: EngineEvent): boolean {
  switch (ev.type) {
    case 'token': return ev.done;
    case 'ready': case 'tokens': case 'ack': case 'error': case 'models': case 'fit': return true;
    case 'metrics': return ev.id !== undefined;
    default: return false;
  }
}
