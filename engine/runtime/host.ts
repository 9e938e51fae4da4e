// Serves the protocol on top of an Engine, independent of the transport (worker_threads in
// worker.ts; a test can call it directly). One engine at a time; loadModel replaces it.

import { basename } from 'node:path';
import { CachetError } from '../errors';
import { checkFit, discoverModels, inspectCandidate, type DiscoveredModelWithFit, type FitReport } from '../discovery';
import {
  errorEvent, PROTOCOL_VERSION, validateRequest, type DiscoveredModelInfo, type EngineEvent, type EngineRequest, type FitInfo,
  type MetricsSnapshot,
} from '../protocol';
import { freemem } from 'node:os';
import { Engine, type EngineLoadOptions } from './engine';
import type { StreamChunk } from './scheduler';

export class EngineHost {
  private engine: Engine | undefined;
  private loading: Promise<unknown> = Promise.resolve();
  private readonly startedAt = performance.now();
  /** Set once shutdown was acknowledged: the transport should close. */
  closed = false;

  constructor(
    private readonly send: (event: EngineEvent) => void,
    /** Load options the transport adds to every loadModel (e.g. a sampler factory). */
    private readonly extraLoadOptions: Partial<EngineLoadOptions> = {},
  ) {}

  hello(): void {
    this.send({ type: 'hello', protocolVersion: PROTOCOL_VERSION });
  }

  /** Handles one incoming message; never throws (failures become error events). */
  async handle(msg: unknown): Promise<void> {
    const problem = validateRequest(msg);
    if (problem) {
      const id = typeof (msg as { id?: unknown })?.id === 'string' ? (msg as { id: string }).id : undefined;
      this.send({ ...errorEvent(new CachetError(`bad request: ${problem}`, 'Send messages built from engine/protocol types.')), ...(id ? { id } : {}) });
      return;
    }
    const req = msg as EngineRequest;
    try {
      await this.dispatch(req);
    } catch (err) {
      this.send(errorEvent(err, req.id));
    }
  }

  private async dispatch(req: EngineRequest): Promise<void> {
    switch (req.type) {
      case 'loadModel': {
        const load = this.loading.then(async () => {
          const old = this.engine;
          this.engine = undefined;
          await old?.dispose();
          const engine = await Engine.load({
            ...this.extraLoadOptions,
            modelPath: req.path,
            backend: req.backend,
            contextLength: req.contextLength,
            kvBudget: req.kvBudget,
            maxSequences: req.maxSequences,
            prefillChunk: req.prefillChunk,
            threads: req.threads,
            chunkReuse: req.chunkReuse ?? this.extraLoadOptions.chunkReuse,
            chunkBlendRatio: req.chunkBlendRatio ?? this.extraLoadOptions.chunkBlendRatio,
            chunkCacheDir: req.cacheDir ?? this.extraLoadOptions.chunkCacheDir,
            onProgress: (fraction, what) => this.send({ type: 'progress', id: req.id, fraction, what }),
            onWarning: (w) => this.send({ type: 'warning', id: req.id, ...w }),
          });
          this.engine = engine;
          this.send({ type: 'ready', id: req.id, protocolVersion: PROTOCOL_VERSION, model: engine.info });
        });
        this.loading = load.catch(() => {});
        await load;
        return;
      }
      case 'complete':
      case 'chat': {
        const engine = await this.requireEngine();
        const onToken = (c: StreamChunk) => this.send({ type: 'token', id: req.id, ...c });
        if (req.type === 'chat') await engine.chat(req, onToken);
        else if (req.prompt.kind === 'fim') await engine.complete({ ...req, fim: req.prompt.fim }, onToken);
        else await engine.generate({ ...req, prompt: req.prompt }, onToken);
        return;
      }
      case 'tokenize': {
        const engine = await this.requireEngine();
        const t = engine.tokenize(req.text, { addSpecial: req.addSpecial, parseSpecial: req.parseSpecial });
        this.send({ type: 'tokens', id: req.id, tokenIds: t.tokenIds, pieces: t.pieces });
        return;
      }
      case 'cancel':
        this.engine?.cancel(req.id);
        return;
      case 'metrics': {
        const gc = (globalThis as { gc?: () => void }).gc;
        if (req.gc && gc) gc();
        this.send({ type: 'metrics', id: req.id, snapshot: this.engine?.metrics() ?? this.emptyMetrics() });
        return;
      }
      case 'clearCache':
        this.engine?.clearCache();
        this.send({ type: 'ack', id: req.id, request: 'clearCache' });
        return;
      case 'discoverModels': {
        // The fit is checked at the context the engine would use: the requested one, capped by the model's.
        const free = req.freeBytes ?? freemem();
        const found = discoverModels({ paths: req.paths, freeBytes: free }).map((m) =>
          m.fit && m.info ? { ...m, fit: checkFit(m.info, free, { context: contextFor(req.contextLength, m.info.contextLength) }) ?? m.fit } : m,
        );
        this.send({ type: 'models', id: req.id, models: found.map(discoveredModelInfo) });
        return;
      }
      case 'checkFit': {
        const m = inspectCandidate({ path: req.path, source: 'configured', displayName: basename(req.path) });
        const fit = m.loadable && m.info ? checkFit(m.info, req.freeBytes ?? freemem(), { context: contextFor(req.contextLength, m.info.contextLength) }) : undefined;
        const problem = m.problem ?? (fit ? undefined : { kind: 'unsupported', message: `${req.path}: the header lacks the model shape`, hint: 'Choose a full model GGUF.' });
        this.send({ type: 'fit', id: req.id, path: req.path, ...(fit ? { fit: fitInfo(fit) } : {}), ...(problem ? { problem } : {}) });
        return;
      }
      case 'shutdown': {
        const engine = this.engine;
        this.engine = undefined;
        await engine?.dispose();
        this.closed = true;
        this.send({ type: 'ack', id: req.id, request: 'shutdown' });
        return;
      }
    }
  }

