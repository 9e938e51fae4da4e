// EngineClient: the extension's and CLI's handle on an engine running in a worker thread.
//
//   const client = await EngineClient.start({ workerPath });
//   await client.loadModel({ path, backend: 'auto' });
//   const stream = client.complete({ prompt: { kind: 'fim', fim } });
//   for await (const ev of stream) show(ev.text);      // or stream.result
//   stream.cancel();
//
// Request ids are generated here. If the worker dies, every in-flight request ends with a fatal
// `WorkerCrashedError` error event (its promise rejects); `restart()` starts a fresh worker and
// reloads the last model.

import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { CachetError } from '../errors';
import {
  isEngineEvent, isTerminalEvent, PROTOCOL_VERSION,
  type ChatRequest, type CheckFitRequest, type CompleteRequest, type DiscoveredModelInfo, type DiscoverModelsRequest, type FitEvent, type EngineEvent, type EngineRequest, type ErrorEvent, type FinishReason,
  type LoadModelRequest, type MetricsSnapshot, type ModelInfo, type ProgressEvent, type Timings, type TokenEvent,
  type WarningEvent,
} from '../protocol';

/** An error the engine reported (carries the protocol's name and hint). */
export class EngineRequestError extends CachetError {
  readonly engineName: string;
  readonly fatal: boolean;
  constructor(ev: ErrorEvent) {
    super(ev.message, ev.hint);
    this.engineName = ev.name;
    this.fatal = ev.fatal ?? false;
  }
}

export interface EngineClientOptions {
  /** The bundled worker (default: worker.js beside this bundle). */
  workerPath?: string;
  /** Give up when the worker has not said hello by then (default 30 s). */
  startTimeoutMs?: number;
  /** Events not tied to a request, and progress/warnings of every request. */
  onEvent?: (event: EngineEvent) => void;
  /** Called when the worker ends unexpectedly. */
  onExit?: (error: Error) => void;
  /** Node flags for the worker (per-thread ones only; V8 flags such as --expose-gc go on the process). */
  execArgv?: string[];
}

export interface StreamResult {
  id: string;
  text: string;
  tokenIds: number[];
  finishReason: FinishReason;
  timings: Timings;
}

type Pending = (event: EngineEvent) => void;

/** One generation's token events, as callbacks, an async iterator or a final result. */
export class TokenStream implements AsyncIterable<TokenEvent> {
  readonly result: Promise<StreamResult>;
  private queue: TokenEvent[] = [];
  private waiters: { resolve: (r: IteratorResult<TokenEvent>) => void; reject: (e: unknown) => void }[] = [];
  private ended = false;
  private failure: unknown;
  private text = '';
  private ids: number[] = [];
  private settle!: { resolve: (r: StreamResult) => void; reject: (e: unknown) => void };

  constructor(readonly id: string, private readonly cancelFn: () => void, private readonly onToken?: (ev: TokenEvent) => void) {
    this.result = new Promise((resolve, reject) => { this.settle = { resolve, reject }; });
    this.result.catch(() => {}); // callers that only iterate must not see an unhandled rejection
  }

  cancel(): void {
    if (!this.ended) this.cancelFn();
  }

  /** @internal */
  deliver(ev: EngineEvent): void {
    if (this.ended) return;
    if (ev.type === 'token') {
      this.text += ev.text;
      this.ids.push(...ev.tokenIds);
      this.onToken?.(ev);
      this.push(ev);
      if (ev.done) {
        this.end();
        this.settle.resolve({ id: this.id, text: this.text, tokenIds: this.ids, finishReason: ev.finishReason ?? 'stop', timings: ev.timings! });
      }
    } else if (ev.type === 'error') {
      this.failure = new EngineRequestError(ev);
      this.end();
      this.settle.reject(this.failure);
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<TokenEvent> {
    return {
      next: () => {
        const ev = this.queue.shift();
        if (ev) return Promise.resolve({ value: ev, done: false });
        if (this.ended) return this.failure ? Promise.reject(this.failure) : Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
      },
      return: async () => {
        this.cancel();
        return { value: undefined, done: true };
      },
    };
  }

  private push(ev: TokenEvent): void {
    const w = this.waiters.shift();
    if (w) w.resolve({ value: ev, done: false });
    else this.queue.push(ev);
  }

  private end(): void {
    this.ended = true;
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) {
      if (this.failure) w.reject(this.failure);
      else w.resolve({ value: undefined, done: true });
    }
  }
}

export class EngineClient {
  private worker: Worker | undefined;
  private readonly pending = new Map<string, Pending>();
  private nextId = 0;
  private lastLoad: Omit<LoadModelRequest, 'type' | 'id'> | undefined;
  private stopping = false;
  readonly workerPath: string;

