// The Engine facade: one loaded model, its backend, KV memory and scheduler.
//
//   const engine = await Engine.load({ modelPath, backend: 'auto' });
//   const r = await engine.complete({ fim: { prefix, suffix } }, (chunk) => show(chunk.text));
//
// Backend choice: 'auto' tries webgpu (when an adapter exists), then onnx, then reference, and
// warns on every fallback. When a backend fails mid-run (device lost) the scheduler continues on
// the next one; running requests recompute their KV there and finish.

import { statSync } from 'node:fs';
import { createBackend, backendKinds, type Backend, type BackendFactory } from '../backend';
import { assembleFim, type AssembleOptions } from '../context';
import { CachetError } from '../errors';
import { openGguf, type GgufFile } from '../gguf';
import { ChunkCache, ChunkStore, createTruncatedProbe, KvManager, type KvComputeBackend } from '../kv';
import { configFromGguf, loadWeights, type ModelConfig, type ModelWeights } from '../model';
import type {
  BackendChoice, BackendName, ChatMessage, FimInput, GenerationOptions, MetricsSnapshot, ModelInfo, PromptInput,
  SpeculativeParams, WarningEvent,
} from '../protocol';
import { GgmlType } from '../quant/types';
import { Tokenizer } from '../tokenizer';
import { renderChatFor } from '../tokenizer/chat-template';
import { ChunkReuse, type ChunkReuseMode, type ContextSpan } from './chunk-reuse';
import { KvManagerStore, SimpleKvStore, type KvStore } from './kv-store';
import { Scheduler, type GenerationResult, type StreamChunk } from './scheduler';
import type { SamplerFactory } from './token-sampler';

export type EngineWarning = Omit<WarningEvent, 'type' | 'id'>;

export interface EngineLoadOptions {
  modelPath: string;
  backend?: BackendChoice;
  /** Max tokens per request (prompt + output). Default min(model's, 8192). */
  contextLength?: number;
  /** KV storage: slots (tokens) and/or bytes; the smaller wins. Default 2 x contextLength slots. */
  kvBudget?: { slots?: number; bytes?: number };
  maxSequences?: number;
  prefillChunk?: number;
  threads?: number;
  /** 'paged' (engine/kv: blocks + radix tree, shared prefixes; default) or 'simple' (slot reuse). */
  kvStore?: 'paged' | 'simple';
  /** Tokens per KV block for the paged store (default 16). */
  kvBlockSize?: number;
  /**
   * Repository-context chunks of FIM prompts (and 'chunk' segments) from per-chunk KV caches when
   * the radix cache does not hold them: 'rotate' re-rotates cached K/V to the new position,
   * 'blend' also recomputes chunkBlendRatio of the chunk tokens (CacheBlend). Both change outputs
   * against a full recompute (Cachet-Tiny first-token agreement 0.94 / 0.92 on the repository
   * workload, bench/results/repo-workload-cpu.json), so the default is 'off'. Needs the paged store.
   */
  chunkReuse?: ChunkReuseMode;
  /** CacheBlend recompute fraction for chunkReuse 'blend' (default 0.15). */
  chunkBlendRatio?: number;
  /** Host memory for chunk K/V entries (default 256 MiB). */
  chunkMemoryBytes?: number;
  /** Directory for the on-disk chunk cache (absent: memory only). */
  chunkCacheDir?: string;
  /** Disk budget of the chunk cache (default 1 GiB). */
  chunkDiskBytes?: number;
  /** Sampler for non-greedy requests (default: engine/sampling's llama.cpp-order chain). */
  createSampler?: SamplerFactory;
  /** Prompt-lookup drafting for FIM requests that do not say (default: on except on the reference backend). */
  speculativeByDefault?: boolean;
  /** Replace or add backend factories (tests; backends that do not register themselves). */
  backendFactories?: Partial<Record<BackendName, BackendFactory>>;
  onProgress?: (fraction: number, what: string) => void;
  onWarning?: (warning: EngineWarning) => void;
}

/** A generation request as the Engine takes it (the protocol's complete/chat minus transport). */
export interface EngineGenerateRequest extends GenerationOptions {
  id?: string;
  prompt: PromptInput | string;
  /**
   * Token ranges of repository-context chunks in a 'tokens' prompt, for chunk reuse (benchmarks,
   * callers that assemble ids themselves). 'segments' prompts mark them with role 'chunk'.
   */
  contextSpans?: ContextSpan[];
}

