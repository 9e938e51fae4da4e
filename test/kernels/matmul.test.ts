// matvec / matmul / get_rows for every weight format against engine/quant's CPU dequantize and an
// f64 dot product. Tolerance: 2e-5 of the output's largest magnitude (f32 accumulation order).

import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { dequantize, quantize } from '../../engine/quant';
import { bytesFor, GgmlType } from '../../engine/quant/types';
import { KERNEL_WEIGHT_TYPES, Pipelines } from '../../engine/backend/webgpu/pipelines';
import { grid } from '../../engine/backend/webgpu/buffers';
import { buf, openHarness, randoms, readF32, relError, run, uni, type Harness } from './gpu-harness';

let h: Harness | undefined;
let skip = '';
beforeAll(async () => {
  const r = await openHarness();
  if (typeof r === 'string') skip = r;
  else h = r;
});
afterAll(() => h?.gpu.destroy());

const FORMATS: [GgmlType, number][] = [
  // [type, K]: K a whole number of blocks; F32/F16 with K not a multiple of 32
  [GgmlType.F32, 36],
  [GgmlType.F16, 100],
  [GgmlType.Q8_0, 96],
  [GgmlType.Q4_0, 160],
  [GgmlType.Q4_K, 512],
  [GgmlType.Q6_K, 256],
];

/** GPU-side weights: file blocks, or Q8_0 repacked as 'q8r' (how the backend uploads Q8_0). */
function weights(type: GgmlType, n: number, k: number, seed: number, repack = false) {
  const w = randoms(n * k, seed);
  const bytes = quantize(type, w);
  const f32 = dequantize(type, bytes, n * k);
  if (repack) {
    const r = Pipelines.repackQ8_0(bytes, n, k);
    return { bytes: r.data, f32, wtype: 'q8r', rowBytes: k, scaleOff: r.scaleWordOffset };
  }
  return { bytes, f32, wtype: KERNEL_WEIGHT_TYPES[type]!, rowBytes: bytesFor(type, k), scaleOff: 0 };
}

function reference(wf: Float32Array, x: Float32Array, m: number, n: number, k: number, bias?: Float32Array, acc?: Float32Array): Float64Array {
  const y = new Float64Array(m * n);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let t = 0; t < k; t++) s += wf[j * k + t]! * x[i * k + t]!;
      y[i * n + j] = s + (bias ? bias[j]! : 0) + (acc ? acc[i * n + j]! : 0);
    }
  return y;
}

async function runMat(pipes: Pipelines, entry: 'matvec' | 'matmul', type: GgmlType, n: number, k: number, m: number, withBiasAcc: boolean, repack = false) {
  const H = h!;
  const { bytes, f32, wtype, rowBytes, scaleOff } = weights(type, n, k, 1000 + type * 7 + n, repack);
  const x = randoms(m * k, 77 + k);
  const bias = withBiasAcc ? randoms(n, 5) : undefined;
  const prev = withBiasAcc ? randoms(m * n, 6) : undefined;
  const p = pipes.get('matmul', entry, wtype);
  const Y = buf(H, prev ?? new Float32Array(m * n));
  const group = pipes.bind(p, 0, {
    0: buf(H, bytes),
    1: buf(H, x),
    2: Y,
    3: buf(H, bias ?? new Float32Array(1)),
    4: uni(H, [n, k, rowBytes, 0, withBiasAcc ? 3 : 0, 0, scaleOff]),
    5: uni(H, [m, 0, 0, 0]),
    6: buf(H, new Uint32Array(1)),
  });
  if (entry === 'matvec') {
    const [gx, gy] = grid(n, 16); // small grid limit to exercise the 2-D split
    await run(H, p, [group], gx, gy, m);
  } else {
    await run(H, p, [group], Math.ceil(n / 64), Math.ceil(m / 64));
  }
  const got = await readF32(H, Y, m * n);
  return relError(got, reference(f32, x, m, n, k, bias, prev));
}

describe('matmul kernels', () => {
  for (const [type, k] of FORMATS) {
    const name = GgmlType[type];
    test(`matvec ${name} K=${k}, 37 rows, subgroups and fallback`, async (ctx) => {
      if (!h) return ctx.skip(skip);
      expect(await runMat(h.pipes, 'matvec', type, 37, k, 1, false)).toBeLessThan(2e-5);
      expect(await runMat(h.altPipes, 'matvec', type, 37, k, 2, true)).toBeLessThan(2e-5);
    });
    test(`matmul ${name} K=${k}, 70 rows x 67 tokens, bias + accumulate`, async (ctx) => {
      if (!h) return ctx.skip(skip);
      expect(await runMat(h.pipes, 'matmul', type, 70, k, 67, false)).toBeLessThan(2e-5);
      expect(await runMat(h.pipes, 'matmul', type, 45, k, 3, true)).toBeLessThan(2e-5);
    });
  }

  test('q8r (repacked Q8_0): matvec and matmul', async (ctx) => {
    if (!h) return ctx.skip(skip);
    expect(await runMat(h.pipes, 'matvec', GgmlType.Q8_0, 37, 96, 2, true, true)).toBeLessThan(2e-5);
    expect(await runMat(h.pipes, 'matmul', GgmlType.Q8_0, 70, 96, 67, true, true)).toBeLessThan(2e-5);
  });

  test('get_rows dequantizes embedding rows for every format', async (ctx) => {
    if (!h) return ctx.skip(skip);
    for (const [type, k, repack] of [...FORMATS, [GgmlType.Q8_0, 64, true] as const]) {
      const n = 11;
      const { bytes, f32, wtype, rowBytes, scaleOff } = weights(type, n, k, 9 + type, !!repack);
      const tokens = new Uint32Array([3, 0, 10, 3, 7]);
      const p = h.pipes.get('matmul', 'get_rows', wtype);
      const Y = buf(h, new Float32Array(tokens.length * k));
      const g = h.pipes.bind(p, 0, { 0: buf(h, bytes), 1: buf(h, new Float32Array(4)), 2: Y, 3: buf(h, new Float32Array(1)), 4: uni(h, [n, k, rowBytes, 0, 0, 0, scaleOff]), 5: uni(h, [tokens.length, 0, 0, 0]), 6: buf(h, tokens) });
      await run(h, p, [g], tokens.length);
      const got = await readF32(h, Y, tokens.length * k);
      const want = new Float32Array(tokens.length * k);
      tokens.forEach((t, i) => want.set(f32.subarray(t * k, (t + 1) * k), i * k));
      expect(relError(got, want), GgmlType[type]).toBeLessThan(1e-6);
    }
  });
});
