// The request logic behind the inline completion provider, without vscode (vitest drives it with
// a scripted engine). One engine request is in flight at a time:
//   cache hit (type-through)       -> answer at once, no engine work;
//   the in-flight request's text continues what the user typed -> join it (no restart);
//   otherwise                      -> cancel it, debounce, start a new one.
// The answer resolves as soon as the first line is ready; the rest keeps streaming into the cache
// and `full` resolves when it is done, so the caller can re-show the longer completion.
// While a request streams, its complete lines so far sit in the cache as a partial entry, so a
// keystroke that continues them is answered at once (its `full` follows the request). A partial
// entry left by a cancelled request is shown at once too, and the rest is asked for again
// (debounced, like a miss).
// Stop rules (postprocess) run on every chunk and cancel generation once the text is final.

import type { FimInput, FinishReason, Timings } from '../../engine/protocol';
import { CompletionCache, KEY_CHARS, type CacheKey } from './completion-cache';
import { isMidLine, postprocess, readyLines, type PostprocessContext } from './postprocess';

/** What the session needs from the engine: one streaming FIM request that can be cancelled. */
export interface CompletionBackend {
  start(
    input: FimInput,
    opts: { maxTokens: number; stop?: string[] },
    sink: {
      onText(text: string): void;
      onDone(reason: FinishReason, timings?: Timings): void;
      onError(err: Error): void;
    },
  ): { cancel(): void };
}

/** The cancellation side of vscode.CancellationToken (structurally compatible). */
export interface CancelToken {
  readonly isCancellationRequested: boolean;
  onCancellationRequested(listener: () => void): { dispose(): void };
}

export interface SessionOptions {
  debounceMs: number;
  maxTokens: number;
  /** Resolve with the first line before the rest is generated. */
  streamFirstLine: boolean;
  /** How long a request whose caller went away may live waiting to be joined. */
  orphanGraceMs?: number;
}

export interface CompletionQuery extends CacheKey {
  fim: FimInput;
  post: PostprocessContext;
}

export interface SessionAnswer {
  text: string;
  source: 'cache' | 'joined' | 'engine';
  /** Resolves with the whole completion (from the cursor of this query) once generation ends. */
  full: Promise<string>;
}

export type SessionEvent =
  /** promptChars: text around the cursor and given chunks; contextFiles: chunks + candidate files sent. */
  | { kind: 'start'; offset: number; promptChars: number; contextFiles: number }
  | { kind: 'end'; reason: FinishReason; timings?: Timings; text: string }
  /** partial: served from the text so far of a request that had not finished (streaming or cancelled). */
  | { kind: 'cache-hit'; typed: number; partial: boolean }
  | { kind: 'joined'; typed: number }
  | { kind: 'cancel' };

interface Pending {
  doc: string;
  offset: number;
  prefixTail: string;
  suffixHead: string;
  key: CacheKey;
  post: PostprocessContext;
  raw: string;
  text: string;
  /** The complete lines last stored in the cache as a partial entry. */
  cachedLines?: string;
  done: boolean;
  cancelled?: boolean;
  error?: Error;
  handle?: { cancel(): void };
  listeners: Set<() => void>;
  orphanTimer?: ReturnType<typeof setTimeout>;
  waiters: number;
}

export class CompletionSession {
  readonly cache = new CompletionCache(200);
  private pending: Pending | undefined;
  /** Cancels the background request of the last answer served from a dead partial entry. */
  private refill: { cancel(): void } | undefined;
  private listeners = new Set<(e: SessionEvent) => void>();

  constructor(
    private backend: CompletionBackend,
    private opts: SessionOptions,
  ) {}

  setOptions(opts: Partial<SessionOptions>): void {
    this.opts = { ...this.opts, ...opts };
  }

  setBackend(backend: CompletionBackend): void {
    this.cancelPending();
    this.backend = backend;
  }

  onEvent(listener: (e: SessionEvent) => void): { dispose(): void } {
    this.listeners.add(listener);
    return { dispose: () => this.listeners.delete(listener) };
  }