export interface EngineCompleteRequest extends GenerationOptions {
  id?: string;
  fim: FimInput;
}

export interface EngineChatRequest extends GenerationOptions {
  id?: string;
  messages: ChatMessage[];
}

const AUTO_ORDER: BackendName[] = ['webgpu', 'onnx', 'reference'];
let nextRequestId = 0;

export class Engine {
  readonly info: ModelInfo;
  readonly config: ModelConfig;
  readonly tokenizer: Tokenizer;
  private readonly scheduler: Scheduler;
  private readonly kv: KvStore;
  private readonly startedAt = performance.now();
  private readonly notes: string[];
  private backend: Backend;
  private disposed = false;
  private workspaceTokens = new Map<string, number[]>();
  private readonly chunkReuse: ChunkReuse | undefined;
  private readonly chunkCache: ChunkCache | undefined;
  private probe: (ReturnType<typeof createTruncatedProbe>) | undefined;

  private constructor(
    private readonly gguf: GgufFile,
    private readonly weights: ModelWeights,
    backend: Backend,
    private readonly candidates: BackendName[],
    private readonly options: EngineLoadOptions,
    info: ModelInfo,
    tokenizer: Tokenizer,
    contextLength: number,
    kvSlots: number,
    notes: string[],
  ) {
    this.backend = backend;
    this.config = weights.config;
    this.tokenizer = tokenizer;
    this.info = info;
    this.notes = notes;
    // The KV manager talks to whichever backend is current (it changes on failover).
    const slotBackend = {
      copySlots: (s: Int32Array, d: Int32Array) => this.backend.copySlots(s, d),
      rotateKeys: (s: Int32Array, d: Int32Array) => this.backend.rotateKeys(s, d),
      readSlots: (s: Int32Array) => this.backend.readSlots(s),
      writeSlots: (s: Int32Array, d: Float32Array) => this.backend.writeSlots(s, d),
    };
    const mode = options.chunkReuse ?? 'off';
    if (mode !== 'off' && options.kvStore === 'simple') {
      throw new CachetError('chunk reuse needs the paged KV store', 'Use kvStore "paged" (the default) or chunkReuse "off".');
    }
    if (options.kvStore === 'simple') this.kv = new SimpleKvStore(kvSlots);
    else {
      const manager = new KvManager({
        backend: slotBackend, kvSlots, blockSize: options.kvBlockSize ?? 16, bytesPerSlot: storedBytesPerSlot(backend, this.config, kvSlots),
      });
      if (mode !== 'off') {
        const engine = this;
        const compute: KvComputeBackend = {
          ...slotBackend,
          forward: (b) => this.backend.forward(b),
          config: this.config,
          get supportsRows() {
            return engine.backend.supportsRows;
          },
        };
        const store = options.chunkCacheDir
          ? new ChunkStore({ dir: options.chunkCacheDir, budgetBytes: options.chunkDiskBytes ?? 1024 ** 3 })
          : undefined;
        // K/V depends on the model and the token ids only (keys hash the ids), so the model file's
        // identity is the key; the tokenizer part stays constant.
        this.chunkCache = new ChunkCache({
          manager, backend: compute, model: modelIdentity(info), tokenizer: 'token-ids',
          memoryBudgetBytes: options.chunkMemoryBytes ?? 256 * 1024 ** 2, store,
        });
        const ratio = options.chunkBlendRatio ?? 0.15;
        if (mode === 'blend' && ratio > 0 && ratio < 1) this.probe = this.makeProbe(contextLength);
        this.chunkReuse = new ChunkReuse(manager, compute, this.chunkCache, {
          mode,
          blendRatio: ratio,
          // Through this engine: the probe is rebuilt on the new backend after a failover.
          probe: this.probe ? (t, p, l, seed) => this.probe!(t, p, l, seed) : undefined,
          maxRows: options.prefillChunk ?? 256,
          // A GPU would read the whole cached prefix back (every layer) to seed the probe: not worth it.
          seedProbe: backend.name !== 'webgpu',
        });
      }
      this.kv = new KvManagerStore(manager, this.chunkReuse);
    }
    this.scheduler = new Scheduler({
      backend,
      kv: this.kv,
      tokenizer,
      contextLength,
      prefillChunk: options.prefillChunk,
      maxSequences: options.maxSequences,
      createSampler: options.createSampler,
      recoverBackend: (err, failed) => this.recover(err, failed),
    });
  }

