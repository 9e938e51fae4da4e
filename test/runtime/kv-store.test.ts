import { describe, expect, it } from 'vitest';
import { OutOfMemoryError } from '../../engine/errors';
import { SimpleKvStore } from '../../engine/runtime/kv-store';
import { StopStringFilter } from '../../engine/runtime/stop-strings';

describe('SimpleKvStore', () => {
  it('hands out distinct slots, takes them back, and refuses what it does not have', () => {
    const kv = new SimpleKvStore(8);
    const a = kv.allocate(5);
    expect(new Set(a).size).toBe(5);
    expect(() => kv.allocate(4)).toThrow(OutOfMemoryError);
    kv.free(a.subarray(0, 2));
    expect(kv.stats()).toMatchObject({ used: 3, free: 5, cached: 0 });
    expect(() => kv.free([a[0]])).toThrow(/twice/);
  });

  it('reuses the longest cached prefix and evicts least recently used prefixes under pressure', () => {
    const kv = new SimpleKvStore(10);
    const none = kv.matchPrefix([1, 2, 3], 2);
    const s1 = kv.allocate(4);
    kv.release(none, [1, 2, 3, 4], s1, true);
    const s2 = kv.allocate(4);
    kv.release(none, [1, 2, 9, 9, 9], s2, true);
    expect(kv.stats()).toMatchObject({ used: 0, cached: 8, free: 2 });
    const lease = kv.matchPrefix([1, 2, 3, 5], 3);
    expect(lease.length).toBe(3);
    expect(Array.from(lease.slots)).toEqual(Array.from(s1.subarray(0, 3)));
    // The matched entry's tail slot went back to the pool; the lease is the caller's.
    expect(kv.stats()).toMatchObject({ used: 3, cached: 4, free: 3, hits: 1, lookups: 2 });
    const more = kv.allocate(5); // needs eviction of the other entry
    expect(kv.stats()).toMatchObject({ used: 8, cached: 0, free: 2, evictions: 1 });
    kv.release(lease, [1, 2, 3, 5, 6, 7, 8, 9], [...lease.slots, ...more], false);
    expect(kv.stats()).toMatchObject({ used: 0, cached: 0, free: 10 });
    expect(kv.matchPrefix([1, 2, 3], 3).length).toBe(0);
  });

  it('clear() drops every cached prefix', () => {
    const kv = new SimpleKvStore(6);
    const lease = kv.matchPrefix([], 0);
    kv.release(lease, [1, 2, 3], kv.allocate(3), true);
    kv.clear();
    expect(kv.stats()).toMatchObject({ used: 0, cached: 0, free: 6 });
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
