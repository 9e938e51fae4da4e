import { describe, expect, it } from 'vitest';
import { KvManager } from '../../engine/kv/kv-manager';
import { CachetError, OutOfMemoryError } from '../../engine/errors';
import { FakeBackend, mulberry32 } from './fake-backend';

const B = 4;
function setup(kvSlots = 256, extra: Partial<ConstructorParameters<typeof KvManager>[0]> = {}) {
  const backend = new FakeBackend({ kvSlots });
  const kv = new KvManager({ backend, kvSlots, blockSize: B, bytesPerSlot: 100, ...extra });
  return { backend, kv };
}

/** What the runtime does: acquire, prefill the uncached suffix, return last-token logits. */
async function prefill(kv: KvManager, be: FakeBackend, tokens: number[]) {
  const a = await kv.acquire(tokens);
  const [r] = await be.forward([
    {
      tokens: Int32Array.from(tokens.slice(a.cachedLength)),
      positions: a.positions.slice(a.cachedLength),
      context: a.context,
      logits: 'last',
    },
  ]);
  return { a, logits: r.logits };
}

const prompt = (seed: number, n: number) => {
  const r = mulberry32(seed);
  return Array.from({ length: n }, () => Math.floor(r() * 64));
};

describe('KvManager', () => {
  it('a prefix-cache hit reuses whole blocks and gives bit-identical logits to a cold run', async () => {
    const { backend, kv } = setup();
    const p = prompt(1, 23);
    const cold = await prefill(kv, backend, p);
    expect(cold.a.cachedLength).toBe(0);
    expect(kv.commit(cold.a.seq, p)).toBe(20); // 5 whole blocks
    kv.release(cold.a.seq);
    kv.checkInvariants();

    const warm = await prefill(kv, backend, p);
    expect(warm.a.cachedLength).toBe(20);
    expect(Array.from(warm.a.context.subarray(0, 20))).toEqual(Array.from(cold.a.context.subarray(0, 20)));
    expect(warm.logits).toEqual(cold.logits);
    // A prompt that extends the cached one reuses it too; one that diverges at token 9 reuses 8.
    const ext = await prefill(kv, backend, [...p, 5, 6, 7]);
    expect(ext.a.cachedLength).toBe(20);
    const div = await prefill(kv, backend, [...p.slice(0, 9), (p[9] + 1) % 64, ...p.slice(10)]);
    expect(div.a.cachedLength).toBe(8);
    kv.checkInvariants();
    for (const x of [warm, ext, div]) kv.release(x.a.seq);
    const s = kv.snapshot();
    expect(s.prefix.lookups).toBe(4);
    expect(s.prefix.hits).toBe(3);
    expect(s.tokens.reused).toBe(48);
    expect(s.tokens.computed).toBe(23 + 3 + 6 + 15);
    expect(s.bytes.device).toBe(s.blocksUsed * B * 100);
    kv.checkInvariants();
  });

  it('always leaves the last prompt token to compute', async () => {
    const { backend, kv } = setup();
    const p = prompt(2, 16);
    const a = await prefill(kv, backend, p);
    kv.commit(a.a.seq);
    kv.release(a.a.seq);
    const b = await kv.acquire(p);
    expect(b.cachedLength).toBe(12);
    expect(b.newSlots.length).toBe(4);
    kv.release(b.seq);
  });

  it('decode appends reuse the tail block; commit caches the generated tokens too', async () => {
    const { backend, kv } = setup();
    const p = prompt(3, 6);
    const { a } = await prefill(kv, backend, p);
    const s1 = await kv.append(a.seq, [9]);
    expect(Math.floor(s1[0] / B)).toBe(Math.floor(a.context[5] / B));
    expect(kv.positions(a.seq)[6]).toBe(6);
    await kv.append(a.seq, [10]);
    expect(kv.commit(a.seq)).toBe(8);
    kv.release(a.seq);
    const b = await kv.acquire([...p, 9, 10, 11]);
    expect(b.cachedLength).toBe(8);
    kv.release(b.seq);
    kv.checkInvariants();
  });

  it('seqCp shares blocks and copy-on-write keeps the original intact', async () => {
    const { backend, kv } = setup();
    const p = prompt(4, 10);
    const { a } = await prefill(kv, backend, p);
    const before = await backend.readSlots(kv.context(a.seq));
    const fork = kv.seqCp(a.seq);
    expect(Array.from(kv.context(fork))).toEqual(Array.from(kv.context(a.seq)));
    const ns = await kv.append(fork, [1, 2]);
    await backend.forward([{ tokens: Int32Array.from([1, 2]), positions: Int32Array.from([10, 11]), context: kv.context(fork), logits: 'none' }]);
    expect(kv.context(a.seq)).not.toContain(ns[0]);
    expect(await backend.readSlots(kv.context(a.seq))).toEqual(before);
    kv.checkInvariants();
    kv.keep(fork);
    expect(kv.sequences).toBe(1);
    expect(() => kv.context(a.seq)).toThrow(CachetError);
    kv.release(fork);
    expect(kv.snapshot().blocksUsed).toBe(0);
  });

  it('cache-reuse flow (seq_rm gap + seq_add shift) re-rotates keys to where a recompute puts them', async () => {
    const { backend, kv } = setup();
    const p = prompt(5, 24);
    const { a } = await prefill(kv, backend, p);
    kv.commit(a.seq);
    // New prompt drops tokens [4, 8): keep 0..3, shift 8..23 down by 4 (llama.cpp --cache-reuse).
    expect(kv.seqRm(a.seq, 4, 8)).toBe(4);
    expect(await kv.seqAdd(a.seq, 8, -1, -4)).toBe(16);
    expect(Array.from(kv.positions(a.seq))).toEqual(Array.from({ length: 20 }, (_, i) => i));
    // Layer-0 keys depend only on (token, position): compare with a fresh run of the new prompt.
    const q = [...p.slice(0, 4), ...p.slice(8)];
    const fresh = kv.create();
    const slots = await kv.append(fresh, q);
    await backend.forward([{ tokens: Int32Array.from(q), positions: kv.positions(fresh), context: slots, logits: 'none' }]);
    const shifted = await backend.readSlots(kv.context(a.seq));
    const ref = await backend.readSlots(slots);
    const D = backend.kvDim;
    for (let t = 0; t < 20; t++) for (let d = 0; d < D; d++) expect(shifted[t * 2 * D + d]).toBeCloseTo(ref[t * 2 * D + d], 5);
    // The tree's copy of the old prompt was not rotated (shift copied the shared blocks first).
    kv.release(a.seq);
    const again = await prefill(kv, backend, p);
    expect(again.a.cachedLength).toBe(20);
    const cold = new FakeBackend({ kvSlots: 256 });
    const coldKv = new KvManager({ backend: cold, kvSlots: 256, blockSize: B });
    expect(again.logits).toEqual((await prefill(coldKv, cold, p)).logits);
    kv.checkInvariants();
  });

  it('shifted (approximate) cells and everything after them never enter the prefix cache', async () => {
    const { backend, kv } = setup();
    const p = prompt(15, 24);
    const { a } = await prefill(kv, backend, p);
    kv.seqRm(a.seq, 8, 12);
    await kv.seqAdd(a.seq, 12, -1, -4);
    await kv.append(a.seq, [1, 2, 3, 4]); // attends to shifted cells: approximate too
    expect(kv.table(a.seq).exact.filter((e) => !e).length).toBe(16);
    expect(kv.commit(a.seq)).toBe(8); // only the two untouched blocks
    kv.release(a.seq);
    const q = [...p.slice(0, 8), ...p.slice(12), 1, 2, 3, 4, 5];
    const b = await kv.acquire(q);
    expect(b.cachedLength).toBe(8);
    kv.release(b.seq);
    kv.checkInvariants();
  });

  it('OutOfMemoryError leaves everything unchanged when the budget is held by live requests', async () => {
    const { backend, kv } = setup(64, { maxBlocks: 6 }); // 24 tokens
    const a = await prefill(kv, backend, prompt(6, 16));
    const snap = kv.snapshot();
    await expect(kv.acquire(prompt(7, 16))).rejects.toThrow(OutOfMemoryError);
    expect(kv.snapshot().blocksUsed).toBe(snap.blocksUsed);
    kv.checkInvariants();
    await expect(kv.append(a.a.seq, prompt(8, 12))).rejects.toThrow(OutOfMemoryError);
    expect(kv.length(a.a.seq)).toBe(16);
    kv.commit(a.a.seq);
    kv.release(a.a.seq);
    // Now the cached prefix is unlocked and gets evicted to make room.
    const b = await kv.acquire(prompt(7, 20));
    expect(kv.snapshot().evictions.deviceBlocks).toBeGreaterThan(0);
    kv.release(b.seq);
    kv.checkInvariants();
  });

  it('offloads cold prefix blocks to host and restores them bit-exactly', async () => {
    const { backend, kv } = setup(64, { maxBlocks: 6, hostBudgetBytes: 1 << 20 });
    const p = prompt(9, 17);
    const first = await prefill(kv, backend, p);
    kv.commit(first.a.seq);
    kv.release(first.a.seq);
    // Another prompt needs most of the budget: p's blocks go to host, not to the bin.
    const other = await prefill(kv, backend, prompt(10, 20));
    kv.commit(other.a.seq);
    kv.release(other.a.seq);
    let s = kv.snapshot();
    expect(s.host.offloadedBlocks).toBeGreaterThan(0);
    expect(s.bytes.host).toBeGreaterThan(0);
    const back = await prefill(kv, backend, p);
    s = kv.snapshot();
    expect(back.a.cachedLength).toBe(16);
    expect(s.host.restoredBlocks).toBe(4);
    expect(back.logits).toEqual(first.logits);
    kv.release(back.a.seq);
    kv.checkInvariants();
  });

  it('keeps every invariant through random interleaved requests (seeded)', async () => {
    for (const seed of [11, 12, 13]) {
      const rnd = mulberry32(seed);
      const { backend, kv } = setup(128, { maxBlocks: 20, hostBudgetBytes: seed === 13 ? 4096 : 0 });
      const live: number[] = [];
      let ooms = 0;
      for (let step = 0; step < 150; step++) {
        const op = rnd();
        try {
          if (op < 0.35) {
            const base = Math.floor(rnd() * 3);
            const n = 2 + Math.floor(rnd() * 20);
            const toks = [...prompt(100 + base, 12), ...prompt(step, n)].slice(0, 4 + n);
            live.push((await prefill(kv, backend, toks)).a.seq);
          } else if (op < 0.5 && live.length) {
            await kv.append(live[Math.floor(rnd() * live.length)], [Math.floor(rnd() * 64)]);
          } else if (op < 0.65 && live.length) {
            const i = Math.floor(rnd() * live.length);
            kv.commit(live[i]);
            kv.release(live.splice(i, 1)[0]);
          } else if (op < 0.75 && live.length) {
            live.push(kv.seqCp(live[Math.floor(rnd() * live.length)]));
          } else if (op < 0.85 && live.length) {
            const s = live[Math.floor(rnd() * live.length)];
            const len = kv.length(s);
            kv.seqRm(s, Math.floor(rnd() * len), -1);
          } else if (live.length) {
            const s = live[Math.floor(rnd() * live.length)];
            await kv.seqAdd(s, 2, -1, -Math.floor(rnd() * 3));
          }
        } catch (e) {
          expect(e).toBeInstanceOf(OutOfMemoryError);
          ooms++;
        }
        kv.checkInvariants();
      }
      for (const s of live) kv.release(s);
      kv.tree.clear();
      kv.checkInvariants();
      expect(kv.snapshot().blocksUsed).toBe(0);
      expect(ooms).toBeLessThan(150);
    }
  });

  it('rejects unknown sequences and empty prompts with a hint', async () => {
    const { kv } = setup();
    expect(() => kv.release(42)).toThrow(/does not exist/);
    await expect(kv.acquire([])).rejects.toThrow(CachetError);
    expect(() => new KvManager({ backend: new FakeBackend({ kvSlots: 8 }), kvSlots: 8, blockSize: 16 })).toThrow(/KV budget too small/);
  });
});

