// The step loop: which sequences run in the next forward pass.
//
// - Strict priorities: only the best class with work runs (interactive > chat > background);
//   lower classes pause, keeping their KV.
// - Chunked prefill: a prompt is computed `prefillChunk` tokens per step, so a completion that
//   arrives during a long background prefill starts after at most one chunk.
// - Continuous batching: every decoding sequence of the running class plus one prefill chunk go
//   into one Backend.forward(batches[]).
// - Cancellation and deadlines are checked between steps: a cancelled sequence's KV returns to the
//   store before the next step; a sequence past its deadline ends with what it has.
// - Prefix reuse: a new sequence asks the KV store for its longest cached prefix; only the rest
//   is prefilled. Finished sequences leave their KV in the store for the next request.

import type { Backend, SequenceBatch } from '../backend/types';
import { CachetError, ContextOverflowError, OutOfMemoryError } from '../errors';
import type { FinishReason, Priority, SamplingParams, Timings } from '../protocol';
import type { ContextSpan } from './chunk-reuse';
import type { KvStore } from './kv-store';
import { draftNgram, SpeculativeStats } from './speculative';
import { StopStringFilter } from './stop-strings';
import { chainSamplerFactory, greedySampler, isGreedy, type SamplerFactory, type TokenSampler } from './token-sampler';

export interface SchedulerTokenizer {
  isEog(id: number): boolean;
  createStreamDecoder(): { push(id: number): string; flush(): string };
}

export interface SpeculativeOptions {
  maxDraft?: number;
  ngram?: number;
  /** Token streams the drafter may copy from besides the sequence itself. */
  extraTokens?: ArrayLike<number>[];
}

export interface GenerationRequest {
  id: string;
  /** Prompt token ids (at least one). */
  prompt: ArrayLike<number>;
  priority?: Priority;
  maxTokens?: number;
  sampling?: SamplingParams;
  stop?: string[];
  deadlineMs?: number;
  /** Prompt-lookup speculative decoding; used only with greedy sampling. */
  speculative?: SpeculativeOptions;
  /** Extra end-of-generation tokens (e.g. FIM markers); the tokenizer's EOG always ends. */
  isStopToken?: (id: number) => boolean;
  /** Repository-context chunks in the prompt whose K/V a chunk-reusing KV store may take from its chunk cache. */
  contextSpans?: ContextSpan[];
  signal?: AbortSignal;
}

export interface StreamChunk {
  text: string;
  tokenIds: number[];
  done: boolean;
  finishReason?: FinishReason;
  timings?: Timings;
}

export interface GenerationResult {
  id: string;
  text: string;
  tokenIds: number[];
  finishReason: FinishReason;
  timings: Timings;
}

export interface SchedulerOptions {
  backend: Backend;
  kv: KvStore;
  tokenizer: SchedulerTokenizer;
  /** Max tokens per sequence (prompt + generated). */
  contextLength: number;
  /** Tokens per prefill chunk (default 256). */
  prefillChunk?: number;
  /** Max sequences holding KV at once (default 8); a better-priority request may exceed it. */
  maxSequences?: number;
  /** Samplers for non-greedy requests (default: engine/sampling's chain). */
  createSampler?: SamplerFactory;
  /** Called when forward() throws; a returned backend replaces the failed one and work resumes. */
  recoverBackend?: (error: unknown, failed: Backend) => Promise<Backend | undefined>;
  now?: () => number;
}

export interface SchedulerStats {
  active: number;
  queued: number;
  completed: number;
  cancelled: number;
  failed: number;
  deadline: number;
  /** Sequences pushed out of KV memory to let others run (they resume later). */
  preempted: number;
  promptTokens: number;
  prefilledTokens: number;
  cachedTokens: number;
  generatedTokens: number;
  steps: number;
  /** Time spent inside Backend.forward (utilization = forwardMs / uptime). */
  forwardMs: number;
  speculative: { drafted: number; accepted: number; acceptanceRate: number };
  /** Recent times to first token, oldest first (at most 1024). */
  ttftMs: number[];
  lastTtftMs: number;
  lastTokensPerSecond: number;
}

const RANK: Record<Priority, number> = { interactive: 0, chat: 1, background: 2 };
const DEFAULT_MAX_TOKENS = 128;

