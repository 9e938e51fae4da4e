// The extension's side of the engine: starts the worker lazily on first need, loads the model
// from settings, correlates requests and events by id, and turns token streams into the
// CompletionBackend the completion session uses. Never blocks the extension host: everything is
// asynchronous and the engine runs in its own worker thread (engine/runtime/client).

import type {
  DiscoveredModelInfo, DiscoverModelsRequest, EngineEvent, FimInput, FitInfo, MetricsSnapshot, ModelInfo, ModelProblemInfo, WarningEvent, ErrorEvent,
  LoadModelRequest,
} from '../engine/protocol';
import { EngineClient } from '../engine/runtime/client';
import type { CachetSettings } from './config';
import type { CompletionBackend } from './completion/session';

export type EngineState =
  | { kind: 'stopped' }
  | { kind: 'starting' }
  | { kind: 'loading'; fraction: number; what: string }
  | { kind: 'ready'; model: ModelInfo }
  | { kind: 'error'; error: EngineFailure };

/** An engine error as the UI shows it: what happened and what the user can do. */
export class EngineFailure extends Error {
  constructor(
    readonly errorName: string,
    message: string,
    readonly hint: string,
    readonly fatal = false,
  ) {
    super(message);
    this.name = errorName;
  }
  static from(ev: ErrorEvent): EngineFailure {
    return new EngineFailure(ev.name, ev.message, ev.hint, ev.fatal ?? false);
  }
}

export interface LoadSettings {
  modelPath: string;
  backend: LoadModelRequest['backend'];
  contextLength: number;
  threads: number;
  cacheDir?: string;
  /** Chunk K/V reuse for repository context; absent = 'off'. */
  chunkReuse?: LoadModelRequest['chunkReuse'];
  /** CacheBlend recompute fraction, sent only with chunkReuse 'blend'. */
  chunkBlendRatio?: number;
}

/** What the engine loads for these settings (modelPath already resolved, e.g. to the embedded model). */
export function loadSettingsFor(s: CachetSettings, modelPath: string, cacheDir?: string): LoadSettings {
  return {
    modelPath,
    backend: s.backend,
    contextLength: s.contextLength,
    threads: s.threads,
    cacheDir,
    chunkReuse: s.kvCache.chunkReuse,
    chunkBlendRatio: s.kvCache.chunkBlendRatio,
  };
}

/** The loadModel request the extension sends for its settings (pure; unit-tested). */
export function loadModelRequest(s: LoadSettings): Omit<LoadModelRequest, 'type' | 'id'> {
  const req: Omit<LoadModelRequest, 'type' | 'id'> = { path: s.modelPath, backend: s.backend, contextLength: s.contextLength };
  if (s.cacheDir !== undefined) req.cacheDir = s.cacheDir;
  if (s.threads > 0) req.threads = s.threads;
  const mode = s.chunkReuse ?? 'off';
  req.chunkReuse = mode;
  if (mode === 'blend' && s.chunkBlendRatio !== undefined) req.chunkBlendRatio = s.chunkBlendRatio;
  return req;
}

type Listener<T> = (v: T) => void;

export class EngineLink implements CompletionBackend {
  private client: EngineClient | undefined;
  private readyPromise: Promise<ModelInfo> | undefined;
  private _state: EngineState = { kind: 'stopped' };
  private stateListeners = new Set<Listener<EngineState>>();
  private metricsListeners = new Set<Listener<MetricsSnapshot>>();
  private warningListeners = new Set<Listener<WarningEvent>>();
  private generation = 0;

  constructor(
    private workerPath: string,
    private settings: () => LoadSettings,
    private log: (line: string) => void,
  ) {}

  get state(): EngineState {
    return this._state;
  }

  onState(l: Listener<EngineState>) {
    return this.subscribe(this.stateListeners, l);
  }
  onMetrics(l: Listener<MetricsSnapshot>) {
    return this.subscribe(this.metricsListeners, l);
  }
  onWarning(l: Listener<WarningEvent>) {
    return this.subscribe(this.warningListeners, l);
  }

