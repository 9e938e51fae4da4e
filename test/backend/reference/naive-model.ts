// An independent, deliberately naive float64 transformer (one token at a time over full history,
// no KV cache, no shared code with engine/backend/reference) that the reference backend is checked
// against, plus tiny random models as in-memory weights.

import { layerTensorNames, weightsFromTensors, type ModelConfig, type ModelWeights, type TensorView } from '../../../engine/model';
import { GgmlType } from '../../../engine/quant/types';
import { normalStream } from '../../helpers/make-test-model';

export function tinyConfig(arch: ModelConfig['arch'], over: Partial<ModelConfig> = {}): ModelConfig {
  const sc2 = arch === 'starcoder2';
  return {
    arch,
    name: `tiny-${arch}`,
    nLayers: 2,
    nEmbd: 16,
    nHeads: 4,
    nKvHeads: 2,
    headDim: 4,
    nFf: 24,
    vocabSize: 11,
    contextLength: 128,
    norm: { type: sc2 ? 'layer' : 'rms', eps: 1e-5 },
    rope: { type: arch === 'llama' ? 'normal' : 'neox', dim: 4, freqBase: 10000, scaling: { type: 'none', factor: 1, originalContext: 128 } },
    ffn: sc2 ? { type: 'plain', activation: 'gelu' } : { type: 'gated', activation: 'silu' },
    qkvBias: arch !== 'llama',
    linearBias: sc2,
    tiedEmbeddings: arch === 'qwen2',
    ...over,
  };
}

export function tinyWeights(c: ModelConfig, seed = 1): ModelWeights {
  const rnd = normalStream(seed);
  const tensors: TensorView[] = [];
  const add = (name: string, dims: number[], scale: number, mean = 0) => {
    const n = dims.reduce((a, b) => a * b, 1);
    const f = Float32Array.from({ length: n }, () => mean + scale * rnd());
    tensors.push({ name, type: GgmlType.F32, dims, data: new Uint8Array(f.buffer) });
  };
  const q = c.nHeads * c.headDim;
  const kv = c.nKvHeads * c.headDim;
  add('token_embd.weight', [c.nEmbd, c.vocabSize], 1);
  for (let i = 0; i < c.nLayers; i++) {
    const n = layerTensorNames(c, i);
    add(n.attnNorm, [c.nEmbd], 0.1, 1);
    if (n.attnNormBias) add(n.attnNormBias, [c.nEmbd], 0.1);
    add(n.q, [c.nEmbd, q], 0.5);
    add(n.k, [c.nEmbd, kv], 0.5);
    add(n.v, [c.nEmbd, kv], 0.3);
    if (n.qBias) add(n.qBias, [q], 0.1);
    if (n.kBias) add(n.kBias, [kv], 0.1);
    if (n.vBias) add(n.vBias, [kv], 0.1);
    add(n.o, [q, c.nEmbd], 0.3);
    if (n.oBias) add(n.oBias, [c.nEmbd], 0.1);
    add(n.ffnNorm, [c.nEmbd], 0.1, 1);
    if (n.ffnNormBias) add(n.ffnNormBias, [c.nEmbd], 0.1);
    if (n.gate) add(n.gate, [c.nEmbd, c.nFf], 0.3);
    add(n.up, [c.nEmbd, c.nFf], 0.3);
    if (n.upBias) add(n.upBias, [c.nFf], 0.1);
    add(n.down, [c.nFf, c.nEmbd], 0.3);
    if (n.downBias) add(n.downBias, [c.nEmbd], 0.1);
  }
  add('output_norm.weight', [c.nEmbd], 0.1, 1);
  if (c.norm.type === 'layer') add('output_norm.bias', [c.nEmbd], 0.1);
  if (!c.tiedEmbeddings) add('output.weight', [c.nEmbd, c.vocabSize], 0.5);
  return weightsFromTensors(c, tensors);
}

function f32(w: ModelWeights, name: string): Float32Array {
  const t = w.get(name);
  return new Float32Array(t.data.buffer, t.data.byteOffset, t.data.byteLength / 4);
}

/** y = W x (+ b) with W in ggml order [in, out]. */
function matvec(w: ModelWeights, name: string, x: number[], bias?: string): number[] {
  const W = f32(w, name);
  const cols = x.length;
  const rows = W.length / cols;
  const b = bias ? f32(w, bias) : undefined;
  return Array.from({ length: rows }, (_, o) => {
    let s = b ? b[o]! : 0;
    for (let i = 0; i < cols; i++) s += W[o * cols + i]! * x[i]!;
    return s;
  });
}