  private async requireEngine(): Promise<Engine> {
    await this.loading;
    if (!this.engine) throw new CachetError('no model loaded', 'Send loadModel first (pick a GGUF model in the Cachet settings).');
    return this.engine;
  }

  private emptyMetrics(): MetricsSnapshot {
    const proc = process.memoryUsage();
    return {
      timeMs: Date.now(),
      uptimeMs: performance.now() - this.startedAt,
      requests: { active: 0, queued: 0, completed: 0, cancelled: 0, failed: 0, deadline: 0 },
      tokens: { prompt: 0, prefilled: 0, cached: 0, generated: 0 },
      kv: { slotsTotal: 0, slotsUsed: 0, slotsCached: 0, hitRate: 0, evictions: 0 },
      speculative: { drafted: 0, accepted: 0, acceptanceRate: 0 },
      latency: { ttftP50Ms: 0, ttftP99Ms: 0, lastTtftMs: 0, lastTokensPerSecond: 0 },
      memory: { weightsBytes: 0, kvBytes: 0, scratchBytes: 0, heapUsedBytes: proc.heapUsed, rssBytes: proc.rss },
      notes: ['no model loaded'],
    };
  }
}

/** The context a load would use: the requested one capped by the model's (undefined: discovery's default). */
function contextFor(requested: number | undefined, model: number | undefined): number | undefined {
  if (requested === undefined) return undefined;
  return model ? Math.min(requested, model) : requested;
}

/** engine/discovery's report as plain protocol data. */
export function fitInfo(f: FitReport): FitInfo {
  return {
    verdict: f.verdict, contextLength: f.estimate.context, totalBytes: f.estimate.total, weightsBytes: f.estimate.weights,
    kvBytes: f.estimate.kv, budgetBytes: f.budget, maxContext: f.maxContext, suggestions: f.suggestions,
  };
}

export function discoveredModelInfo(m: DiscoveredModelWithFit): DiscoveredModelInfo {
  const out: DiscoveredModelInfo = { path: m.path, displayName: m.displayName, source: m.source, bytes: m.bytes, loadable: m.loadable };
  if (m.problem) out.problem = { kind: m.problem.kind, message: m.problem.message, hint: m.problem.hint };
  const i = m.info;
  if (i) {
    out.arch = i.arch;
    out.family = i.family;
    out.sizeLabel = i.sizeLabel;
    out.parameters = i.parameters;
    out.quantization = i.quantization;
    if (i.contextLength !== undefined) out.contextLength = i.contextLength;
    out.fim = i.fim;
  }
  if (m.notes?.length) out.notes = [...m.notes];
  if (m.fit) out.fit = fitInfo(m.fit);
  return out;
}
