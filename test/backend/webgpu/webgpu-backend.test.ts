// The WebGPU backend against the reference backend (plain f32 numerics) on generated GGUFs:
// prefill logits for every row, then greedy decoding step by step (tokens identical, logits
// close), chunked prefill, and the KV maintenance calls. Tolerances, relative to the largest
// |logit|: 1e-3 with an f32 KV cache (f32 math in a different order), 1e-2 with f16 KV.

import { existsSync } from 'node:fs';
import { afterAll, describe, expect, test } from 'vitest';
import { openGguf } from '../../../engine/gguf';
import { loadWeights } from '../../../engine/model';
import type { ModelWeights } from '../../../engine/model/types';
import { createReferenceBackend } from '../../../engine/backend/reference';
import type { Backend, SequenceBatch } from '../../../engine/backend/types';
import { createWebGpuBackend, createGpuDevice, type WebGpuBackend } from '../../../engine/backend/webgpu';
import { makeTestModel, type TestModelOptions } from '../../helpers/make-test-model';
import { argmax, batch, compareBackends, HELLO_PROMPT, relDiff } from '../../helpers/backend-compare';

let skip = '';
try {
  (await createGpuDevice()).destroy();
} catch (e) {
  skip = `no WebGPU adapter (${(e as Error).message}); install Mesa >= 24 lavapipe to run GPU backend tests`;
}

const open: { close(): void }[] = [];
afterAll(() => open.forEach((g) => g.close()));

function weightsFor(opts: TestModelOptions): ModelWeights {
  const g = openGguf(makeTestModel(opts));
  open.push(g);
  return loadWeights(g);
}

const PROMPT = HELLO_PROMPT;

/** Prefill + greedy decode on both backends (see test/helpers/backend-compare). */
async function compare(ref: Backend, gpu: Backend, prompt: number[], steps: number) {
  const { diff, refTokens, otherTokens } = await compareBackends(ref, gpu, prompt, steps);
  return { diff, refTokens, gpuTokens: otherTokens };
}

const MODELS: [string, TestModelOptions][] = [
  ['qwen2 Q8_0 (neox, qkv bias, tied, GQA)', { arch: 'qwen2', quant: 'Q8_0', seed: 3 }],
  ['llama Q4_K (normal rope, untied)', { arch: 'llama', quant: 'Q4_K', seed: 4 }],
  ['starcoder2 F16 (LayerNorm, GELU, biases)', { arch: 'starcoder2', quant: 'F16', seed: 5 }],
  ['llama Q6_K', { arch: 'llama', quant: 'Q6_K', seed: 6, layers: 1 }],
  ['qwen2 Q4_0', { arch: 'qwen2', quant: 'Q4_0', seed: 7, layers: 1 }],
  ['starcoder2 Q8_0 (fused matvecs with separate LayerNorm)', { arch: 'starcoder2', quant: 'Q8_0', seed: 8, layers: 1 }],
];