  static async load(options: EngineLoadOptions): Promise<Engine> {
    const t0 = performance.now();
    const progress = options.onProgress ?? (() => {});
    progress(0, 'reading model header');
    const gguf = openGguf(options.modelPath);
    try {
      const config = configFromGguf(gguf);
      const tokenizer = Tokenizer.fromGguf(gguf);
      const weights = loadWeights(gguf, config);
      const contextLength = Math.max(16, Math.min(options.contextLength ?? Math.min(config.contextLength, 8192), config.contextLength));
      let kvSlots = options.kvBudget?.slots ?? 2 * contextLength;
      if (options.kvBudget?.bytes !== undefined) kvSlots = Math.min(kvSlots, Math.floor(options.kvBudget.bytes / bytesPerSlot(config)));
      if (kvSlots < contextLength) {
        throw new CachetError(
          `KV budget of ${kvSlots} tokens is smaller than the context length ${contextLength}`,
          'Raise kvBudget or lower contextLength so one full-length request fits.',
        );
      }
      const notes: string[] = [];
      const warn = (w: EngineWarning) => { notes.push(w.message); options.onWarning?.(w); };
      if (options.contextLength !== undefined && options.contextLength > config.contextLength) {
        warn({
          code: 'context-truncated',
          message: `context length ${options.contextLength} exceeds what ${config.name} was trained for; using ${contextLength}`,
          hint: 'Beyond its trained context a model degrades; pick a model with a longer context for more.',
        });
      }
      const choice = options.backend ?? 'auto';
      const candidates = choice === 'auto' ? AUTO_ORDER.filter((k) => available(k, options)) : [choice];
      let backend: Backend | undefined;
      let lastError: unknown;
      for (const kind of candidates) {
        try {
          backend = await makeBackend(kind, weights, options, kvSlots, (f, what) => progress(0.1 + 0.9 * f, what), choice === 'auto');
          break;
        } catch (err) {
          lastError = err;
          if (choice !== 'auto') throw err;
          const next = candidates[candidates.indexOf(kind) + 1];
          warn({
            code: 'backend-fallback',
            message: `${kind} backend unavailable (${(err as Error).message ?? err}); using ${next ?? 'nothing'}`,
            hint: (err as CachetError).hint ?? 'See the Cachet log for details.',
          });
        }
      }
      if (!backend) throw lastError ?? new CachetError('no backend available', 'Install webgpu or onnxruntime-node.');
      if (choice === 'auto') {
        for (const k of AUTO_ORDER) if (!available(k, options) && k !== backend.name) notes.push(`${k} backend not built in`);
      }
      progress(1, 'ready');
      const info: ModelInfo = {
        path: options.modelPath,
        name: config.name,
        arch: config.arch,
        backend: backend.name as BackendName,
        contextLength,
        trainedContextLength: config.contextLength,
        vocabSize: config.vocabSize,
        nLayers: config.nLayers,
        nEmbd: config.nEmbd,
        weightType: dominantType(gguf),
        kvSlots,
        fim: tokenizer.fim !== undefined,
        chat: tokenizer.chatTemplate !== undefined,
        loadMs: performance.now() - t0,
      };
      const fallbackOrder = choice === 'auto' ? candidates : AUTO_ORDER.filter((k) => available(k, options));
      return new Engine(gguf, weights, backend, fallbackOrder, options, info, tokenizer, contextLength, kvSlots, notes);
    } catch (err) {
      gguf.close();
      throw err;
    }
  }

  get backendName(): string {
    return this.backend.name;
  }

  /** Streams a completion of a plain prompt (text, segments or token ids). */
  generate(request: EngineGenerateRequest, onToken?: (chunk: StreamChunk) => void, signal?: AbortSignal): Promise<GenerationResult> {
    const prompt: PromptInput = typeof request.prompt === 'string' ? { kind: 'text', text: request.prompt } : request.prompt;
    if (prompt.kind === 'fim') return this.complete({ ...request, fim: prompt.fim }, onToken, signal);
    const spans: ContextSpan[] = prompt.kind === 'tokens' ? request.contextSpans ?? [] : [];
    const ids = this.promptTokens(prompt, spans);
    return this.submit(request, ids, request.stop, undefined, onToken, signal, spans);
  }