describe('KvManager export/import', () => {
  it('moves a sequence to another manager; logits continue bit-identically; exact prefix stays committable', async () => {
    const { backend, kv } = setup();
    const p = prompt(20, 22);
    const { a } = await prefill(kv, backend, p);
    await kv.seqAdd(a.seq, 20, -1, 3); // the last two cells become approximate
    const state = await kv.exportSequence(a.seq);
    expect(Array.from(state.exact).filter((e) => e === 0).length).toBe(2);

    const other = setup();
    // Occupy some blocks first so the imported cells land in other slots.
    const filler = await other.kv.acquire(prompt(21, 9));
    const seq = await other.kv.importSequence(state);
    expect(Array.from(other.kv.positions(seq))).toEqual(Array.from(state.positions));
    expect(await other.backend.readSlots(other.kv.context(seq))).toEqual(state.kv);
    const step = async (k: KvManager, be: FakeBackend, s: number) => {
      await k.append(s, [7], [25]);
      const [r] = await be.forward([{ tokens: Int32Array.from([7]), positions: Int32Array.from([25]), context: k.context(s), logits: 'last' }]);
      return r.logits;
    };
    expect(await step(other.kv, other.backend, seq)).toEqual(await step(kv, backend, a.seq));
    expect(other.kv.commit(seq)).toBe(20); // the 5 exact whole blocks
    other.kv.release(filler.seq);
    other.kv.checkInvariants();
    await expect(other.kv.importSequence({ ...state, exact: new Uint8Array(3) })).rejects.toThrow(/inconsistent/);
    other.kv.checkInvariants();
  });

  it('reports device bytes from the backend when bytesPerSlot is not given', async () => {
    const backend = new FakeBackend({ kvSlots: 64 });
    const kv = new KvManager({ backend, kvSlots: 64, blockSize: 4 });
    const a = await kv.acquire([1, 2, 3, 4, 5]);
    expect(kv.snapshot().bytes.device).toBe(2 * 4 * (backend.kv.byteLength / 64));
    kv.release(a.seq);
  });
});