  /** Start the worker and load the model if not done yet. Rejects with EngineFailure. */
  ensureReady(): Promise<ModelInfo> {
    if (!this.readyPromise) {
      const p = this.startAndLoad();
      this.readyPromise = p;
      // A failed start may be retried by the next call (e.g. after the user picks a model).
      p.catch(() => {
        if (this.readyPromise === p) this.readyPromise = undefined;
      });
    }
    return this.readyPromise;
  }

  /** CompletionBackend: one streaming FIM request; cancel() sends the protocol cancel. */
  start(
    input: FimInput,
    opts: { maxTokens: number; stop?: string[] },
    sink: Parameters<CompletionBackend['start']>[2],
  ): { cancel(): void } {
    let cancelled = false;
    let stream: ReturnType<EngineClient['complete']> | undefined;
    this.ensureReady().then(
      () => {
        if (cancelled || !this.client) return;
        stream = this.client.complete(
          { prompt: { kind: 'fim', fim: input }, maxTokens: opts.maxTokens, stop: opts.stop, priority: 'interactive' },
          (ev) => {
            if (ev.text && !cancelled) sink.onText(ev.text);
          },
        );
        stream.result.then(
          (r) => sink.onDone(r.finishReason, r.timings),
          (err) => {
            if (!cancelled) sink.onError(toFailure(err));
          },
        );
      },
      (err) => {
        if (!cancelled) sink.onError(toFailure(err));
      },
    );
    return {
      cancel: () => {
        if (cancelled) return;
        cancelled = true;
        stream?.cancel();
      },
    };
  }

  /** Ask for a metrics snapshot; listeners get it (no-op when the engine is not running). */
  requestMetrics(): void {
    if (this._state.kind !== 'ready' || !this.client) return;
    this.client.metrics().then(
      (m) => {
        for (const l of this.metricsListeners) l(m);
      },
      () => undefined,
    );
  }

  /** Drop the engine's KV/prefix caches (no-op when stopped). */
  async clearCache(): Promise<void> {
    if (this._state.kind !== 'ready' || !this.client) return;
    try {
      await this.client.clearCache();
    } catch (err) {
      throw toFailure(err);
    }
  }

  /**
   * Local models as engine/discovery sees them (protocol discoverModels). Uses the running worker,
   * or a short-lived one when none runs, so listing models never loads one.
   */
  discoverModels(request: Omit<DiscoverModelsRequest, 'type' | 'id'>): Promise<DiscoveredModelInfo[]> {
    return this.withClient((c) => c.discoverModels(request));
  }

  /** Memory check of one model file at a context length (protocol checkFit). */
  checkFit(path: string, contextLength?: number): Promise<{ fit?: FitInfo; problem?: ModelProblemInfo }> {
    return this.withClient((c) => c.checkFit({ path, ...(contextLength ? { contextLength } : {}) }));
  }

  private async withClient<T>(fn: (c: EngineClient) => Promise<T>): Promise<T> {
    try {
      if (this.client?.alive) return await fn(this.client);
      const c = await EngineClient.start({ workerPath: this.workerPath });
      try {
        return await fn(c);
      } finally {
        await c.shutdown(3000).catch(() => undefined);
      }
    } catch (err) {
      throw toFailure(err);
    }
  }

  async restart(): Promise<ModelInfo> {
    await this.stop();
    return this.ensureReady();
  }

  async stop(): Promise<void> {
    this.generation++;
    const c = this.client;
    this.client = undefined;
    this.readyPromise = undefined;
    if (c) {
      await c.shutdown(3000).catch(() => undefined);
      // The e2e test reads this line to confirm deactivation leaves no worker thread behind.
      this.log(c.alive ? 'engine worker did not stop' : 'engine worker stopped');
    }
    this.setState({ kind: 'stopped' });
  }

  dispose(): Promise<void> {
    this.stateListeners.clear();
    this.metricsListeners.clear();
    this.warningListeners.clear();
    return this.stop();
  }

  // ------------------------------------------------------------------------------------------