  private constructor(private readonly options: EngineClientOptions) {
    this.workerPath = options.workerPath ?? join(__dirname, 'worker.js');
  }

  static async start(options: EngineClientOptions = {}): Promise<EngineClient> {
    const client = new EngineClient(options);
    await client.spawn();
    return client;
  }

  get alive(): boolean {
    return this.worker !== undefined;
  }

  async loadModel(request: Omit<LoadModelRequest, 'type' | 'id'>, onProgress?: (ev: ProgressEvent) => void): Promise<ModelInfo> {
    this.lastLoad = request;
    const ev = await this.request({ ...request, type: 'loadModel', id: this.newId('load') }, (e) => {
      if (e.type === 'progress') onProgress?.(e);
    });
    if (ev.type !== 'ready') throw new Error(`unexpected answer to loadModel: ${ev.type}`);
    return ev.model;
  }

  complete(request: Omit<CompleteRequest, 'type' | 'id'> & { id?: string }, onToken?: (ev: TokenEvent) => void): TokenStream {
    return this.stream({ ...request, type: 'complete', id: request.id ?? this.newId('cmp') }, onToken);
  }

  chat(request: Omit<ChatRequest, 'type' | 'id'> & { id?: string }, onToken?: (ev: TokenEvent) => void): TokenStream {
    return this.stream({ ...request, type: 'chat', id: request.id ?? this.newId('chat') }, onToken);
  }

  cancel(id: string): void {
    this.post({ type: 'cancel', id });
  }

  async tokenize(text: string, options: { addSpecial?: boolean; parseSpecial?: boolean } = {}): Promise<{ tokenIds: number[]; pieces: string[] }> {
    const ev = await this.request({ type: 'tokenize', id: this.newId('tok'), text, ...options });
    if (ev.type !== 'tokens') throw new Error(`unexpected answer to tokenize: ${ev.type}`);
    return { tokenIds: ev.tokenIds, pieces: ev.pieces };
  }

  /** gc: collect garbage in the worker first (when the process runs with --expose-gc). */
  async metrics(options: { gc?: boolean } = {}): Promise<MetricsSnapshot> {
    const ev = await this.request({ type: 'metrics', id: this.newId('met'), ...(options.gc ? { gc: true } : {}) });
    if (ev.type !== 'metrics') throw new Error(`unexpected answer to metrics: ${ev.type}`);
    return ev.snapshot;
  }

  /** Local GGUF models with what each is and whether it fits (no model needs to be loaded). */
  async discoverModels(options: Omit<DiscoverModelsRequest, 'type' | 'id'> = {}): Promise<DiscoveredModelInfo[]> {
    const ev = await this.request({ ...options, type: 'discoverModels', id: this.newId('dis') });
    if (ev.type !== 'models') throw new Error(`unexpected answer to discoverModels: ${ev.type}`);
    return ev.models;
  }

  /** Memory check of the model at `path` at a context length. */
  async checkFit(options: Omit<CheckFitRequest, 'type' | 'id'>): Promise<Omit<FitEvent, 'type' | 'id'>> {
    const ev = await this.request({ ...options, type: 'checkFit', id: this.newId('fit') });
    if (ev.type !== 'fit') throw new Error(`unexpected answer to checkFit: ${ev.type}`);
    const { type: _t, id: _i, ...rest } = ev;
    return rest;
  }

  async clearCache(): Promise<void> {
    await this.request({ type: 'clearCache', id: this.newId('clr') });
  }

  /** Asks the worker to unload and exit; terminates it if it does not within timeoutMs. */
  async shutdown(timeoutMs = 10_000): Promise<void> {
    const worker = this.worker;
    if (!worker) return;
    this.stopping = true;
    const exited = new Promise<void>((r) => worker.once('exit', () => r()));
    try {
      await Promise.race([
        this.request({ type: 'shutdown', id: this.newId('bye') }),
        new Promise((_, reject) => setTimeout(() => reject(new Error('shutdown timed out')), timeoutMs).unref()),
      ]);
    } catch {
      // fall through to terminate
    }
    await Promise.race([exited, new Promise((r) => setTimeout(r, 1000).unref())]);
    await worker.terminate();
    this.worker = undefined;
  }

