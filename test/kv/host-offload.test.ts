import { describe, expect, it } from 'vitest';
import { HostTier } from '../../engine/kv/host-offload';

const data = (n: number, v: number) => new Float32Array(n).fill(v);

describe('HostTier', () => {
  it('returns a run only for the exact prefix and a key that fits the prompt, once', () => {
    const h = new HostTier(1 << 20);
    expect(h.put([1, 2], [3, 4], data(8, 1))).toBe(true);
    expect(h.take([1, 9, 3, 4], 2, 4)).toBeUndefined(); // other prefix
    expect(h.take([1, 2, 3, 5], 2, 4)).toBeUndefined(); // key differs
    expect(h.take([1, 2, 3, 4], 2, 3)).toBeUndefined(); // key runs past the limit
    const e = h.take([1, 2, 3, 4, 7], 2, 5)!;
    expect(Array.from(e.key)).toEqual([3, 4]);
    expect(h.take([1, 2, 3, 4, 7], 2, 5)).toBeUndefined(); // moved out
    expect(h.hits).toBe(1);
    expect(h.bytes).toBe(0);
  });

  it('stays within its byte budget, dropping the least recently stored run', () => {
    const h = new HostTier(100);
    h.put([], [1], data(10, 1)); // 40 bytes
    h.put([], [2], data(10, 2));
    h.put([], [3], data(10, 3)); // over budget: [1] goes
    expect(h.bytes).toBe(80);
    expect(h.size).toBe(2);
    expect(h.evictions).toBe(1);
    expect(h.take([1], 0, 1)).toBeUndefined();
    expect(h.take([3], 0, 1)!.data[0]).toBe(3);
    expect(h.put([], [4], data(40, 4))).toBe(false); // larger than the whole budget
  });

  it('replaces a run stored twice instead of keeping both', () => {
    const h = new HostTier(1000);
    h.put([5], [6, 7], data(4, 1));
    h.put([5], [6, 7], data(4, 2));
    expect(h.size).toBe(1);
    expect(h.take([5, 6, 7], 1, 3)!.data[0]).toBe(2);
  });
});
