import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { KvManager } from '../../engine/kv/kv-manager';
import { ChunkCache, type LayerProbe } from '../../engine/kv/chunk-cache';
import { ChunkStore } from '../../engine/kv/chunk-store';
import { FakeBackend, mulberry32 } from './fake-backend';

const SLOTS = 512;
let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cachet-chunk-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

function setup(withStore = false) {
  const backend = new FakeBackend({ kvSlots: SLOTS, layers: 3, seed: 5 });
  const kv = new KvManager({ backend, kvSlots: SLOTS, blockSize: 4 });
  const store = withStore ? new ChunkStore({ dir, budgetBytes: 1 << 22 }) : undefined;
  const cache = new ChunkCache({ manager: kv, backend, model: 'fake', tokenizer: 'fake', memoryBudgetBytes: 1 << 22, store });
  return { backend, kv, cache };
}
/** The fake model truncated to layer+1 layers has the same weights (same seed, same draw order). */
const fakeProbe: LayerProbe = async (tokens, positions, layer) => {
  const be = new FakeBackend({ kvSlots: SLOTS, layers: layer + 1, seed: 5 });
  const slots = Int32Array.from({ length: tokens.length }, (_, i) => i);
  await be.forward([{ tokens, positions, context: slots, logits: 'none' }]);
  const all = await be.readSlots(slots);
  const n = tokens.length * 2 * be.kvDim;
  return all.slice(layer * n, (layer + 1) * n);
};
const toks = (seed: number, n: number) => {
  const r = mulberry32(seed);
  return Array.from({ length: n }, () => Math.floor(r() * 64));
};

/** Full recompute of prefix+chunks+suffix on a fresh backend: last-token logits and all K/V. */
async function fullRun(all: number[]) {
  const be = new FakeBackend({ kvSlots: SLOTS, layers: 3, seed: 5 });
  const slots = Int32Array.from({ length: all.length }, (_, i) => i);
  const [r] = await be.forward([{ tokens: Int32Array.from(all), positions: slots, context: slots, logits: 'last' }]);
  return { logits: r.logits, kv: await be.readSlots(slots) };
}

/** Prompt [P][A][B][Q] with A and B from the chunk cache; returns last logits and K/V. */
async function assembled(s: ReturnType<typeof setup>, P: number[], chunks: number[][], Q: number[], mode: 'rotate' | 'ape', ratio?: number) {
  const entries = [];
  for (const [i, c] of chunks.entries()) entries.push(await s.cache.get(s.cache.key(`chunk${i}:${c.join(',')}`, 0, c.length, P), P, c));
  const a = await s.kv.acquire([...P, Q[0]]);
  s.kv.seqRm(a.seq, P.length); // keep only the prefix cells (cached or not, computed below)
  if (a.cachedLength < P.length) {
    const ctx = s.kv.context(a.seq);
    await s.backend.forward([{ tokens: Int32Array.from(P.slice(a.cachedLength)), positions: s.kv.positions(a.seq).slice(a.cachedLength), context: ctx, logits: 'none' }]);
  }
  const placement = await s.cache.place(a.seq, entries, mode);
  const blend = ratio !== undefined ? await s.cache.blend(a.seq, placement, { ratio, probe: fakeProbe }) : undefined;
  const qPos = Int32Array.from(Q, (_, i) => placement.nextPosition + i);
  await s.kv.append(a.seq, Q, qPos);
  const [r] = await s.backend.forward([{ tokens: Int32Array.from(Q), positions: qPos, context: s.kv.context(a.seq), logits: 'last' }]);
  const kvData = await s.backend.readSlots(s.kv.context(a.seq));
  s.kv.release(a.seq);
  return { logits: r.logits, kv: kvData, placement, blend };
}