  private async startAndLoad(): Promise<ModelInfo> {
    const s = this.settings();
    const gen = this.generation;
    if (!s.modelPath) {
      const f = new EngineFailure('NoModelError', 'No model selected.', 'Run "Cachet: Select Model" or set cachet.modelPath to a .gguf file.');
      this.setState({ kind: 'error', error: f });
      throw f;
    }
    this.setState({ kind: 'starting' });
    const t0 = Date.now();
    try {
      if (!this.client) {
        this.log(`starting engine worker ${this.workerPath}`);
        const client = await EngineClient.start({
          workerPath: this.workerPath,
          onEvent: (ev) => this.onEngineEvent(ev),
          onExit: (err) => {
            if (this.client === client) this.onWorkerDeath(err);
          },
        });
        if (gen !== this.generation) {
          await client.shutdown(1000).catch(() => undefined);
          throw new EngineFailure('CancelledError', 'engine restarted', 'The engine was restarted; try again.');
        }
        this.client = client;
      }
      this.setState({ kind: 'loading', fraction: 0, what: 'model' });
      const req = loadModelRequest(s);
      const chunks = req.chunkReuse === 'blend' ? `blend ${req.chunkBlendRatio ?? 'default'}` : req.chunkReuse;
      this.log(`loading ${s.modelPath} (backend ${s.backend}, context ${s.contextLength}, threads ${s.threads || 'auto'}, chunk reuse ${chunks})`);
      const model = await this.client.loadModel(req, (ev) => {
        if (gen === this.generation) this.setState({ kind: 'loading', fraction: ev.fraction, what: ev.what });
      });
      if (gen !== this.generation) throw new EngineFailure('CancelledError', 'engine restarted', 'The engine was restarted; try again.');
      this.log(`model ready in ${Date.now() - t0} ms: ${model.name} (${model.arch}, ${model.weightType}, ${model.nLayers} layers) on ${model.backend}, context ${model.contextLength}, load ${model.loadMs.toFixed(0)} ms`);
      this.setState({ kind: 'ready', model });
      return model;
    } catch (err) {
      const f = toFailure(err);
      if (f.errorName !== 'CancelledError') {
        this.log(`engine failed: ${f.errorName}: ${f.message} (hint: ${f.hint})`);
        this.setState({ kind: 'error', error: f });
      }
      throw f;
    }
  }

  private onEngineEvent(ev: EngineEvent): void {
    if (ev.type === 'metrics') for (const l of this.metricsListeners) l(ev.snapshot);
    else if (ev.type === 'warning') {
      this.log(`warning ${ev.code}: ${ev.message}${ev.hint ? ` (hint: ${ev.hint})` : ''}`);
      for (const l of this.warningListeners) l(ev);
    } else if (ev.type === 'error') {
      this.log(`engine error ${ev.name}: ${ev.message} (hint: ${ev.hint})`);
    }
  }

  private onWorkerDeath(err: Error): void {
    const f = new EngineFailure('WorkerCrashedError', `engine worker stopped: ${err.message}`, 'The engine stopped unexpectedly; "Cachet: Restart Engine" starts it again.', true);
    this.log(f.message);
    this.client = undefined;
    this.readyPromise = undefined;
    this.setState({ kind: 'error', error: f });
  }

  private setState(s: EngineState): void {
    this._state = s;
    for (const l of this.stateListeners) l(s);
  }

  private subscribe<T>(set: Set<Listener<T>>, l: Listener<T>): { dispose(): void } {
    set.add(l);
    return { dispose: () => set.delete(l) };
  }
}

/** Any thrown value as an EngineFailure (keeps the engine's error name and hint). */
export function toFailure(err: unknown): EngineFailure {
  if (err instanceof EngineFailure) return err;
  const e = err as { engineName?: unknown; name?: unknown; message?: unknown; hint?: unknown; fatal?: unknown } | undefined;
  if (typeof e === 'object' && e !== null) {
    const name = typeof e.engineName === 'string' ? e.engineName : typeof e.name === 'string' ? e.name : 'Error';
    const hint = typeof e.hint === 'string' ? e.hint : 'See "Cachet: Show Logs" for details; "Cachet: Restart Engine" retries.';
    return new EngineFailure(name, typeof e.message === 'string' ? e.message : String(err), hint, e.fatal === true);
  }
  return new EngineFailure('Error', String(err), 'See "Cachet: Show Logs" for details.');
}
