// Chunk reuse in the runtime: FIM requests' repository-context chunks come from the chunk cache
// (engine/kv ChunkCache) when the radix cache does not hold them.
import { beforeAll, describe, expect, it } from 'vitest';
import { createReferenceBackend } from '../../engine/backend/reference';
import type { BackendFactory } from '../../engine/backend/types';
import { OutOfMemoryError } from '../../engine/errors';
import { ChunkCache, KvManager } from '../../engine/kv';
import type { FimInput } from '../../engine/protocol';
import { validateRequest, type EngineEvent, type MetricsEvent } from '../../engine/protocol';
import { ChunkReuse } from '../../engine/runtime/chunk-reuse';
import { EngineHost } from '../../engine/runtime/host';
import { Engine, type EngineLoadOptions } from '../../engine/runtime/engine';
import { FakeBackend, mulberry32 } from '../kv/fake-backend';
import { makeTestModel } from '../helpers/make-test-model';

let modelPath: string;
beforeAll(() => {
  modelPath = makeTestModel({ arch: 'qwen2', layers: 2, dims: 64, heads: 4, kvHeads: 2, ff: 128, seed: 13 });
});

const fileA = 'export function area(r: number): number {\n  return Math.PI * r * r;\n}\n';
const fileB = 'export const UNITS = ["mm", "cm", "m"];\nexport function toMeters(x: number, u: string) {\n  return u === "m" ? x : x / 100;\n}\n';
const fileC = 'interface Point { x: number; y: number }\n';
const fim = (chunks: string[][], prefix = 'function perimeter(r: number) {\n  return ', suffix = ';\n}\n'): FimInput => ({
  prefix, suffix, filePath: 'src/geometry.ts', chunks: chunks.map(([filePath, text]) => ({ filePath, text })),
});
const FIRST = fim([['src/a.ts', fileA], ['src/b.ts', fileB]]);
const MOVED = fim([['src/c.ts', fileC], ['src/b.ts', fileB]]); // b.ts lands at another position
const TYPED = fim([['src/c.ts', fileC], ['src/b.ts', fileB]], 'function perimeter(r: number) {\n  return 2 * ');

/** A reference backend that records every non-empty logits array forward() returns. */
function recording(log: Float32Array[]): BackendFactory {
  return async (w, o) => {
    const be = await createReferenceBackend(w, o);
    const forward = be.forward.bind(be);
    be.forward = async (batches) => {
      const r = await forward(batches);
      for (const x of r) if (x.logits.length > 0) log.push(x.logits);
      return r;
    };
    return be;
  };
}

async function load(extra: Partial<EngineLoadOptions>, log: Float32Array[] = []): Promise<Engine> {
  return Engine.load({ modelPath, backend: 'reference', contextLength: 2048, prefillChunk: 32, backendFactories: { reference: recording(log) }, ...extra });
}

