import { describe, expect, it } from 'vitest';
import { BlockPool } from '../../engine/kv/block-pool';
import { BlockTable } from '../../engine/kv/block-table';
import { OutOfMemoryError, CachetError } from '../../engine/errors';
import { FakeBackend } from './fake-backend';

describe('BlockPool', () => {
  it('allocates, ref-counts and frees blocks; all-or-nothing on exhaustion', () => {
    const pool = new BlockPool({ blockSize: 16, nBlocks: 4 });
    const a = pool.allocate(3);
    expect(new Set(a).size).toBe(3);
    expect(pool.free).toBe(1);
    expect(() => pool.allocate(2)).toThrow(OutOfMemoryError);
    expect(pool.free).toBe(1); // nothing taken by the failed call
    pool.incRef(a[0]);
    expect(pool.decRef(a[0])).toBe(false);
    expect(pool.decRef(a[0])).toBe(true);
    expect(pool.free).toBe(2);
    expect(() => pool.decRef(a[0])).toThrow(/double release/);
    pool.checkInvariants();
  });

  it('OutOfMemoryError carries a hint', () => {
    const pool = new BlockPool({ blockSize: 16, nBlocks: 1 });
    pool.allocate(1);
    try {
      pool.allocate(1);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(OutOfMemoryError);
      expect((e as OutOfMemoryError).hint).toMatch(/budget/);
    }
  });

  it('rejects a bad block size or budget', () => {
    expect(() => new BlockPool({ blockSize: 0, nBlocks: 4 })).toThrow(CachetError);
    expect(() => new BlockPool({ blockSize: 16, nBlocks: 0 })).toThrow(CachetError);
  });

  it('asks the evictor before failing', () => {
    const pool = new BlockPool({ blockSize: 4, nBlocks: 2 });
    const held = pool.allocate(2);
    pool.evictor = (n) => {
      expect(n).toBe(1);
      return pool.decRef(held[1]) ? 1 : 0;
    };
    expect(pool.allocate(1)).toEqual([held[1]]);
    expect(pool.evictions).toBe(1);
  });
});

describe('BlockTable', () => {
  it('maps token i to slot block*B + offset and fills blocks in order', async () => {
    const pool = new BlockPool({ blockSize: 4, nBlocks: 8 });
    const be = new FakeBackend({ kvSlots: 32 });
    const t = new BlockTable(pool);
    const s = await t.append(be, [1, 2, 3, 4, 5, 6]);
    expect(t.positions).toEqual([0, 1, 2, 3, 4, 5]);
    const b0 = pool.blockOf(s[0]);
    const b1 = pool.blockOf(s[4]);
    expect(Array.from(s)).toEqual([b0 * 4, b0 * 4 + 1, b0 * 4 + 2, b0 * 4 + 3, b1 * 4, b1 * 4 + 1]);
    await t.append(be, [7]);
    expect(t.slots[6]).toBe(b1 * 4 + 2); // fills the tail block it owns alone
    expect(pool.used).toBe(2);
    t.clear();
    expect(pool.used).toBe(0);
    pool.checkInvariants();
  });

  it('copy-on-write: a forked table appending to a shared partial block copies it first', async () => {
    const pool = new BlockPool({ blockSize: 4, nBlocks: 8 });
    const be = new FakeBackend({ kvSlots: 32 });
    const a = new BlockTable(pool);
    await a.append(be, [1, 2, 3, 4, 5, 6]);
    await be.forward([{ tokens: Int32Array.from([1, 2, 3, 4, 5, 6]), positions: Int32Array.from([0, 1, 2, 3, 4, 5]), context: a.context(), logits: 'none' }]);
    const before = await be.readSlots(a.context());
    const b = a.fork();
    const tailBlock = pool.blockOf(a.slots[5]);
    expect(pool.refCount(tailBlock)).toBe(2);
    await b.append(be, [9]);
    // b moved its two cells of the shared tail block to a private copy; a is untouched.
    expect(pool.blockOf(b.slots[5])).not.toBe(tailBlock);
    expect(b.slots[5] % 4).toBe(a.slots[5] % 4);
    expect(pool.blockOf(b.slots[6])).toBe(pool.blockOf(b.slots[5]));
    expect(pool.refCount(tailBlock)).toBe(1);
    expect(be.copies).toBe(2);
    expect(await be.readSlots(Int32Array.from(b.slots.slice(0, 6)))).toEqual(before);
    // a can now append into its (again private) tail block without copying.
    await a.append(be, [7]);
    expect(pool.blockOf(a.slots[6])).toBe(tailBlock);
    expect(be.copies).toBe(2);
    expect(new Set([...a.slots, ...b.slots.slice(4)]).size).toBe(a.length + 3);
  });

  it('is unchanged when an append does not fit', async () => {
    const pool = new BlockPool({ blockSize: 4, nBlocks: 2 });
    const be = new FakeBackend({ kvSlots: 8 });
    const t = new BlockTable(pool);
    await t.append(be, [1, 2, 3]);
    await expect(t.append(be, [1, 2, 3, 4, 5, 6])).rejects.toThrow(OutOfMemoryError);
    expect(t.length).toBe(3);
    expect(pool.used).toBe(1);
    pool.checkInvariants();
  });

  it('shift rotates keys, drops cells below position 0 and never touches a shared block', async () => {
    const pool = new BlockPool({ blockSize: 4, nBlocks: 8 });
    const be = new FakeBackend({ kvSlots: 32 });
    const a = new BlockTable(pool);
    const toks = [5, 6, 7, 8, 9, 10];
    await a.append(be, toks);
    await be.forward([{ tokens: Int32Array.from(toks), positions: Int32Array.from([0, 1, 2, 3, 4, 5]), context: a.context(), logits: 'none' }]);
    const orig = await be.readSlots(a.context());
    const b = a.fork();
    await b.shift(be, 0, -1, -2);
    expect(b.positions).toEqual([0, 1, 2, 3]); // cells at 0,1 fell below 0 and were dropped
    expect(b.tokens).toEqual([7, 8, 9, 10]);
    expect(await be.readSlots(a.context())).toEqual(orig); // a's keys unrotated
    // Rotating back by +2 restores the original keys (fp32 round-off only).
    await b.shift(be, 0, -1, 2);
    const back = await be.readSlots(b.context());
    const ref = await be.readSlots(Int32Array.from(a.slots.slice(2)));
    for (let i = 0; i < ref.length; i++) expect(back[i]).toBeCloseTo(ref[i], 5);
  });
});