function norm(c: ModelConfig, w: ModelWeights, x: number[], weight: string, bias?: string): number[] {
  const g = f32(w, weight);
  if (c.norm.type === 'rms') {
    const ms = x.reduce((a, v) => a + v * v, 0) / x.length;
    return x.map((v, i) => (v / Math.sqrt(ms + c.norm.eps)) * g[i]!);
  }
  const b = f32(w, bias!);
  const mean = x.reduce((a, v) => a + v, 0) / x.length;
  const variance = x.reduce((a, v) => a + (v - mean) ** 2, 0) / x.length;
  return x.map((v, i) => ((v - mean) / Math.sqrt(variance + c.norm.eps)) * g[i]! + b[i]!);
}

function rope(c: ModelConfig, v: number[], pos: number): number[] {
  const out = v.slice();
  const half = c.rope.dim / 2;
  for (let i = 0; i < half; i++) {
    const theta = (pos / c.rope.scaling.factor) * Math.pow(c.rope.freqBase, (-2 * i) / c.rope.dim);
    const [a, b] = c.rope.type === 'neox' ? [i, i + half] : [2 * i, 2 * i + 1];
    out[a] = v[a]! * Math.cos(theta) - v[b]! * Math.sin(theta);
    out[b] = v[a]! * Math.sin(theta) + v[b]! * Math.cos(theta);
  }
  return out;
}

const gelu = (x: number) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
const silu = (x: number) => x / (1 + Math.exp(-x));

/** Logits after every token of `tokens` at positions start.. (row-major [n][vocab]). */
export function naiveLogits(w: ModelWeights, tokens: number[], start = 0): number[][] {
  const c = w.config;
  const D = c.headDim;
  const embd = f32(w, 'token_embd.weight');
  const xs = tokens.map((t) => Array.from(embd.subarray(t * c.nEmbd, (t + 1) * c.nEmbd)));
  for (let l = 0; l < c.nLayers; l++) {
    const n = layerTensorNames(c, l);
    const hs = xs.map((x) => norm(c, w, x, n.attnNorm, n.attnNormBias));
    const split = (v: number[], heads: number, pos: number) => Array.from({ length: heads }, (_, h) => rope(c, v.slice(h * D, (h + 1) * D), pos));
    const qs = hs.map((h, t) => split(matvec(w, n.q, h, n.qBias), c.nHeads, start + t));
    const ks = hs.map((h, t) => split(matvec(w, n.k, h, n.kBias), c.nKvHeads, start + t));
    const vs = hs.map((h) => matvec(w, n.v, h, n.vBias));
    for (let t = 0; t < xs.length; t++) {
      const attn: number[] = [];
      for (let h = 0; h < c.nHeads; h++) {
        const g = Math.floor(h / (c.nHeads / c.nKvHeads));
        const scores = Array.from({ length: t + 1 }, (_, j) => qs[t]![h]!.reduce((a, q, d) => a + q * ks[j]![g]![d]!, 0) / Math.sqrt(D));
        const m = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - m));
        const z = e.reduce((a, b) => a + b, 0);
        for (let d = 0; d < D; d++) attn.push(e.reduce((a, p, j) => a + (p / z) * vs[j]![g * D + d]!, 0));
      }
      const o = matvec(w, n.o, attn, n.oBias);
      xs[t] = xs[t]!.map((v, i) => v + o[i]!);
    }
    for (let t = 0; t < xs.length; t++) {
      const h = norm(c, w, xs[t]!, n.ffnNorm, n.ffnNormBias);
      const up = matvec(w, n.up, h, n.upBias);
      const act = n.gate ? matvec(w, n.gate, h).map((g, i) => silu(g) * up[i]!) : up.map(gelu);
      const down = matvec(w, n.down, act, n.downBias);
      xs[t] = xs[t]!.map((v, i) => v + down[i]!);
    }
  }
  return xs.map((x) => matvec(w, c.tiedEmbeddings ? 'token_embd.weight' : 'output.weight', norm(c, w, x, 'output_norm.weight', c.norm.type === 'layer' ? 'output_norm.bias' : undefined)));
}
