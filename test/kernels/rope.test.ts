// RoPE kernels (normal and neox, partial rotation) against an f64 CPU rotation: queries in place,
// keys rotated into a slot-indexed cache (f16 and f32), and rotateKeys' in-place shift.
// Tolerance: 2e-5 relative for f32 storage, 2e-3 for f16 storage (f16 rounding of the result).

import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { RopeConfig } from '../../engine/model/types';
import { ropeTable } from '../../engine/backend/webgpu/rope-table';
import type { Pipelines } from '../../engine/backend/webgpu/pipelines';
import { buf, kvRound, openHarness, packKv, randoms, readF32, readKv, relError, run, uni, type Harness } from './gpu-harness';

let h: Harness | undefined;
let skip = '';
beforeAll(async () => {
  const r = await openHarness();
  if (typeof r === 'string') skip = r;
  else h = r;
});
afterAll(() => h?.gpu.destroy());

const HEAD = 16;
const ROT = 12;
const cfg = (type: 'normal' | 'neox'): RopeConfig => ({ type, dim: ROT, freqBase: 10000, scaling: { type: 'none', factor: 1, originalContext: 0 } });

/**
 * f64 rotation of `heads` head vectors at x[off..] by position pos, with the angles of ropeTable
 * (ggml's f32 theta recurrence; checked against exact angles below).
 */
function cpuRope(x: Float32Array, off: number, heads: number, pos: number, type: 'normal' | 'neox'): void {
  const cs = ropeTable(cfg(type), [pos]);
  for (let hh = 0; hh < heads; hh++) {
    const b = off + hh * HEAD;
    for (let j = 0; j < ROT / 2; j++) {
      const [co, si] = [cs[2 * j]!, cs[2 * j + 1]!];
      const [i0, i1] = type === 'neox' ? [b + j, b + j + ROT / 2] : [b + 2 * j, b + 2 * j + 1];
      const a = x[i0]!;
      const c = x[i1]!;
      x[i0] = a * co - c * si;
      x[i1] = a * si + c * co;
    }
  }
}

test('ropeTable follows exact angles to f32 recurrence error', () => {
  const pos = [0, 3, 5000, 16000];
  const cs = ropeTable(cfg('neox'), pos);
  pos.forEach((p, r) => {
    for (let j = 0; j < ROT / 2; j++) {
      const t = p * Math.pow(10000, (-2 * j) / ROT);
      expect(Math.abs(cs[(r * ROT / 2 + j) * 2]! - Math.cos(t))).toBeLessThan(2e-3);
      expect(Math.abs(cs[(r * ROT / 2 + j) * 2 + 1]! - Math.sin(t))).toBeLessThan(2e-3);
    }
  });
  const linear = ropeTable({ ...cfg('neox'), scaling: { type: 'linear', factor: 4, originalContext: 0 } }, [8]);
  expect(linear[1]).toBeCloseTo(Math.sin(2), 6); // position 8 / factor 4, first pair theta = 1
});

function kvGroup(pipes: Pipelines, p: GPUComputePipeline, K: GPUBuffer, V: GPUBuffer) {
  return pipes.bind(p, 1, { 0: K, 1: V });
}