class Sequence {
  readonly rank: number;
  readonly tokens: number[];
  readonly promptLength: number;
  /** KV store sequence while admitted. */
  kvSeq: number | undefined;
  /** Slots of the cells the store holds for this sequence (computed ones first). */
  slots: number[] = [];
  /** Tokens whose KV has been computed. */
  nPast = 0;
  /** Was pushed out of memory once; readmitted only when nothing else runs (no thrashing). */
  preempted = false;
  readonly generated: number[] = [];
  readonly decoder: { push(id: number): string; flush(): string };
  readonly stop: StopStringFilter;
  readonly sampler: TokenSampler;
  readonly maxTokens: number;
  readonly deadlineAt: number;
  readonly speculative: SpeculativeOptions | undefined;
  cancelRequested = false;
  finished = false;
  // Pending output for the next stream chunk.
  outText = '';
  outIds: number[] = [];
  // Accounting.
  cachedTokens = 0;
  prefillTokens = 0;
  drafted = 0;
  accepted = 0;
  tStart = -1;
  tFirst = -1;
  tLast = -1;

  constructor(
    readonly req: GenerationRequest,
    readonly order: number,
    readonly tReceived: number,
    tokenizer: SchedulerTokenizer,
    createSampler: SamplerFactory,
    readonly onChunk: ((chunk: StreamChunk) => void) | undefined,
    readonly resolve: (r: GenerationResult) => void,
    readonly reject: (e: unknown) => void,
  ) {
    this.rank = RANK[req.priority ?? 'interactive'];
    this.tokens = Array.from(req.prompt);
    this.promptLength = this.tokens.length;
    this.decoder = tokenizer.createStreamDecoder();
    this.stop = new StopStringFilter(req.stop);
    const greedy = isGreedy(req.sampling);
    this.sampler = greedy ? greedySampler : createSampler(req.sampling);
    this.maxTokens = req.maxTokens ?? DEFAULT_MAX_TOKENS;
    this.deadlineAt = req.deadlineMs !== undefined ? tReceived + req.deadlineMs : Infinity;
    this.speculative = greedy && req.speculative && (req.speculative.maxDraft ?? 4) > 0 ? req.speculative : undefined;
  }

  /** Tokens still to run through the model (1 while decoding). */
  get remaining(): number {
    return this.tokens.length - this.nPast;
  }
}

interface PlannedBatch {
  seq: Sequence;
  /** Inputs this step: tokens[nPast .. nPast + n) followed by `draft`; their slots are seq.slots[nPast ..]. */
  n: number;
  draft: number[];
  reachesEnd: boolean;
}

export class Scheduler {
  private backend: Backend;
  private readonly kv: KvStore;
  private readonly tokenizer: SchedulerTokenizer;
  private readonly contextLength: number;
  private readonly prefillChunk: number;
  private readonly maxSequences: number;
  private readonly createSampler: SamplerFactory;
  private readonly recoverBackend: SchedulerOptions['recoverBackend'];
  private readonly now: () => number;

  private readonly queued: Sequence[] = [];
  private readonly active: Sequence[] = [];
  private readonly byId = new Map<string, Sequence>();
  /** Sequences the current step works on (admission, planning, forward): cancel only flags them. */
  private busy = new Set<Sequence>();
  private running = false;
  private disposed = false;
  private order = 0;
  private idleWaiters: (() => void)[] = [];

  private readonly spec = new SpeculativeStats();
  private readonly counters = {
    completed: 0, cancelled: 0, failed: 0, deadline: 0, preempted: 0, forwardMs: 0,
    promptTokens: 0, prefilledTokens: 0, cachedTokens: 0, generatedTokens: 0, steps: 0,
  };
  private readonly ttft: number[] = [];
  private lastTtftMs = 0;
  private lastTokensPerSecond = 0;

  constructor(options: SchedulerOptions) {
    this.backend = options.backend;
    this.kv = options.kv;
    this.tokenizer = options.tokenizer;
    this.contextLength = options.contextLength;
    this.prefillChunk = Math.max(1, options.prefillChunk ?? 256);
    this.maxSequences = Math.max(1, options.maxSequences ?? 8);
    this.createSampler = options.createSampler ?? chainSamplerFactory;
    this.recoverBackend = options.recoverBackend;
    this.now = options.now ?? (() => performance.now());
  }

  get currentBackend(): Backend {
    return this.backend;
  }

