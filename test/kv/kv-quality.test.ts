// Exactness properties of KV reuse on the reference backend (a small random-weight model).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createReferenceBackend } from '../../engine/backend/reference';
import { compare, createHarness, makePrompts, runFull, runReuse, type Harness } from '../../bench/kv-quality-harness';

let h: Harness;
beforeAll(async () => {
  h = await createHarness({ arch: 'llama', layers: 3, dims: 64, heads: 4, kvHeads: 2, ff: 128, seed: 3 });
});
afterAll(async () => h?.dispose());

describe('KV reuse exactness (reference backend)', () => {
  const [p] = makePrompts(1, 42, { prefix: 16, chunks: [24, 20], query: 6 });

  it('a prefix-cache hit gives bit-identical logits to a cold run', async () => {
    const prompt = [...p.prefix, ...p.chunks[0], ...p.query]; // 46 tokens
    const cold = await createReferenceBackend(h.weights, { kvSlots: 64 });
    const idx = Int32Array.from({ length: prompt.length }, (_, i) => i);
    const [ref] = await cold.forward([{ tokens: Int32Array.from(prompt), positions: idx, context: idx, logits: 'last' }]);

    const run = async () => {
      const a = await h.kv.acquire(prompt);
      const [r] = await h.backend.forward([
        { tokens: Int32Array.from(prompt.slice(a.cachedLength)), positions: a.positions.slice(a.cachedLength), context: a.context, logits: 'last' },
      ]);
      h.kv.commit(a.seq);
      h.kv.release(a.seq);
      return { cached: a.cachedLength, logits: r.logits };
    };
    await run();
    const warm = await run();
    expect(warm.cached).toBe(32);
    expect(warm.logits).toEqual(ref.logits);
  });

  it('rotateKeys(+d) then (-d) restores the keys', async () => {
    const be = await createReferenceBackend(h.weights, { kvSlots: 32 });
    const idx = Int32Array.from({ length: 20 }, (_, i) => i);
    await be.forward([{ tokens: Int32Array.from(p.chunks[0].slice(0, 20)), positions: idx, context: idx, logits: 'none' }]);
    const before = await be.readSlots(idx);
    await be.rotateKeys(idx, new Int32Array(20).fill(123));
    const moved = await be.readSlots(idx);
    await be.rotateKeys(idx, new Int32Array(20).fill(-123));
    const after = await be.readSlots(idx);
    let maxMoved = 0;
    let maxErr = 0;
    for (let i = 0; i < before.length; i++) {
      maxMoved = Math.max(maxMoved, Math.abs(moved[i] - before[i]));
      maxErr = Math.max(maxErr, Math.abs(after[i] - before[i]));
    }
    expect(maxMoved).toBeGreaterThan(0.01);
    expect(maxErr).toBeLessThan(1e-5);
  });

  it('chunks re-rotated in place with 100% recompute equal the full recompute', async () => {
    const full = await runFull(h, p, 4);
    const blended = await runReuse(h, p, { kind: 'blend', ratio: 1 }, 4);
    expect(blended.recomputed).toBe(44);
    for (let i = 0; i < full.logits.length; i++) {
      let err = 0;
      for (let v = 0; v < h.vocab; v++) err = Math.max(err, Math.abs(full.logits[i][v] - blended.logits[i][v]));
      expect(err).toBeLessThan(1e-4);
    }
    expect(blended.greedy).toEqual(full.greedy);
  });

  it('a single chunk right after the prefix it was encoded with needs no recompute', async () => {
    const one = { ...p, chunks: [p.chunks[0]] };
    const full = await runFull(h, one, 3);
    const r = await runReuse(h, one, { kind: 'rotate' }, 3);
    const c = compare(full, r);
    expect(c.kl).toBeLessThan(1e-9);
    expect(c.top1).toBe(1);
    expect(r.greedy).toEqual(full.greedy);
  });

  it('plain re-rotation of a moved chunk is approximate; 100% recompute removes the error', async () => {
    const full = await runFull(h, p, 2);
    const plain = compare(full, await runReuse(h, p, { kind: 'rotate' }, 2));
    const all = compare(full, await runReuse(h, p, { kind: 'blend', ratio: 1 }, 2));
    expect(plain.kl).toBeGreaterThan(1e-6); // chunk 2 never saw chunk 1: not exact
    expect(all.kl).toBeLessThan(plain.kl);
    expect(all.kl).toBeLessThan(1e-8);
  });

  it('the truncated-model probe computes the same check-layer K/V as the full model', async () => {
    const tokens = Int32Array.from([...p.prefix, ...p.chunks[0]]);
    const idx = Int32Array.from({ length: tokens.length }, (_, i) => i);
    const be = await createReferenceBackend(h.weights, { kvSlots: 64 });
    await be.forward([{ tokens, positions: idx, context: idx, logits: 'none' }]);
    const all = await be.readSlots(idx);
    const fresh = await h.probe(tokens, idx, 1);
    const n = tokens.length * 2 * h.weights.config.nKvHeads * h.weights.config.headDim;
    expect(fresh).toEqual(all.slice(n, 2 * n));
  });
});