  /** Answer for the cursor described by `q`, or undefined (cancelled, nothing to suggest). */
  async complete(q: CompletionQuery, token: CancelToken): Promise<SessionAnswer | undefined> {
    this.refill?.cancel();
    this.refill = undefined;
    const hit = this.cache.get(q, { partial: this.opts.streamFirstLine });
    if (hit) {
      this.emit({ kind: 'cache-hit', typed: hit.typed, partial: hit.partial });
      if (!hit.partial) return { text: hit.text, source: 'cache', full: Promise.resolve(hit.text) };
      const typedText = q.prefix.slice(q.prefix.length - hit.typed);
      const p = hit.tag as Pending | undefined;
      if (p && p === this.pending && !p.done) {
        // Still streaming: it is in use again, so it must not be dropped as an orphan.
        if (p.orphanTimer) clearTimeout(p.orphanTimer);
        p.orphanTimer = undefined;
        return { text: hit.text, source: 'cache', full: this.fullText(p, typedText) };
      }
      return { text: hit.text, source: 'cache', full: this.fetchRest(q) };
    }

    const joined = this.tryJoin(q);
    if (joined) return this.await(joined.p, joined.typedText, 'joined', token);
    this.cancelPending();

    if (this.opts.debounceMs > 0) {
      const ok = await delay(this.opts.debounceMs, token);
      if (!ok) return undefined;
    }
    if (token.isCancellationRequested) return undefined;
    // Another query may have started one meanwhile; it is for an older cursor, so replace it.
    this.cancelPending();
    const p = this.startRequest(q);
    return this.await(p, '', 'engine', token);
  }

  /** Cancel the in-flight engine request, if any. */
  cancelPending(): void {
    const p = this.pending;
    if (!p) return;
    this.pending = undefined;
    if (p.orphanTimer) clearTimeout(p.orphanTimer);
    if (!p.done) {
      p.handle?.cancel();
      p.done = true;
      p.cancelled = true;
      this.emit({ kind: 'cancel' });
      for (const l of p.listeners) l();
    }
  }

  dispose(): void {
    this.refill?.cancel();
    this.cancelPending();
    this.listeners.clear();
  }

  get inFlight(): boolean {
    return this.pending !== undefined && !this.pending.done;
  }

  private emit(e: SessionEvent): void {
    for (const l of this.listeners) l(e);
  }

  private tryJoin(q: CompletionQuery): { p: Pending; typedText: string } | undefined {
    const p = this.pending;
    if (!p || p.done || p.error || p.doc !== q.doc) return undefined;
    const typed = q.offset - p.offset;
    if (typed < 0) return undefined;
    if (q.suffix.slice(0, KEY_CHARS) !== p.suffixHead) return undefined;
    const typedText = q.prefix.slice(q.prefix.length - typed);
    if (!q.prefix.endsWith(p.prefixTail + typedText)) return undefined;
    // Join only when the stream already contains what was typed: a request that has not got
    // that far may well diverge, and its answer would not fit the cursor. Restarting is cheap
    // because the engine's prefix cache keeps the shared prompt.
    if (!p.text.startsWith(typedText)) return undefined;
    this.emit({ kind: 'joined', typed });
    return { p, typedText };
  }

  private startRequest(q: CompletionQuery): Pending {
    const p: Pending = {
      doc: q.doc,
      offset: q.offset,
      prefixTail: q.prefix.slice(-KEY_CHARS),
      suffixHead: q.suffix.slice(0, KEY_CHARS),
      key: { doc: q.doc, offset: q.offset, prefix: q.prefix, suffix: q.suffix },
      post: q.post,
      raw: '',
      text: '',
      done: false,
      listeners: new Set(),
      waiters: 0,
    };
    this.pending = p;
    const chunks = q.fim.chunks ?? [];
    const contextFiles = chunks.length + (q.fim.repoContext?.candidates.length ?? 0);
    this.emit({ kind: 'start', offset: q.offset, promptChars: q.prefix.length + q.suffix.length + chunks.reduce((n, c) => n + c.text.length, 0), contextFiles });
    const notify = () => {
      for (const l of p.listeners) l();
    };
    const finish = (reason: FinishReason, timings?: Timings) => {
      if (p.done) return;
      p.done = true;
      const final = postprocess(p.raw, p.post, true);
      p.text = final.text;
      // Replaces the partial entry (an empty completion removes it).
      this.cache.put(p.key, p.text);
      if (p.orphanTimer) clearTimeout(p.orphanTimer);
      if (this.pending === p) this.pending = undefined;
      this.emit({ kind: 'end', reason, timings, text: p.text });
      notify();
    };
    // Mid-line completions are one line: let the engine stop at the newline itself.
    const stop = isMidLine(q.post) ? ['\n'] : undefined;
    try {
      p.handle = this.backend.start(q.fim, { maxTokens: this.opts.maxTokens, stop }, {
        onText: (t) => {
          if (p.done) return;
          p.raw += t;
          const r = postprocess(p.raw, p.post, false);
          p.text = r.text;
          if (r.stop) {
            p.handle?.cancel();
            finish('stop');
            return;
          }
          const lines = this.opts.streamFirstLine ? readyLines(p.text) : undefined;
          if (lines !== undefined && lines !== p.cachedLines) {
            p.cachedLines = lines;
            this.cache.put(p.key, lines, { partial: true, tag: p });
          }
          notify();
        },
        onDone: (reason, timings) => finish(reason, timings),
        onError: (err) => {
          if (p.done) return;
          p.error = err;
          p.done = true;
          if (p.cachedLines !== undefined) this.cache.delete(p.key);
          if (this.pending === p) this.pending = undefined;
          this.emit({ kind: 'end', reason: 'error', text: '' });
          notify();
        },
      });
    } catch (err) {
      p.error = err instanceof Error ? err : new Error(String(err));
      p.done = true;
      this.pending = undefined;
    }
    return p;
  }

