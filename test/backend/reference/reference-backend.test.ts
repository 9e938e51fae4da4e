import { describe, expect, test } from 'vitest';
import { backendKinds, createBackend } from '../../../engine/backend';
import { createReferenceBackend, Rope } from '../../../engine/backend/reference';
import type { SequenceBatch } from '../../../engine/backend/types';
import { BackendUnavailableError, CachetError } from '../../../engine/errors';
import type { ModelConfig } from '../../../engine/model';
import { naiveLogits, tinyConfig, tinyWeights } from './naive-model';

const ARCHS: ModelConfig['arch'][] = ['llama', 'qwen2', 'starcoder2'];
const TOKENS = [3, 7, 1, 10, 0, 5, 5, 2];

function batch(tokens: number[], positions: number[], context: number[], logits: SequenceBatch['logits'] = 'all'): SequenceBatch {
  return { tokens: Int32Array.from(tokens), positions: Int32Array.from(positions), context: Int32Array.from(context), logits };
}
const range = (a: number, n: number) => Array.from({ length: n }, (_, i) => a + i);

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe.each(ARCHS)('%s', (arch) => {
  const weights = tinyWeights(tinyConfig(arch), 11);
  const V = weights.config.vocabSize;

  test('prefill logits match an independent float64 implementation', async () => {
    const be = await createReferenceBackend(weights, { kvSlots: 32, ggmlNumerics: false });
    const [res] = await be.forward([batch(TOKENS, range(0, 8), range(0, 8))]);
    const want = naiveLogits(weights, TOKENS).flat();
    expect(res!.logits.length).toBe(8 * V);
    expect(maxDiff(res!.logits, want)).toBeLessThan(1e-4);
  });

  test('linear RoPE scaling matches the naive model too', async () => {
    const w = tinyWeights(tinyConfig(arch, { rope: { ...tinyConfig(arch).rope, freqBase: 1e6, scaling: { type: 'linear', factor: 4, originalContext: 128 } } }), 5);
    const be = await createReferenceBackend(w, { kvSlots: 16, ggmlNumerics: false });
    const [res] = await be.forward([batch(TOKENS, range(3, 8), range(0, 8))]);
    expect(maxDiff(res!.logits, naiveLogits(w, TOKENS, 3).flat())).toBeLessThan(1e-4);
  });

  test('token-by-token decode gives the prefill logits; logits "last" is the last row', async () => {
    const be = await createReferenceBackend(weights, { kvSlots: 32 });
    const [all] = await be.forward([batch(TOKENS, range(0, 8), range(0, 8))]);
    const inc = await createReferenceBackend(weights, { kvSlots: 32 });
    for (let t = 0; t < TOKENS.length; t++) {
      const [r] = await inc.forward([batch([TOKENS[t]!], [t], range(0, t + 1), 'last')]);
      expect(maxDiff(r!.logits, all!.logits.subarray(t * V, (t + 1) * V))).toBeLessThan(1e-5);
    }
    const [last] = await be.forward([batch([4, 9], [8, 9], range(0, 10), 'last')]);
    expect(last!.logits.length).toBe(V);
    const [none] = await be.forward([batch([1], [10], range(0, 11), 'none')]);
    expect(none!.logits.length).toBe(0);
  });

  test('scattered KV slots give the same logits as contiguous ones', async () => {
    const slots = [17, 3, 29, 0, 8, 22, 11, 5];
    const a = await createReferenceBackend(weights, { kvSlots: 32 });
    const b = await createReferenceBackend(weights, { kvSlots: 32 });
    const [ra] = await a.forward([batch(TOKENS, range(0, 8), range(0, 8))]);
    const [rb] = await b.forward([batch(TOKENS.slice(0, 5), range(0, 5), slots.slice(0, 5))]);
    const [rb2] = await b.forward([batch(TOKENS.slice(5), range(5, 3), slots)]);
    expect(maxDiff(rb!.logits, ra!.logits.subarray(0, 5 * V))).toBeLessThan(1e-6);
    expect(maxDiff(rb2!.logits, ra!.logits.subarray(5 * V))).toBeLessThan(1e-6);
  });

  test('two sequences in one forward call equal two separate calls', async () => {
    const be = await createReferenceBackend(weights, { kvSlots: 32 });
    const [x, y] = await be.forward([batch([1, 2, 3], range(0, 3), range(0, 3)), batch([4, 5], range(0, 2), [10, 11])]);
    const solo = await createReferenceBackend(weights, { kvSlots: 32 });
    const [y1] = await solo.forward([batch([4, 5], range(0, 2), [0, 1])]);
    const [x1] = await solo.forward([batch([1, 2, 3], range(0, 3), [5, 6, 7])]);
    expect(maxDiff(x!.logits, x1!.logits)).toBe(0);
    expect(maxDiff(y!.logits, y1!.logits)).toBe(0);
  });

  test('copySlots: a copied prefix decodes like the original', async () => {
    const be = await createReferenceBackend(weights, { kvSlots: 32 });
    await be.forward([batch(TOKENS.slice(0, 6), range(0, 6), range(0, 6), 'none')]);
    await be.copySlots(Int32Array.from(range(0, 6)), Int32Array.from(range(20, 6)));
    const [a] = await be.forward([batch([9], [6], [...range(0, 6), 6], 'last')]);
    const [b] = await be.forward([batch([9], [6], [...range(20, 6), 26], 'last')]);
    expect(maxDiff(a!.logits, b!.logits)).toBe(0);
  });

  test('readSlots/writeSlots move a prefix to another backend exactly', async () => {
    const a = await createReferenceBackend(weights, { kvSlots: 16 });
    await a.forward([batch(TOKENS.slice(0, 5), range(0, 5), range(0, 5), 'none')]);
    const data = await a.readSlots(Int32Array.from(range(0, 5)));
    const c = weights.config;
    expect(data.length).toBe(c.nLayers * 5 * 2 * c.nKvHeads * c.headDim);
    const b = await createReferenceBackend(weights, { kvSlots: 16 });
    await b.writeSlots(Int32Array.from(range(8, 5)), data);
    const [ra] = await a.forward([batch([6], [5], range(0, 6), 'last')]);
    const [rb] = await b.forward([batch([6], [5], [...range(8, 5), 13], 'last')]);
    expect(maxDiff(ra!.logits, rb!.logits)).toBe(0);
    await expect(b.writeSlots(Int32Array.from([0]), new Float32Array(3))).rejects.toThrow(/expected/);
  });

  test('rotateKeys moves cached keys to a new position (RoPE is relative, so the rest is shift-invariant)', async () => {
    const shift = 7;
    const be = await createReferenceBackend(weights, { kvSlots: 32 });
    await be.forward([batch(TOKENS, range(0, 8), range(0, 8), 'none')]);
    await be.forward([batch(TOKENS, range(shift, 8), range(16, 8), 'none')]);
    await be.rotateKeys(Int32Array.from(range(0, 8)), Int32Array.from({ length: 8 }, () => shift));
    const moved = await be.readSlots(Int32Array.from(range(0, 8)));
    const fresh = await be.readSlots(Int32Array.from(range(16, 8)));
    expect(maxDiff(moved, fresh)).toBeLessThan(2e-4);
    // A zero delta leaves keys bit-identical; rotating back restores them.
    const before = await be.readSlots(Int32Array.from([3]));
    await be.rotateKeys(Int32Array.from([3, 3]), Int32Array.from([0, 5]));
    await be.rotateKeys(Int32Array.from([3]), Int32Array.from([-5]));
    expect(maxDiff(await be.readSlots(Int32Array.from([3])), before)).toBeLessThan(1e-5);
  });

  test('rows: a scattered recompute in one forward equals one forward per contiguous run, and restores clean K/V', async () => {
    const tokens = [...TOKENS, 4, 8, 6, 1];
    const n = tokens.length;
    const slots = [9, 2, 14, 0, 21, 5, 30, 11, 7, 18, 26, 3];
    const cells = [2, 3, 7, 10, 11];
    const c = weights.config;
    const kvDim = c.nKvHeads * c.headDim;
    const clean = await createReferenceBackend(weights, { kvSlots: 32 });
    const [full] = await clean.forward([batch(tokens, range(0, n), slots)]);
    const want = await clean.readSlots(Int32Array.from(slots));
    // Two copies of the prompt's K/V with the chosen cells spoiled (as reused chunk cells are).
    const spoil = async () => {
      const be = await createReferenceBackend(weights, { kvSlots: 32 });
      await be.writeSlots(Int32Array.from(slots), want);
      const picked = Int32Array.from(cells, (i) => slots[i]!);
      await be.writeSlots(picked, Float32Array.from({ length: c.nLayers * cells.length * 2 * kvDim }, (_, i) => Math.sin(i) * 0.5));
      return be;
    };
    const scattered = await spoil();
    const runs = await spoil();
    const [r] = await scattered.forward([
      { tokens: Int32Array.from(cells, (i) => tokens[i]!), positions: Int32Array.from(cells), context: Int32Array.from(slots), logits: 'all', rows: Int32Array.from(cells) },
    ]);
    const runLogits: Float32Array[] = [];
    for (const [from, to] of [[2, 4], [7, 8], [10, 12]] as const) {
      const [x] = await runs.forward([batch(tokens.slice(from, to), range(from, to - from), slots.slice(0, to))]);
      runLogits.push(x!.logits);
    }
    const a = await scattered.readSlots(Int32Array.from(slots));
    const b = await runs.readSlots(Int32Array.from(slots));
    expect(maxDiff(a, b)).toBe(0);
    // Every cell before a spoiled one was clean, so the recompute is exact.
    expect(maxDiff(a, want)).toBeLessThan(1e-6);
    const joined = new Float32Array(cells.length * V);
    let o = 0;
    for (const x of runLogits) { joined.set(x, o); o += x.length; }
    expect(maxDiff(r!.logits, joined)).toBe(0);
    for (const [k, i] of cells.entries()) expect(maxDiff(r!.logits.subarray(k * V, (k + 1) * V), full!.logits.subarray(i * V, (i + 1) * V))).toBeLessThan(1e-5);
    // 'last' is the last listed row; a cell not listed keeps its K/V even when it is stale.
    const [last] = await scattered.forward([{ tokens: Int32Array.from([tokens[5]!]), positions: Int32Array.from([5]), context: Int32Array.from(slots.slice(0, 8)), logits: 'last', rows: Int32Array.from([5]) }]);
    expect(maxDiff(last!.logits, full!.logits.subarray(5 * V, 6 * V))).toBeLessThan(1e-5);
    expect(maxDiff(await scattered.readSlots(Int32Array.from(slots)), a)).toBeLessThan(1e-6);
    expect(scattered.supportsRows).toBe(true);
  });

  test('memory() reports f32 KV storage and the dequantized weights', async () => {
    const be = await createReferenceBackend(weights, { kvSlots: 40 });
    const c = weights.config;
    const m = be.memory();
    expect(m.kvBytes).toBe(c.nLayers * 40 * 2 * c.nKvHeads * c.headDim * 4);
    expect(m.weightsBytes).toBeGreaterThan(0);
    await be.forward([batch([1, 2], [0, 1], [0, 1])]);
    expect(be.memory().scratchBytes).toBeGreaterThan(0);
  });

  test('a weight cache budget of 0 dequantizes per call with identical results', async () => {
    const cached = await createReferenceBackend(weights, { kvSlots: 16 });
    const streamed = await createReferenceBackend(weights, { kvSlots: 16, weightCacheBytes: 0 });
    const [a] = await cached.forward([batch(TOKENS, range(0, 8), range(0, 8))]);
    const [b] = await streamed.forward([batch(TOKENS, range(0, 8), range(0, 8))]);
    expect(maxDiff(a!.logits, b!.logits)).toBe(0);
  });
});

