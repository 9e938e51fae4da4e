import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ChunkStore, CHUNK_FILE_VERSION, type ChunkEntry, type ChunkKey } from '../../engine/kv/chunk-store';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cachet-kv-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const key = (contentHash: string): ChunkKey => ({ model: 'm1', tokenizer: 't1', contentHash, start: 0, end: 10, prefixHash: 'p' });
function entry(k: ChunkKey, n = 5, layers = 2, kvDim = 4): ChunkEntry {
  return {
    key: k,
    tokens: Int32Array.from({ length: n }, (_, i) => i * 7),
    basePosition: 3,
    layers,
    kvDim,
    kv: Float32Array.from({ length: layers * n * 2 * kvDim }, (_, i) => Math.sin(i)),
  };
}

describe('ChunkStore', () => {
  it('round-trips an entry and leaves no temp file behind', () => {
    const store = new ChunkStore({ dir, budgetBytes: 1 << 20 });
    const e = entry(key('a'));
    store.put(e);
    expect(fs.readdirSync(dir)).toEqual([path.basename(store.fileFor(e.key))]);
    const got = store.get(key('a'))!;
    expect(got.tokens).toEqual(e.tokens);
    expect(got.kv).toEqual(e.kv);
    expect(got.basePosition).toBe(3);
    expect(store.get(key('b'))).toBeUndefined();
    expect(store.usage().entries).toBe(1);
  });

  it('detects a flipped byte, a truncated file, a stale version and a foreign key; discards them', () => {
    const store = new ChunkStore({ dir, budgetBytes: 1 << 20 });
    const file = store.fileFor(key('a'));
    const damage: ((b: Buffer) => Buffer)[] = [
      (b) => {
        b[b.length - 3] ^= 0x40;
        return b;
      },
      (b) => b.subarray(0, b.length - 8),
      (b) => {
        b.writeUInt32LE(CHUNK_FILE_VERSION + 1, 4);
        return b;
      },
      (b) => {
        b[0] = 0;
        return b;
      },
    ];
    for (const d of damage) {
      store.put(entry(key('a')));
      fs.writeFileSync(file, d(fs.readFileSync(file)));
      expect(store.get(key('a'))).toBeUndefined();
      expect(fs.existsSync(file)).toBe(false);
    }
    // A valid file for another key renamed to this key's name is stale, not a hit.
    store.put(entry(key('other')));
    fs.renameSync(store.fileFor(key('other')), file);
    expect(store.get(key('a'))).toBeUndefined();
    expect(store.discarded).toBe(5);
    // And after a discard, a fresh put works again.
    store.put(entry(key('a')));
    expect(store.get(key('a'))).toBeDefined();
  });

  it('keeps the directory under its budget, dropping least recently used files', () => {
    const one = fs.statSync((() => {
      const s = new ChunkStore({ dir: path.join(dir, 'probe'), budgetBytes: 1 << 20 });
      s.put(entry(key('x')));
      return s.fileFor(key('x'));
    })()).size;
    const store = new ChunkStore({ dir: path.join(dir, 'lru'), budgetBytes: one * 2 + 10 });
    store.put(entry(key('a')));
    fs.utimesSync(store.fileFor(key('a')), new Date(1000), new Date(1000));
    store.put(entry(key('b')));
    fs.utimesSync(store.fileFor(key('b')), new Date(2000), new Date(2000));
    expect(store.get(key('a'))).toBeDefined(); // touches a: b is now the oldest
    store.put(entry(key('c')));
    expect(store.usage().entries).toBe(2);
    expect(store.get(key('b'))).toBeUndefined();
    expect(store.get(key('a'))).toBeDefined();
    expect(store.get(key('c'))).toBeDefined();
    expect(store.evictions).toBe(1);
  });
});

describe('ChunkStore f16', () => {
  it('halves the file and round-trips values already representable in f16 exactly', async () => {
    const { roundF16 } = await import('../../engine/quant/half');
    const f32 = new ChunkStore({ dir: path.join(dir, 'a'), budgetBytes: 1 << 20 });
    const f16 = new ChunkStore({ dir: path.join(dir, 'b'), budgetBytes: 1 << 20, dtype: 'f16' });
    const e = entry(key('h'), 64, 2, 8);
    e.kv = e.kv.map((v) => roundF16(v));
    f32.put(e);
    f16.put(e);
    const s32 = fs.statSync(f32.fileFor(e.key)).size;
    const s16 = fs.statSync(f16.fileFor(e.key)).size;
    expect(s16 - 64 * 4).toBeLessThan((s32 - 64 * 4) / 2 + 200);
    expect(f16.get(e.key)!.kv).toEqual(e.kv);
    // A value that is not an f16 is rounded, not corrupted.
    const g = entry(key('g'), 4, 1, 2);
    g.kv[0] = 0.1;
    f16.put(g);
    expect(f16.get(g.key)!.kv[0]).toBeCloseTo(0.1, 3);
  });
});
