// The extension's side of the engine: starts the worker lazily on first need, loads the model
// from settings, correlates requests and events by id, and turns token streams into the
// CompletionBackend the completion session uses. Never blocks the extension host: everything is
// asynchronous and the engine runs in its own worker thread (engine/runtime/client).

import type {
  EngineEvent,
  EngineRequest,
  FimInput,
  MetricsSnapshot,
  ModelInfo,
  WarningEvent,
  ErrorEvent,
  LoadModelRequest,
} from '../engine/protocol';
import { openTransport, type EngineTransport } from './engine-transport';
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
}

type Listener<T> = (v: T) => void;

export class EngineLink implements CompletionBackend {
  private transport: EngineTransport | undefined;
  private readyPromise: Promise<ModelInfo> | undefined;
  private handlers = new Map<string, (ev: EngineEvent) => void>();
  private nextId = 1;
  private _state: EngineState = { kind: 'stopped' };
  private stateListeners = new Set<Listener<EngineState>>();
  private metricsListeners = new Set<Listener<MetricsSnapshot>>();
  private warningListeners = new Set<Listener<WarningEvent>>();
  private log: (line: string) => void;

  constructor(
    private workerPath: string,
    private settings: () => LoadSettings,
    log: (line: string) => void,
  ) {
    this.log = log;
  }

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
      this.readyPromise = this.startAndLoad();
      // A failed start may be retried by the next call (e.g. after the user picks a model).
      this.readyPromise.catch(() => {
        this.readyPromise = undefined;
      });
    }
    return this.readyPromise;
  }

  /** CompletionBackend: one streaming FIM request. */
  start(
    input: FimInput,
    opts: { maxTokens: number; stop?: string[] },
    sink: Parameters<CompletionBackend['start']>[2],
  ): { cancel(): void } {
    const id = this.newId('cmp');
    let cancelled = false;
    let sent = false;
    this.ensureReady().then(
      () => {
        if (cancelled) return;
        this.handlers.set(id, (ev) => {
          if (ev.type === 'token') {
            if (ev.text) sink.onText(ev.text);
            if (ev.done) {
              this.handlers.delete(id);
              sink.onDone(ev.finishReason ?? 'stop', ev.timings);
            }
          } else if (ev.type === 'error') {
            this.handlers.delete(id);
            sink.onError(EngineFailure.from(ev));
          }
        });
        sent = true;
        this.post({ type: 'complete', id, prompt: { kind: 'fim', fim: input }, maxTokens: opts.maxTokens, stop: opts.stop, priority: 'interactive' });
      },
      (err) => {
        if (!cancelled) sink.onError(err instanceof Error ? err : new Error(String(err)));
      },
    );
    return {
      cancel: () => {
        if (cancelled) return;
        cancelled = true;
        if (sent && this.handlers.has(id)) {
          this.handlers.delete(id);
          this.post({ type: 'cancel', id });
        }
      },
    };
  }

  /** Ask for a metrics snapshot (no-op when the engine is not running). */
  requestMetrics(): void {
    if (this._state.kind !== 'ready') return;
    const id = this.newId('met');
    this.handlers.set(id, () => this.handlers.delete(id));
    this.post({ type: 'metrics', id });
  }

  /** Drop the engine's KV/prefix caches. Resolves when acknowledged (or at once when stopped). */
  async clearCache(): Promise<void> {
    if (this._state.kind !== 'ready') return;
    await this.request({ type: 'clearCache', id: this.newId('clr') }, (ev) => ev.type === 'ack');
  }

  async restart(): Promise<ModelInfo> {
    await this.stop();
    return this.ensureReady();
  }

  async stop(): Promise<void> {
    const t = this.transport;
    this.transport = undefined;
    this.readyPromise = undefined;
    for (const [id, h] of this.handlers) h({ type: 'error', id, name: 'CancelledError', message: 'engine stopped', hint: 'The engine was stopped; try again.' });
    this.handlers.clear();
    if (t) {
      try {
        t.post({ type: 'shutdown', id: this.newId('bye') });
      } catch {
        // already gone
      }
      await t.terminate().catch(() => undefined);
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
    if (!s.modelPath) {
      const f = new EngineFailure('NoModelError', 'No model selected.', 'Run "Cachet: Select Model" or set cachet.modelPath to a .gguf file.');
      this.setState({ kind: 'error', error: f });
      throw f;
    }
    this.setState({ kind: 'starting' });
    const t0 = Date.now();
    try {
      if (!this.transport) {
        this.log(`starting engine worker ${this.workerPath}`);
        const t = await openTransport(this.workerPath, (ev) => this.dispatch(ev), (err) => this.onTransportDeath(err));
        this.transport = t;
      }
      this.setState({ kind: 'loading', fraction: 0, what: 'model' });
      this.log(`loading ${s.modelPath} (backend ${s.backend}, context ${s.contextLength}, threads ${s.threads || 'auto'})`);
      const id = this.newId('load');
      const ev = await this.request(
        {
          type: 'loadModel',
          id,
          path: s.modelPath,
          backend: s.backend,
          contextLength: s.contextLength,
          threads: s.threads > 0 ? s.threads : undefined,
          cacheDir: s.cacheDir,
        },
        (e) => e.type === 'ready',
      );
      if (ev.type !== 'ready') throw new Error('unexpected answer to loadModel');
      this.log(`model ready in ${Date.now() - t0} ms: ${ev.model.name} (${ev.model.arch}, ${ev.model.weightType}) on ${ev.model.backend}, context ${ev.model.contextLength}`);
      this.setState({ kind: 'ready', model: ev.model });
      return ev.model;
    } catch (err) {
      const f = err instanceof EngineFailure ? err : new EngineFailure('EngineStartError', String((err as Error)?.message ?? err), 'See "Cachet: Show Logs" for details; "Cachet: Restart Engine" retries.');
      this.log(`engine failed: ${f.name}: ${f.message} (hint: ${f.hint})`);
      this.setState({ kind: 'error', error: f });
      if (this.transport) await this.stopTransportOnly();
      throw f;
    }
  }

  private async stopTransportOnly(): Promise<void> {
    const t = this.transport;
    this.transport = undefined;
    await t?.terminate().catch(() => undefined);
  }

  /** Send `req` and wait for the event that answers it (or its error). */
  private request(req: EngineRequest, isAnswer: (ev: EngineEvent) => boolean): Promise<EngineEvent> {
    return new Promise((resolve, reject) => {
      this.handlers.set(req.id, (ev) => {
        if (ev.type === 'error') {
          this.handlers.delete(req.id);
          reject(EngineFailure.from(ev));
        } else if (isAnswer(ev)) {
          this.handlers.delete(req.id);
          resolve(ev);
        }
      });
      try {
        this.post(req);
      } catch (err) {
        this.handlers.delete(req.id);
        reject(err);
      }
    });
  }

  private post(req: EngineRequest): void {
    if (!this.transport) throw new EngineFailure('EngineStoppedError', 'The engine is not running.', 'Run "Cachet: Restart Engine".');
    this.transport.post(req);
  }

  private dispatch(ev: EngineEvent): void {
    switch (ev.type) {
      case 'progress':
        if (this._state.kind === 'loading' || this._state.kind === 'starting') this.setState({ kind: 'loading', fraction: ev.fraction, what: ev.what });
        break;
      case 'metrics':
        for (const l of this.metricsListeners) l(ev.snapshot);
        break;
      case 'warning':
        this.log(`warning ${ev.code}: ${ev.message}${ev.hint ? ` (hint: ${ev.hint})` : ''}`);
        for (const l of this.warningListeners) l(ev);
        break;
      case 'error':
        if (ev.id === undefined || ev.fatal) {
          this.log(`engine error ${ev.name}: ${ev.message} (hint: ${ev.hint})`);
          if (ev.fatal) this.onTransportDeath(EngineFailure.from(ev));
        }
        break;
      default:
        break;
    }
    if ('id' in ev && ev.id !== undefined) this.handlers.get(ev.id)?.(ev);
  }

  private onTransportDeath(err: Error): void {
    const f = err instanceof EngineFailure ? err : new EngineFailure('WorkerCrashedError', err.message, 'The engine worker stopped; "Cachet: Restart Engine" starts it again.', true);
    this.log(`engine worker ended: ${f.message}`);
    this.transport = undefined;
    this.readyPromise = undefined;
    const pending = [...this.handlers.entries()];
    this.handlers.clear();
    for (const [id, h] of pending) h({ type: 'error', id, name: f.errorName, message: f.message, hint: f.hint, fatal: true });
    this.setState({ kind: 'error', error: f });
  }

  private setState(s: EngineState): void {
    this._state = s;
    for (const l of this.stateListeners) l(s);
  }

  private newId(kind: string): string {
    return `${kind}-${this.nextId++}`;
  }

  private subscribe<T>(set: Set<Listener<T>>, l: Listener<T>): { dispose(): void } {
    set.add(l);
    return { dispose: () => set.delete(l) };
  }
}
