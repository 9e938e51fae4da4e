// The plain-TypeScript backend: the numerical ground truth every other backend is tested against.
// It follows llama.cpp's graph for llama / qwen2 / starcoder2 (llm_build_* in llama-model.cpp) step
// by step, on host f32 arrays. Clear over fast: one token row at a time, no threads.

import { CachetError } from '../../errors';
import { layerTensorNames, lmHeadName, OUTPUT_NORM, OUTPUT_NORM_BIAS, TOKEN_EMBD } from '../../model/tensor-names';
import type { ModelConfig, ModelWeights } from '../../model/types';
import type { Backend, BackendOptions, ForwardResult, MemoryStats, SequenceBatch } from '../types';
import { KvStore } from './kv-store';
import { Linear, toF32 } from './linear';
import { geluGgml, geluTanh, layerNorm, rmsNorm, silu, softmaxScaled } from './ops';
import { Rope } from './rope';

export interface ReferenceBackendOptions extends BackendOptions {
  /**
   * Mirror llama.cpp's CPU numerics: activations rounded to the weight's dot-product type
   * (f16, Q8_0, Q8_K, ...) before each matmul, and GELU through ggml's f16 table. Default true;
   * false gives the plain f32 math of the model (what a GPU backend without these steps computes).
   */
  ggmlNumerics?: boolean;
  /** Bytes of dequantized f32 weights to keep; tensors past the budget dequantize per call. Default 2 GiB. */
  weightCacheBytes?: number;
}

interface Layer {
  attnNorm: Float32Array;
  attnNormBias?: Float32Array;
  q: Linear;
  k: Linear;
  v: Linear;
  o: Linear;
  ffnNorm: Float32Array;
  ffnNormBias?: Float32Array;
  gate?: Linear;
  up: Linear;
  down: Linear;
}

export class ReferenceBackend implements Backend {
  readonly name = 'reference';
  readonly supportsRows = true;
  readonly config: ModelConfig;
  private readonly layers: Layer[] = [];
  private readonly embd: Linear;
  private readonly lmHead: Linear;
  private readonly outputNorm: Float32Array;
  private readonly outputNormBias: Float32Array | undefined;
  private readonly rope: Rope;
  private readonly kv: KvStore;
  private readonly ggml: boolean;
  private weightsBytes = 0;
  private scratchBytes = 0;
  private disposed = false;

  constructor(weights: ModelWeights, options: ReferenceBackendOptions) {
    const c = (this.config = weights.config);
    this.ggml = options.ggmlNumerics ?? true;
    let budget = options.weightCacheBytes ?? 2 * 1024 ** 3;
    const progress = options.onProgress;
    const linear = (name: string, biasName?: string): Linear => {
      const t = weights.get(name);
      const f32Bytes = t.dims.reduce((a, b) => a * b, 1) * 4;
      const cache = f32Bytes <= budget;
      if (cache) budget -= f32Bytes;
      const lin = new Linear(t, biasName ? weights.get(biasName) : undefined, cache, this.ggml);
      this.weightsBytes += cache ? f32Bytes : t.data.byteLength;
      return lin;
    };
    const vector = (name: string): Float32Array => {
      const v = toF32(weights.get(name));
      this.weightsBytes += v.byteLength;
      return v;
    };

    this.lmHead = linear(lmHeadName(c));
    this.embd = c.tiedEmbeddings ? this.lmHead : linear(TOKEN_EMBD);
    for (let i = 0; i < c.nLayers; i++) {
      const n = layerTensorNames(c, i);
      this.layers.push({
        attnNorm: vector(n.attnNorm),
        attnNormBias: n.attnNormBias ? vector(n.attnNormBias) : undefined,
        q: linear(n.q, n.qBias),
        k: linear(n.k, n.kBias),
        v: linear(n.v, n.vBias),
        o: linear(n.o, n.oBias),
        ffnNorm: vector(n.ffnNorm),
        ffnNormBias: n.ffnNormBias ? vector(n.ffnNormBias) : undefined,
        gate: n.gate ? linear(n.gate) : undefined,
        up: linear(n.up, n.upBias),
        down: linear(n.down, n.downBias),
      });
      progress?.((i + 1) / c.nLayers, `layer ${i + 1}/${c.nLayers}`);
    }
    this.outputNorm = vector(OUTPUT_NORM);
    this.outputNormBias = c.norm.type === 'layer' ? vector(OUTPUT_NORM_BIAS) : undefined;
    this.rope = new Rope(c.rope, c.headDim);
    if (!Number.isInteger(options.kvSlots) || options.kvSlots <= 0) {
      throw new CachetError(`kvSlots must be a positive integer, got ${options.kvSlots}`, 'Pass the number of KV slots (tokens) to allocate.');
    }
    this.kv = new KvStore(c.nLayers, options.kvSlots, c.nKvHeads * c.headDim);
  }