  /** Fill-in-the-middle: the prompt is assembled for the model family by engine/context. */
  complete(request: EngineCompleteRequest, onToken?: (chunk: StreamChunk) => void, signal?: AbortSignal): Promise<GenerationResult> {
    const maxTokens = request.maxTokens ?? 128;
    const prompt = this.fimPrompt(request.fim, maxTokens);
    const stop = [...(request.stop ?? []), ...prompt.stopStrings];
    const speculative = request.speculative ?? this.defaultFimSpeculative();
    return this.submit({ ...request, maxTokens, speculative, priority: request.priority ?? 'interactive' }, prompt.ids, stop, prompt.isStopToken, onToken, signal, prompt.contextSpans);
  }

  /**
   * FIM completions draft from the prompt by default where verifying drafts is cheap (webgpu,
   * onnx: bench/results/load-speculative-onnx.json, 2.2x less decode time at 39% acceptance). The
   * plain-TS reference backend pays per verified row, so it does not.
   */
  private defaultFimSpeculative(): SpeculativeParams | undefined {
    const on = this.options.speculativeByDefault ?? this.backend.name !== 'reference';
    return on ? { maxDraft: 4, ngram: 3 } : undefined;
  }

  /**
   * The exact prompt ids, stop strings and stop tokens complete() uses for a FIM request, and the
   * token spans of its repository-context chunks (what chunk reuse takes from the chunk cache).
   */
  fimPrompt(fim: FimInput, maxTokens = 128): { ids: number[]; stopStrings: string[]; isStopToken: (id: number) => boolean; contextSpans: ContextSpan[] } {
    const assembled = assembleFim(this.tokenizer, fim, this.fimOptions(maxTokens));
    const ids = assembled.tokens.ids;
    let shift = 0;
    if (this.tokenizer.addBos && this.tokenizer.bos !== undefined) {
      ids.unshift(this.tokenizer.bos);
      shift = 1;
    }
    const contextSpans = assembled.tokens.segments
      .filter((s) => s.kind === 'context' && s.end > s.start)
      .map((s) => ({ start: s.start + shift, end: s.end + shift }));
    return { ids, stopStrings: assembled.stopStrings, isStopToken: assembled.isStopToken, contextSpans };
  }

  /** Chat with the model's template (or its family's built-in format). */
  chat(request: EngineChatRequest, onToken?: (chunk: StreamChunk) => void, signal?: AbortSignal): Promise<GenerationResult> {
    const text = renderChatFor(this.tokenizer, request.messages, { addGenerationPrompt: true });
    const ids = this.tokenizer.encode(text, { addSpecial: false, parseSpecial: true });
    const bos = this.tokenizer.bos;
    if (this.tokenizer.addBos && bos !== undefined && ids[0] !== bos) ids.unshift(bos);
    return this.submit({ ...request, priority: request.priority ?? 'chat' }, ids, request.stop, undefined, onToken, signal);
  }

  cancel(id: string): boolean {
    return this.scheduler.cancel(id);
  }

  tokenize(text: string, options: { addSpecial?: boolean; parseSpecial?: boolean } = {}): { tokenIds: number[]; pieces: string[] } {
    const tokenIds = this.tokenizer.encode(text, options);
    return { tokenIds, pieces: tokenIds.map((id) => this.tokenizer.decode([id], { special: true })) };
  }

  /** Drops cached prefixes and chunk K/V held in memory (running requests keep their KV; the disk tier stays). */
  clearCache(): void {
    this.kv.clear();
    this.chunkCache?.clearMemory();
    this.workspaceTokens.clear();
  }

  kvStats() {
    return this.kv.stats();
  }

  metrics(): MetricsSnapshot {
    const s = this.scheduler.stats();
    const kv = this.kv.stats();
    const mem = this.backend.memory();
    const proc = process.memoryUsage();
    const sorted = s.ttftMs.slice().sort((a, b) => a - b);
    return {
      timeMs: Date.now(),
      uptimeMs: performance.now() - this.startedAt,
      model: { name: this.info.name, arch: this.info.arch, backend: this.backend.name as BackendName, contextLength: this.info.contextLength },
      requests: { active: s.active, queued: s.queued, completed: s.completed, cancelled: s.cancelled, failed: s.failed, deadline: s.deadline },
      tokens: { prompt: s.promptTokens, prefilled: s.prefilledTokens, cached: s.cachedTokens, generated: s.generatedTokens },
      kv: {
        slotsTotal: kv.total, slotsUsed: kv.used, slotsCached: kv.cached,
        hitRate: kv.lookups === 0 ? 0 : kv.hits / kv.lookups, evictions: kv.evictions,
        ...(this.chunkReuse ? { chunks: this.chunkMetrics(this.chunkReuse) } : {}),
      },
      speculative: s.speculative,
      latency: {
        ttftP50Ms: percentile(sorted, 0.5), ttftP99Ms: percentile(sorted, 0.99),
        lastTtftMs: s.lastTtftMs, lastTokensPerSecond: s.lastTokensPerSecond,
      },
      memory: { ...mem, heapUsedBytes: proc.heapUsed, rssBytes: proc.rss },
      notes: this.notes.slice(),
      scheduler: { steps: s.steps, forwardMs: s.forwardMs, preempted: s.preempted },
    };
  }