describe('input validation', () => {
  const weights = tinyWeights(tinyConfig('llama'));
  test('bad batches, slots and disposed backends throw CachetError naming the problem', async () => {
    const be = await createReferenceBackend(weights, { kvSlots: 8 });
    await expect(be.forward([batch([99], [0], [0])])).rejects.toThrow(/token id 99 is outside the vocabulary/);
    await expect(be.forward([batch([1], [0], [8])])).rejects.toThrow(/KV slot 8 is outside 0..7/);
    await expect(be.forward([batch([1, 2], [0], [0, 1])])).rejects.toThrow(CachetError);
    await expect(be.forward([batch([1, 2], [0, 1], [0])])).rejects.toThrow(/context has 1 slots for 2 new tokens/);
    await expect(be.forward([{ ...batch([1, 2], [0, 1], [0, 1, 2]), rows: Int32Array.from([2, 1]) }])).rejects.toThrow(/ascending/);
    await expect(be.forward([{ ...batch([1, 2], [0, 1], [0, 1, 2]), rows: Int32Array.from([1, 3]) }])).rejects.toThrow(/rows\[1\] = 3/);
    await expect(be.forward([{ ...batch([1, 2], [0, 1], [0, 1, 2]), rows: Int32Array.from([1]) }])).rejects.toThrow(/2 tokens but 1 rows/);
    await expect(be.copySlots(Int32Array.from([0]), Int32Array.from([1, 2]))).rejects.toThrow(/destinations/);
    await expect(be.rotateKeys(Int32Array.from([0]), Int32Array.from([]))).rejects.toThrow(/deltas/);
    await be.dispose();
    await expect(be.forward([batch([1], [0], [0])])).rejects.toThrow(/disposed/);
    await expect(createReferenceBackend(weights, { kvSlots: 0 })).rejects.toThrow(/kvSlots/);
  });
});

