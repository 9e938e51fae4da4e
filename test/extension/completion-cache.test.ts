import { describe, expect, it } from 'vitest';
import { CompletionCache } from '../../src/completion/completion-cache';

describe('CompletionCache', () => {
  const prefix = 'def add(a, b):\n    return ';
  const suffix = '\n\nprint(add(1, 2))\n';
  const key = { doc: 'file:///a.py', offset: prefix.length, prefix, suffix };

  it('serves the rest of a completion as the user types it', () => {
    const c = new CompletionCache();
    c.put(key, 'a + b');
    expect(c.get(key)).toEqual({ text: 'a + b', typed: 0, partial: false });
    const typed = { ...key, offset: key.offset + 3, prefix: prefix + 'a +' };
    expect(c.get(typed)).toEqual({ text: ' b', typed: 3, partial: false });
  });

  it('misses when typed text diverges, the suffix changed, the doc differs or all was typed', () => {
    const c = new CompletionCache();
    c.put(key, 'a + b');
    expect(c.get({ ...key, offset: key.offset + 1, prefix: prefix + 'x' })).toBeUndefined();
    expect(c.get({ ...key, suffix: '\nother' })).toBeUndefined();
    expect(c.get({ ...key, doc: 'file:///b.py' })).toBeUndefined();
    expect(c.get({ ...key, offset: key.offset + 5, prefix: prefix + 'a + b' })).toBeUndefined();
    expect(c.get({ ...key, offset: key.offset - 1, prefix: prefix.slice(0, -1) })).toBeUndefined();
    expect(c.misses).toBe(5);
  });

  it('evicts the least recently used entry', () => {
    const c = new CompletionCache(2);
    const k = (i: number) => ({ doc: 'd', offset: i, prefix: `p${i}`, suffix: '' });
    c.put(k(1), 'one');
    c.put(k(2), 'two');
    expect(c.get(k(1))?.text).toBe('one'); // 1 becomes most recent
    c.put(k(3), 'three');
    expect(c.get(k(2))).toBeUndefined();
    expect(c.get(k(1))?.text).toBe('one');
    expect(c.size).toBe(2);
  });

  it('keeps partial entries apart: tagged, replaced by the whole completion, skipped on request', () => {
    const c = new CompletionCache();
    const request = {};
    c.put(key, 'a + b', { partial: true, tag: request });
    expect(c.get(key)).toEqual({ text: 'a + b', typed: 0, partial: true, tag: request });
    expect(c.get(key, { partial: false })).toBeUndefined();
    c.put(key, 'a + b + c');
    expect(c.size).toBe(1);
    expect(c.get(key, { partial: false })).toEqual({ text: 'a + b + c', typed: 0, partial: false });
    // An empty completion removes the entry.
    c.put(key, '', { partial: true });
    expect(c.size).toBe(0);
  });
});