  /** Resolves once every request has ended. */
  idle(): Promise<void> {
    return this.scheduler.idle();
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await this.scheduler.dispose();
    await this.probe?.dispose();
    await this.backend.dispose();
    this.gguf.close();
  }

  /** Chunk reuse counters for the dashboard (MetricsSnapshot.kv.chunks). */
  private chunkMetrics(r: ChunkReuse): NonNullable<MetricsSnapshot['kv']['chunks']> {
    const s = r.manager.snapshot();
    return {
      mode: r.mode,
      blendRatio: r.blendRatio,
      entries: s.chunks.entries,
      hits: s.chunks.hits,
      misses: s.chunks.misses,
      diskEntries: s.chunks.diskEntries,
      diskHits: s.chunks.diskHits,
      diskBytes: s.bytes.disk,
      placedTokens: s.chunks.placedTokens,
      recomputedTokens: s.tokens.recomputed,
      approxPrefixHits: s.prefix.approxHits,
      fallbacks: r.fallbacks,
    };
  }

  /** CacheBlend's check-layer probe: the first layers of this model on the current backend kind. */
  private makeProbe(maxTokens: number): ReturnType<typeof createTruncatedProbe> {
    const kind = this.backend.name as BackendName;
    return createTruncatedProbe((w, o) => makeBackend(kind, w, this.options, o.kvSlots, () => {}), this.weights, maxTokens);
  }

  // -------------------------------------------------------------------------------------------

  private submit(
    request: GenerationOptions & { id?: string },
    prompt: number[],
    stop: string[] | undefined,
    isStopToken: ((id: number) => boolean) | undefined,
    onToken: ((chunk: StreamChunk) => void) | undefined,
    signal: AbortSignal | undefined,
    contextSpans?: ContextSpan[],
  ): Promise<GenerationResult> {
    if (this.disposed) return Promise.reject(new CachetError('engine disposed', 'Load the model again.'));
    const sp = request.speculative;
    return this.scheduler.submit({
      id: request.id ?? `req-${nextRequestId++}`,
      prompt,
      priority: request.priority,
      maxTokens: request.maxTokens,
      sampling: request.sampling,
      stop,
      isStopToken,
      deadlineMs: request.deadlineMs,
      speculative: sp && (sp.maxDraft ?? 4) > 0
        ? { maxDraft: sp.maxDraft, ngram: sp.ngram, extraTokens: (sp.workspaceText ?? []).map((t) => this.workspaceTokensOf(t)) }
        : undefined,
      contextSpans: contextSpans && contextSpans.length > 0 ? contextSpans : undefined,
      signal,
    }, onToken);
  }

  /** Token ids of a prompt; spans receives the token ranges of 'chunk' segments. */
  private promptTokens(prompt: Exclude<PromptInput, { kind: 'fim' }>, spans: ContextSpan[] = []): number[] {
    const bos = this.tokenizer.addBos ? this.tokenizer.bos : undefined;
    switch (prompt.kind) {
      case 'tokens':
        return prompt.tokenIds.slice();
      case 'text':
        return this.tokenizer.encode(prompt.text, { addSpecial: prompt.addSpecial ?? true, parseSpecial: prompt.parseSpecial ?? false });
      case 'segments': {
        const ids: number[] = [];
        if ((prompt.addSpecial ?? true) && bos !== undefined) ids.push(bos);
        for (const seg of prompt.segments) {
          const start = ids.length;
          ids.push(...this.tokenizer.encode(seg.text, { addSpecial: false, parseSpecial: seg.parseSpecial ?? false }));
          if (seg.role === 'chunk' && ids.length > start) spans.push({ start, end: ids.length });
        }
        return ids;
      }
    }
  }

