// Approximate prefixes: K/V assembled from chunk caches goes into the radix tree marked approximate,
// so a later request that accepts chunk reuse gets it back, and a plain (exact) lookup never does.
import { describe, expect, it } from 'vitest';
import { BlockPool } from '../../engine/kv/block-pool';
import { KvManager } from '../../engine/kv/kv-manager';
import { RadixCache } from '../../engine/kv/radix-cache';
import { FakeBackend } from './fake-backend';

const B = 4;
const seq = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);

function tree(nBlocks = 32) {
  const pool = new BlockPool({ blockSize: B, nBlocks });
  const t = new RadixCache(pool);
  pool.evictor = (n) => t.evict(n);
  return { pool, t };
}

describe('RadixCache approximate nodes', () => {
  it('a plain lookup stops where approximate K/V starts; an approximate one goes through', () => {
    const { pool, t } = tree();
    const blocks = pool.allocate(4);
    t.insert(seq(0, 16), blocks, 6); // tokens 0..5 exact: one whole exact block, three approximate
    for (const b of blocks) pool.decRef(b);
    const exact = t.matchPrefix(seq(0, 16));
    expect(exact.length).toBe(4);
    expect(exact.exactLength).toBe(4);
    const approx = t.matchPrefix(seq(0, 16), 16, true);
    expect(approx.length).toBe(16);
    expect(approx.exactLength).toBe(4);
    expect(approx.blocks).toEqual(blocks);
    t.checkInvariants();
  });

  it('an exact insert takes over the approximate node it matches; holders of the old blocks keep them', () => {
    const { pool, t } = tree();
    const approxBlocks = pool.allocate(3);
    t.insert(seq(0, 12), approxBlocks, 0);
    // A running sequence still holds the approximate blocks (its own references).
    const exactBlocks = pool.allocate(2);
    t.insert(seq(0, 8), exactBlocks);
    for (const b of exactBlocks) pool.decRef(b);
    const plain = t.matchPrefix(seq(0, 12));
    expect(plain.length).toBe(8);
    expect(plain.blocks).toEqual(exactBlocks);
    const all = t.matchPrefix(seq(0, 12), 12, true);
    expect(all).toMatchObject({ length: 12, exactLength: 8, blocks: [...exactBlocks, approxBlocks[2]] });
    // The tree dropped its references on the replaced blocks; the sequence's remain.
    expect(pool.refCount(approxBlocks[0])).toBe(1);
    expect(pool.refCount(approxBlocks[2])).toBe(2);
    for (const b of approxBlocks) pool.decRef(b);
    expect(pool.refCount(approxBlocks[0])).toBe(0);
    t.checkInvariants();
    // An approximate insert over exact nodes keeps the exact ones.
    const again = pool.allocate(3);
    t.insert(seq(0, 12), again, 0);
    for (const b of again) pool.decRef(b);
    expect(t.matchPrefix(seq(0, 12)).blocks).toEqual(exactBlocks);
    t.checkInvariants();
  });

  it('approximate leaves are evicted like any other', () => {
    const { pool, t } = tree(4);
    const a = pool.allocate(4);
    t.insert(seq(0, 16), a, 4);
    for (const b of a) pool.decRef(b);
    expect(pool.free).toBe(0);
    pool.allocate(2); // evicts the least recently used leaves
    t.checkInvariants();
    expect(t.matchPrefix(seq(0, 16), 16, true).length).toBeLessThanOrEqual(8);
  });
});

describe('KvManager with approximate prefixes', () => {
  async function assembledSequence(kv: KvManager, be: FakeBackend, tokens: number[], approxFrom: number) {
    // Cells [0, approxFrom) computed in place, the rest written as placed (approximate) cells.
    const a = await kv.acquire(tokens.slice(0, approxFrom + 1));
    kv.seqRm(a.seq, approxFrom);
    const ctx = kv.context(a.seq);
    if (a.cachedLength < approxFrom) {
      await be.forward([{ tokens: Int32Array.from(tokens.slice(a.cachedLength, approxFrom)), positions: kv.positions(a.seq).slice(a.cachedLength), context: ctx, logits: 'none' }]);
    }
    const slots = await kv.append(a.seq, tokens.slice(approxFrom), undefined, false);
    await be.writeSlots(slots, new Float32Array(slots.length * be.layers * 2 * be.kvDim).fill(0.25));
    return a.seq;
  }

  it('commit({ approximate }) caches placed cells for approximate lookups only; exactness is carried back', async () => {
    const be = new FakeBackend({ kvSlots: 256 });
    const kv = new KvManager({ backend: be, kvSlots: 256, blockSize: B });
    const tokens = seq(1, 20);
    const s = await assembledSequence(kv, be, tokens, 8);
    expect(kv.commit(s, undefined, { approximate: true })).toBe(20);
    kv.release(s);
    kv.checkInvariants();

    const plain = await kv.acquire([...tokens, 99]);
    expect(plain.cachedLength).toBe(8);
    expect(plain.exactLength).toBe(8);
    kv.release(plain.seq);

    const approx = await kv.acquire([...tokens, 99], { approximate: true });
    expect(approx.cachedLength).toBe(20);
    expect(approx.exactLength).toBe(8);
    const table = kv.table(approx.seq);
    expect(table.exactLength()).toBe(8);
    expect(table.exact[21 - 1]).toBe(false); // the new cell follows approximate ones
    // A plain commit of this sequence adds nothing approximate, and nothing exact past cell 8.
    await be.forward([{ tokens: Int32Array.from([99]), positions: Int32Array.from([20]), context: approx.context, logits: 'none' }]);
    expect(kv.commit(approx.seq)).toBe(0);
    kv.release(approx.seq);
    expect(kv.snapshot().prefix.approxHits).toBe(1);
    kv.checkInvariants();
  });

  it('host offload drops approximate leaves instead of restoring them as exact later', async () => {
    const be = new FakeBackend({ kvSlots: 256 });
    const kv = new KvManager({ backend: be, kvSlots: 256, blockSize: B, hostBudgetBytes: 1 << 20 });
    const s = await assembledSequence(kv, be, seq(1, 16), 8);
    kv.commit(s, undefined, { approximate: true });
    kv.release(s);
    await kv.offloadCold(100); // drops the approximate leaf
    expect(kv.host!.size).toBe(0);
    await kv.offloadCold(100); // now the exact [0, 8) run is a cold leaf: offloaded
    expect(kv.host!.size).toBe(1);
    const again = await kv.acquire([...seq(1, 16), 99], { approximate: true });
    expect(again.cachedLength).toBe(8);
    expect(again.exactLength).toBe(8);
    kv.release(again.seq);
    kv.checkInvariants();
  });
});
