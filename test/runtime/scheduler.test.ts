import { describe, expect, it } from 'vitest';
import { OutOfMemoryError } from '../../engine/errors';
import type { KvStore } from '../../engine/runtime/kv-store';
import { Scheduler, type SchedulerOptions, type StreamChunk } from '../../engine/runtime/scheduler';
import { expectedContinuation, FakeBackend, fakeTokenizer, makeStore, PAGE, range, type StoreKind } from './fakes';

const text = (ids: number[]) => fakeTokenizer.decode(ids);

describe.each<StoreKind>(['simple', 'paged'])('Scheduler over the %s KV store', (kind) => {
  const align = (n: number) => (kind === 'simple' ? n : Math.floor(n / PAGE) * PAGE);
  function setup(opts: Partial<SchedulerOptions> & { slots?: number } = {}) {
    const slots = opts.slots ?? 4096;
    const backend = (opts.backend as FakeBackend | undefined) ?? new FakeBackend(slots);
    const kv = opts.kv ?? makeStore(kind, backend, slots);
    const scheduler = new Scheduler({ contextLength: 2048, prefillChunk: 64, tokenizer: fakeTokenizer, ...opts, backend, kv });
    return { backend, kv, scheduler };
  }

  it('generates the model\'s greedy continuation and streams it in order', async () => {
    const { scheduler, kv } = setup();
    const prompt = [3, 9, 4, 1, 7];
    const chunks: StreamChunk[] = [];
    const result = await scheduler.submit({ id: 'a', prompt, maxTokens: 20 }, (c) => chunks.push(c));
    const expected = expectedContinuation(prompt, 20);
    expect(result.tokenIds).toEqual(expected);
    expect(result.finishReason).toBe('length');
    expect(result.text).toBe(text(expected));
    expect(chunks.map((c) => c.text).join('')).toBe(text(expected));
    expect(chunks.flatMap((c) => c.tokenIds)).toEqual(expected);
    expect(chunks.at(-1)!.done).toBe(true);
    expect(chunks.filter((c) => c.done)).toHaveLength(1);
    expect(result.timings.promptTokens).toBe(5);
    expect(result.timings.prefillTokens).toBe(5);
    expect(result.timings.generatedTokens).toBe(20);
    expect(kv.stats()).toMatchObject({ used: 0, sequences: 0 });
    // Prompt + 19 generated tokens have KV (the last sampled one was never fed back).
    expect(kv.stats().cached).toBe(align(5 + 19));
  });

  it('prefills a long prompt in chunks and stops at end-of-generation', async () => {
    const { scheduler, backend } = setup();
    backend.eogAfter = 210;
    const prompt = range(5, 200);
    const result = await scheduler.submit({ id: 'a', prompt, maxTokens: 50 });
    expect(result.finishReason).toBe('eog');
    expect(result.tokenIds).toEqual(expectedContinuation(prompt, 50, 210));
    expect(result.tokenIds).toHaveLength(10);
    const prefillCalls = backend.calls.filter((c) => c.batches[0].tokens.length > 1);
    expect(prefillCalls.map((c) => c.batches[0].tokens.length)).toEqual([64, 64, 64, 8]);
    expect(prefillCalls.map((c) => c.batches[0].logits)).toEqual(['none', 'none', 'none', 'last']);
  });

  it('reuses the cached prefix and prefills only the new suffix', async () => {
    const { scheduler, backend } = setup();
    const shared = range(1, 150);
    const first = await scheduler.submit({ id: 'a', prompt: [...shared, 7, 7], maxTokens: 4 });
    expect(first.timings.cachedTokens).toBe(0);
    const callsBefore = backend.calls.length;
    const prompt2 = [...shared, 30, 31, 32];
    const second = await scheduler.submit({ id: 'b', prompt: prompt2, maxTokens: 6 });
    expect(second.timings.cachedTokens).toBe(align(150));
    expect(second.timings.prefillTokens).toBe(153 - align(150));
    expect(second.tokenIds).toEqual(expectedContinuation(prompt2, 6));
    const prefill = backend.calls[callsBefore].batches[0];
    expect(prefill.tokens).toEqual(prompt2.slice(align(150)));
    expect(prefill.nPast).toBe(align(150));
    // An identical prompt still computes its last token (its logits give the first new token).
    const third = await scheduler.submit({ id: 'c', prompt: prompt2, maxTokens: 2 });
    expect(third.timings.cachedTokens).toBe(align(prompt2.length - 1));
    expect(third.tokenIds).toEqual(expectedContinuation(prompt2, 2));
  });

  it('runs a completion arriving during a long background prefill after at most one chunk', async () => {
    const { scheduler, backend } = setup();
    const longPrompt = range(2, 1000);
    const completionPrompt = [20, 21, 22, 23, 5];
    let completion: Promise<unknown> | undefined;
    backend.onForward = (i) => {
      if (i === 2) completion = scheduler.submit({ id: 'fim', prompt: completionPrompt, maxTokens: 5, priority: 'interactive' });
    };
    const background = scheduler.submit({ id: 'warm', prompt: longPrompt, maxTokens: 3, priority: 'background' });
    const bg = await background;
    const fim = (await completion) as { tokenIds: number[]; timings: { ttftMs: number } };
    // Calls 0-2 are background chunks; the completion's prefill is the very next call, and its
    // whole generation finishes before the background prefill resumes.
    expect(backend.calls[3].batches.map((b) => b.tokens)).toEqual([completionPrompt]);
    for (let i = 4; i < 8; i++) expect(backend.calls[i].batches).toHaveLength(1);
    expect(backend.calls[7].batches[0].tokens).toEqual([expectedContinuation(completionPrompt, 5)[3]]);
    expect(backend.calls[8].batches[0].tokens).toEqual(longPrompt.slice(192, 256));
    expect(fim.tokenIds).toEqual(expectedContinuation(completionPrompt, 5));
    expect(bg.tokenIds).toEqual(expectedContinuation(longPrompt, 3));
  });

  it('batches concurrent decodes of the same class into one forward call', async () => {
    const { scheduler, backend } = setup();
    const p1 = [1, 2, 3];
    const p2 = [9, 9, 2, 30];
    const [r1, r2] = await Promise.all([
      scheduler.submit({ id: 'a', prompt: p1, maxTokens: 8, priority: 'chat' }),
      scheduler.submit({ id: 'b', prompt: p2, maxTokens: 8, priority: 'chat' }),
    ]);
    expect(r1.tokenIds).toEqual(expectedContinuation(p1, 8));
    expect(r2.tokenIds).toEqual(expectedContinuation(p2, 8));
    // After both prefills, each step carries both sequences' decode.
    const both = backend.calls.filter((c) => c.batches.length === 2 && c.batches.every((b) => b.tokens.length === 1));
    expect(both.length).toBeGreaterThanOrEqual(6);
  });

  it('cancellation ends the stream after the running step and frees the KV at once', async () => {
    const { scheduler, backend, kv } = setup();
    let usedAfterCancel = -1;
    let cancelAt = -1;
    backend.onForward = (i) => {
      if (i === 5) { cancelAt = i; scheduler.cancel('long'); }
    };
    const chunks: StreamChunk[] = [];
    const r = await scheduler.submit({ id: 'long', prompt: [4, 5, 6], maxTokens: 500 }, (c) => chunks.push(c));
    usedAfterCancel = kv.stats().used;
    expect(r.finishReason).toBe('cancelled');
    expect(backend.calls.length).toBe(cancelAt + 1);
    expect(usedAfterCancel).toBe(0);
    expect(kv.stats().free + kv.stats().cached).toBe(kv.totalSlots);
    expect(r.tokenIds).toEqual(expectedContinuation([4, 5, 6], r.tokenIds.length));
    expect(chunks.at(-1)).toMatchObject({ done: true, finishReason: 'cancelled' });
  });

  it('cancels a queued request without running it, and honours an AbortSignal', async () => {
    const { scheduler, backend, kv } = setup();
    const ac = new AbortController();
    backend.onForward = (i) => { if (i === 1) ac.abort(); };
    const a = scheduler.submit({ id: 'a', prompt: [1, 2], maxTokens: 50, signal: ac.signal });
    const b = scheduler.submit({ id: 'b', prompt: [7, 8], maxTokens: 3, priority: 'background' });
    expect(scheduler.cancel('b')).toBe(true);
    const [ra, rb] = await Promise.all([a, b]);
    expect(rb.finishReason).toBe('cancelled');
    expect(rb.tokenIds).toEqual([]);
    expect(backend.calls.every((c) => c.batches.every((x) => x.tokens[0] !== 7))).toBe(true);
    expect(ra.finishReason).toBe('cancelled');
    expect(backend.calls).toHaveLength(2);
    expect(kv.stats().used).toBe(0);
    expect(scheduler.cancel('a')).toBe(false);
  });

  it('a cancel that lands while the request is being admitted does not disturb the queue', async () => {
    const backend = new FakeBackend(4096);
    const inner = makeStore(kind, backend, 4096);
    let scheduler!: Scheduler;
    const kv: KvStore = {
      totalSlots: inner.totalSlots,
      acquire: async (tokens) => {
        await new Promise((r) => setImmediate(r)); // a message (the cancel) arrives here
        if (tokens[0] === 1) scheduler.cancel('a');
        return inner.acquire(tokens);
      },
      append: (seq, tokens) => inner.append(seq, tokens),
      truncate: (seq, length) => inner.truncate(seq, length),
      release: (seq, keep) => inner.release(seq, keep),
      clear: () => inner.clear(),
      stats: () => inner.stats(),
    };
    scheduler = setup({ backend, kv }).scheduler;
    const a = scheduler.submit({ id: 'a', prompt: [1, 2, 3], maxTokens: 5 });
    const b = scheduler.submit({ id: 'b', prompt: [5, 6, 7], maxTokens: 5 });
    const [ra, rb] = await Promise.all([a, b]);
    expect(ra.finishReason).toBe('cancelled');
    expect(rb.tokenIds).toEqual(expectedContinuation([5, 6, 7], 5));
    expect(backend.calls.every((c) => c.batches.every((x) => x.tokens[0] !== 1))).toBe(true);
    expect(inner.stats()).toMatchObject({ used: 0, sequences: 0 });
    // Alone: the cancelled request ends as cancelled (not as a KV failure) and nothing runs.
    const callsBefore = backend.calls.length;
    const alone = await scheduler.submit({ id: 'a', prompt: [1, 9, 9], maxTokens: 5 });
    expect(alone.finishReason).toBe('cancelled');
    expect(backend.calls.length).toBe(callsBefore);
    expect(inner.stats()).toMatchObject({ used: 0, sequences: 0 });
  });

  it('returns the partial output when the deadline passes', async () => {
    let clock = 0;
    const backend = new FakeBackend(4096);
    backend.onForward = () => { clock += 10; };
    const { scheduler, kv } = setup({ backend, now: () => clock });
    const prompt = [11, 12, 13];
    const r = await scheduler.submit({ id: 'd', prompt, maxTokens: 100, deadlineMs: 55 });
    expect(r.finishReason).toBe('deadline');
    // Steps end at t=10,20,...,60: six forward calls, the first the prefill.
    expect(backend.calls).toHaveLength(6);
    expect(r.tokenIds).toEqual(expectedContinuation(prompt, 6));
    expect(r.text).toBe(text(r.tokenIds));
    expect(kv.stats().used).toBe(0);
  });

  it('stops before a stop string and never emits part of it', async () => {
    const { scheduler } = setup();
    const prompt = [1, 2, 3];
    const full = text(expectedContinuation(prompt, 30));
    const stop = full.slice(10, 13);
    const chunks: StreamChunk[] = [];
    const r = await scheduler.submit({ id: 's', prompt, maxTokens: 30, stop: [stop, 'zzz'] }, (c) => chunks.push(c));
    expect(r.finishReason).toBe('stop');
    expect(r.text).toBe(full.slice(0, full.indexOf(stop)));
    expect(chunks.map((c) => c.text).join('')).toBe(r.text);
  });

  it('prefers interactive over chat over background when all are queued', async () => {
    const { scheduler, backend } = setup();
    backend.onForward = (i) => {
      if (i === 0) {
        void scheduler.submit({ id: 'bg', prompt: [30, 30, 30], maxTokens: 1, priority: 'background' });
        void scheduler.submit({ id: 'chat', prompt: [20, 20, 20], maxTokens: 1, priority: 'chat' });
        void scheduler.submit({ id: 'fim', prompt: [10, 10, 10], maxTokens: 1, priority: 'interactive' });
      }
    };
    await scheduler.submit({ id: 'first', prompt: [1, 1], maxTokens: 1, priority: 'background' });
    await scheduler.idle();
    expect(backend.calls.map((c) => c.batches[0].tokens[0])).toEqual([1, 10, 20, 30]);
  });

  it('continues on a replacement backend when the backend fails mid-run', async () => {
    const failing = new FakeBackend(4096);
    failing.failOnCall = 4;
    const replacement = new FakeBackend(4096);
    const errors: unknown[] = [];
    const { scheduler, kv } = setup({
      backend: failing,
      recoverBackend: async (err) => { errors.push(err); return replacement; },
    });
    const prompt = range(3, 100);
    const r = await scheduler.submit({ id: 'x', prompt, maxTokens: 12 });
    expect(errors).toHaveLength(1);
    expect(r.tokenIds).toEqual(expectedContinuation(prompt, 12));
    expect(scheduler.currentBackend).toBe(replacement);
    // The replacement recomputed the prompt and the tokens generated before the failure.
    expect(replacement.calls[0].batches[0].nPast).toBe(0);
    expect(kv.stats().used).toBe(0);
  });

  it('fails the requests when the backend fails and nothing replaces it', async () => {
    const failing = new FakeBackend(4096);
    failing.failOnCall = 1;
    const { scheduler, kv } = setup({ backend: failing });
    await expect(scheduler.submit({ id: 'x', prompt: range(1, 100), maxTokens: 5 })).rejects.toThrow('device lost');
    expect(kv.stats()).toMatchObject({ used: 0, free: 4096, sequences: 0 });
  });

  it('rejects prompts longer than the context and fails a request that can never fit the KV', async () => {
    const { scheduler } = setup({ slots: 64 });
    await expect(scheduler.submit({ id: 'big', prompt: range(1, 3000) })).rejects.toThrow(/context length/);
    await expect(scheduler.submit({ id: 'oom', prompt: range(1, 100), maxTokens: 2 })).rejects.toBeInstanceOf(OutOfMemoryError);
    const ok = await scheduler.submit({ id: 'ok', prompt: range(1, 30), maxTokens: 2 });
    expect(ok.tokenIds).toEqual(expectedContinuation(range(1, 30), 2));
  });

  it('pushes a sequence out of memory when two do not fit together, and both still finish correctly', async () => {
    const { scheduler, kv } = setup({ slots: 96 });
    const p1 = range(1, 20);
    const p2 = range(9, 20);
    const [r1, r2] = await Promise.all([
      scheduler.submit({ id: 'a', prompt: p1, maxTokens: 40, priority: 'chat' }),
      scheduler.submit({ id: 'b', prompt: p2, maxTokens: 40, priority: 'chat' }),
    ]);
    expect(r1.tokenIds).toEqual(expectedContinuation(p1, 40));
    expect(r2.tokenIds).toEqual(expectedContinuation(p2, 40));
    expect(scheduler.stats().preempted).toBeGreaterThan(0);
    expect(kv.stats()).toMatchObject({ used: 0, sequences: 0 });
  });

  it('ends with finishReason length at the context limit', async () => {
    const { scheduler } = setup({ contextLength: 20 });
    const r = await scheduler.submit({ id: 'c', prompt: range(1, 15), maxTokens: 100 });
    expect(r.finishReason).toBe('length');
    expect(r.tokenIds).toHaveLength(5);
  });
});