describe('Engine chunk reuse', () => {
  it("is off by default: no chunk metrics, the prompt's context goes through the radix cache only", async () => {
    const e = await load({});
    try {
      await e.complete({ fim: FIRST, maxTokens: 2 });
      expect(e.metrics().kv.chunks).toBeUndefined();
      expect(e.fimPrompt(FIRST).contextSpans).toHaveLength(2);
    } finally {
      await e.dispose();
    }
  });

  it('rotate: the second request takes a chunk from the chunk cache at a new position; the next keystroke reuses the assembled prefix', async () => {
    const e = await load({ chunkReuse: 'rotate' });
    try {
      const spans1 = e.fimPrompt(FIRST).contextSpans;
      const spans2 = e.fimPrompt(MOVED).contextSpans;
      expect(spans2[1].start).not.toBe(spans1[1].start); // b.ts moved
      expect(spans2[1].end - spans2[1].start).toBe(spans1[1].end - spans1[1].start);

      const r1 = await e.complete({ fim: FIRST, maxTokens: 4 });
      const m1 = e.metrics().kv.chunks!;
      expect(m1).toMatchObject({ mode: 'rotate', hits: 0, misses: 2, fallbacks: 0 });
      expect(r1.timings.prefillTokens + r1.timings.cachedTokens).toBe(r1.timings.promptTokens);

      const r2 = await e.complete({ fim: MOVED, maxTokens: 4 });
      const m2 = e.metrics().kv.chunks!;
      expect(m2.hits).toBe(1); // b.ts, re-rotated to its new place
      expect(m2.misses).toBe(3); // c.ts encoded
      const bLength = spans2[1].end - spans2[1].start;
      expect(m2.placedTokens - m1.placedTokens).toBe(bLength);
      // Everything from the start of b.ts up to the query came from caches, not computed.
      expect(r2.timings.cachedTokens).toBeGreaterThanOrEqual(bLength);
      expect(r2.timings.prefillTokens + r2.timings.cachedTokens).toBe(r2.timings.promptTokens);

      // Same chunks, one more word typed: the approximate prefix from r2 covers the chunks.
      const r3 = await e.complete({ fim: TYPED, maxTokens: 4 });
      const m3 = e.metrics().kv.chunks!;
      expect(m3.approxPrefixHits).toBe(m2.approxPrefixHits + 1);
      expect(m3.hits).toBe(m2.hits);
      expect(m3.misses).toBe(m2.misses);
      expect(r3.timings.cachedTokens).toBeGreaterThanOrEqual(Math.floor(spans2[1].end / 16) * 16);
      expect(e.kvStats().used).toBe(0);
      (e as unknown as { kv: { manager: KvManager } }).kv.manager.checkInvariants();

      // A plain request with the same tokens never gets the approximate K/V.
      const ids = e.fimPrompt(TYPED, 4).ids;
      const plain = await e.generate({ prompt: { kind: 'tokens', tokenIds: ids }, maxTokens: 1 });
      expect(plain.timings.cachedTokens).toBeLessThanOrEqual(spans2[1].start);
    } finally {
      await e.dispose();
    }
  });

  it('blend with ratio 1 recomputes every placed token: outputs and logits equal chunk reuse off', async () => {
    const offLog: Float32Array[] = [];
    const blendLog: Float32Array[] = [];
    const off = await load({ chunkReuse: 'off' }, offLog);
    const blend = await load({ chunkReuse: 'blend', chunkBlendRatio: 1 }, blendLog);
    try {
      for (const f of [FIRST, MOVED, TYPED]) {
        offLog.length = 0;
        blendLog.length = 0;
        const a = await off.complete({ fim: f, maxTokens: 8 });
        const b = await blend.complete({ fim: f, maxTokens: 8 });
        expect(b.tokenIds).toEqual(a.tokenIds);
        expect(blendLog.length).toBe(offLog.length);
        for (let i = 0; i < offLog.length; i++) expect(blendLog[i]).toEqual(offLog[i]);
      }
      const m = blend.metrics().kv.chunks!;
      expect(m.hits).toBeGreaterThan(0);
      expect(m.recomputedTokens).toBe(m.placedTokens);
      expect(m.approxPrefixHits).toBe(0); // ratio 1 is exact: committed as exact prefixes
    } finally {
      await off.dispose();
      await blend.dispose();
    }
  });

  it('blend with a partial ratio runs the probe and recomputes that share of the placed tokens', async () => {
    const e = await load({ chunkReuse: 'blend', chunkBlendRatio: 0.25 });
    try {
      await e.complete({ fim: FIRST, maxTokens: 2 });
      await e.complete({ fim: MOVED, maxTokens: 2 });
      const m = e.metrics().kv.chunks!;
      expect(m.placedTokens).toBeGreaterThan(0);
      expect(m.recomputedTokens).toBeGreaterThan(0);
      expect(m.recomputedTokens).toBeLessThanOrEqual(0.25 * m.placedTokens);
      expect(m.fallbacks).toBe(0);
    } finally {
      await e.dispose();
    }
  });

  it('refuses chunk reuse on the simple KV store and a bad ratio', async () => {
    await expect(load({ chunkReuse: 'rotate', kvStore: 'simple' })).rejects.toThrow(/paged KV store/);
    await expect(load({ chunkReuse: 'blend', chunkBlendRatio: 2 })).rejects.toThrow(/ratio/);
  });
});