  /** FIM budget: the context helper's defaults, scaled down to fit this context length. */
  private fimOptions(maxTokens: number): AssembleOptions {
    const room = this.info.contextLength - maxTokens - 16;
    const base = { prefixTokens: 1536, suffixTokens: 512, contextTokens: 2048 };
    const total = base.prefixTokens + base.suffixTokens + base.contextTokens;
    if (room >= total) return {};
    const f = Math.max(0, room) / total;
    return { budget: { prefixTokens: Math.floor(base.prefixTokens * f), suffixTokens: Math.floor(base.suffixTokens * f), contextTokens: Math.floor(base.contextTokens * f) } };
  }

  private workspaceTokensOf(text: string): number[] {
    let ids = this.workspaceTokens.get(text);
    if (!ids) {
      ids = this.tokenizer.encode(text, { addSpecial: false, parseSpecial: false });
      if (this.workspaceTokens.size > 64) this.workspaceTokens.clear();
      this.workspaceTokens.set(text, ids);
    }
    return ids;
  }

  /** forward() failed: bring up the next backend in line, or give up (requests fail). */
  private async recover(err: unknown, failed: Backend): Promise<Backend | undefined> {
    const from = this.candidates.indexOf(failed.name as BackendName);
    for (const kind of this.candidates.slice(from + 1)) {
      try {
        const next = await makeBackend(kind, this.weights, this.options, this.info.kvSlots, () => {});
        const message = `${failed.name} backend failed (${(err as Error)?.message ?? err}); continuing on ${kind}`;
        this.notes.push(message);
        this.options.onWarning?.({ code: 'backend-lost', message, hint: 'Running requests are recomputed on the new backend; expect a slower response.' });
        failed.dispose().catch(() => {});
        this.backend = next;
        (this.info as { backend: BackendName }).backend = kind;
        if (this.probe) {
          this.probe.dispose().catch(() => {});
          this.probe = this.makeProbe(this.info.contextLength);
        }
        return next;
      } catch (e) {
        this.notes.push(`${kind} backend unavailable after failure: ${(e as Error).message ?? e}`);
      }
    }
    return undefined;
  }
}

/** Identity of the model file for chunk cache keys: a changed file at the same path gets new keys. */
function modelIdentity(info: ModelInfo): string {
  let stamp = '';
  try {
    const st = statSync(info.path);
    stamp = `${st.size}:${Math.floor(st.mtimeMs)}`;
  } catch {
    stamp = 'unknown';
  }
  return `${info.arch}:${info.name}:${info.weightType}:${info.path}:${stamp}`;
}

function available(kind: BackendName, options: EngineLoadOptions): boolean {
  return options.backendFactories?.[kind] !== undefined || backendKinds().includes(kind);
}

function makeBackend(
  kind: BackendName,
  weights: ModelWeights,
  options: EngineLoadOptions,
  kvSlots: number,
  onProgress: (fraction: number, what: string) => void,
  automatic = false,
): Promise<Backend> {
  // An automatic choice skips a software GPU (lavapipe): the CPU backend is faster there.
  const backendOptions = { kvSlots, threads: options.threads, onProgress, allowSoftwareGpu: !automatic };
  const factory = options.backendFactories?.[kind];
  return factory ? factory(weights, backendOptions) : createBackend(kind, weights, backendOptions);
}

/**
 * K and V bytes per token as the backend stores them (f16 on WebGPU and onnx by default, f32 on
 * the reference backend), for the KV metrics; falls back to f32 when the backend reports none.
 */
function storedBytesPerSlot(backend: Backend, config: ModelConfig, kvSlots: number): number {
  const kv = backend.memory().kvBytes;
  return kv > 0 ? kv / kvSlots : bytesPerSlot(config);
}

/**
 * f32 K and V per token for every layer: the budget (tokens for options.kvBudget.bytes) is set
 * before a backend is chosen, so it assumes the widest storage (f16 backends use half).
 */
function bytesPerSlot(config: ModelConfig): number {
  return config.nLayers * 2 * config.nKvHeads * config.headDim * 4;
}

function dominantType(gguf: GgufFile): string {
  const bytes = new Map<number, number>();
  for (const t of gguf.tensors) if (t.dims.length >= 2) bytes.set(t.type, (bytes.get(t.type) ?? 0) + t.byteLength);
  let best = -1;
  let most = -1;
  for (const [type, n] of bytes) if (n > most) { most = n; best = type; }
  return best < 0 ? 'unknown' : GgmlType[best] ?? String(best);
}

function percentile(sorted: number[], q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}
