// RMSNorm / LayerNorm, residual add, SwiGLU, GELU and GPU argmax against plain CPU references.
// Tolerances: norms and activations 1e-5 relative to the output's scale (f32 math, different
// summation order and exp/tanh implementations); argmax exact.

import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Pipelines } from '../../engine/backend/webgpu/pipelines';
import { buf, openHarness, randoms, readF32, readU32, relError, run, uni, type Harness } from './gpu-harness';

let h: Harness | undefined;
let skip = '';
beforeAll(async () => {
  const r = await openHarness();
  if (typeof r === 'string') skip = r;
  else h = r;
});
afterAll(() => h?.gpu.destroy());

function cpuNorm(kind: 'rms' | 'layer', x: Float32Array, rows: number, e: number, eps: number, w: Float32Array, b: Float32Array): Float64Array {
  const y = new Float64Array(rows * e);
  for (let r = 0; r < rows; r++) {
    const row = x.subarray(r * e, (r + 1) * e);
    const mean = kind === 'layer' ? row.reduce((a, v) => a + v, 0) / e : 0;
    const v = row.reduce((a, x) => a + (x - mean) ** 2, 0) / e;
    const s = 1 / Math.sqrt(v + eps);
    for (let i = 0; i < e; i++) y[r * e + i] = (row[i]! - mean) * s * w[i]! + (kind === 'layer' ? b[i]! : 0);
  }
  return y;
}

async function runNorm(pipes: Pipelines, kind: 'rms' | 'layer', rows: number, e: number) {
  const H = h!;
  const x = randoms(rows * e, 3 + e, 2);
  for (let i = 0; i < x.length; i++) x[i] = x[i]! + 0.5; // a non-zero mean for LayerNorm
  const w = randoms(e, 4);
  const b = randoms(e, 5);
  const eps = 1e-5;
  const p = pipes.get('norm', kind === 'rms' ? 'rms_norm' : 'layer_norm');
  const Y = buf(H, new Float32Array(rows * e));
  const g = pipes.bind(p, 0, { 0: buf(H, x), 1: Y, 2: buf(H, w), 3: buf(H, b), 4: uni(H, [e, eps, 0, 0], [1]), 5: uni(H, [rows, 0, 0, 0]) });
  await run(H, p, [g], rows);
  return relError(await readF32(H, Y, rows * e), cpuNorm(kind, x, rows, e, eps, w, b));
}

describe('norm kernels', () => {
  for (const kind of ['rms', 'layer'] as const) {
    test(`${kind} norm, rows of 70 and 1000, subgroups and fallback`, async (ctx) => {
      if (!h) return ctx.skip(skip);
      expect(await runNorm(h.pipes, kind, 3, 70)).toBeLessThan(1e-5);
      expect(await runNorm(h.pipes, kind, 2, 1000)).toBeLessThan(1e-5);
      expect(await runNorm(h.altPipes, kind, 3, 70)).toBeLessThan(1e-5);
    });
  }
});

describe('elementwise kernels', () => {
  const rows = 3;
  const len = 333;
  const cpu: Record<string, (a: number, b: number) => number> = {
    add: (a, b) => a + b,
    swiglu: (a, b) => (a / (1 + Math.exp(-a))) * b,
    gelu: (a) => 0.5 * a * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * a * (1 + 0.044715 * a * a))),
  };
  for (const op of ['add', 'swiglu', 'gelu']) {
    test(op, async (ctx) => {
      if (!h) return ctx.skip(skip);
      const a = randoms(rows * len, 11, 6);
      a[0] = 30; a[1] = -30; // saturated tails
      const b = randoms(rows * len, 12, 2);
      const p = h.pipes.get('elementwise', op);
      const A = buf(h, a);
      const g = h.pipes.bind(p, 0, { 0: A, 1: buf(h, b), 2: uni(h, [len, 0, 0, 0]), 3: uni(h, [rows, 0, 0, 0]) });
      await run(h, p, [g], Math.ceil((rows * len) / 256));
      const want = Float64Array.from(a, (v, i) => cpu[op]!(v, b[i]!));
      expect(relError(await readF32(h, A, rows * len), want)).toBeLessThan(1e-5);
    });
  }
});

describe('argmax kernel', () => {
  test('row-wise argmax, lowest index on ties', async (ctx) => {
    if (!h) return ctx.skip(skip);
    const len = 1000;
    const rows = 3;
    const l = randoms(rows * len, 21);
    l[17] = 5; // row 0: unique max
    l[len + 400] = 7; l[len + 999] = 7; l[len + 3] = 7; // row 1: tie -> 3
    l[2 * len + 999] = 9; // row 2: last element
    const p = h.pipes.get('argmax', 'argmax');
    const out = buf(h, new Uint32Array(rows));
    const g = h.pipes.bind(p, 0, { 0: buf(h, l), 1: out, 2: uni(h, [len, 0, 0, 0]), 3: buf(h, new Uint32Array(4)) });
    await run(h, p, [g], rows);
    expect([...(await readU32(h, out, rows))]).toEqual([17, 3, 999]);
  });
  test('two-stage argmax (row split over parts): ties across parts keep the lowest index', async (ctx) => {
    if (!h) return ctx.skip(skip);
    const len = 5003;
    const rows = 2;
    const parts = 7; // 715 per part: the ties below sit in different parts
    const l = randoms(rows * len, 22);
    l[4000] = 6; l[800] = 6; l[5002] = 6; // row 0: tie across parts -> 800
    l[len + 5002] = 8; // row 1: last element of the last (short) part
    const pp = h.pipes.get('argmax', 'argmax_part');
    const pf = h.pipes.get('argmax', 'argmax_final');
    const out = buf(h, new Uint32Array(rows));
    const entries = { 0: buf(h, l), 1: out, 2: uni(h, [len, parts, 0, 0]), 3: buf(h, new Uint32Array(2 * rows * parts)) };
    await run(h, pp, [h.pipes.bind(pp, 0, entries)], parts, rows);
    await run(h, pf, [h.pipes.bind(pf, 0, entries)], rows);
    expect([...(await readU32(h, out, rows))]).toEqual([800, 5002]);
  });
});
