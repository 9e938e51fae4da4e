// CacheBlend's selective recompute in one scattered forward (SequenceBatch.rows) against the
// run-by-run fallback, on the reference backend with a small random-weight model.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KvComputeBackend } from '../../engine/kv';
import { ChunkCache } from '../../engine/kv/chunk-cache';
import { createHarness, makePrompts, type Harness } from '../../bench/kv-quality-harness';

let h: Harness;
beforeAll(async () => {
  h = await createHarness({ arch: 'qwen2', layers: 3, dims: 64, heads: 4, kvHeads: 2, ff: 128, seed: 9 });
});
afterAll(async () => h?.dispose());

/** The same backend without rows support, counting forward calls. */
function runByRun(be: Harness['backend']): KvComputeBackend & { forwards: number } {
  const w = {
    forwards: 0,
    config: be.config,
    supportsRows: false,
    forward: (b: Parameters<typeof be.forward>[0]) => {
      w.forwards++;
      return be.forward(b);
    },
    copySlots: be.copySlots.bind(be),
    rotateKeys: be.rotateKeys.bind(be),
    readSlots: be.readSlots.bind(be),
    writeSlots: be.writeSlots.bind(be),
  };
  return w;
}

describe('ChunkCache.recompute with SequenceBatch.rows', () => {
  const [p] = makePrompts(1, 7, { prefix: 16, chunks: [20, 18, 14], query: 4 });

  /** [P][chunks placed by rotation], blended with `cache`; returns the K/V of every cell and the cells chosen. */
  async function assemble(cache: ChunkCache, ratio: number) {
    const entries = [];
    for (const c of p.chunks) entries.push(await cache.get(cache.keyForTokens(c, p.prefix), p.prefix, c));
    const a = await h.kv.acquire([...p.prefix, p.query[0]]);
    try {
      h.kv.seqRm(a.seq, p.prefix.length);
      const placement = await cache.place(a.seq, entries, 'rotate');
      const r = await cache.blend(a.seq, placement, { ratio, probe: h.probe });
      return { cells: r.cells, kv: await h.backend.readSlots(h.kv.context(a.seq)), exact: h.kv.table(a.seq).exactLength() };
    } finally {
      h.kv.release(a.seq);
    }
  }

  it('one scattered forward gives the same K/V as one forward per contiguous run', async () => {
    expect(h.backend.supportsRows).toBe(true);
    const rows = new ChunkCache({ manager: h.kv, backend: h.backend, model: 'm', tokenizer: 't', memoryBudgetBytes: 1 << 24 });
    const slow = runByRun(h.backend);
    const runs = new ChunkCache({ manager: h.kv, backend: slow, model: 'm', tokenizer: 't', memoryBudgetBytes: 1 << 24 });
    for (const ratio of [0.3, 1]) {
      const a = await assemble(rows, ratio);
      const before = slow.forwards;
      const b = await assemble(runs, ratio);
      expect(b.cells).toEqual(a.cells);
      expect(a.cells.length).toBe(Math.floor(ratio * 52 + 1e-9));
      expect(b.kv).toEqual(a.kv);
      expect(b.exact).toBe(a.exact);
      if (ratio < 1) expect(slow.forwards - before).toBeGreaterThan(1); // scattered cells: several runs
    }
    h.kv.checkInvariants();
  });

  it('a probe seeded with the exact cached prefix picks the same cells as one that recomputes it', async () => {
    const cache = new ChunkCache({ manager: h.kv, backend: h.backend, model: 'm', tokenizer: 't', memoryBudgetBytes: 1 << 24 });
    const entries = [];
    for (const c of p.chunks) entries.push(await cache.get(cache.keyForTokens(c, p.prefix), p.prefix, c));
    const a = await h.kv.acquire([...p.prefix, p.query[0]]);
    try {
      h.kv.seqRm(a.seq, p.prefix.length);
      if (a.cachedLength < p.prefix.length) {
        await h.backend.forward([{ tokens: Int32Array.from(p.prefix.slice(a.cachedLength)), positions: h.kv.positions(a.seq).slice(a.cachedLength), context: h.kv.context(a.seq), logits: 'none' }]);
      }
      const placement = await cache.place(a.seq, entries, 'rotate');
      const plain = await cache.select(a.seq, placement, { ratio: 0.2, probe: h.probe });
      const seeded = await cache.select(a.seq, placement, { ratio: 0.2, probe: h.probe, seedLength: p.prefix.length });
      expect(seeded.cells).toEqual(plain.cells);
      for (let i = 0; i < plain.deviation.length; i++) expect(seeded.deviation[i]).toBeCloseTo(plain.deviation[i], 4);
      // Seeding with a wrong prefix changes what the probe sees: the seed is really used.
      const wrong = await h.probe(h.kv.tokens(a.seq), h.kv.positions(a.seq), 1, { length: 8, kv: new Float32Array(2 * 8 * 2 * h.weights.config.nKvHeads * h.weights.config.headDim).fill(3) });
      const right = await h.probe(h.kv.tokens(a.seq), h.kv.positions(a.seq), 1);
      expect(wrong).not.toEqual(right);
    } finally {
      h.kv.release(a.seq);
    }
  });

  it('rejects unsorted cells', async () => {
    const cache = new ChunkCache({ manager: h.kv, backend: h.backend, model: 'm', tokenizer: 't', memoryBudgetBytes: 1 << 24 });
    const a = await h.kv.acquire([...p.prefix, ...p.chunks[0]]);
    try {
      await expect(cache.recompute(a.seq, [18, 17])).rejects.toThrow(/ascending/);
    } finally {
      h.kv.release(a.seq);
    }
  });
});
