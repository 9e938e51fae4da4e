// The onnxruntime-node backend against the reference backend (plain f32 numerics) on generated
// GGUFs of every architecture and stored format. At accuracy level 0 MatMulNBits computes in f32
// on the exact dequantized weights, so the only differences are f32 summation order: logits
// within 1e-4 of the largest |logit|, greedy tokens identical. The default, level 4, multiplies
// int8 activation blocks (as llama.cpp does for Q8_0/Q4_0): logits within 5e-2, and greedy
// choices differ only at near-ties (the two tokens within the measured logits difference).
// The exact comparisons keep K/V in f32 (kvType 'f32'); the default f16 cache is checked on its own.

import { afterAll, describe, expect, test } from 'vitest';
import { createReferenceBackend } from '../../../engine/backend/reference';
import { createOnnxBackend } from '../../../engine/backend/onnx';
import { createBackend } from '../../../engine/backend';
import { openGguf } from '../../../engine/gguf';
import { loadWeights } from '../../../engine/model';
import type { ModelWeights } from '../../../engine/model/types';
import type { Backend } from '../../../engine/backend/types';
import { makeTestModel, type TestModelOptions } from '../../helpers/make-test-model';
import { batch, compareBackends, HELLO_PROMPT, relDiff } from '../../helpers/backend-compare';

const open: { close(): void }[] = [];
afterAll(() => open.forEach((g) => g.close()));

function weightsFor(opts: TestModelOptions): ModelWeights {
  const g = openGguf(makeTestModel(opts));
  open.push(g);
  return loadWeights(g);
}

const MODELS: [string, TestModelOptions][] = [
  ['qwen2 Q8_0 (MatMulNBits 8-bit, tied, QKV bias)', { arch: 'qwen2', quant: 'Q8_0', seed: 11 }],
  ['llama Q4_0 (MatMulNBits 4-bit)', { arch: 'llama', quant: 'Q4_0', seed: 12 }],
  ['llama F32', { arch: 'llama', quant: 'F32', seed: 13 }],
  ['llama Q4_K (dequantized MatMul)', { arch: 'llama', quant: 'Q4_K', seed: 14 }],
  ['qwen2 Q6_K', { arch: 'qwen2', quant: 'Q6_K', seed: 15, layers: 1 }],
  ['starcoder2 F16 (LayerNorm, GELU, biases)', { arch: 'starcoder2', quant: 'F16', seed: 16 }],
  ['llama F32, one KV head (MQA)', { arch: 'llama', quant: 'F32', seed: 17, heads: 4, kvHeads: 1 }],
  ['llama F32, MHA (KV heads = heads)', { arch: 'llama', quant: 'F32', seed: 18, heads: 4, kvHeads: 4 }],
];

