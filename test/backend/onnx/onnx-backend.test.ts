// The onnxruntime-node backend against the reference backend (plain f32 numerics) on generated
// GGUFs of every architecture and stored format. At accuracy level 0 MatMulNBits computes in f32
// on the exact dequantized weights, so the only differences are f32 summation order: logits
// within 1e-4 of the largest |logit|, greedy tokens identical. The default, level 4, multiplies
// int8 activation blocks (as llama.cpp does for Q8_0/Q4_0): logits within 5e-2, and greedy
// choices differ only at near-ties (the two tokens within the measured logits difference).

import { afterAll, describe, expect, test } from 'vitest';
import { createReferenceBackend } from '../../../engine/backend/reference';
import { createOnnxBackend } from '../../../engine/backend/onnx';
import { createBackend } from '../../../engine/backend';
import { openGguf } from '../../../engine/gguf';
import { loadWeights } from '../../../engine/model';
import type { ModelWeights } from '../../../engine/model/types';
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
];

describe('onnx backend matches the reference backend', () => {
  for (const [name, opts] of MODELS) {
    test(`${name}: prefill logits and greedy decode`, async () => {
      const w = weightsFor(opts);
      const ref = await createReferenceBackend(w, { kvSlots: 64, ggmlNumerics: false });
      const onnx = await createOnnxBackend(w, { kvSlots: 64, threads: 1, accuracyLevel: 0 });
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
    const f32 = await createOnnxBackend(w, { kvSlots: 64, threads: 1, forceF32: true });
    try {
      expect((await compareBackends(ref, f32, HELLO_PROMPT, 4)).diff).toBeLessThan(1e-4);
    } finally {
      await f32.dispose();
    }
  });

  test('KV maintenance (read, copy, rotate, write) matches the reference', async () => {
    const w = weightsFor(MODELS[2]![1]);
    const ref = await createReferenceBackend(w, { kvSlots: 32, ggmlNumerics: false });
    const onnx = await createOnnxBackend(w, { kvSlots: 32, threads: 1 });
    try {
      const slots = Int32Array.from({ length: HELLO_PROMPT.length }, (_, i) => 31 - i);
      for (const b of [ref, onnx]) await b.forward([batch(HELLO_PROMPT, 0, slots, 'none')]);
      expect(relDiff(await onnx.readSlots(slots), await ref.readSlots(slots))).toBeLessThan(1e-5);
      const src = slots.subarray(0, 5);
      const dst = Int32Array.from([0, 1, 2, 3, 4]);
      for (const b of [ref, onnx]) {
        await b.copySlots(src, dst);
        await b.rotateKeys(dst, new Int32Array(5).fill(7));
      }
      expect(relDiff(await onnx.readSlots(dst), await ref.readSlots(dst))).toBeLessThan(1e-5);
      const data = await ref.readSlots(slots);
      await onnx.writeSlots(slots, data);
      expect(relDiff(await onnx.readSlots(slots), data)).toBe(0);
    } finally {
      await onnx.dispose();
    }
  });

  test('registered as "onnx"; bad batches are typed errors', async () => {
    const w = weightsFor(MODELS[2]![1]);
    const be = await createBackend('onnx', w, { kvSlots: 8, threads: 1 });
    try {
      expect(be.name).toBe('onnx');
      await expect(be.forward([batch([1, 2], 0, Int32Array.from([0, 99]), 'last')])).rejects.toThrow(/slot 99/);
      await expect(be.forward([batch([w.config.vocabSize], 0, Int32Array.from([0]), 'last')])).rejects.toThrow(/outside the vocabulary/);
    } finally {
      await be.dispose();
    }
  });
});