  /** Queues a request; resolves when it ends (any finish reason). Rejects only on engine failure. */
  submit(req: GenerationRequest, onChunk?: (chunk: StreamChunk) => void): Promise<GenerationResult> {
    if (this.disposed) return Promise.reject(new CachetError('engine disposed', 'Load the model again.'));
    if (this.byId.has(req.id)) {
      return Promise.reject(new CachetError(`request id ${req.id} already running`, 'Use a fresh id per request.'));
    }
    if (req.prompt.length === 0) {
      return Promise.reject(new CachetError('empty prompt', 'Send at least one token (the BOS token if nothing else).'));
    }
    if (req.prompt.length > this.contextLength) {
      return Promise.reject(new ContextOverflowError(
        `prompt of ${req.prompt.length} tokens exceeds the context length ${this.contextLength}`,
        'Shorten the prompt (less repository context) or load the model with a larger contextLength.',
      ));
    }
    return new Promise<GenerationResult>((resolve, reject) => {
      const seq = new Sequence(req, this.order++, this.now(), this.tokenizer, this.createSampler, onChunk, resolve, reject);
      this.byId.set(req.id, seq);
      this.queued.push(seq);
      this.counters.promptTokens += seq.promptLength;
      if (req.signal) {
        if (req.signal.aborted) seq.cancelRequested = true;
        else req.signal.addEventListener('abort', () => this.cancel(req.id), { once: true });
      }
      this.kick();
    });
  }

  /** Cancels a request: at once when it is not in the running step, else right after that step. */
  cancel(id: string): boolean {
    const seq = this.byId.get(id);
    if (!seq || seq.finished) return false;
    seq.cancelRequested = true;
    if (!this.busy.has(seq)) this.finish(seq, 'cancelled');
    return true;
  }

