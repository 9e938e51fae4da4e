// The fused decode matvec for repacked Q8_0 (q8r): q/k/v in one dispatch, gate/up with SwiGLU,
// the RMS-norm prologue, bias and residual accumulation, against f64 CPU references over the
// dequantized weights. Tolerance 2e-5 relative to the output scale.

import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { dequantize, quantize } from '../../engine/quant';
import { bytesFor, GgmlType } from '../../engine/quant/types';
import { Pipelines } from '../../engine/backend/webgpu/pipelines';
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

function q8(rows: number, k: number, seed: number) {
  const bytes = quantize(GgmlType.Q8_0, randoms(rows * k, seed));
  return { f32: dequantize(GgmlType.Q8_0, bytes, rows * k), ...Pipelines.repackQ8_0(bytes, rows, k) };
}
function dotRows(w: Float32Array, x: Float64Array, rows: number, k: number): Float64Array {
  const y = new Float64Array(rows);
  for (let r = 0; r < rows; r++) for (let i = 0; i < k; i++) y[r] += w[r * k + i]! * x[i]!;
  return y;
}
function rmsNorm(x: Float32Array, w: Float32Array, eps: number): Float64Array {
  const ms = x.reduce((a, v) => a + v * v, 0) / x.length;
  return Float64Array.from(x, (v, i) => (v / Math.sqrt(ms + eps)) * w[i]!);
}

async function runFused(pipes: Pipelines, opts: { rows: [number, number, number]; k: number; norm: boolean; swiglu: boolean; accumulate: boolean; bias: boolean; tokens: number; xRow0: number; staged?: boolean; nr2?: boolean; ks?: number }) {
  const H = h!;
  const { rows, k } = opts;
  const mats = rows.map((n, i) => (n ? q8(n, k, 100 + i) : undefined));
  const xRows = opts.xRow0 + opts.tokens;
  const x = randoms(xRows * k, 7, 3);
  const nw = randoms(k, 8);
  const bias = rows.map((n, i) => randoms(Math.max(1, n), 20 + i));
  const prev = randoms(opts.tokens * rows[0], 30);
  const eps = 1e-6;
  const flags = (opts.norm ? 1 : 0) | (opts.swiglu ? 2 : 0) | (opts.accumulate ? 4 : 0) | (opts.bias ? 8 | 16 | 32 : 0);
  // staged: x (normalised) copied to workgroup memory first, as the backend does when it fits
  // nr2: two rows per subgroup (16 rows per workgroup)
  // ks: subgroups per row (split-K)
  const p = pipes.get('matvec-fused', 'matvec_fused', `q8r|xs${opts.staged ? k / 4 : 0}${opts.nr2 ? '|nr2' : ''}${opts.ks ? `|ks${opts.ks}` : ''}`);
  const dummyW = buf(H, new Uint32Array(4));
  const Y = rows.map((n, i) => buf(H, i === 0 && opts.accumulate ? prev : new Float32Array(Math.max(1, opts.tokens * n))));
  const g = pipes.bind(p, 0, {
    0: mats[0] ? buf(H, mats[0].data) : dummyW, 1: mats[1] ? buf(H, mats[1].data) : buf(H, new Uint32Array(4)), 2: mats[2] ? buf(H, mats[2].data) : buf(H, new Uint32Array(4)),
    3: buf(H, x), 4: buf(H, nw), 5: Y[0]!, 6: Y[1]!, 7: Y[2]!, 8: buf(H, bias[0]!), 9: buf(H, bias[1]!), 10: buf(H, bias[2]!),
    11: uni(H, [rows[0], opts.swiglu ? 0 : rows[1], rows[2], k, mats[0]?.scaleWordOffset ?? 0, mats[1]?.scaleWordOffset ?? 0, mats[2]?.scaleWordOffset ?? 0, flags, eps, opts.xRow0], [8]),
  });
  const total = opts.swiglu ? rows[0] : rows[0] + rows[1] + rows[2];
  const [gx, gy] = grid(Math.ceil(total / (opts.nr2 ? 16 : 8 / (opts.ks ?? 1))), 3);
  await run(H, p, [g], gx, gy, opts.tokens);
  let worst = 0;
  for (let t = 0; t < opts.tokens; t++) {
    const xr = x.subarray((opts.xRow0 + t) * k, (opts.xRow0 + t + 1) * k);
    const xin = opts.norm ? rmsNorm(xr, nw, eps) : Float64Array.from(xr);
    const outs = mats.map((m, i) => (m ? dotRows(m.f32, xin, rows[i]!, k).map((v, r) => v + (opts.bias ? bias[i]![r]! : 0)) : undefined));
    if (opts.swiglu) {
      const y = outs[0]!.map((g, r) => (g / (1 + Math.exp(-g))) * outs[1]![r]! + (opts.accumulate ? prev[t * rows[0] + r]! : 0));
      worst = Math.max(worst, relError((await readF32(H, Y[0]!, opts.tokens * rows[0])).subarray(t * rows[0], (t + 1) * rows[0]), y));
    } else {
      for (let i = 0; i < 3; i++) {
        if (!rows[i]) continue;
        const want = outs[i]!.map((v, r) => v + (i === 0 && opts.accumulate ? prev[t * rows[0] + r]! : 0));
        const got = (await readF32(H, Y[i]!, opts.tokens * rows[i]!)).subarray(t * rows[i]!, (t + 1) * rows[i]!);
        worst = Math.max(worst, relError(got, want));
      }
    }
  }
  return worst;
}