describe('Rope', () => {
  const cfg = (type: 'normal' | 'neox', factor = 1) => ({ type, dim: 4, freqBase: 100, scaling: { type: 'linear' as const, factor, originalContext: 0 } });
  test('normal rotates adjacent pairs, neox rotates halves, by pos * base^(-2i/dim)', () => {
    const x = Float32Array.from([1, 2, 3, 4]);
    new Rope(cfg('normal'), 4).apply(x, 0, 1, 1);
    const t0 = 1;
    const t1 = Math.pow(100, -0.5);
    const want = [Math.cos(t0) - 2 * Math.sin(t0), Math.sin(t0) + 2 * Math.cos(t0), 3 * Math.cos(t1) - 4 * Math.sin(t1), 3 * Math.sin(t1) + 4 * Math.cos(t1)];
    expect(maxDiff(x, want)).toBeLessThan(1e-6);
    const y = Float32Array.from([1, 2, 3, 4]);
    new Rope(cfg('neox'), 4).apply(y, 0, 1, 1);
    const wantNeox = [Math.cos(t0) - 3 * Math.sin(t0), 2 * Math.cos(t1) - 4 * Math.sin(t1), Math.sin(t0) + 3 * Math.cos(t0), 2 * Math.sin(t1) + 4 * Math.cos(t1)];
    expect(maxDiff(y, wantNeox)).toBeLessThan(1e-6);
  });

  test('linear scaling divides positions by the factor', () => {
    const a = Float32Array.from([1, 2, 3, 4]);
    const b = Float32Array.from([1, 2, 3, 4]);
    new Rope(cfg('normal', 4), 4).apply(a, 0, 1, 8);
    new Rope(cfg('normal', 1), 4).apply(b, 0, 1, 2);
    expect(maxDiff(a, b)).toBeLessThan(1e-6);
  });

  test('YaRN is refused with a hint', () => {
    expect(() => new Rope({ ...cfg('neox'), scaling: { type: 'yarn', factor: 4, originalContext: 32768 } }, 4)).toThrow(/YaRN/);
  });
});

describe('backend registry', () => {
  test('knows reference; an unknown kind throws BackendUnavailableError listing known ones', async () => {
    expect(backendKinds()).toContain('reference');
    const be = await createBackend('reference', tinyWeights(tinyConfig('qwen2')), { kvSlots: 4 });
    expect(be.name).toBe('reference');
    await expect(createBackend('cuda', tinyWeights(tinyConfig('qwen2')), { kvSlots: 4 })).rejects.toThrow(BackendUnavailableError);
  });
});