  async forward(batches: SequenceBatch[]): Promise<ForwardResult[]> {
    this.checkAlive();
    return batches.map((b) => this.forwardOne(b));
  }

  async copySlots(src: Int32Array, dst: Int32Array): Promise<void> {
    this.checkAlive();
    this.kv.copy(src, dst);
  }

  async rotateKeys(slots: Int32Array, delta: Int32Array): Promise<void> {
    this.checkAlive();
    this.kv.rotateKeys(this.rope, this.config.nKvHeads, slots, delta);
  }

  async readSlots(slots: Int32Array): Promise<Float32Array> {
    this.checkAlive();
    return this.kv.read(slots);
  }

  async writeSlots(slots: Int32Array, data: Float32Array): Promise<void> {
    this.checkAlive();
    this.kv.write(slots, data);
  }

  memory(): MemoryStats {
    return { weightsBytes: this.weightsBytes, kvBytes: this.kv.bytes, scratchBytes: this.scratchBytes };
  }

  async dispose(): Promise<void> {
    this.disposed = true;
  }

  private checkAlive(): void {
    if (this.disposed) throw new CachetError('the reference backend was disposed', 'Create a new backend after dispose().');
  }

  private checkBatch(b: SequenceBatch): number {
    const n = b.tokens.length;
    if (b.positions.length !== n) {
      throw new CachetError(`forward: ${n} tokens but ${b.positions.length} positions`, 'Pass one RoPE position per new token.');
    }
    const nPast = b.context.length - n;
    if (b.rows) {
      if (b.rows.length !== n) throw new CachetError(`forward: ${n} tokens but ${b.rows.length} rows`, 'Pass one context index per new token in rows.');
      for (let i = 0; i < n; i++) {
        const r = b.rows[i]!;
        if (!Number.isInteger(r) || r < 0 || r >= b.context.length || (i > 0 && r <= b.rows[i - 1]!)) {
          throw new CachetError(`forward: rows[${i}] = ${r} is not an ascending index into the ${b.context.length}-slot context`, 'rows must list distinct context indices in ascending order.');
        }
      }
    } else if (nPast < 0) {
      throw new CachetError(`forward: context has ${b.context.length} slots for ${n} new tokens`, 'context must list the old tokens\' slots followed by one slot per new token.');
    }
    this.kv.checkSlots(b.context, 'forward');
    for (const t of b.tokens) {
      if (!Number.isInteger(t) || t < 0 || t >= this.config.vocabSize) {
        throw new CachetError(`forward: token id ${t} is outside the vocabulary (0..${this.config.vocabSize - 1})`, 'Tokenize with the model\'s own tokenizer.');
      }
    }
    return nPast;
  }

  private norm(x: Float32Array, rows: number, weight: Float32Array, bias: Float32Array | undefined, out: Float32Array): void {
    const c = this.config;
    if (c.norm.type === 'rms') rmsNorm(x, rows, c.nEmbd, c.norm.eps, weight, out);
    else layerNorm(x, rows, c.nEmbd, c.norm.eps, weight, bias!, out);
  }

