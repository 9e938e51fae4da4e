// KV cache maintenance kernels: copy_slots, gather_slots (readSlots) and scatter_slots (writeSlots)
// on f16 and f32 caches; exact up to the cache's own rounding.

import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { buf, kvRound, openHarness, packKv, randoms, readF32, readKv, run, uni, type Harness } from './gpu-harness';

let h: Harness | undefined;
let skip = '';
beforeAll(async () => {
  const r = await openHarness();
  if (typeof r === 'string') skip = r;
  else h = r;
});
afterAll(() => h?.gpu.destroy());

describe('kv kernels', () => {
  for (const f16 of [true, false]) {
    test(`copy, gather, scatter (${f16 ? 'f16' : 'f32'} cache)`, async (ctx) => {
      if (!h) return ctx.skip(skip);
      const pipes = h.pipes.options.kvF16 === f16 ? h.pipes : h.altPipes;
      const row = 24;
      const slots = 10;
      const k0 = kvRound(randoms(slots * row, 61), f16);
      const v0 = kvRound(randoms(slots * row, 62), f16);
      const KC = buf(h, packKv(k0, f16));
      const VC = buf(h, packKv(v0, f16));
      const kvg = (p: GPUComputePipeline) => pipes.bind(p, 1, { 0: KC, 1: VC });
      const go = async (entry: string, src: Int32Array, dst: Int32Array, f32: GPUBuffer, offset = 0) => {
        const p = pipes.get('kv', entry);
        const g = pipes.bind(p, 0, { 0: buf(h!, src), 1: buf(h!, dst), 2: f32, 3: uni(h!, [src.length, row, offset, 0]) });
        await run(h!, p, [g, kvg(p)], Math.ceil((src.length * row) / 2 / 64));
      };
      // copy 2 -> 7, 4 -> 0
      await go('copy_slots', new Int32Array([2, 4]), new Int32Array([7, 0]), buf(h, new Float32Array(4)));
      const k1 = k0.slice(); const v1 = v0.slice();
      k1.set(k0.subarray(2 * row, 3 * row), 7 * row); v1.set(v0.subarray(2 * row, 3 * row), 7 * row);
      k1.set(k0.subarray(4 * row, 5 * row), 0); v1.set(v0.subarray(4 * row, 5 * row), 0);
      expect(await readKv(h, KC, slots * row, f16)).toEqual(k1);
      expect(await readKv(h, VC, slots * row, f16)).toEqual(v1);
      // gather slots 7, 1 at an offset of 5 floats: [slot][K|V][row]
      const read = new Int32Array([7, 1]);
      const out = buf(h, new Float32Array(5 + 2 * 2 * row));
      await go('gather_slots', read, read, out, 5);
      const got = (await readF32(h, out, 5 + 4 * row)).subarray(5);
      const want = new Float32Array(4 * row);
      read.forEach((s, i) => { want.set(k1.subarray(s * row, (s + 1) * row), 2 * i * row); want.set(v1.subarray(s * row, (s + 1) * row), (2 * i + 1) * row); });
      expect(got).toEqual(want);
      // scatter them back into slots 3, 9
      const dst = new Int32Array([3, 9]);
      await go('scatter_slots', dst, dst, buf(h, new Float32Array([...new Float32Array(5), ...want])), 5);
      const k2 = k1.slice(); const v2 = v1.slice();
      dst.forEach((s, i) => { k2.set(want.subarray(2 * i * row, (2 * i + 1) * row), s * row); v2.set(want.subarray((2 * i + 1) * row, (2 * i + 2) * row), s * row); });
      expect(await readKv(h, KC, slots * row, f16)).toEqual(k2);
      expect(await readKv(h, VC, slots * row, f16)).toEqual(v2);
    });
  }
});
