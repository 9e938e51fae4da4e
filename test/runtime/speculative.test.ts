import { describe, expect, it } from 'vitest';
import { SimpleKvStore } from '../../engine/runtime/kv-store';
import { Scheduler } from '../../engine/runtime/scheduler';
import { draftNgram, simulateSpeculative } from '../../engine/runtime/speculative';
import { expectedContinuation, FAKE_EOG, FakeBackend, fakeTokenizer, makeStore, PAGE, range, type StoreKind } from './fakes';

describe('draftNgram', () => {
  it('copies what followed the latest earlier occurrence of the trailing n-gram', () => {
    const history = [1, 2, 3, 4, 5, 9, 9, 1, 2, 3, 7, 8, 6, 1, 2, 3];
    expect(draftNgram(history, [], { ngram: 3, maxDraft: 2 })).toEqual([7, 8]);
    expect(draftNgram(history, [], { ngram: 3, maxDraft: 10 })).toEqual([7, 8, 6, 1, 2, 3]);
  });

  it('falls back to shorter n-grams, then to extra sources, and returns nothing without a match', () => {
    expect(draftNgram([5, 6, 7, 1, 8, 7], [], { ngram: 3, maxDraft: 2 })).toEqual([1, 8]);
    expect(draftNgram([1, 2, 3], [[0, 2, 3, 40, 41, 42]], { ngram: 2, maxDraft: 2 })).toEqual([40, 41]);
    expect(draftNgram([1, 2, 3], [[9, 9]], { ngram: 2, maxDraft: 2 })).toEqual([]);
    expect(draftNgram([1, 2, 3], [], { ngram: 2, maxDraft: 0 })).toEqual([]);
    expect(draftNgram([1, 2, 3, 4], [[3, 4, 5]], { ngram: 2, maxDraft: 2, minNgram: 2 })).toEqual([5]);
  });
});

describe.each<StoreKind>(['simple', 'paged'])('speculative decoding in the scheduler (%s KV store)', (kind) => {
  const align = (n: number) => (kind === 'simple' ? n : Math.floor(n / PAGE) * PAGE);
  async function run(prompt: number[], maxTokens: number, speculative?: { maxDraft: number; ngram?: number; extraTokens?: number[][] }) {
    const backend = new FakeBackend(4096);
    const kv = makeStore(kind, backend, 4096);
    const scheduler = new Scheduler({ backend, kv, tokenizer: fakeTokenizer, contextLength: 2048, prefillChunk: 64 });
    const r = await scheduler.submit({ id: 's', prompt, maxTokens, speculative });
    return { r, backend, kv, stats: scheduler.stats() };
  }

  it('gives the same greedy output in fewer forward steps, and reports acceptance', async () => {
    // The prompt counts up, so the fake model's count-up continuations are found in it.
    const prompt = [...range(1, 120), 13, 14, 15];
    const plain = await run(prompt, 60);
    const spec = await run(prompt, 60, { maxDraft: 6 });
    expect(plain.r.tokenIds).toEqual(expectedContinuation(prompt, 60));
    expect(spec.r.tokenIds).toEqual(plain.r.tokenIds);
    expect(spec.r.text).toBe(plain.r.text);
    expect(spec.stats.speculative.drafted).toBeGreaterThan(0);
    expect(spec.stats.speculative.accepted).toBeGreaterThan(0);
    expect(spec.stats.speculative.accepted).toBeLessThanOrEqual(spec.stats.speculative.drafted);
    expect(spec.r.timings.acceptedDraftTokens).toBe(spec.stats.speculative.accepted);
    expect(spec.backend.calls.length).toBeLessThan(plain.backend.calls.length);
    // Verification asks for logits at every position.
    expect(spec.backend.calls.some((c) => c.batches[0].logits === 'all')).toBe(true);
    // Rejected drafts' slots went back: the store holds exactly the tokens with KV.
    expect(spec.kv.stats()).toMatchObject({ used: 0, sequences: 0 });
    expect(spec.kv.stats().cached).toBe(align(prompt.length + 59));
  });

  it('stays identical when drafts are mostly wrong, at the length limit and with extra sources', async () => {
    const prompt = [7, 30, 2, 30, 2, 30, 2, 11, 3];
    for (const maxTokens of [1, 2, 7, 40]) {
      const plain = await run(prompt, maxTokens);
      const spec = await run(prompt, maxTokens, { maxDraft: 5, ngram: 2, extraTokens: [range(10, 50)] });
      expect(spec.r.tokenIds).toEqual(plain.r.tokenIds);
      expect(spec.r.tokenIds).toHaveLength(maxTokens);
      expect(spec.kv.stats().cached).toBe(align(prompt.length + maxTokens - 1));
    }
  });

  it('measures exactly the acceptance that simulateSpeculative predicts from the plain output', async () => {
    const cases: { prompt: number[]; maxTokens: number; eogAfter?: number }[] = [
      { prompt: [...range(1, 120), 13, 14, 15], maxTokens: 60 },
      { prompt: [7, 30, 2, 30, 2, 30, 2, 11, 3], maxTokens: 40 },
      { prompt: [...range(20, 50), 21, 22], maxTokens: 40, eogAfter: 70 },
    ];
    for (const c of cases) {
      const backend = new FakeBackend(4096);
      backend.eogAfter = c.eogAfter ?? Infinity;
      const scheduler = new Scheduler({ backend, kv: makeStore(kind, backend, 4096), tokenizer: fakeTokenizer, contextLength: 2048 });
      const r = await scheduler.submit({ id: 's', prompt: c.prompt, maxTokens: c.maxTokens, speculative: { maxDraft: 5, ngram: 3 } });
      const output = r.finishReason === 'eog' ? [...r.tokenIds, FAKE_EOG] : r.tokenIds;
      if (c.eogAfter) expect(r.finishReason).toBe('eog');
      const sim = simulateSpeculative(c.prompt, output, { maxDraft: 5, ngram: 3, maxTokens: c.maxTokens });
      const st = scheduler.stats().speculative;
      expect({ drafted: st.drafted, accepted: st.accepted }).toEqual({ drafted: sim.drafted, accepted: sim.accepted });
      // One forward for the prefill plus one per verify step.
      expect(backend.calls).toHaveLength(1 + sim.steps);
    }
  });

  it('is not used for sampled (non-greedy) requests', async () => {
    const backend = new FakeBackend(1024);
    const scheduler = new Scheduler({
      backend, kv: new SimpleKvStore(1024), tokenizer: fakeTokenizer, contextLength: 512,
      createSampler: () => ({ greedy: false, sample: (logits) => logits.indexOf(Math.max(...logits)) }),
    });
    const prompt = [...range(1, 50), 3, 4];
    await scheduler.submit({ id: 's', prompt, maxTokens: 10, sampling: { temperature: 0.8 }, speculative: { maxDraft: 4 } });
    expect(backend.calls.every((c) => c.batches.every((b) => b.logits !== 'all'))).toBe(true);
    expect(scheduler.stats().speculative.drafted).toBe(0);
  });
});