for (const type of ['normal', 'neox'] as const) {
  describe(`rope ${type}`, () => {
    const positions = new Int32Array([0, 1, 77, 5000]);
    const n = positions.length;

    test('rope_q rotates queries in place', async (ctx) => {
      if (!h) return ctx.skip(skip);
      const heads = 3;
      const q = randoms(n * heads * HEAD, 31);
      const p = h.pipes.get('rope', 'rope_q');
      const Q = buf(h, q);
      const dummy = buf(h, new Float32Array(4));
      const g = h.pipes.bind(p, 0, { 0: Q, 1: buf(h, ropeTable(cfg(type), positions)), 2: uni(h, [heads, HEAD, ROT, type === 'neox' ? 1 : 0, 0]), 3: uni(h, [n, 0, 0, 0]), 4: dummy, 5: dummy, 6: buf(h, new Int32Array(1)) });
      const kc = buf(h, new Float32Array(4));
      await run(h, p, [g, kvGroup(h.pipes, p, kc, buf(h, new Float32Array(4)))], Math.ceil((n * heads * HEAD) / 2 / 64));
      const want = Float32Array.from(q);
      for (let i = 0; i < n; i++) cpuRope(want, i * heads * HEAD, heads, positions[i]!, type);
      expect(relError(await readF32(h, Q, q.length), want)).toBeLessThan(2e-5);
    });

    test('rope_qkv rotates queries and stores K/V in one dispatch', async (ctx) => {
      if (!h) return ctx.skip(skip);
      const heads = 4;
      const kvh = 2;
      const f16 = h.pipes.options.kvF16;
      const qRow = heads * HEAD;
      const kRow = kvh * HEAD;
      const ctxSlots = new Int32Array([3, 6, 0, 2, 5]); // nPast = 1
      const nPast = ctxSlots.length - n;
      const q = randoms(n * qRow, 71);
      const k = randoms(n * kRow, 72);
      const v = randoms(n * kRow, 73);
      const init = randoms(8 * kRow, 74);
      const Q = buf(h, q);
      const KC = buf(h, packKv(init, f16));
      const VC = buf(h, packKv(init, f16));
      const p = h.pipes.get('rope', 'rope_qkv');
      const g = h.pipes.bind(p, 0, { 0: Q, 1: buf(h, ropeTable(cfg(type), positions)), 2: uni(h, [heads, HEAD, ROT, type === 'neox' ? 1 : 0, kvh]), 3: uni(h, [n, nPast, ctxSlots.length, 0]), 4: buf(h, k), 5: buf(h, v), 6: buf(h, ctxSlots) });
      await run(h, p, [g, kvGroup(h.pipes, p, KC, VC)], Math.ceil((n * qRow) / 2 / 64) + Math.ceil((n * kRow) / 2 / 64));
      const wantQ = Float32Array.from(q);
      const wantK = kvRound(init, f16).slice();
      const wantV = kvRound(init, f16).slice();
      const kr = Float32Array.from(k);
      for (let i = 0; i < n; i++) {
        cpuRope(wantQ, i * qRow, heads, positions[i]!, type);
        cpuRope(kr, i * kRow, kvh, positions[i]!, type);
        wantK.set(kr.subarray(i * kRow, (i + 1) * kRow), ctxSlots[nPast + i]! * kRow);
        wantV.set(v.subarray(i * kRow, (i + 1) * kRow), ctxSlots[nPast + i]! * kRow);
      }
      expect(relError(await readF32(h, Q, q.length), wantQ)).toBeLessThan(2e-5);
      expect(relError(await readKv(h, KC, init.length, f16), wantK)).toBeLessThan(f16 ? 2e-3 : 2e-5);
      expect(relError(await readKv(h, VC, init.length, f16), wantV)).toBeLessThan(f16 ? 2e-3 : 2e-5);
    });

    for (const f16 of [true, false]) {
      test(`rope_store_kv writes rotated K and V into context slots, then rope_shift moves them (${f16 ? 'f16' : 'f32'} cache)`, async (ctx) => {
        if (!h) return ctx.skip(skip);
        const pipes = h.pipes.options.kvF16 === f16 ? h.pipes : h.altPipes;
        const kvh = 2;
        const slotsTotal = 9;
        const row = kvh * HEAD;
        const ctxSlots = new Int32Array([5, 1, 7, 2, 0, 6, 3]); // nPast = 3, new tokens -> slots 2, 0, 6, 3
        const nPast = ctxSlots.length - n;
        const k = randoms(n * row, 41);
        const v = randoms(n * row, 42);
        const init = randoms(slotsTotal * row, 43);
        const KC = buf(h, packKv(init, f16));
        const VC = buf(h, packKv(init, f16));
        const p = pipes.get('rope', 'rope_store_kv');
        const common = { 0: buf(h, new Float32Array(4)), 2: uni(h, [kvh, HEAD, ROT, type === 'neox' ? 1 : 0, 0]), 3: uni(h, [n, nPast, ctxSlots.length, 0]) };
        const g = pipes.bind(p, 0, { ...common, 1: buf(h, ropeTable(cfg(type), positions)), 4: buf(h, k), 5: buf(h, v), 6: buf(h, ctxSlots) });
        await run(h, p, [g, kvGroup(pipes, p, KC, VC)], Math.ceil((n * row) / 2 / 64));
        const wantK = kvRound(init, f16).slice();
        const wantV = kvRound(init, f16).slice();
        const kr = Float32Array.from(k);
        for (let i = 0; i < n; i++) {
          cpuRope(kr, i * row, kvh, positions[i]!, type);
          const slot = ctxSlots[nPast + i]!;
          wantK.set(kr.subarray(i * row, (i + 1) * row), slot * row);
          wantV.set(v.subarray(i * row, (i + 1) * row), slot * row);
        }
        const tol = f16 ? 2e-3 : 2e-5;
        expect(relError(await readKv(h, KC, init.length, f16), wantK)).toBeLessThan(tol);
        expect(relError(await readKv(h, VC, init.length, f16), wantV)).toBeLessThan(tol);

        // Shift slots 2 and 3 by +10 and -3 positions (rotations compose).
        const shiftSlots = new Int32Array([2, 3]);
        const deltas = new Int32Array([10, -3]);
        const ps = pipes.get('rope', 'rope_shift');
        const gs = pipes.bind(ps, 0, { ...common, 2: uni(h, [kvh, HEAD, ROT, type === 'neox' ? 1 : 0, shiftSlots.length]), 1: buf(h, ropeTable(cfg(type), deltas)), 4: buf(h, new Float32Array(4)), 5: buf(h, new Float32Array(4)), 6: buf(h, shiftSlots) });
        await run(h, ps, [gs, kvGroup(pipes, ps, KC, VC)], Math.ceil((shiftSlots.length * kvh * ROT) / 4 / 64));
        const before = await readKv(h, KC, init.length, f16); // unchanged slots
        const want2 = Float32Array.from(wantK);
        shiftSlots.forEach((s, i) => cpuRope(want2, s * row, kvh, deltas[i]!, type));
        // compare only the shifted rows against the rotation; the rest must be untouched
        expect(relError(before, want2)).toBeLessThan(f16 ? 4e-3 : 2e-5);
      });
    }
  });
}
