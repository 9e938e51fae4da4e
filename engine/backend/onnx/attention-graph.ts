// Attention as one ORT graph, shared by every layer (it has no weights): the O(n·ctx) work runs in
// MLAS sgemm with ORT's threads instead of JS loops. GQA without copying K/V per query head:
// q is viewed as [kvHeads, group, n, headDim] and K/V as [kvHeads, 1, ctx, headDim], so MatMul
// broadcasts one KV head over its group.
//   inputs:  q [n, nHeads*headDim] (after RoPE), k, v [ctx, nKvHeads*headDim], mask [n, ctx]
//            (0 where visible, -inf where not)
//   output:  out [n, nHeads*headDim]

import type { ModelConfig } from '../../model/types';
import { GraphBuilder, OnnxType } from './graph-builder';

export function buildAttentionGraph(c: ModelConfig): Uint8Array {
  const g = new GraphBuilder('attention');
  const group = c.nHeads / c.nKvHeads;
  const hd = c.headDim;
  const q = g.input('q', OnnxType.FLOAT, ['n', c.nHeads * hd]);
  const k = g.input('k', OnnxType.FLOAT, ['ctx', c.nKvHeads * hd]);
  const v = g.input('v', OnnxType.FLOAT, ['ctx', c.nKvHeads * hd]);
  const mask = g.input('mask', OnnxType.FLOAT, ['n', 'ctx']);
  // q: [n, kvH, group, hd] -> [kvH, group, n, hd]
  const q4 = g.op('Transpose', [g.op('Reshape', [q, g.i64('q_shape', [0, c.nKvHeads, group, hd])])], { perm: [1, 2, 0, 3] });
  // k: [ctx, kvH, hd] -> [kvH, 1, hd, ctx]; v: -> [kvH, 1, ctx, hd]
  const kvShape = g.i64('kv_shape', [0, c.nKvHeads, 1, hd]);
  const kT = g.op('Transpose', [g.op('Reshape', [k, kvShape])], { perm: [1, 2, 3, 0] });
  const v4 = g.op('Transpose', [g.op('Reshape', [v, kvShape])], { perm: [1, 2, 0, 3] });
  const scale = g.f32('scale', [], new Float32Array([1 / Math.sqrt(hd)]));
  const scores = g.op('Add', [g.op('Mul', [g.op('MatMul', [q4, kT]), scale]), mask]); // [kvH, group, n, ctx]
  const probs = g.op('Softmax', [scores], { axis: -1 });
  const o = g.op('MatMul', [probs, v4]); // [kvH, group, n, hd]
  const oT = g.op('Transpose', [o], { perm: [2, 0, 1, 3] }); // [n, kvH, group, hd]
  g.node('Reshape', [oT, g.i64('out_shape', [0, c.nHeads * hd])], {}, { outputs: ['out'] });
  g.output('out', OnnxType.FLOAT, ['n', c.nHeads * hd]);
  return g.toModel();
}

/** Causal mask for n new tokens after nPast visible ones: row t sees columns 0..nPast+t. */
export function causalMask(n: number, ctx: number): Float32Array {
  const nPast = ctx - n;
  const m = new Float32Array(n * ctx);
  for (let t = 0; t < n; t++) m.fill(-Infinity, t * ctx + nPast + t + 1, (t + 1) * ctx);
  return m;
}

/**
 * K or V rows of the context slots, in order. When the slots are one ascending run (what a fresh
 * paged allocator usually hands out) this is a view, not a copy.
 */
export function gatherSlots(store: Float32Array, context: Int32Array, dim: number): Float32Array {
  const first = context[0]!;
  let contiguous = true;
  for (let i = 1; i < context.length; i++) {
    if (context[i] !== first + i) {
      contiguous = false;
      break;
    }
  }
  if (contiguous) return store.subarray(first * dim, (first + context.length) * dim);
  const out = new Float32Array(context.length * dim);
  for (let i = 0; i < context.length; i++) out.set(store.subarray(context[i]! * dim, (context[i]! + 1) * dim), i * dim);
  return out;
}