describe('webgpu backend matches the reference backend', () => {
  for (const [name, opts] of MODELS) {
    test(`${name}: prefill logits, greedy decode (f32 KV, prefill chunks of 4)`, async (ctx) => {
      if (skip) return ctx.skip(skip);
      const w = weightsFor(opts);
      const ref = await createReferenceBackend(w, { kvSlots: 64, ggmlNumerics: false });
      const gpu = await createWebGpuBackend(w, { kvSlots: 64, kvF16: false, maxBatchTokens: 4 });
      try {
        const { diff, refTokens, gpuTokens } = await compare(ref, gpu, PROMPT, 6);
        expect(gpuTokens).toEqual(refTokens);
        expect(diff).toBeLessThan(1e-3);
        expect(new Set(refTokens).size).toBeGreaterThan(1); // the model does not just repeat one token
      } finally {
        await gpu.dispose();
      }
    });
  }

  test('qwen2 Q8_0 with the generic (unfused) decode kernels', async (ctx) => {
    if (skip) return ctx.skip(skip);
    const w = weightsFor(MODELS[0]![1]);
    const ref = await createReferenceBackend(w, { kvSlots: 64, ggmlNumerics: false });
    const gpu = await createWebGpuBackend(w, { kvSlots: 64, kvF16: false, fusedKernels: false });
    expect(gpu.useFused).toBe(false);
    try {
      const { diff, refTokens, gpuTokens } = await compare(ref, gpu, PROMPT, 4);
      expect(gpuTokens).toEqual(refTokens);
      expect(diff).toBeLessThan(1e-3);
    } finally {
      await gpu.dispose();
    }
  });

  test('head_dim 32 with 6 query heads per KV head: layout-specialised decode attention and two-stage argmax', async (ctx) => {
    if (skip) return ctx.skip(skip);
    const w = weightsFor({ arch: 'qwen2', quant: 'Q8_0', seed: 9, layers: 2, dims: 192, heads: 6, kvHeads: 1, ff: 256 });
    const ref = await createReferenceBackend(w, { kvSlots: 64, ggmlNumerics: false });
    const gpu = (await createWebGpuBackend(w, { kvSlots: 64, kvF16: true, argmaxPartLen: 64 })) as WebGpuBackend;
    try {
      const { diff, refTokens, gpuTokens } = await compare(ref, gpu, PROMPT, 6);
      expect(gpuTokens).toEqual(refTokens);
      expect(diff).toBeLessThan(1e-2);
      expect(new Set(refTokens).size).toBeGreaterThan(1);
      // decode steps through forwardGreedy use argmax_part/argmax_final (vocab split into 64-logit parts)
      const slots = Int32Array.from({ length: PROMPT.length + 3 }, (_, i) => i);
      const [r] = await ref.forward([batch(PROMPT, 0, slots.subarray(0, PROMPT.length), 'last')]);
      const want = argmax(r!.logits, 0, ref.config.vocabSize);
      const got = await gpu.forwardGreedy(batch(PROMPT, 0, slots.subarray(0, PROMPT.length), 'last'));
      expect(got[0]).toBe(want);
    } finally {
      await gpu.dispose();
    }
  });

  test('decode steps encoded ahead: interleaved sequences (prediction misses) and hits give the reference logits', async (ctx) => {
    if (skip) return ctx.skip(skip);
    const w = weightsFor(MODELS[0]![1]);
    const ref = await createReferenceBackend(w, { kvSlots: 64, ggmlNumerics: false });
    const gpu = (await createWebGpuBackend(w, { kvSlots: 64, kvF16: false })) as WebGpuBackend;
    try {
      const a = Int32Array.from({ length: 32 }, (_, i) => i);
      const b = Int32Array.from({ length: 32 }, (_, i) => 32 + i);
      const promptB = PROMPT.slice(0, 5);
      for (const be of [ref, gpu]) {
        await be.forward([batch(PROMPT, 0, a.subarray(0, PROMPT.length), 'none')]);
        await be.forward([batch(promptB, 0, b.subarray(0, promptB.length), 'none')]);
      }
      // forward and forwardGreedy alternate, so each step misses the prepared one (other sequence,
      // other length, greedy vs logits); hits run in every decode loop of the tests above
      const plan: [Int32Array, number][] = [[a, PROMPT.length], [a, PROMPT.length + 1], [b, promptB.length], [b, promptB.length + 1], [a, PROMPT.length + 2]];
      let worst = 0;
      for (const [slots, nPast] of plan) {
        const step = batch([7 + nPast], nPast, slots.subarray(0, nPast + 1), 'last');
        const [r] = await ref.forward([step]);
        const [g] = await gpu.forward([step]);
        worst = Math.max(worst, relDiff(g!.logits, r!.logits));
        const greedy = await gpu.forwardGreedy(step); // the same step again rewrites the same slot
        expect(greedy[0]).toBe(argmax(r!.logits, 0, ref.config.vocabSize));
      }
      expect(worst).toBeLessThan(1e-3);
      // with encoding ahead switched off the results are the same
      gpu.encodeAhead = false;
      const step = batch([9], PROMPT.length + 3, a.subarray(0, PROMPT.length + 4), 'last');
      const [r] = await ref.forward([step]);
      const [g] = await gpu.forward([step]);
      expect(relDiff(g!.logits, r!.logits)).toBeLessThan(1e-3);
    } finally {
      await gpu.dispose();
    }
  });

  test('f16 KV cache and one-shot prefill: greedy tokens identical, logits within 1e-2', async (ctx) => {
    if (skip) return ctx.skip(skip);
    const w = weightsFor(MODELS[0]![1]);
    const ref = await createReferenceBackend(w, { kvSlots: 64, ggmlNumerics: false });
    const gpu = await createWebGpuBackend(w, { kvSlots: 64, kvF16: true });
    try {
      const { diff, refTokens, gpuTokens } = await compare(ref, gpu, PROMPT, 8);
      expect(gpuTokens).toEqual(refTokens);
      expect(diff).toBeLessThan(1e-2);
      // GPU argmax agrees with the host argmax of the same step's logits
      const slots = Int32Array.from({ length: 20 }, (_, i) => i);
      const greedy = await (gpu as WebGpuBackend).forwardGreedy(batch(PROMPT, 0, slots, 'all'));
      const [r] = await ref.forward([batch(PROMPT, 0, slots, 'all')]);
      expect([...greedy]).toEqual(PROMPT.map((_, i) => argmax(r!.logits, i, ref.config.vocabSize)));
    } finally {
      await gpu.dispose();
    }
  });

  test('KV maintenance: readSlots, copySlots, rotateKeys, writeSlots match the reference', async (ctx) => {
    if (skip) return ctx.skip(skip);
    const w = weightsFor(MODELS[1]![1]);
    const ref = await createReferenceBackend(w, { kvSlots: 32, ggmlNumerics: false });
    const gpu = await createWebGpuBackend(w, { kvSlots: 32, kvF16: false });
    try {
      const slots = Int32Array.from({ length: PROMPT.length }, (_, i) => 31 - i);
      for (const b of [ref, gpu]) await b.forward([batch(PROMPT, 0, slots, 'none')]);
      const all = Int32Array.from({ length: 32 }, (_, i) => i);
      const check = async (tol: number) => {
        const a = await gpu.readSlots(slots);
        const b = await ref.readSlots(slots);
        expect(relDiff(a, b)).toBeLessThan(tol);
      };
      await check(1e-4);
      // copy the first 5 prompt slots to 0..4, then shift those copies by +7 positions
      const dst = Int32Array.from([0, 1, 2, 3, 4]);
      const src = slots.subarray(0, 5);
      for (const b of [ref, gpu]) {
        await b.copySlots(src, dst);
        await b.rotateKeys(dst, Int32Array.from([7, 7, 7, -2, 100]));
      }
      expect(relDiff(await gpu.readSlots(all), await ref.readSlots(all))).toBeLessThan(1e-4);
      // writeSlots round trip: write reference data into other slots and read it back
      const data = await ref.readSlots(slots.subarray(0, 3));
      await gpu.writeSlots(Int32Array.from([10, 11, 12]), data);
      expect(await gpu.readSlots(Int32Array.from([10, 11, 12]))).toEqual(data);
      // a decode step over the shifted copies still agrees
      const ctxSlots = Int32Array.from([0, 1, 2, 3, 4, 20]);
      const step: SequenceBatch = { tokens: Int32Array.from([65]), positions: Int32Array.from([12]), context: ctxSlots, logits: 'last' };
      const [r] = await ref.forward([step]);
      const [g] = await gpu.forward([step]);
      expect(relDiff(g!.logits, r!.logits)).toBeLessThan(1e-3);
      const m = gpu.memory();
      expect(m.kvBytes).toBe(2 * 32 * 2 * gpu.config.nKvHeads * gpu.config.headDim * 4);
      expect(m.weightsBytes).toBeGreaterThan(0);
    } finally {
      await gpu.dispose();
    }
  });

  test('the trained Cachet-Tiny model (models/, if present): prefill logits within 1e-5 of the f32 reference', async (ctx) => {
    if (skip) return ctx.skip(skip);
    const path = 'models/cachet-tiny.Q8_0.gguf';
    if (!existsSync(path)) return ctx.skip(`${path} not found (written by the training area)`);
    const g = openGguf(path);
    open.push(g);
    const w = loadWeights(g);
    const ref = await createReferenceBackend(w, { kvSlots: 32, ggmlNumerics: false });
    const gpu = await createWebGpuBackend(w, { kvSlots: 32, kvF16: false });
    try {
      const tokens = Array.from({ length: 24 }, (_, i) => ((i * 131 + 7) % 2000) + 100);
      const slots = Int32Array.from({ length: 24 }, (_, i) => 31 - i);
      const [r] = await ref.forward([batch(tokens, 0, slots, 'all')]);
      const [gl] = await gpu.forward([batch(tokens, 0, slots, 'all')]);
      expect(relDiff(gl!.logits, r!.logits)).toBeLessThan(1e-5);
      const V = w.config.vocabSize;
      expect(tokens.map((_, i) => argmax(gl!.logits, i, V))).toEqual(tokens.map((_, i) => argmax(r!.logits, i, V)));
    } finally {
      await gpu.dispose();
    }
  });

  test('several sequences in one forward call, and more "all" logits rows than one step returns', async (ctx) => {
    if (skip) return ctx.skip(skip);
    const w = weightsFor(MODELS[4]![1]);
    const ref = await createReferenceBackend(w, { kvSlots: 128, ggmlNumerics: false });
    const gpu = await createWebGpuBackend(w, { kvSlots: 128, kvF16: false });
    try {
      const long = Array.from({ length: 45 }, (_, i) => (i * 37 + 11) % 256); // > 32 rows: two steps
      const a = Int32Array.from({ length: 45 }, (_, i) => i);
      const b = Int32Array.from({ length: PROMPT.length }, (_, i) => 100 + i);
      const g = await gpu.forward([batch(long, 0, a, 'all'), batch(PROMPT, 0, b, 'last')]);
      const r = await ref.forward([batch(long, 0, a, 'all'), batch(PROMPT, 0, b, 'last')]);
      expect(g[0]!.logits.length).toBe(45 * w.config.vocabSize);
      expect(relDiff(g[0]!.logits, r[0]!.logits)).toBeLessThan(1e-3);
      expect(relDiff(g[1]!.logits, r[1]!.logits)).toBeLessThan(1e-3);
      const none = await gpu.forward([batch([5], 45, Int32Array.from({ length: 46 }, (_, i) => i), 'none')]);
      expect(none[0]!.logits.length).toBe(0);
    } finally {
      await gpu.dispose();
    }
  });

  test('concurrent calls are serialized (shared scratch buffers)', async (ctx) => {
    if (skip) return ctx.skip(skip);
    const w = weightsFor(MODELS[4]![1]);
    const ref = await createReferenceBackend(w, { kvSlots: 64, ggmlNumerics: false });
    const gpu = await createWebGpuBackend(w, { kvSlots: 64, kvF16: false });
    try {
      const a = Int32Array.from({ length: PROMPT.length }, (_, i) => i);
      const b = Int32Array.from({ length: PROMPT.length }, (_, i) => 40 + i);
      const other = PROMPT.map((t) => (t * 3) % 256);
      // not awaited one by one: both forwards and a readSlots are in flight together
      const [ga, gb, kv] = await Promise.all([
        gpu.forward([batch(PROMPT, 0, a, 'last')]),
        gpu.forward([batch(other, 0, b, 'last')]),
        gpu.readSlots(a.subarray(0, 2)),
      ]);
      const [ra] = await ref.forward([batch(PROMPT, 0, a, 'last')]);
      const [rb] = await ref.forward([batch(other, 0, b, 'last')]);
      expect(relDiff(ga[0]!.logits, ra!.logits)).toBeLessThan(1e-3);
      expect(relDiff(gb[0]!.logits, rb!.logits)).toBeLessThan(1e-3);
      expect(relDiff(kv, await ref.readSlots(a.subarray(0, 2)))).toBeLessThan(1e-4);
    } finally {
      await gpu.dispose();
    }
  });

  test('bad input gets typed errors', async (ctx) => {
    if (skip) return ctx.skip(skip);
    const w = weightsFor(MODELS[4]![1]);
    const gpu = await createWebGpuBackend(w, { kvSlots: 8 });
    try {
      await expect(gpu.forward([batch([1, 2], 0, Int32Array.from([0, 9]), 'last')])).rejects.toThrow(/slot 9/);
      await expect(gpu.forward([batch([100000], 0, Int32Array.from([0]), 'last')])).rejects.toThrow(/vocabulary/);
      await expect(gpu.rotateKeys(Int32Array.from([1]), Int32Array.from([]))).rejects.toThrow(/deltas/);
    } finally {
      await gpu.dispose();
    }
    await expect(gpu.forward([batch([1], 0, Int32Array.from([0]), 'last')])).rejects.toThrow(/disposed/);
  });

  test('a software adapter is refused when the caller asks (automatic choice), accepted otherwise', async (ctx) => {
    if (skip) return ctx.skip(skip);
    const probe = await createGpuDevice();
    const software = probe.software;
    probe.destroy();
    const w = weightsFor(MODELS[4]![1]);
    if (!software) {
      const gpu = await createWebGpuBackend(w, { kvSlots: 8, allowSoftwareGpu: false });
      await gpu.dispose();
      return;
    }
    await expect(createWebGpuBackend(w, { kvSlots: 8, allowSoftwareGpu: false })).rejects.toThrow(/software renderer/);
    const gpu = await createWebGpuBackend(w, { kvSlots: 8 });
    await gpu.dispose();
  });
});