describe('ChunkCache', () => {
  const P = toks(1, 6);
  const A = toks(2, 9);
  const Bc = toks(3, 7);
  const Q = toks(4, 3);

  it('100% recompute of re-rotated chunks equals a full recompute', async () => {
    const s = setup();
    const full = await fullRun([...P, ...A, ...Bc, ...Q]);
    const r = await assembled(s, P, [A, Bc], Q, 'rotate', 1);
    expect(r.blend!.selected).toBe(A.length + Bc.length);
    expect(r.logits).toEqual(full.logits);
    expect(r.kv).toEqual(full.kv);
  });

  it('re-rotation puts layer-0 keys exactly where a recompute puts them; deeper layers deviate', async () => {
    const s = setup();
    const full = await fullRun([...P, ...A, ...Bc, ...Q]);
    const r = await assembled(s, P, [A, Bc], Q, 'rotate');
    // Chunk B was encoded at position |P| but sits at |P|+|A|: its keys were rotated by |A|.
    expect(r.placement.chunks[1].positions[0]).toBe(P.length + A.length);
    const D = 8;
    const n = P.length + A.length + Bc.length + Q.length;
    let deep = 0;
    for (let t = 0; t < n; t++) {
      for (let d = 0; d < 2 * D; d++) expect(r.kv[t * 2 * D + d]).toBeCloseTo(full.kv[t * 2 * D + d], 5); // layer 0
      for (let d = 0; d < 2 * D; d++) deep = Math.max(deep, Math.abs(r.kv[(n + t) * 2 * D + d] - full.kv[(n + t) * 2 * D + d]));
    }
    expect(deep).toBeGreaterThan(1e-3); // B was encoded without A in view
    expect(r.logits).not.toEqual(full.logits);
  });

  it('CacheBlend recomputes the tokens with the largest check-layer deviation', async () => {
    const s = setup();
    const full = await fullRun([...P, ...A, ...Bc, ...Q]);
    const plain = await assembled(s, P, [A, Bc], Q, 'rotate', 0);
    const r = await assembled(s, P, [A, Bc], Q, 'rotate', 0.25);
    const N = A.length + Bc.length;
    expect(r.blend!.selected).toBe(Math.floor(0.25 * N));
    const dev = r.blend!.deviation;
    const chosen = new Set(r.blend!.cells.map((c) => c - P.length));
    const minChosen = Math.min(...[...chosen].map((i) => dev[i]));
    for (let i = 0; i < N; i++) if (!chosen.has(i)) expect(dev[i]).toBeLessThanOrEqual(minChosen);
    // Chunk A sits where it was encoded, after the same prefix: no deviation there.
    for (let i = 0; i < A.length; i++) expect(dev[i]).toBeLessThan(1e-10);
    // Recomputing the worst tokens brings the logits closer to the full recompute.
    const dist = (x: Float32Array) => Math.hypot(...Array.from(x, (v, i) => v - full.logits[i]));
    expect(dist(r.logits)).toBeLessThan(dist(plain.logits));
    const snap = s.kv.snapshot();
    expect(snap.tokens.recomputed).toBe(r.blend!.selected);
    expect(snap.chunks.hits).toBe(2); // second assembly hit both chunks
    expect(snap.chunks.misses).toBe(2);
    expect(snap.chunks.entries).toBe(2);
    s.kv.checkInvariants();
  });

  it('placed chunks are not committed to the prefix cache unless fully recomputed in place', async () => {
    const s = setup();
    const run = async (ratio?: number) => {
      const entries = [await s.cache.get(s.cache.key('A', 0, 9, P), P, A), await s.cache.get(s.cache.key('B', 0, 7, P), P, Bc)];
      const a = await s.kv.acquire([...P, Q[0]]);
      s.kv.seqRm(a.seq, P.length);
      await s.backend.forward([{ tokens: Int32Array.from(P.slice(a.cachedLength)), positions: s.kv.positions(a.seq).slice(a.cachedLength), context: s.kv.context(a.seq), logits: 'none' }]);
      const placement = await s.cache.place(a.seq, entries, 'rotate');
      if (ratio !== undefined) await s.cache.blend(a.seq, placement, { ratio, probe: fakeProbe });
      await s.kv.append(a.seq, Q);
      s.kv.commit(a.seq);
      s.kv.release(a.seq);
    };
    const T = [...P, ...A, ...Bc, ...Q];
    // Encoding A committed [P A] (15 tokens, 3 blocks): exact, A was computed right there.
    await run();
    expect(s.kv.tree.matchPrefix(T).length).toBe(12); // the placed cells added nothing
    await run(0.5);
    expect(s.kv.tree.matchPrefix(T).length).toBe(12); // partial recompute is still approximate
    await run(1);
    expect(s.kv.tree.matchPrefix(T).length).toBe(24); // exact now: every whole block is cached
    s.kv.checkInvariants();
  });

  it('APE mode keeps each chunk at its encoded positions and starts the query after the longest', async () => {
    const s = setup();
    const r = await assembled(s, P, [A, Bc], Q, 'ape');
    expect(r.placement.chunks[0].positions[0]).toBe(P.length);
    expect(r.placement.chunks[1].positions[0]).toBe(P.length);
    expect(r.placement.nextPosition).toBe(P.length + Math.max(A.length, Bc.length));
    expect(s.backend.rotations).toBe(0);
  });

  it('the disk store serves a new process (fresh memory tier) without recomputing', async () => {
    const s1 = setup(true);
    await assembled(s1, P, [A, Bc], Q, 'rotate');
    const s2 = setup(true);
    const before = s2.backend.forwardTokens;
    const r = await assembled(s2, P, [A, Bc], Q, 'rotate');
    // Only the prefix and the query were computed: no chunk token went through forward.
    expect(s2.backend.forwardTokens - before).toBe(P.length + Q.length);
    const snap = s2.kv.snapshot();
    expect(snap.chunks.diskHits).toBe(2);
    expect(snap.chunks.diskEntries).toBe(2);
    expect(snap.bytes.disk).toBeGreaterThan(0);
    const s3 = setup(false);
    expect((await assembled(s3, P, [A, Bc], Q, 'rotate')).logits).toEqual(r.logits);
  });

  it('rotateKeys(+d) then (-d) restores the keys', async () => {
    const be = new FakeBackend({ kvSlots: 16 });
    const slots = Int32Array.from({ length: 8 }, (_, i) => i);
    await be.forward([{ tokens: Int32Array.from(toks(9, 8)), positions: slots, context: slots, logits: 'none' }]);
    const before = await be.readSlots(slots);
    await be.rotateKeys(slots, new Int32Array(8).fill(37));
    expect(await be.readSlots(slots)).not.toEqual(before);
    await be.rotateKeys(slots, new Int32Array(8).fill(-37));
    const after = await be.readSlots(slots);
    for (let i = 0; i < before.length; i++) expect(after[i]).toBeCloseTo(before[i], 5);
  });
});

describe('ChunkCache keys', () => {
  it('a key whose cached tokens differ from the chunk is treated as stale and re-encoded', async () => {
    const backend = new FakeBackend({ kvSlots: SLOTS, layers: 3, seed: 5 });
    const kv = new KvManager({ backend, kvSlots: SLOTS, blockSize: 4 });
    const cache = new ChunkCache({ manager: kv, backend, model: 'fake', tokenizer: 'fake', memoryBudgetBytes: 1 << 20 });
    const key = cache.key('same text', 0, 1, []);
    const a = await cache.get(key, [], [1, 2, 3]);
    const b = await cache.get(key, [], [4, 5, 6]);
    expect(Array.from(b.tokens)).toEqual([4, 5, 6]);
    expect(b.kv).not.toEqual(a.kv);
    expect((await cache.get(key, [], [4, 5, 6])).kv).toEqual(b.kv);
    expect(kv.snapshot().chunks).toMatchObject({ hits: 1, misses: 2, entries: 1 });
  });
});