describe('fused q8r matvec', () => {
  test('q, k, v in one dispatch with RMS norm and bias (row counts not multiples of 8)', async (ctx) => {
    if (!h) return ctx.skip(skip);
    const o = { rows: [29, 13, 13] as [number, number, number], k: 192, norm: true, swiglu: false, accumulate: false, bias: true, tokens: 1, xRow0: 0 };
    expect(await runFused(h.pipes, o)).toBeLessThan(2e-5);
    expect(await runFused(h.altPipes, o)).toBeLessThan(2e-5);
  });
  test('the same with x staged in workgroup memory, and with two rows per subgroup', async (ctx) => {
    if (!h) return ctx.skip(skip);
    const o = { rows: [29, 13, 13] as [number, number, number], k: 192, norm: true, swiglu: false, accumulate: false, bias: true, tokens: 1, xRow0: 0 };
    expect(await runFused(h.pipes, { ...o, staged: true })).toBeLessThan(2e-5);
    expect(await runFused(h.altPipes, { ...o, staged: true })).toBeLessThan(2e-5);
    // two rows per subgroup: even q and k counts, an odd v count (its last pair is half empty)
    const e = { ...o, rows: [30, 14, 13] as [number, number, number] };
    expect(await runFused(h.pipes, { ...e, staged: true, nr2: true })).toBeLessThan(2e-5);
    expect(await runFused(h.altPipes, { ...e, nr2: true })).toBeLessThan(2e-5);
  });
  test('split-K: 2 and 4 subgroups per row (q/k/v with norm and bias; residual accumulate; SwiGLU)', async (ctx) => {
    if (!h) return ctx.skip(skip);
    const o = { rows: [29, 13, 13] as [number, number, number], k: 1280, norm: true, swiglu: false, accumulate: false, bias: true, tokens: 1, xRow0: 0 };
    expect(await runFused(h.pipes, { ...o, ks: 2 })).toBeLessThan(2e-5);
    expect(await runFused(h.altPipes, { ...o, ks: 4 })).toBeLessThan(2e-5);
  });
  test('split-K: residual accumulate over two tokens, and SwiGLU with staged x', async (ctx) => {
    if (!h) return ctx.skip(skip);
    expect(await runFused(h.pipes, { rows: [33, 0, 0], k: 1024, norm: false, swiglu: false, accumulate: true, bias: false, tokens: 2, xRow0: 1, ks: 4 })).toBeLessThan(2e-5);
    expect(await runFused(h.pipes, { rows: [70, 70, 0], k: 128, norm: true, swiglu: true, accumulate: false, bias: false, tokens: 1, xRow0: 0, staged: true, ks: 2 })).toBeLessThan(2e-5);
  });
  test('gate/up with SwiGLU and RMS norm, two tokens', async (ctx) => {
    if (!h) return ctx.skip(skip);
    expect(await runFused(h.pipes, { rows: [70, 70, 0], k: 128, norm: true, swiglu: true, accumulate: false, bias: false, tokens: 2, xRow0: 0 })).toBeLessThan(2e-5);
    expect(await runFused(h.pipes, { rows: [70, 70, 0], k: 128, norm: true, swiglu: true, accumulate: false, bias: false, tokens: 2, xRow0: 0, staged: true })).toBeLessThan(2e-5);
    expect(await runFused(h.pipes, { rows: [70, 70, 0], k: 128, norm: true, swiglu: true, accumulate: false, bias: false, tokens: 2, xRow0: 0, staged: true, nr2: true })).toBeLessThan(2e-5);
  });
  test('single matrix accumulating into the residual, reading a later row of x (LM-head style)', async (ctx) => {
    if (!h) return ctx.skip(skip);
    expect(await runFused(h.pipes, { rows: [33, 0, 0], k: 1024, norm: false, swiglu: false, accumulate: true, bias: false, tokens: 1, xRow0: 2 })).toBeLessThan(2e-5);
    expect(await runFused(h.pipes, { rows: [33, 0, 0], k: 1024, norm: false, swiglu: false, accumulate: true, bias: false, tokens: 1, xRow0: 2, staged: true })).toBeLessThan(2e-5);
    expect(await runFused(h.pipes, { rows: [33, 0, 0], k: 1024, norm: false, swiglu: false, accumulate: true, bias: false, tokens: 1, xRow0: 2, nr2: true })).toBeLessThan(2e-5);
    expect(await runFused(h.altPipes, { rows: [33, 0, 0], k: 96, norm: true, swiglu: false, accumulate: false, bias: true, tokens: 1, xRow0: 1 })).toBeLessThan(2e-5);
  });
});

