// The onnx backend's attention graph alone, one decode step (or a prefill chunk) over a long
// context, summed over the layers of a Qwen2.5-Coder-0.5B shape (24 layers, 14/2 heads, head 64),
// each layer with its own K/V (cold in cache, as in a real step). Compares the KV layouts the
// backend could use:
//   token-major f32  [ctx, kvHeads*headDim] per layer, transposed inside the graph each call (the
//                    layout before head-kv-store.ts; its graph is rebuilt here as the baseline)
//   head-major f32   [1, ctx, headDim] per layer and KV head, read in place
//   head-major f16   the same in f16, cast to f32 inside the graph (the backend's default)
//
//   npx esbuild bench/cpu-attention.ts --bundle --platform=node --outfile=bench/tmp/cpu-attention.js \
//     --external:onnxruntime-node && node bench/tmp/cpu-attention.js [--context 4096] [--n 1] \
//     [--threads 2] [--reps 5]
// Prints JSON and a table (no result file: a probe for choosing the layout; bench/cpu.ts is the
// end-to-end number).

import * as ort from 'onnxruntime-node';
import { attentionMask, buildAttentionGraph } from '../engine/backend/onnx/attention-graph';
import { GraphBuilder, OnnxType } from '../engine/backend/onnx/graph-builder';
import { ortSessionOptions } from '../engine/backend/onnx/onnx-backend';
import type { ModelConfig } from '../engine/model/types';
import { f32ToF16 } from '../engine/quant';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}

const ctx = Number(arg('context', '4096'));
const n = Number(arg('n', '1'));
const threads = Number(arg('threads', '2'));
const reps = Number(arg('reps', '5'));
const layers = 24;
const c = { nHeads: 14, nKvHeads: 2, headDim: 64 } as ModelConfig;
const hd = c.headDim;
const kvDim = c.nKvHeads * hd;
const sessionOptions = ortSessionOptions(threads);

/** The token-major graph the backend used before: K/V [ctx, kvH*hd], transposed per call. */
function tokenMajorGraph(): Uint8Array {
  const g = new GraphBuilder('attention_token_major');
  const group = c.nHeads / c.nKvHeads;
  const q = g.input('q', OnnxType.FLOAT, ['n', c.nHeads * hd]);
  const k = g.input('k', OnnxType.FLOAT, ['ctx', kvDim]);
  const v = g.input('v', OnnxType.FLOAT, ['ctx', kvDim]);
  const mask = g.input('mask', OnnxType.FLOAT, ['n', 'ctx']);
  const q4 = g.op('Transpose', [g.op('Reshape', [q, g.i64('q_shape', [0, c.nKvHeads, group, hd])])], { perm: [1, 2, 0, 3] });
  const kvShape = g.i64('kv_shape', [0, c.nKvHeads, 1, hd]);
  const kT = g.op('Transpose', [g.op('Reshape', [k, kvShape])], { perm: [1, 2, 3, 0] });
  const v4 = g.op('Transpose', [g.op('Reshape', [v, kvShape])], { perm: [1, 2, 0, 3] });
  const scale = g.f32('scale', [], new Float32Array([1 / Math.sqrt(hd)]));
  const probs = g.op('Softmax', [g.op('Add', [g.op('Mul', [g.op('MatMul', [q4, kT]), scale]), mask])], { axis: -1 });
  const oT = g.op('Transpose', [g.op('MatMul', [probs, v4])], { perm: [2, 0, 1, 3] });
  g.node('Reshape', [oT, g.i64('out_shape', [0, c.nHeads * hd])], {}, { outputs: ['out'] });
  g.output('out', OnnxType.FLOAT, ['n', c.nHeads * hd]);
  return g.toModel();
}

function uniform(len: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const a = new Float32Array(len);
  for (let i = 0; i < len; i++) {
    s = (s * 1664525 + 1013904223) >>> 0;
    a[i] = s / 2 ** 31 - 1;
  }
  return a;
}