  /** Resolves once no request is queued or running. */
  idle(): Promise<void> {
    if (!this.running && this.queued.length === 0 && this.active.length === 0) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  stats(): SchedulerStats {
    return {
      active: this.active.length,
      queued: this.queued.length,
      ...this.counters,
      speculative: { drafted: this.spec.drafted, accepted: this.spec.accepted, acceptanceRate: this.spec.acceptanceRate },
      ttftMs: this.ttft.slice(),
      lastTtftMs: this.lastTtftMs,
      lastTokensPerSecond: this.lastTokensPerSecond,
    };
  }

  /** Cancels everything and stops the loop (the backend and KV store belong to the caller). */
  async dispose(): Promise<void> {
    this.disposed = true;
    for (const seq of [...this.queued, ...this.active]) this.cancel(seq.req.id);
    await this.idle();
  }

  // -------------------------------------------------------------------------------------------

  private kick(): void {
    if (this.running) return;
    this.running = true;
    void this.loop();
  }

  private async loop(): Promise<void> {
    try {
      while (this.queued.length > 0 || this.active.length > 0) {
        await this.step();
        // Let messages (new requests, cancels) in between steps.
        await new Promise<void>((r) => setImmediate(r));
      }
    } catch (err) {
      for (const seq of [...this.queued, ...this.active]) this.fail(seq, err);
    } finally {
      this.running = false;
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
      if (this.queued.length > 0 || this.active.length > 0) this.kick();
    }
  }

  private async step(): Promise<void> {
    try {
      await this.stepInner();
    } finally {
      // Cancelled while the step used it: end it now so its KV is back before the next step.
      const busy = [...this.busy];
      this.busy.clear();
      for (const seq of busy) if (seq.cancelRequested && !seq.finished) this.finish(seq, 'cancelled');
    }
  }

  private async stepInner(): Promise<void> {
    const t = this.now();
    for (const seq of [...this.queued, ...this.active]) {
      if (seq.cancelRequested) this.finish(seq, 'cancelled');
      else if (t >= seq.deadlineAt) this.finish(seq, 'deadline');
    }
    if (this.queued.length === 0 && this.active.length === 0) return;

    await this.admit();
    // Cancelled while being admitted: nothing of theirs is in flight, end them now.
    for (const seq of [...this.active]) if (seq.cancelRequested) this.finish(seq, 'cancelled');
    if (this.queued.length === 0 && this.active.length === 0) return;

    let topRank = Infinity;
    for (const seq of this.queued) topRank = Math.min(topRank, seq.rank);
    for (const seq of this.active) topRank = Math.min(topRank, seq.rank);
    const plan = await this.plan(topRank);
    if (plan.length === 0) {
      if (this.active.length > 0 || this.queued.length > 0) this.relieveMemory(topRank);
      return;
    }

    const batches: SequenceBatch[] = plan.map((p) => this.toBatch(p));
    let results;
    const tForward = this.now();
    try {
      results = await this.backend.forward(batches);
      this.counters.forwardMs += this.now() - tForward;
    } catch (err) {
      for (const p of plan) this.dropUncomputed(p.seq);
      await this.failover(err);
      return;
    }
    this.counters.steps++;
    const vocab = this.backend.config.vocabSize;
    for (let b = 0; b < plan.length; b++) this.apply(plan[b], results[b].logits, vocab);
    for (const p of plan) this.flushOutput(p.seq);
  }

  /** Moves queued sequences to active (prefix lookup + slots) while there is room or they outrank everyone. */
  private async admit(): Promise<void> {
    this.queued.sort((a, b) => a.rank - b.rank || a.order - b.order);
    while (this.queued.length > 0) {
      const seq = this.queued[0];
      const bestActive = this.active.reduce((m, s) => Math.min(m, s.rank), Infinity);
      if (this.active.length >= this.maxSequences && seq.rank >= bestActive) break;
      if (seq.preempted && this.active.length > 0) break;
      let got;
      this.busy.add(seq);
      try {
        got = await this.kv.acquire(seq.tokens, seq.req.contextSpans);
      } catch (err) {
        if (!(err instanceof OutOfMemoryError)) throw err;
        if (this.active.length === 0) { this.fail(seq, err); continue; }
        break; // wait for running sequences to give memory back
      }
      this.queued.splice(this.queued.indexOf(seq), 1);
      seq.kvSeq = got.seq;
      seq.slots = Array.from(got.context);
      seq.nPast = got.cachedLength;
      if (seq.tStart < 0) {
        // Chunk reuse computed part of the cached length itself (gaps, CacheBlend picks, encodings).
        seq.cachedTokens = Math.min(got.cachedLength, got.chunks?.cachedTokens ?? got.cachedLength);
        const computed = got.cachedLength - seq.cachedTokens;
        this.counters.cachedTokens += seq.cachedTokens;
        seq.prefillTokens += computed;
        this.counters.prefilledTokens += computed;
        seq.tStart = this.now();
      }
      this.active.push(seq);
    }
  }

  private async plan(topRank: number): Promise<PlannedBatch[]> {
    const plan: PlannedBatch[] = [];
    const runnable = this.active.filter((s) => s.rank === topRank && !s.cancelRequested).sort((a, b) => a.order - b.order);
    // All decodes of the running class...
    for (const seq of runnable) this.busy.add(seq);
    for (const seq of runnable) {
      if (seq.remaining !== 1) continue;
      const draft = this.draftFor(seq);
      const inputs = [seq.tokens[seq.nPast], ...draft];
      let fresh: Int32Array;
      try {
        fresh = await this.kv.append(seq.kvSeq!, inputs);
      } catch (err) {
        if (err instanceof OutOfMemoryError) continue;
        throw err;
      }
      for (let i = 0; i < fresh.length; i++) seq.slots.push(fresh[i]);
      plan.push({ seq, n: 1, draft, reachesEnd: true });
    }
    // ...plus one prefill chunk (slots were allocated at admission), oldest request first.
    const prefill = runnable.find((s) => s.remaining > 1);
    if (prefill) {
      const n = Math.min(this.prefillChunk, prefill.remaining);
      plan.push({ seq: prefill, n, draft: [], reachesEnd: n === prefill.remaining });
    }
    return plan;
  }

  private draftFor(seq: Sequence): number[] {
    const sp = seq.speculative;
    if (!sp) return [];
    const room = Math.min(
      seq.maxTokens - seq.generated.length - 1,
      this.contextLength - seq.tokens.length - 1,
      sp.maxDraft ?? 4,
    );
    if (room <= 0) return [];
    return draftNgram(seq.tokens, sp.extraTokens ?? [], { ngram: sp.ngram ?? 3, maxDraft: room });
  }

  private toBatch(p: PlannedBatch): SequenceBatch {
    const { seq, n, draft } = p;
    const nPast = seq.nPast;
    const total = n + draft.length;
    const tokens = new Int32Array(total);
    const positions = new Int32Array(total);
    for (let i = 0; i < n; i++) tokens[i] = seq.tokens[nPast + i];
    for (let i = 0; i < draft.length; i++) tokens[n + i] = draft[i];
    for (let i = 0; i < total; i++) positions[i] = nPast + i;
    const context = Int32Array.from(seq.slots.slice(0, nPast + total));
    const logits = !p.reachesEnd ? 'none' : draft.length > 0 ? 'all' : 'last';
    return { tokens, positions, context, logits };
  }

  /** Takes one step's logits for a sequence: advance prefill, or sample/verify new tokens. */
  private apply(p: PlannedBatch, logits: Float32Array, vocab: number): void {
    const { seq, n, draft } = p;
    if (seq.finished) return;
    const inPrompt = Math.max(0, Math.min(n, seq.promptLength - seq.nPast));
    seq.prefillTokens += inPrompt;
    this.counters.prefilledTokens += inPrompt;
    if (!p.reachesEnd) {
      seq.nPast += n;
      return;
    }
    // Row r predicts the token after input r; inputs are [the pending token, ...draft].
    let kept = 0;
    const rows = draft.length + 1;
    for (let r = 0; r < rows; r++) {
      const row = rows === 1 ? logits.subarray(0, vocab) : logits.subarray(r * vocab, (r + 1) * vocab);
      const token = seq.sampler.sample(row, seq.tokens);
      kept = r + 1;
      this.acceptToken(seq, token);
      if (seq.finished || r === draft.length || token !== draft[r]) break;
      seq.accepted++;
      this.spec.accepted++;
    }
    if (draft.length > 0) {
      seq.drafted += draft.length;
      this.spec.drafted += draft.length;
      this.spec.steps++;
    }
    // Inputs [0, n-1+kept) now have valid KV (the last sampled token stays pending); drop the rest.
    seq.nPast += n - 1 + kept;
    this.dropUncomputed(seq);
    if (seq.finished) this.release(seq, true);
  }

  private acceptToken(seq: Sequence, token: number): void {
    const t = this.now();
    if (seq.tFirst < 0) {
      seq.tFirst = t;
      this.recordTtft(t - seq.tReceived);
    }
    seq.tLast = t;
    if (this.tokenizer.isEog(token) || seq.req.isStopToken?.(token)) { this.markFinished(seq, 'eog'); return; }
    seq.tokens.push(token);
    seq.generated.push(token);
    seq.outIds.push(token);
    this.counters.generatedTokens++;
    seq.outText += seq.stop.push(seq.decoder.push(token));
    if (seq.stop.stopped !== undefined) this.markFinished(seq, 'stop');
    else if (seq.generated.length >= seq.maxTokens) this.markFinished(seq, 'length');
    else if (seq.tokens.length >= this.contextLength) this.markFinished(seq, 'length');
  }

  private finishReasons = new Map<Sequence, FinishReason>();

  /** Marks a sequence done during apply(); its KV is released after its slots are settled. */
  private markFinished(seq: Sequence, reason: FinishReason): void {
    seq.finished = true;
    this.finishReasons.set(seq, reason);
  }

  private flushOutput(seq: Sequence): void {
    const reason = this.finishReasons.get(seq);
    if (reason !== undefined) {
      this.finishReasons.delete(seq);
      this.complete(seq, reason);
      return;
    }
    if (seq.outText.length > 0 || seq.outIds.length > 0) {
      seq.onChunk?.({ text: seq.outText, tokenIds: seq.outIds, done: false });
      seq.outText = '';
      seq.outIds = [];
    }
  }

  /** Ends a sequence from outside a step (cancel, deadline). */
  private finish(seq: Sequence, reason: FinishReason): void {
    if (seq.finished && !this.finishReasons.has(seq)) return;
    seq.finished = true;
    this.release(seq, true);
    this.complete(seq, reason);
  }

  /** Returns the sequence's KV to the store (keep: as a reusable prefix) and forgets it. */
  private release(seq: Sequence, keep: boolean): void {
    const qi = this.queued.indexOf(seq);
    if (qi >= 0) this.queued.splice(qi, 1);
    const ai = this.active.indexOf(seq);
    if (ai >= 0) this.active.splice(ai, 1);
    this.releaseKv(seq, keep);
  }

  private releaseKv(seq: Sequence, keep: boolean): void {
    if (seq.kvSeq === undefined) return;
    this.dropUncomputed(seq);
    this.kv.release(seq.kvSeq, keep);
    seq.kvSeq = undefined;
    seq.slots = [];
    seq.nPast = 0;
  }

  /** Gives back cells allocated but not computed (prompt tail not yet prefilled, rejected drafts). */
  private dropUncomputed(seq: Sequence): void {
    if (seq.kvSeq === undefined || seq.slots.length <= seq.nPast) return;
    this.kv.truncate(seq.kvSeq, seq.nPast);
    seq.slots.length = seq.nPast;
  }

  private complete(seq: Sequence, reason: FinishReason): void {
    this.byId.delete(seq.req.id);
    if (reason !== 'stop') seq.outText += seq.stop.push(seq.decoder.flush()) + seq.stop.flush();
    const timings = this.timings(seq);
    if (reason === 'cancelled') this.counters.cancelled++;
    else if (reason === 'deadline') this.counters.deadline++;
    else if (reason === 'error') this.counters.failed++;
    else this.counters.completed++;
    if (seq.tFirst >= 0) this.lastTokensPerSecond = timings.tokensPerSecond;
    seq.onChunk?.({ text: seq.outText, tokenIds: seq.outIds, done: true, finishReason: reason, timings });
    seq.resolve({ id: seq.req.id, text: seq.stop.output, tokenIds: seq.generated.slice(), finishReason: reason, timings });
  }

  private fail(seq: Sequence, err: unknown): void {
    if (seq.finished && !this.finishReasons.has(seq)) return;
    seq.finished = true;
    this.finishReasons.delete(seq);
    this.byId.delete(seq.req.id);
    this.release(seq, false);
    this.counters.failed++;
    seq.reject(err);
  }

  private timings(seq: Sequence): Timings {
    const end = this.now();
    const decodeMs = seq.tLast - seq.tFirst;
    const t: Timings = {
      ttftMs: seq.tFirst >= 0 ? seq.tFirst - seq.tReceived : -1,
      tokensPerSecond: seq.generated.length > 1 && decodeMs > 0 ? ((seq.generated.length - 1) * 1000) / decodeMs : 0,
      promptTokens: seq.promptLength,
      prefillTokens: seq.prefillTokens,
      cachedTokens: seq.cachedTokens,
      generatedTokens: seq.generated.length,
      totalMs: end - seq.tReceived,
      queueMs: seq.tStart >= 0 ? seq.tStart - seq.tReceived : end - seq.tReceived,
    };
    if (seq.speculative) {
      t.draftTokens = seq.drafted;
      t.acceptedDraftTokens = seq.accepted;
    }
    return t;
  }

  private recordTtft(ms: number): void {
    this.lastTtftMs = ms;
    this.ttft.push(ms);
    if (this.ttft.length > 1024) this.ttft.shift();
  }

  /**
   * Nothing could run: the best class waits for KV memory. Push the worst, youngest running
   * sequence out (its computed prefix stays in the cache, it resumes later) or, when it is alone,
   * fail it: it can never fit.
   */
  private relieveMemory(topRank: number): void {
    const victim = [...this.active].sort((a, b) => b.rank - a.rank || b.order - a.order)[0];
    if (!victim) return;
    if (this.active.length > 1 || victim.rank > topRank) {
      this.releaseKv(victim, true);
      this.active.splice(this.active.indexOf(victim), 1);
      victim.preempted = true;
      this.queued.push(victim);
      this.counters.preempted++;
      return;
    }
    this.fail(victim, new OutOfMemoryError(
      `KV cache too small for request ${victim.req.id} (${victim.tokens.length} tokens)`,
      'Raise the KV budget, lower the context length, or send fewer concurrent requests.',
    ));
  }

  /** The backend failed mid-run: switch to a replacement and recompute every sequence's KV. */
  private async failover(err: unknown): Promise<void> {
    const next = this.recoverBackend ? await this.recoverBackend(err, this.backend) : undefined;
    if (!next) throw err;
    this.backend = next;
    // KV contents lived in the old backend: drop them all; sequences re-prefill from their tokens.
    for (const seq of [...this.active]) {
      this.releaseKv(seq, false);
      this.queued.push(seq);
    }
    this.active.length = 0;
    this.kv.clear();
  }
}