  /** Starts a fresh worker (after a crash, or to recover) and reloads the last model. */
  async restart(): Promise<ModelInfo | undefined> {
    if (this.worker) {
      this.stopping = true;
      await this.worker.terminate();
      this.worker = undefined;
    }
    await this.spawn();
    return this.lastLoad ? this.loadModel(this.lastLoad) : undefined;
  }

  // -------------------------------------------------------------------------------------------

  private newId(kind: string): string {
    return `${kind}-${++this.nextId}`;
  }

  private stream(req: CompleteRequest | ChatRequest, onToken?: (ev: TokenEvent) => void): TokenStream {
    const stream = new TokenStream(req.id, () => this.cancel(req.id), onToken);
    this.pending.set(req.id, (ev) => stream.deliver(ev));
    this.post(req);
    return stream;
  }

  /** Sends a request and resolves with its terminal event (rejects on an error event). */
  private request(req: EngineRequest, onEvent?: (ev: EngineEvent) => void): Promise<EngineEvent> {
    return new Promise((resolve, reject) => {
      this.pending.set(req.id, (ev) => {
        if (!isTerminalEvent(ev)) { onEvent?.(ev); return; }
        if (ev.type === 'error') reject(new EngineRequestError(ev));
        else resolve(ev);
      });
      this.post(req);
    });
  }

  private post(req: EngineRequest): void {
    if (!this.worker) {
      const p = this.pending.get(req.id);
      this.pending.delete(req.id);
      p?.(crashEvent(req.id, 'the engine worker is not running'));
      return;
    }
    this.worker.postMessage(req);
  }

  private spawn(): Promise<void> {
    this.stopping = false;
    return new Promise((resolve, reject) => {
      const worker = new Worker(this.workerPath, this.options.execArgv ? { execArgv: this.options.execArgv } : {});
      let started = false;
      const timer = setTimeout(() => {
        if (started) return;
        void worker.terminate();
        reject(new CachetError(`engine worker ${this.workerPath} did not start in time`, 'Check the Cachet log; reinstall the extension if dist/worker.js is missing.'));
      }, this.options.startTimeoutMs ?? 30_000);
      timer.unref();
      worker.on('message', (msg: unknown) => {
        if (!isEngineEvent(msg)) return;
        if (!started) {
          if (msg.type !== 'hello') return;
          clearTimeout(timer);
          if (Math.floor(msg.protocolVersion) !== PROTOCOL_VERSION) {
            void worker.terminate();
            reject(new CachetError(`engine speaks protocol ${msg.protocolVersion}, this client ${PROTOCOL_VERSION}`, 'Rebuild or reinstall so the worker and the extension match.'));
            return;
          }
          started = true;
          this.worker = worker;
          resolve();
          return;
        }
        this.dispatch(msg);
      });
      worker.on('error', (err) => {
        if (!started) { clearTimeout(timer); reject(err); return; }
        this.onWorkerGone(worker, err);
      });
      worker.on('exit', (code) => {
        if (!started) { clearTimeout(timer); reject(new CachetError(`engine worker exited with code ${code} before starting`, 'Check the Cachet log.')); return; }
        this.onWorkerGone(worker, new Error(`engine worker exited with code ${code}`));
      });
    });
  }

  private dispatch(ev: EngineEvent): void {
    const id = 'id' in ev ? ev.id : undefined;
    if (ev.type === 'progress' || ev.type === 'warning' || id === undefined || !this.pending.has(id)) this.options.onEvent?.(ev);
    if (id === undefined) return;
    const handler = this.pending.get(id);
    if (!handler) return;
    if (isTerminalEvent(ev)) this.pending.delete(id);
    handler(ev);
  }

  private onWorkerGone(worker: Worker, err: Error): void {
    if (this.worker !== worker && this.worker !== undefined) return; // an old worker
    this.worker = undefined;
    const expected = this.stopping;
    const handlers = [...this.pending.entries()];
    this.pending.clear();
    for (const [id, handler] of handlers) handler(crashEvent(id, err.message));
    if (!expected) this.options.onExit?.(err);
  }
}

function crashEvent(id: string, why: string): ErrorEvent {
  return {
    type: 'error', id, name: 'WorkerCrashedError', fatal: true,
    message: `engine worker stopped: ${why}`,
    hint: 'The engine stopped unexpectedly; restart it (Cachet: Restart Engine). If it keeps happening, try the reference or onnx backend.',
  };
}

export type { WarningEvent };
