// An in-memory stand-in for a Backend's slot storage plus a tiny deterministic "model", so the KV
// manager can be tested without model weights. Layout matches the Backend contract:
// readSlots -> [layer][slot][K|V][kvDim]. Keys are stored post-RoPE (normal pairing), so
// rotateKeys is a real rotation and chunk re-rotation can be checked exactly.
//
// The model: x0 = embed(token); layer l: K = rope(A_l x, pos), V = C_l x, then
// x_{l+1} = tanh(x + mean of V over the visible context). Layer >= 1 K/V therefore depend on the
// context, like a transformer's, while layer 0 depends only on (token, position).

import type { ForwardResult, SequenceBatch } from '../../engine/backend/types';
import type { ModelConfig } from '../../engine/model/types';

export interface FakeBackendOptions {
  kvSlots: number;
  layers?: number;
  kvHeads?: number;
  headDim?: number;
  vocab?: number;
  seed?: number;
}

export class FakeBackend {
  readonly name = 'fake';
  readonly config: ModelConfig;
  readonly kv: Float32Array;
  readonly layers: number;
  readonly kvDim: number;
  readonly headDim: number;
  copies = 0;
  rotations = 0;
  forwards = 0;
  forwardTokens = 0;
  private readonly embed: Float32Array;
  private readonly proj: Float32Array[];
  private readonly vocab: number;

  constructor(o: FakeBackendOptions) {
    this.layers = o.layers ?? 3;
    const kvHeads = o.kvHeads ?? 2;
    this.headDim = o.headDim ?? 4;
    this.kvDim = kvHeads * this.headDim;
    this.vocab = o.vocab ?? 64;
    this.kv = new Float32Array(o.kvSlots * this.layers * 2 * this.kvDim);
    const rnd = mulberry32(o.seed ?? 1);
    this.embed = Float32Array.from({ length: this.vocab * this.kvDim }, () => rnd() * 2 - 1);
    this.proj = Array.from({ length: this.layers * 2 }, () =>
      Float32Array.from({ length: this.kvDim * this.kvDim }, () => (rnd() * 2 - 1) / Math.sqrt(this.kvDim)),
    );
    this.config = {
      arch: 'llama', name: 'fake', nLayers: this.layers, nEmbd: this.kvDim, nHeads: kvHeads, nKvHeads: kvHeads,
      headDim: this.headDim, nFf: this.kvDim, vocabSize: this.vocab, contextLength: o.kvSlots,
      norm: { type: 'rms', eps: 1e-6 },
      rope: { type: 'normal', dim: this.headDim, freqBase: 10000, scaling: { type: 'none', factor: 1, originalContext: 0 } },
      ffn: { type: 'gated', activation: 'silu' }, qkvBias: false, linearBias: false, tiedEmbeddings: true,
    };
  }

  private get slotCount(): number {
    return this.kv.length / (this.layers * 2 * this.kvDim);
  }

  private off(layer: number, slot: number, kOrV: 0 | 1): number {
    if (slot < 0 || slot >= this.slotCount) throw new RangeError(`slot ${slot} out of range`);
    return ((layer * this.slotCount + slot) * 2 + kOrV) * this.kvDim;
  }

  async copySlots(src: Int32Array, dst: Int32Array): Promise<void> {
    this.copies += src.length;
    for (let l = 0; l < this.layers; l++) {
      for (let i = 0; i < src.length; i++) {
        const s = this.off(l, src[i], 0);
        this.kv.copyWithin(this.off(l, dst[i], 0), s, s + 2 * this.kvDim);
      }
    }
  }

  async rotateKeys(slots: Int32Array, delta: Int32Array): Promise<void> {
    this.rotations += slots.length;
    for (let l = 0; l < this.layers; l++) {
      for (let i = 0; i < slots.length; i++) this.rope(this.kv, this.off(l, slots[i], 0), delta[i]);
    }
  }