  /** Wait until `p` has something to show for a cursor that is `typedText` ahead of its own. */
  private await(p: Pending, typedText: string, source: 'joined' | 'engine', token: CancelToken): Promise<SessionAnswer | undefined> {
    const typed = typedText.length;
    const full = this.fullText(p, typedText);

    return new Promise<SessionAnswer | undefined>((resolve, reject) => {
      p.waiters++;
      if (p.orphanTimer) {
        clearTimeout(p.orphanTimer);
        p.orphanTimer = undefined;
      }
      let settled = false;
      const settle = (v: SessionAnswer | undefined, err?: Error) => {
        if (settled) return;
        settled = true;
        p.listeners.delete(check);
        sub.dispose();
        p.waiters--;
        if (err) reject(err);
        else resolve(v);
      };
      const check = () => {
        if (p.error) return settle(undefined, p.error);
        if (p.cancelled) return settle(undefined);
        const ready = p.done ? p.text : this.opts.streamFirstLine ? readyLines(p.text) : undefined;
        // Not ready, or the user already typed past the ready part: wait for more.
        if (ready === undefined || (!p.done && ready.length <= typed)) return;
        // Stop rules may trim the final text; it must still continue what was typed.
        if (!ready.startsWith(typedText)) return settle(undefined);
        const rest = ready.slice(typed);
        settle(rest.length > 0 ? { text: rest, source, full } : undefined);
      };
      const sub = token.onCancellationRequested(() => {
        settle(undefined);
        this.orphan(p);
      });
      if (token.isCancellationRequested) {
        settle(undefined);
        this.orphan(p);
        return;
      }
      p.listeners.add(check);
      check();
    });
  }

  /** Resolves with `p`'s whole completion from a cursor `typedText` ahead ('' if it failed). */
  private fullText(p: Pending, typedText: string): Promise<string> {
    return new Promise<string>((resolve) => {
      const check = () => {
        if (!p.done) return false;
        p.listeners.delete(check);
        resolve(p.error || p.cancelled || !p.text.startsWith(typedText) ? '' : p.text.slice(typedText.length));
        return true;
      };
      if (!check()) p.listeners.add(check);
    });
  }

  /**
   * After an answer from a cancelled request's partial entry: ask for the whole completion as a
   * miss would (debounced; the next query cancels the wait). Resolves with it, or '' if dropped.
   */
  private fetchRest(q: CompletionQuery): Promise<string> {
    let cancelled = false;
    const ls = new Set<() => void>();
    const token: CancelToken = {
      get isCancellationRequested() {
        return cancelled;
      },
      onCancellationRequested(l) {
        ls.add(l);
        return { dispose: () => ls.delete(l) };
      },
    };
    const refill = {
      cancel() {
        if (cancelled) return;
        cancelled = true;
        for (const l of [...ls]) l();
      },
    };
    this.refill = refill;
    return (async () => {
      if (!(await delay(this.opts.debounceMs, token))) return '';
      if (this.refill === refill) this.refill = undefined;
      this.cancelPending();
      const p = this.startRequest(q);
      return this.fullText(p, '');
    })();
  }

  /** The caller went away: keep the request briefly so the next keystroke can join it. */
  private orphan(p: Pending): void {
    if (p.done || p.waiters > 0 || p.orphanTimer) return;
    const grace = this.opts.orphanGraceMs ?? this.opts.debounceMs + 50;
    p.orphanTimer = setTimeout(() => {
      p.orphanTimer = undefined;
      if (this.pending === p && p.waiters === 0) this.cancelPending();
    }, grace);
  }
}

/** Resolves true after `ms`, or false as soon as `token` is cancelled. */
export function delay(ms: number, token: CancelToken): Promise<boolean> {
  return new Promise((resolve) => {
    if (token.isCancellationRequested) return resolve(false);
    const timer = setTimeout(() => {
      sub.dispose();
      resolve(true);
    }, ms);
    const sub = token.onCancellationRequested(() => {
      clearTimeout(timer);
      sub.dispose();
      resolve(false);
    });
  });
}