async function timeLayers(session: ort.InferenceSession, feeds: (l: number) => Record<string, ort.Tensor>): Promise<{ ms: number; out: Float32Array }> {
  let out: Float32Array = new Float32Array(0);
  for (let l = 0; l < layers; l++) out = (await session.run(feeds(l))).out!.data as Float32Array; // warm-up
  const t0 = performance.now();
  for (let r = 0; r < reps; r++) for (let l = 0; l < layers; l++) await session.run(feeds(l));
  return { ms: (performance.now() - t0) / reps, out };
}

async function main(): Promise<void> {
  const T = (d: Float32Array, dims: number[]) => new ort.Tensor('float32', d, dims);
  const q = uniform(n * c.nHeads * hd, 1);
  const visible = Array.from({ length: n }, (_, t) => ctx - n + t + 1);
  const mask = attentionMask(visible, ctx);
  // token-major K/V per layer, and the same values head-major (f32 and f16)
  const tokenK: Float32Array[] = [];
  const tokenV: Float32Array[] = [];
  const headK: Float32Array[][] = [];
  const headV: Float32Array[][] = [];
  for (let l = 0; l < layers; l++) {
    tokenK.push(uniform(ctx * kvDim, 100 + l));
    tokenV.push(uniform(ctx * kvDim, 200 + l));
    const split = (a: Float32Array) => Array.from({ length: c.nKvHeads }, (_, h) => {
      const out = new Float32Array(ctx * hd);
      for (let s = 0; s < ctx; s++) out.set(a.subarray(s * kvDim + h * hd, s * kvDim + (h + 1) * hd), s * hd);
      return out;
    });
    headK.push(split(tokenK[l]!));
    headV.push(split(tokenV[l]!));
  }
  const toF16 = (a: Float32Array) => Uint16Array.from(a, (x) => f32ToF16(x));
  const headK16 = headK.map((hs) => hs.map(toF16));
  const headV16 = headV.map((hs) => hs.map(toF16));

  const rows: { layout: string; msPerStep: number; maxDiffVsTokenMajor: number }[] = [];
  const base = await timeLayers(await ort.InferenceSession.create(tokenMajorGraph(), sessionOptions), (l) => ({
    q: T(q, [n, c.nHeads * hd]), k: T(tokenK[l]!, [ctx, kvDim]), v: T(tokenV[l]!, [ctx, kvDim]), mask: T(mask, [n, ctx]),
  }));
  rows.push({ layout: 'token-major f32 (transposed per call)', msPerStep: base.ms, maxDiffVsTokenMajor: 0 });
  for (const kvType of ['f32', 'f16'] as const) {
    const masked = n > 1;
    const session = await ort.InferenceSession.create(buildAttentionGraph(c, { kvType, masked }), sessionOptions);
    const r = await timeLayers(session, (l) => {
      const f: Record<string, ort.Tensor> = { q: T(q, [n, c.nHeads * hd]) };
      if (masked) f.mask = T(mask, [n, ctx]);
      for (let h = 0; h < c.nKvHeads; h++) {
        f[`k${h}`] = kvType === 'f32' ? T(headK[l]![h]!, [1, ctx, hd]) : new ort.Tensor('float16', headK16[l]![h]!, [1, ctx, hd]);
        f[`v${h}`] = kvType === 'f32' ? T(headV[l]![h]!, [1, ctx, hd]) : new ort.Tensor('float16', headV16[l]![h]!, [1, ctx, hd]);
      }
      return f;
    });
    let diff = 0;
    for (let i = 0; i < r.out.length; i++) diff = Math.max(diff, Math.abs(r.out[i]! - base.out[i]!));
    rows.push({ layout: `head-major ${kvType}`, msPerStep: r.ms, maxDiffVsTokenMajor: diff });
  }
  console.log(JSON.stringify({ bench: 'cpu-attention', date: new Date().toISOString(), context: ctx, n, threads, layers, heads: '14/2, head 64', reps, rows }, null, 2));
  console.log(`\n| layout | ms per step (${layers} layers, ctx ${ctx}, n ${n}) | max diff |\n|---|---|---|`);
  for (const r of rows) console.log(`| ${r.layout} | ${r.msPerStep.toFixed(1)} | ${r.maxDiffVsTokenMajor.toExponential(1)} |`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
