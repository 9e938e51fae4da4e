// Split-K flash attention over a slot-indexed KV cache against a plain CPU softmax attention over
// the same (f16-rounded when the cache is f16) keys and values. Causal limit per query, GQA,
// several splits per query and a tile that ends mid-split. Tolerance 2e-5 relative (f32 math).

import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Pipelines } from '../../engine/backend/webgpu/pipelines';
import { buf, kvRound, openHarness, packKv, randoms, readF32, relError, run, uni, type Harness } from './gpu-harness';

let h: Harness | undefined;
let skip = '';
beforeAll(async () => {
  const r = await openHarness();
  if (typeof r === 'string') skip = r;
  else h = r;
});
afterAll(() => h?.gpu.destroy());

function cpuAttention(q: Float32Array, K: Float32Array, V: Float32Array, ctxSlots: Int32Array, n: number, heads: number, kvh: number, dim: number): Float64Array {
  const nPast = ctxSlots.length - n;
  const out = new Float64Array(n * heads * dim);
  const scale = 1 / Math.sqrt(dim);
  for (let i = 0; i < n; i++)
    for (let hh = 0; hh < heads; hh++) {
      const g = Math.floor(hh / (heads / kvh));
      const vis = nPast + i + 1;
      const s = new Float64Array(vis);
      for (let j = 0; j < vis; j++) {
        let d = 0;
        for (let t = 0; t < dim; t++) d += q[(i * heads + hh) * dim + t]! * K[(ctxSlots[j]! * kvh + g) * dim + t]!;
        s[j] = d * scale;
      }
      const mx = Math.max(...s);
      let sum = 0;
      for (let j = 0; j < vis; j++) sum += (s[j] = Math.exp(s[j]! - mx));
      for (let t = 0; t < dim; t++) {
        let a = 0;
        for (let j = 0; j < vis; j++) a += s[j]! * V[(ctxSlots[j]! * kvh + g) * dim + t]!;
        out[(i * heads + hh) * dim + t] = a / sum;
      }
    }
  return out;
}

async function runAttention(pipes: Pipelines, n: number, nCtx: number, dim: number, chunk: number, entry = 'attn_partial', heads = 4, kvh = 2): Promise<number> {
  const H = h!;
  const f16 = pipes.options.kvF16;
  const slotsTotal = nCtx + 7;
  // a shuffled slot list: the context is not contiguous in the cache
  const ctxSlots = new Int32Array(nCtx);
  for (let j = 0; j < nCtx; j++) ctxSlots[j] = (j * 37 + 5) % slotsTotal;
  const q = randoms(n * heads * dim, 51, 2);
  const kv = randoms(slotsTotal * kvh * dim, 52, 2);
  const vv = randoms(slotsTotal * kvh * dim, 53);
  const splits = Math.ceil(nCtx / chunk);
  const split = entry === 'attn_split';
  const layout = `${heads / kvh},${dim}`;
  const pp = split ? pipes.get('attention-decode', entry, layout) : pipes.get('attention', entry);
  const pc = split ? pipes.get('attention-decode', 'attn_merge', layout) : pipes.get('attention', 'attn_combine');
  const OP = buf(H, new Float32Array(n * heads * splits * (dim + 2)));
  const O = buf(H, new Float32Array(n * heads * dim));
  const entries = {
    0: buf(H, q), 1: buf(H, ctxSlots), 2: OP,
    3: uni(H, [heads, kvh, dim, chunk, splits, 1 / Math.sqrt(dim)], [5]),
    4: uni(H, [n, nCtx - n, nCtx, 0]), 5: O,
  };
  const KC = buf(H, packKv(kv, f16));
  const VC = buf(H, packKv(vv, f16));
  if (entry === 'attn_prefill' || entry === 'attn_prefill_tiled') {
    // writes O directly: one workgroup per 16 queries and head
    await run(H, pp, [pipes.bind(pp, 0, entries), pipes.bind(pp, 1, { 0: KC, 1: VC })], Math.ceil(n / 16), heads, 1);
  } else {
    await run(H, pp, [pipes.bind(pp, 0, entries), pipes.bind(pp, 1, { 0: KC, 1: VC })], splits, split ? kvh : heads, n);
    await run(H, pc, [pipes.bind(pc, 0, entries), pipes.bind(pc, 1, { 0: KC, 1: VC })], heads, n);
  }
  const want = cpuAttention(q, kvRound(kv, f16), kvRound(vv, f16), ctxSlots, n, heads, kvh, dim);
  return relError(await readF32(H, O, n * heads * dim), want);
}