describe('ChunkReuse layout (fake model)', () => {
  const toks = (seed: number, n: number) => {
    const r = mulberry32(seed);
    return Array.from({ length: n }, () => Math.floor(r() * 64));
  };

  it('gaps between chunks are computed; with ratio 1 every cell equals a full recompute', async () => {
    const be = new FakeBackend({ kvSlots: 512, layers: 3, seed: 5 });
    const kv = new KvManager({ backend: be, kvSlots: 512, blockSize: 4 });
    const cache = new ChunkCache({ manager: kv, backend: be, model: 'fake', tokenizer: 't', memoryBudgetBytes: 1 << 22 });
    const reuse = new ChunkReuse(kv, be, cache, { mode: 'blend', blendRatio: 1, maxRows: 5 });
    // [head 6][A 9][gap 3][B 7][gap 2][C 5][query 4]
    const head = toks(1, 6), A = toks(2, 9), g1 = toks(3, 3), B = toks(4, 7), g2 = toks(5, 2), C = toks(6, 5), Q = toks(7, 4);
    const prompt = [...head, ...A, ...g1, ...B, ...g2, ...C, ...Q];
    const spans = [{ start: 6, end: 15 }, { start: 18, end: 25 }, { start: 27, end: 32 }];
    // Warm the cache with the chunks at other positions.
    for (const c of [A, B, C]) await cache.get(cache.keyForTokens(c, head), head, c);
    kv.tree.clear();
    const got = await reuse.acquire(prompt, spans);
    expect(got.cachedLength).toBe(32);
    expect(got.report).toMatchObject({ hits: 3, misses: 0, placedTokens: 21, recomputedTokens: 21 });
    expect(got.report.computedTokens).toBe(6 + 3 + 2 + 21); // gaps (the head too: the tree was cleared) + recomputed
    expect(got.report.cachedTokens).toBe(0); // every placed token was recomputed
    const rest = got.context.slice(32);
    await be.forward([{ tokens: Int32Array.from(Q), positions: Int32Array.from(Q, (_, i) => 32 + i), context: got.context, logits: 'none' }]);
    expect(rest.length).toBe(4);
    const mine = await be.readSlots(got.context);
    const ref = new FakeBackend({ kvSlots: 512, layers: 3, seed: 5 });
    const idx = Int32Array.from(prompt, (_, i) => i);
    await ref.forward([{ tokens: Int32Array.from(prompt), positions: idx, context: idx, logits: 'none' }]);
    const want = await ref.readSlots(idx);
    for (let i = 0; i < want.length; i++) expect(mine[i]).toBeCloseTo(want[i], 5);
    expect(kv.table(got.seq).exactLength()).toBe(prompt.length);
    kv.release(got.seq);
    kv.checkInvariants();
  });

  it('a backend failure during assembly falls back to a plain exact acquire; out of memory is thrown with nothing held', async () => {
    const be = new FakeBackend({ kvSlots: 256, layers: 2, seed: 5 });
    const kv = new KvManager({ backend: be, kvSlots: 256, blockSize: 4 });
    const failing = Object.assign(Object.create(be) as FakeBackend, {
      forward: async () => {
        throw new Error('device lost');
      },
    });
    const cache = new ChunkCache({ manager: kv, backend: failing, model: 'fake', tokenizer: 't', memoryBudgetBytes: 1 << 22 });
    const reuse = new ChunkReuse(kv, failing, cache, { mode: 'rotate' });
    const prompt = toks(11, 30);
    const got = await reuse.acquire(prompt, [{ start: 4, end: 20 }]);
    expect(got.cachedLength).toBe(0);
    expect(got.approximate).toBe(false);
    expect(reuse.fallbacks).toBe(1);
    expect(reuse.lastError).toMatch(/device lost/);
    expect(kv.sequences).toBe(1);
    kv.release(got.seq);
    kv.checkInvariants();

    const small = new KvManager({ backend: be, kvSlots: 16, blockSize: 4 });
    const smallCache = new ChunkCache({ manager: small, backend: be, model: 'fake', tokenizer: 't', memoryBudgetBytes: 1 << 22 });
    const tight = new ChunkReuse(small, be, smallCache, { mode: 'rotate' });
    await expect(tight.acquire(prompt, [{ start: 4, end: 10 }])).rejects.toThrow(OutOfMemoryError);
    expect(small.sequences).toBe(0);
    small.checkInvariants();
  });

  it('spans that overlap, run past the prompt or are empty are ignored', async () => {
    const be = new FakeBackend({ kvSlots: 256, layers: 2, seed: 5 });
    const kv = new KvManager({ backend: be, kvSlots: 256, blockSize: 4 });
    const cache = new ChunkCache({ manager: kv, backend: be, model: 'fake', tokenizer: 't', memoryBudgetBytes: 1 << 22 });
    const reuse = new ChunkReuse(kv, be, cache, { mode: 'rotate' });
    const prompt = toks(9, 20);
    const got = await reuse.acquire(prompt, [{ start: 4, end: 4 }, { start: 10, end: 30 }, { start: 2, end: 8 }, { start: 5, end: 9 }]);
    expect(got.report.hits + got.report.misses).toBe(1); // only [2, 8)
    kv.release(got.seq);
    kv.checkInvariants();
  });
});

describe('chunk reuse through the protocol', () => {
  it('loadModel chunkReuse reaches the engine; metrics carry kv.chunks; bad values are refused', async () => {
    const events: EngineEvent[] = [];
    const host = new EngineHost((e) => events.push(e), { backendFactories: { reference: createReferenceBackend } });
    await host.handle({ type: 'loadModel', id: 'l', path: modelPath, backend: 'reference', contextLength: 2048, chunkReuse: 'rotate' });
    expect(events.find((e) => e.type === 'error')).toBeUndefined();
    for (const [i, f] of [FIRST, MOVED].entries()) await host.handle({ type: 'complete', id: `c${i}`, prompt: { kind: 'fim', fim: f }, maxTokens: 2 });
    await host.handle({ type: 'metrics', id: 'm' });
    const m = events.find((e): e is MetricsEvent => e.type === 'metrics')!;
    expect(m.snapshot.kv.chunks).toMatchObject({ mode: 'rotate', hits: 1, misses: 3 });
    await host.handle({ type: 'shutdown', id: 's' });
    expect(validateRequest({ type: 'loadModel', id: 'x', path: 'm.gguf', backend: 'auto', chunkReuse: 'always' })).toMatch(/chunkReuse/);
    expect(validateRequest({ type: 'loadModel', id: 'x', path: 'm.gguf', backend: 'auto', chunkBlendRatio: 1.5 })).toMatch(/chunkBlendRatio/);
    expect(validateRequest({ type: 'loadModel', id: 'x', path: 'm.gguf', backend: 'auto', chunkReuse: 'blend', chunkBlendRatio: 0.2 })).toBeUndefined();
  });
});
