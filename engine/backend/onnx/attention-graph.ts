// Attention as one ORT graph, shared by every layer (it has no weights): the O(n·ctx) work runs in
// MLAS sgemm with ORT's threads instead of JS loops. K and V come per KV head, [1, ctx, headDim]
// views of the head-major store (head-kv-store.ts), read in place: no per-step transpose or copy.
// GQA without copying K/V per query head: the query heads of one KV head are a batch of `group`
// matrices [n, headDim] broadcast against that head's K/V; at n = 1 MLAS then runs its M=1
// kernels, which read K/V straight from the store (no packing). bench/cpu-attention.ts, 4k context,
// 24 layers, 2 threads: a decode step 31-41 ms with the old transposing graph, 13-23 ms now; a
// 512-token prefill chunk 2.3 s -> 2.05 s.
//   inputs:  q [n, nHeads*headDim] (after RoPE), k<h>, v<h> [1, ctx, headDim] for each KV head h
//            (f16 or f32), and, in the masked graph, mask [n, ctx] (0 visible, -inf hidden)
//   output:  out [n, nHeads*headDim]

import type { ModelConfig } from '../../model/types';
import { GraphBuilder, OnnxType } from './graph-builder';
import type { KvType } from './head-kv-store';

export interface AttentionGraphOptions {
  kvType: KvType;
  /** With a mask input; without it every query sees the whole context (a decode step). */
  masked: boolean;
}

export function buildAttentionGraph(c: ModelConfig, o: AttentionGraphOptions): Uint8Array {
  const g = new GraphBuilder(o.masked ? 'attention_masked' : 'attention');
  const group = c.nHeads / c.nKvHeads;
  const hd = c.headDim;
  const kvOnnxType = o.kvType === 'f16' ? OnnxType.FLOAT16 : OnnxType.FLOAT;
  const q = g.input('q', OnnxType.FLOAT, ['n', c.nHeads * hd]);
  const mask = o.masked ? g.input('mask', OnnxType.FLOAT, ['n', 'ctx']) : undefined;
  // q: [n, kvH, group, hd] -> [kvH, group, n, hd] -> one [1, group, n, hd] per KV head
  const q4 = g.op('Transpose', [g.op('Reshape', [q, g.i64('q_shape', [0, c.nKvHeads, group, hd])])], { perm: [1, 2, 0, 3] });
  const qHeads = c.nKvHeads === 1 ? [q4] : g.node('Split', [q4], { axis: 0 }, { outputs: c.nKvHeads });
  const outs: string[] = [];
  for (let h = 0; h < c.nKvHeads; h++) {
    let k = g.input(`k${h}`, kvOnnxType, [1, 'ctx', hd]);
    let v = g.input(`v${h}`, kvOnnxType, [1, 'ctx', hd]);
    if (o.kvType === 'f16') {
      k = g.op('Cast', [k], { to: OnnxType.FLOAT });
      v = g.op('Cast', [v], { to: OnnxType.FLOAT });
    }
    // [1, group, n, hd] x [1, ctx, hd]^T -> [1, group, n, ctx]
    let scores = g.op('FusedMatMul', [qHeads[h]!, k], { transB: 1, alpha: { float: 1 / Math.sqrt(hd) } }, 'com.microsoft');
    if (mask) scores = g.op('Add', [scores, mask]);
    outs.push(g.op('MatMul', [g.op('Softmax', [scores], { axis: -1 }), v])); // [1, group, n, hd]
  }
  const all = c.nKvHeads === 1 ? outs[0]! : g.op('Concat', outs, { axis: 0 }); // [kvH, group, n, hd]
  const oT = g.op('Transpose', [all], { perm: [2, 0, 1, 3] }); // [n, kvH, group, hd]
  g.node('Reshape', [oT, g.i64('out_shape', [0, c.nHeads * hd])], {}, { outputs: ['out'] });
  g.output('out', OnnxType.FLOAT, ['n', c.nHeads * hd]);
  return g.toModel();
}

/** Mask for queries that see context[0 .. visible[t]-1] each: row t hides columns visible[t]..ctx-1. */
export function attentionMask(visible: ArrayLike<number>, ctx: number): Float32Array {
  const n = visible.length;
  const m = new Float32Array(n * ctx);
  for (let t = 0; t < n; t++) m.fill(-Infinity, t * ctx + visible[t]!, (t + 1) * ctx);
  return m;
}