describe('onnx backend matches the reference backend', () => {
  for (const [name, opts] of MODELS) {
    test(`${name}: prefill logits and greedy decode`, async () => {
      const w = weightsFor(opts);
      const ref = await createReferenceBackend(w, { kvSlots: 64, ggmlNumerics: false });
      const onnx = await createOnnxBackend(w, { kvSlots: 64, threads: 1, accuracyLevel: 0, kvType: 'f32' });
      try {
        const { diff, refTokens, otherTokens } = await compareBackends(ref, onnx, HELLO_PROMPT, 8);
        expect(otherTokens).toEqual(refTokens);
        expect(diff).toBeLessThan(1e-4);
        expect(new Set(refTokens).size).toBeGreaterThan(1); // not a model stuck on one token
      } finally {
        await onnx.dispose();
      }
    });
  }

  for (const [name, opts] of [MODELS[0]!, MODELS[1]!]) {
    test(`${name}, default int8 activations (level 4): logits within 5e-2, greedy differs only at near-ties`, async () => {
      const w = weightsFor(opts);
      const ref = await createReferenceBackend(w, { kvSlots: 64, ggmlNumerics: false });
      const fast = await createOnnxBackend(w, { kvSlots: 64, threads: 1 });
      try {
        const { diff, worstTieGap, refTokens, otherTokens } = await compareBackends(ref, fast, HELLO_PROMPT, 8);
        const same = refTokens.filter((t, i) => t === otherTokens[i]).length;
        expect(same).toBeGreaterThanOrEqual(refTokens.length - 2);
        expect(worstTieGap).toBeLessThan(diff * 2); // a flip only where the two tokens were within rounding
        expect(diff).toBeGreaterThan(1e-5); // really the int8 path, not f32
        expect(diff).toBeLessThan(5e-2);
      } finally {
        await fast.dispose();
      }
    });
  }

  test('f32-forced weights are exact', async () => {
    const w = weightsFor(MODELS[0]![1]);
    const ref = await createReferenceBackend(w, { kvSlots: 64, ggmlNumerics: false });
    const f32 = await createOnnxBackend(w, { kvSlots: 64, threads: 1, forceF32: true, kvType: 'f32' });
    try {
      expect((await compareBackends(ref, f32, HELLO_PROMPT, 4)).diff).toBeLessThan(1e-4);
    } finally {
      await f32.dispose();
    }
  });

  test('default f16 KV cache: logits within 2e-3 of the f32 reference, same greedy tokens', async () => {
    for (const [, opts] of [MODELS[2]!, MODELS[6]!]) {
      const w = weightsFor(opts);
      const ref = await createReferenceBackend(w, { kvSlots: 64, ggmlNumerics: false });
      const onnx = await createOnnxBackend(w, { kvSlots: 64, threads: 1, accuracyLevel: 0 });
      try {
        expect(onnx.memory().kvBytes).toBe(w.config.nLayers * 64 * 2 * w.config.nKvHeads * w.config.headDim * 2);
        const { diff, refTokens, otherTokens } = await compareBackends(ref, onnx, HELLO_PROMPT, 8);
        expect(otherTokens).toEqual(refTokens);
        expect(diff).toBeGreaterThan(1e-6); // really rounded to f16
        expect(diff).toBeLessThan(2e-3);
      } finally {
        await onnx.dispose();
      }
    }
  });

  test('contiguous context (read in place) and scattered slots (gathered) give the same logits', async () => {
    const w = weightsFor(MODELS[0]![1]);
    const run = async (slots: Int32Array) => {
      const be = await createOnnxBackend(w, { kvSlots: 64, threads: 1 });
      try {
        const out: Float32Array[] = [(await be.forward([batch(HELLO_PROMPT, 0, slots, 'all')]))[0]!.logits];
        for (let s = 0; s < 3; s++) out.push((await be.forward([batch([40 + s], HELLO_PROMPT.length + s, slots, 'last')]))[0]!.logits);
        return out;
      } finally {
        await be.dispose();
      }
    };
    const n = HELLO_PROMPT.length + 3;
    const a = await run(Int32Array.from({ length: n }, (_, i) => 10 + i));
    // runs of 3 slots in reverse order: gathered run by run
    const b = await run(Int32Array.from({ length: n }, (_, i) => 60 - 3 * Math.floor(i / 3) - 2 + (i % 3)));
    for (let i = 0; i < a.length; i++) expect(relDiff(b[i]!, a[i]!)).toBe(0);
  });

  for (const kvType of ['f32', 'f16'] as const) {
    test(`KV maintenance (read, copy, rotate, write) matches the reference, ${kvType} cache`, async () => {
      const w = weightsFor(MODELS[2]![1]);
      const ref = await createReferenceBackend(w, { kvSlots: 32, ggmlNumerics: false });
      const onnx = await createOnnxBackend(w, { kvSlots: 32, threads: 1, kvType });
      // f16 keeps 11 significant bits: each value within 2^-11 of itself, relative to the largest
      const tol = kvType === 'f32' ? 1e-5 : 1e-3;
      try {
        const slots = Int32Array.from({ length: HELLO_PROMPT.length }, (_, i) => 31 - i);
        for (const b of [ref, onnx]) await b.forward([batch(HELLO_PROMPT, 0, slots, 'none')]);
        expect(relDiff(await onnx.readSlots(slots), await ref.readSlots(slots))).toBeLessThan(tol);
        const src = slots.subarray(0, 5);
        const dst = Int32Array.from([0, 1, 2, 3, 4]);
        for (const b of [ref, onnx]) {
          await b.copySlots(src, dst);
          await b.rotateKeys(dst, new Int32Array(5).fill(7));
        }
        expect(relDiff(await onnx.readSlots(dst), await ref.readSlots(dst))).toBeLessThan(tol);
        const data = await ref.readSlots(slots);
        await onnx.writeSlots(slots, data);
        const back = await onnx.readSlots(slots);
        if (kvType === 'f32') expect(relDiff(back, data)).toBe(0);
        else expect(relDiff(back, data)).toBeLessThan(tol);
        // what readSlots returns is stored exactly
        await onnx.writeSlots(slots, back);
        expect(relDiff(await onnx.readSlots(slots), back)).toBe(0);
      } finally {
        await onnx.dispose();
      }
    });
  }

  for (const [label, opts, tol] of [
    ['f32 cache, f32 math', { kvType: 'f32', accuracyLevel: 0 }, 1e-5],
    ['default f16 cache, int8 activations', {}, 2e-3],
  ] as const) {
    test(`rows (${label}): a scattered recompute in one forward equals one forward per contiguous run`, async () => {
      const w = weightsFor(MODELS[0]![1]);
      const V = w.config.vocabSize;
      const tokens = [...HELLO_PROMPT];
      const slots = Int32Array.from([9, 2, 14, 0, 21, 5, 30, 11, 7, 18, 26, 3, 40]);
      const cells = [2, 3, 7, 10, 11];
      const make = () => createOnnxBackend(w, { kvSlots: 48, threads: 1, ...opts });
      const clean = await make();
      const [full] = await clean.forward([batch(tokens, 0, slots, 'all')]);
      const want = await clean.readSlots(slots);
      await clean.dispose();
      // Two copies of the prompt's K/V with the chosen cells spoiled (as reused chunk cells are).
      const spoil = async (be: Backend) => {
        await be.writeSlots(slots, want);
        const picked = Int32Array.from(cells, (i) => slots[i]!);
        await be.writeSlots(picked, Float32Array.from({ length: want.length / slots.length * cells.length }, (_, i) => Math.sin(i) * 0.5));
        return be;
      };
      const scattered = await spoil(await make());
      const runs = await spoil(await make());
      const ref = await spoil(await createReferenceBackend(w, { kvSlots: 48, ggmlNumerics: false }));
      try {
        expect(scattered.supportsRows).toBe(true);
        const rowsBatch = { tokens: Int32Array.from(cells, (i) => tokens[i]!), positions: Int32Array.from(cells), context: slots.subarray(0, 12), logits: 'all' as const, rows: Int32Array.from(cells) };
        const [r] = await scattered.forward([rowsBatch]);
        const [rr] = await ref.forward([rowsBatch]);
        const joined = new Float32Array(cells.length * V);
        let o = 0;
        for (const [from, to] of [[2, 4], [7, 8], [10, 12]] as const) {
          const [x] = await runs.forward([batch(tokens.slice(from, to), from, slots.subarray(0, to), 'all')]);
          joined.set(x!.logits, o);
          o += x!.logits.length;
        }
        const kv = await scattered.readSlots(slots);
        expect(relDiff(kv, await runs.readSlots(slots))).toBeLessThan(tol);
        // Every cell before a spoiled one was clean, so the recompute restores the clean K/V ...
        expect(relDiff(kv, want)).toBeLessThan(tol);
        // ... and the logits of a full prefill (and of the reference's own rows forward).
        expect(relDiff(r!.logits, joined)).toBeLessThan(tol);
        for (const [k, i] of cells.entries()) expect(relDiff(r!.logits.subarray(k * V, (k + 1) * V), full!.logits.subarray(i * V, (i + 1) * V))).toBeLessThan(tol);
        expect(relDiff(r!.logits, rr!.logits)).toBeLessThan(opts.kvType === 'f32' ? 1e-4 : 5e-2);
        // One row before the end of the context: 'last' is that row; cells not listed keep their K/V.
        const [last] = await scattered.forward([{ tokens: Int32Array.of(tokens[5]!), positions: Int32Array.of(5), context: slots.subarray(0, 8), logits: 'last', rows: Int32Array.of(5) }]);
        expect(relDiff(last!.logits, full!.logits.subarray(5 * V, 6 * V))).toBeLessThan(tol);
        expect(relDiff(await scattered.readSlots(slots), kv)).toBeLessThan(tol);
      } finally {
        await Promise.all([scattered.dispose(), runs.dispose()]);
      }
    });
  }

  test('registered as "onnx"; bad batches are typed errors', async () => {
    const w = weightsFor(MODELS[2]![1]);
    const be = await createBackend('onnx', w, { kvSlots: 8, threads: 1 });
    try {
      expect(be.name).toBe('onnx');
      await expect(be.forward([batch([1, 2], 0, Int32Array.from([0, 99]), 'last')])).rejects.toThrow(/slot 99/);
      await expect(be.forward([batch([w.config.vocabSize], 0, Int32Array.from([0]), 'last')])).rejects.toThrow(/outside the vocabulary/);
      const rowsBatch = (rows: number[]) => ({ tokens: Int32Array.of(1, 2), positions: Int32Array.of(0, 1), context: Int32Array.of(0, 1, 2), logits: 'last' as const, rows: Int32Array.from(rows) });
      await expect(be.forward([rowsBatch([2, 1])])).rejects.toThrow(/rows\[1\] = 1 is not an ascending index/);
      await expect(be.forward([rowsBatch([1, 3])])).rejects.toThrow(/rows\[1\] = 3 is not an ascending index/);
      await expect(be.forward([rowsBatch([1])])).rejects.toThrow(/2 tokens but 1 rows/);
      await expect(createBackend('onnx', w, { kvSlots: 8, kvType: 'f8' } as never)).rejects.toThrow(/kvType must be/);
    } finally {
      await be.dispose();
    }
  });
});