describe('attention kernels', () => {
  test('decode: one query over 300 keys, 5 splits of 64 (f16 KV, subgroups)', async (ctx) => {
    if (!h) return ctx.skip(skip);
    expect(await runAttention(h.pipes, 1, 300, 64, 64)).toBeLessThan(2e-5);
  });
  test('prefill: 7 queries, causal, splits of 128 keys, head_dim 128', async (ctx) => {
    if (!h) return ctx.skip(skip);
    expect(await runAttention(h.pipes, 7, 150, 128, 128)).toBeLessThan(2e-5);
  });
  test('attn_split at the head dims only it covers now: 16 (4 / 8 query heads per KV head) and 256', async (ctx) => {
    if (!h) return ctx.skip(skip);
    expect(await runAttention(h.pipes, 2, 170, 16, 64, 'attn_split', 8, 2)).toBeLessThan(2e-5);
    expect(await runAttention(h.altPipes, 1, 130, 16, 128, 'attn_split', 8, 1)).toBeLessThan(2e-5);
    expect(await runAttention(h.pipes, 1, 300, 256, 128, 'attn_split', 8, 2)).toBeLessThan(2e-5);
  });
  test('attn_split + attn_merge (layout-specialised flash decoding): G 6 / 7 / 1, head_dim 128 / 64', async (ctx) => {
    if (!h) return ctx.skip(skip);
    // 2 queries: the second sees one more key; the last split is short
    expect(await runAttention(h.pipes, 2, 300, 128, 64, 'attn_split', 12, 2)).toBeLessThan(2e-5);
    // 7B-like group of 7, full 256-key splits
    expect(await runAttention(h.pipes, 1, 600, 128, 256, 'attn_split', 14, 2)).toBeLessThan(2e-5);
    expect(await runAttention(h.pipes, 1, 45, 64, 32, 'attn_split', 7, 1)).toBeLessThan(2e-5);
    expect(await runAttention(h.pipes, 1, 70, 64, 32, 'attn_split', 2, 2)).toBeLessThan(2e-5);
  });
  test('attn_split fallback path: f32 KV, no subgroups, 8 heads per KV head, head_dim 32', async (ctx) => {
    if (!h) return ctx.skip(skip);
    expect(await runAttention(h.altPipes, 1, 130, 32, 64, 'attn_split', 8, 1)).toBeLessThan(2e-5);
  });
  test('attn_prefill (16-query blocks, K/V tiles in shared memory): 21 queries after 40 cached keys', async (ctx) => {
    if (!h) return ctx.skip(skip);
    expect(await runAttention(h.pipes, 21, 61, 128, 64, 'attn_prefill')).toBeLessThan(2e-5);
    expect(await runAttention(h.altPipes, 5, 37, 64, 64, 'attn_prefill', 6, 3)).toBeLessThan(2e-5);
  });
  test('attn_prefill_tiled (register tiles): 21 queries after 40 cached keys, head_dim 128 / 64 / 32, GQA', async (ctx) => {
    if (!h) return ctx.skip(skip);
    expect(await runAttention(h.pipes, 21, 61, 128, 64, 'attn_prefill_tiled')).toBeLessThan(2e-5);
    expect(await runAttention(h.pipes, 37, 100, 64, 64, 'attn_prefill_tiled', 6, 2)).toBeLessThan(2e-5);
    expect(await runAttention(h.altPipes, 5, 37, 32, 64, 'attn_prefill_tiled', 6, 3)).toBeLessThan(2e-5);
  });
  test('fallback path: f32 KV, no subgroups, head_dim 40, one split', async (ctx) => {
    if (!h) return ctx.skip(skip);
    expect(await runAttention(h.altPipes, 5, 70, 40, 128)).toBeLessThan(2e-5);
  });
});