  private forwardOne(b: SequenceBatch): ForwardResult {
    const c = this.config;
    const nPast = this.checkBatch(b);
    const n = b.tokens.length;
    // Context index of new token t: nPast + t, or rows[t] for a scattered recompute.
    const rows = b.rows;
    const cellOf = (t: number) => (rows ? rows[t]! : nPast + t);
    const E = c.nEmbd;
    const qDim = c.nHeads * c.headDim;
    const kvDim = c.nKvHeads * c.headDim;
    const F = c.nFf;
    if (n === 0) return { logits: new Float32Array(0) };

    const x = new Float32Array(n * E);
    for (let t = 0; t < n; t++) x.set(this.embd.row(b.tokens[t]!), t * E);

    const h = new Float32Array(n * E);
    const q = new Float32Array(n * qDim);
    const k = new Float32Array(n * kvDim);
    const v = new Float32Array(n * kvDim);
    const attn = new Float32Array(n * qDim);
    const proj = new Float32Array(n * E);
    const up = new Float32Array(n * F);
    const gate = new Float32Array(n * F);
    const scores = new Float32Array(b.context.length);
    const acc = new Float64Array(c.headDim);
    this.scratchBytes = (x.length + h.length + q.length + k.length + v.length + attn.length + proj.length + up.length + gate.length + scores.length) * 4;

    const kqScale = Math.fround(1 / Math.sqrt(c.headDim));
    const group = c.nHeads / c.nKvHeads;

    for (let l = 0; l < c.nLayers; l++) {
      const L = this.layers[l]!;
      const K = this.kv.k[l]!;
      const V = this.kv.v[l]!;

      // Attention block.
      this.norm(x, n, L.attnNorm, L.attnNormBias, h);
      L.q.apply(h, n, q);
      L.k.apply(h, n, k);
      L.v.apply(h, n, v);
      for (let t = 0; t < n; t++) {
        this.rope.apply(q, t * qDim, c.nHeads, b.positions[t]!);
        this.rope.apply(k, t * kvDim, c.nKvHeads, b.positions[t]!);
        const slot = b.context[cellOf(t)]!;
        K.set(k.subarray(t * kvDim, (t + 1) * kvDim), slot * kvDim);
        V.set(v.subarray(t * kvDim, (t + 1) * kvDim), slot * kvDim);
      }
      for (let t = 0; t < n; t++) {
        const visible = cellOf(t) + 1; // causal: context[0 .. cell of t]
        for (let head = 0; head < c.nHeads; head++) {
          const qo = t * qDim + head * c.headDim;
          const kvo = Math.floor(head / group) * c.headDim;
          for (let j = 0; j < visible; j++) {
            const ko = b.context[j]! * kvDim + kvo;
            let dot = 0;
            for (let d = 0; d < c.headDim; d++) dot += q[qo + d]! * K[ko + d]!;
            scores[j] = dot;
          }
          softmaxScaled(scores, visible, kqScale);
          acc.fill(0);
          for (let j = 0; j < visible; j++) {
            const p = scores[j]!;
            const vo = b.context[j]! * kvDim + kvo;
            for (let d = 0; d < c.headDim; d++) acc[d] += p * V[vo + d]!;
          }
          for (let d = 0; d < c.headDim; d++) attn[qo + d] = acc[d]!;
        }
      }
      L.o.apply(attn, n, proj);
      for (let i = 0; i < n * E; i++) x[i] = x[i]! + proj[i]!;

      // Feed-forward block.
      this.norm(x, n, L.ffnNorm, L.ffnNormBias, h);
      L.up.apply(h, n, up);
      if (L.gate) {
        L.gate.apply(h, n, gate);
        for (let i = 0; i < n * F; i++) up[i] = Math.fround(silu(gate[i]!)) * up[i]!;
      } else {
        const gelu = this.ggml ? geluGgml : geluTanh;
        for (let i = 0; i < n * F; i++) up[i] = gelu(up[i]!);
      }
      L.down.apply(up, n, proj);
      for (let i = 0; i < n * E; i++) x[i] = x[i]! + proj[i]!;
    }

    if (b.logits === 'none') return { logits: new Float32Array(0) };
    const first = b.logits === 'last' ? n - 1 : 0;
    const outRows = n - first;
    const tail = x.subarray(first * E);
    this.norm(tail, outRows, this.outputNorm, this.outputNormBias, h);
    const logits = new Float32Array(outRows * c.vocabSize);
    this.lmHead.apply(h, outRows, logits);
    return { logits };
  }
}

/** BackendFactory for the reference backend. */
export async function createReferenceBackend(weights: ModelWeights, options: ReferenceBackendOptions): Promise<ReferenceBackend> {
  return new ReferenceBackend(weights, options);
}
