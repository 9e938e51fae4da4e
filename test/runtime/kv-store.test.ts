import { describe, expect, it } from 'vitest';
import { OutOfMemoryError } from '../../engine/errors';
import { KvManager } from '../../engine/kv';
import { KvManagerStore, SimpleKvStore, type KvStore } from '../../engine/runtime/kv-store';
import { StopStringFilter } from '../../engine/runtime/stop-strings';
import { FakeBackend } from './fakes';

describe('SimpleKvStore', () => {
  it('reuses the longest cached prefix, truncates, and refuses what it does not have', async () => {
    const kv = new SimpleKvStore(10);
    const a = await kv.acquire([1, 2, 3, 4]);
    expect(a.cachedLength).toBe(0);
    expect(new Set(a.context).size).toBe(4);
    await expect(kv.acquire([5, 5, 5, 5, 5, 5, 5])).rejects.toBeInstanceOf(OutOfMemoryError);
    expect(kv.stats()).toMatchObject({ used: 4, free: 6, sequences: 1 });
    const extra = await kv.append(a.seq, [9, 9]);
    expect(extra).toHaveLength(2);
    kv.truncate(a.seq, 3); // drop [4, 9, 9]
    kv.release(a.seq, true);
    expect(kv.stats()).toMatchObject({ used: 0, cached: 3, free: 7, sequences: 0 });
    // [1,2,3] is cached; the prompt's last token is always left to compute.
    const b = await kv.acquire([1, 2, 3]);
    expect(b.cachedLength).toBe(2);
    expect(Array.from(b.context.subarray(0, 2))).toEqual(Array.from(a.context.subarray(0, 2)));
    expect(kv.stats()).toMatchObject({ used: 3, cached: 0, free: 7, hits: 1, lookups: 3 });
    kv.release(b.seq, false);
    expect(kv.stats()).toMatchObject({ used: 0, cached: 0, free: 10 });
  });

  it('evicts least recently used prefixes under pressure and clear() drops them all', async () => {
    const kv = new SimpleKvStore(8);
    const a = await kv.acquire([1, 1, 1, 1]);
    kv.release(a.seq, true);
    const b = await kv.acquire([2, 2, 2, 2]);
    kv.release(b.seq, true);
    const c = await kv.acquire([3, 3, 3]);
    expect(kv.stats()).toMatchObject({ used: 3, cached: 4, evictions: 1 });
    expect((await kv.acquire([2, 2, 2, 2, 7])).cachedLength).toBe(4);
    kv.release(c.seq, true);
    kv.clear();
    expect(kv.stats()).toMatchObject({ cached: 0, used: 5, free: 3, sequences: 1 });
  });
});

describe('KvManagerStore', () => {
  it('adapts engine/kv: page-aligned prefix reuse across sequences, no leaked blocks', async () => {
    const manager = new KvManager({ backend: new FakeBackend(64), kvSlots: 64, blockSize: 4 });
    const kv: KvStore = new KvManagerStore(manager);
    expect(kv.totalSlots).toBe(64);
    const a = await kv.acquire([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    await kv.append(a.seq, [11, 12]);
    kv.truncate(a.seq, 11);
    kv.release(a.seq, true);
    expect(kv.stats()).toMatchObject({ used: 0, cached: 8, sequences: 0 });
    const b = await kv.acquire([1, 2, 3, 4, 5, 6, 7, 8, 9, 99]);
    expect(b.cachedLength).toBe(8);
    const c = await kv.acquire([1, 2, 3, 4, 5, 6, 7, 8, 50, 51]);
    expect(c.cachedLength).toBe(8); // shared, not exclusive
    expect(Array.from(c.context.subarray(0, 8))).toEqual(Array.from(b.context.subarray(0, 8)));
    kv.release(b.seq, false);
    kv.release(c.seq, false);
    manager.checkInvariants();
    kv.clear();
    expect(kv.stats()).toMatchObject({ used: 0, cached: 0, free: 64, sequences: 0 });
  });
});

describe('StopStringFilter', () => {
  it('holds back possible stop prefixes and cuts before the stop string', () => {
    const f = new StopStringFilter(['\n\n', 'END']);
    expect(f.push('abc')).toBe('abc');
    expect(f.push('\n')).toBe('');
    expect(f.push('x')).toBe('\nx');
    expect(f.push('E')).toBe('');
    expect(f.push('N')).toBe('');
    expect(f.push('Dtail')).toBe('');
    expect(f.stopped).toBe('END');
    expect(f.output).toBe('abc\nx');
    expect(f.flush()).toBe('');
  });

  it('finds a stop string spanning pieces and emits the rest on flush', () => {
    const f = new StopStringFilter(['</s>']);
    expect(f.push('a<')).toBe('a');
    expect(f.push('/')).toBe('');
    expect(f.push('b')).toBe('</b');
    expect(f.push('<')).toBe('');
    expect(f.flush()).toBe('<');
    const g = new StopStringFilter(['ab']);
    expect(g.push('xa')).toBe('x');
    expect(g.push('b')).toBe('');
    expect(g.stopped).toBe('ab');
    expect(new StopStringFilter(undefined).push('anything')).toBe('anything');
  });
});