  async readSlots(slots: Int32Array): Promise<Float32Array> {
    const out = new Float32Array(this.layers * slots.length * 2 * this.kvDim);
    let w = 0;
    for (let l = 0; l < this.layers; l++) {
      for (let i = 0; i < slots.length; i++) {
        const s = this.off(l, slots[i], 0);
        out.set(this.kv.subarray(s, s + 2 * this.kvDim), w);
        w += 2 * this.kvDim;
      }
    }
    return out;
  }

  async writeSlots(slots: Int32Array, data: Float32Array): Promise<void> {
    if (data.length !== this.layers * slots.length * 2 * this.kvDim) throw new Error('writeSlots: wrong data length');
    let r = 0;
    for (let l = 0; l < this.layers; l++) {
      for (let i = 0; i < slots.length; i++) {
        this.kv.set(data.subarray(r, r + 2 * this.kvDim), this.off(l, slots[i], 0));
        r += 2 * this.kvDim;
      }
    }
  }

  async forward(batches: SequenceBatch[]): Promise<ForwardResult[]> {
    const out: ForwardResult[] = [];
    for (const b of batches) {
      this.forwards++;
      const n = b.tokens.length;
      this.forwardTokens += n;
      const nPast = b.context.length - n;
      const D = this.kvDim;
      const rows: Float32Array[] = [];
      for (let i = 0; i < n; i++) {
        let x = this.embed.slice(b.tokens[i] * D, (b.tokens[i] + 1) * D);
        const slot = b.context[nPast + i];
        for (let l = 0; l < this.layers; l++) {
          const k = matvec(this.proj[2 * l], x);
          const v = matvec(this.proj[2 * l + 1], x);
          this.rope(k, 0, b.positions[i]);
          this.kv.set(k, this.off(l, slot, 0));
          this.kv.set(v, this.off(l, slot, 1));
          // Uniform attention over the visible context (incl. itself): mean of V.
          const mean = new Float32Array(D);
          const visible = nPast + i + 1;
          for (let j = 0; j < visible; j++) {
            const o = this.off(l, b.context[j], 1);
            for (let d = 0; d < D; d++) mean[d] += this.kv[o + d] / visible;
          }
          const next = new Float32Array(D);
          for (let d = 0; d < D; d++) next[d] = Math.tanh(x[d] + mean[d]);
          x = next;
        }
        if (b.logits === 'all' || (b.logits === 'last' && i === n - 1)) {
          const logits = new Float32Array(this.vocab);
          for (let t = 0; t < this.vocab; t++) {
            let s = 0;
            for (let d = 0; d < D; d++) s += this.embed[t * D + d] * x[d];
            logits[t] = 4 * s;
          }
          rows.push(logits);
        }
      }
      const logits = new Float32Array(rows.length * this.vocab);
      rows.forEach((r, i) => logits.set(r, i * this.vocab));
      out.push({ logits });
    }
    return out;
  }

  memory() {
    return { weightsBytes: 0, kvBytes: this.kv.byteLength, scratchBytes: 0 };
  }

  async dispose(): Promise<void> {}

  /** Rotates the key vector at buf[o..o+kvDim) by pos (normal/adjacent-pair RoPE, per head). */
  private rope(buf: Float32Array, o: number, pos: number): void {
    const hd = this.headDim;
    for (let h = 0; h < this.kvDim / hd; h++) {
      for (let i = 0; i < hd / 2; i++) {
        const theta = pos * Math.pow(10000, (-2 * i) / hd);
        const c = Math.cos(theta);
        const s = Math.sin(theta);
        const a = o + h * hd + 2 * i;
        const x0 = buf[a];
        const x1 = buf[a + 1];
        buf[a] = x0 * c - x1 * s;
        buf[a + 1] = x0 * s + x1 * c;
      }
    }
  }
}

function matvec(m: Float32Array, x: Float32Array): Float32Array {
  const n = x.length;
  const out = new Float32Array(n);
  for (let r = 0; r < n; r++) {
    let s = 0;
    for (let c = 0; c < n; c++) s += m[r * n + c] * x[c];
    out[r] = s;
  }
  return out;
}

export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