describe('KvManager.reuseShifted (llama.cpp --cache-reuse)', () => {
  it('keeps the common prefix and shifts matching runs of at least minRun tokens', async () => {
    const { backend, kv } = setup();
    const [A, Bt, C, D, E] = [prompt(31, 8), prompt(32, 8), prompt(33, 8), prompt(34, 8), prompt(35, 5)];
    // Old prompt: A B, a 3-token fragment of C, junk, then C D. New prompt: A C D E (B removed).
    const J = [60, 61, 62, 63, 60];
    const old = [...A, ...Bt, ...C.slice(0, 3), ...J, ...C, ...D, 1];
    const first = await prefill(kv, backend, old);
    kv.commit(first.a.seq); // the old prompt's blocks are shared with the tree from here on
    const oldLogits = first.logits;
    const next = [...A, ...C, ...D, ...E];
    const n = await kv.reuseShifted(first.a.seq, next, 4);
    // A is the common prefix; the 3-token fragment is shorter than minRun and skipped; C and D are
    // shifted down by 16 to follow A. E must be computed.
    expect(n).toBe(24);
    expect(Array.from(kv.tokens(first.a.seq))).toEqual([...A, ...C, ...D]);
    expect(Array.from(kv.positions(first.a.seq))).toEqual(Array.from({ length: 24 }, (_, i) => i));
    const exact = kv.table(first.a.seq).exact;
    expect(exact.slice(0, 8).every(Boolean)).toBe(true);
    expect(exact.slice(8).some(Boolean)).toBe(false);
    // Layer-0 keys of the kept cells are where a fresh run of their tokens at those positions puts them.
    const ref = new FakeBackend({ kvSlots: 64 });
    const kept = [...A, ...C, ...D];
    const idx = Int32Array.from({ length: 24 }, (_, i) => i);
    await ref.forward([{ tokens: Int32Array.from(kept), positions: idx, context: idx, logits: 'none' }]);
    const want = await ref.readSlots(idx);
    const got = await backend.readSlots(kv.context(first.a.seq));
    const D2 = 2 * backend.kvDim;
    for (let i = 0; i < 24 * D2; i++) expect(got[i]).toBeCloseTo(want[i], 5);
    // Then the caller prefills the rest after the kept cells.
    await kv.append(first.a.seq, E);
    expect(kv.positions(first.a.seq)[24]).toBe(24);
    expect(kv.commit(first.a.seq)).toBe(0); // A's blocks were already cached; nothing shifted is added
    kv.release(first.a.seq);
    // The tree's copy of the old prompt was copied-on-write, not rotated.
    const again = await prefill(kv, backend, old);
    expect(again.a.cachedLength).toBe(40);
    expect(again.logits).toEqual(oldLogits);
    kv.release(again.a.seq);
    kv.checkInvariants();
  });
});