describe('fused matvec, generic formats (per-matrix dequant)', () => {
  const FORMAT_NAMES: Partial<Record<GgmlType, string>> = { [GgmlType.F32]: 'f32', [GgmlType.F16]: 'f16', [GgmlType.Q8_0]: 'q8_0', [GgmlType.Q4_0]: 'q4_0', [GgmlType.Q4_K]: 'q4_k', [GgmlType.Q6_K]: 'q6_k' };

  async function runGeneric(pipes: Pipelines, types: GgmlType[], rows: [number, number, number], k: number, swiglu: boolean, staged = false, ks = 1, formats?: string) {
    const H = h!;
    const mats = types.map((t, i) => {
      const bytes = quantize(t, randoms(rows[i]! * k, 200 + i));
      return { bytes, f32: dequantize(t, bytes, rows[i]! * k), rowBytes: bytesFor(t, k) };
    });
    const x = randoms(k, 9, 3);
    const nw = randoms(k, 10);
    const eps = 1e-6;
    const xin = rmsNorm(x, nw, eps);
    const p = pipes.get('matvec-fused', 'matvec_fused', (formats ?? types.map((t) => FORMAT_NAMES[t]).join(',')) + `|xs${staged ? k / 4 : 0}` + (ks > 1 ? `|ks${ks}` : ''));
    const Y = rows.map((n) => buf(H, new Float32Array(Math.max(1, n))));
    const g = pipes.bind(p, 0, {
      0: buf(H, mats[0]!.bytes), 1: buf(H, mats[1]!.bytes), 2: buf(H, mats[2]!.bytes), 3: buf(H, x), 4: buf(H, nw),
      5: Y[0]!, 6: Y[1]!, 7: Y[2]!, 8: buf(H, new Float32Array(1)), 9: buf(H, new Float32Array(1)), 10: buf(H, new Float32Array(1)),
      11: uni(H, [rows[0], swiglu ? 0 : rows[1], swiglu ? 0 : rows[2], k, mats[0]!.rowBytes, mats[1]!.rowBytes, mats[2]!.rowBytes, 1 | (swiglu ? 2 : 0), eps, 0], [8]),
    });
    const total = swiglu ? rows[0] : rows[0] + rows[1] + rows[2];
    await run(H, p, [g], Math.ceil(total / (8 / ks)));
    const outs = mats.map((m, i) => dotRows(m.f32, xin, rows[i]!, k));
    if (swiglu) {
      const want = outs[0]!.map((a, r) => (a / (1 + Math.exp(-a))) * outs[1]![r]!);
      return relError(await readF32(H, Y[0]!, rows[0]), want);
    }
    let worst = 0;
    for (let i = 0; i < 3; i++) worst = Math.max(worst, relError(await readF32(H, Y[i]!, rows[i]!), outs[i]!));
    return worst;
  }

  test('q/k/v as Q4_K, Q6_K, Q4_0 (a Q4_K_M-style mix) with RMS norm', async (ctx) => {
    if (!h) return ctx.skip(skip);
    expect(await runGeneric(h.pipes, [GgmlType.Q4_K, GgmlType.Q6_K, GgmlType.Q4_0], [21, 10, 10], 256, false)).toBeLessThan(2e-5);
    expect(await runGeneric(h.pipes, [GgmlType.Q4_K, GgmlType.Q6_K, GgmlType.Q4_0], [21, 10, 10], 256, false, true)).toBeLessThan(2e-5);
    expect(await runGeneric(h.pipes, [GgmlType.Q4_K, GgmlType.Q6_K, GgmlType.Q4_0], [21, 10, 10], 512, false, false, 4)).toBeLessThan(2e-5);
  });
  test('all-Q4_K fast path (q4k: 32 weights per lane read in place), split-K and staged x', async (ctx) => {
    if (!h) return ctx.skip(skip);
    const q4 = [GgmlType.Q4_K, GgmlType.Q4_K, GgmlType.Q4_K];
    expect(await runGeneric(h.pipes, q4, [21, 10, 10], 768, false, false, 1, 'q4k')).toBeLessThan(2e-5);
    expect(await runGeneric(h.pipes, q4, [21, 10, 10], 512, false, true, 2, 'q4k')).toBeLessThan(2e-5);
    // 72 chunks per row: lanes take two chunks per iteration, then a tail chunk
    expect(await runGeneric(h.pipes, q4, [5, 3, 3], 2304, false, false, 1, 'q4k')).toBeLessThan(2e-5);
  });
  test('all-Q4_K fast path with SwiGLU; no-subgroup fallback', async (ctx) => {
    if (!h) return ctx.skip(skip);
    expect(await runGeneric(h.altPipes, [GgmlType.Q4_K, GgmlType.Q4_K, GgmlType.Q4_K], [19, 19, 1], 256, true, false, 4, 'q4k')).toBeLessThan(2e-5);
  });
  test('gate F16, up Q8_0 file blocks, SwiGLU; no-subgroup fallback', async (ctx) => {
    if (!h) return ctx.skip(skip);
    expect(await runGeneric(h.altPipes, [GgmlType.F16, GgmlType.Q8_0, GgmlType.F32], [19, 19, 1], 96, true)).toBeLessThan(2e-5);
  });
});
