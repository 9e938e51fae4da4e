// Host K/V storage for the onnx backend, head-major: per layer and KV head one [slots, headDim]
// array for keys (after RoPE) and one for values. A contiguous run of slots of one head is then a
// plain [ctx, headDim] view that ORT's MatMul reads in place; the token-major [slots, kvDim] layout
// needed a Transpose of the whole context's K and V per layer and step. bench/cpu-attention.ts
// (attention graph alone, 4k context, 24 layers, 2 threads, shared 2-core box): 31-41 ms per decode
// step token-major, 19.5-23.5 ms head-major f32, 13-23 ms head-major f16.
//
// Storage is f16 by default, as llama.cpp's default KV cache: half the memory (48 MB instead of
// 96 MB for 4k tokens of a 0.5B model) and half the bytes attention streams per token, at least as
// fast as f32 in every run above. The attention graph casts to f32 and computes in f32. 'f32' keeps
// the cache exact (the tests compare it with the reference backend at 1e-4).

import { CachetError } from '../../errors';
import { f16ToF32, f32ToF16 } from '../../quant';
import { checkSlotData, forEachSlotRow } from '../reference/kv-store';
import type { Rope } from '../reference/rope';

export type KvType = 'f16' | 'f32';
export type KvArray = Float32Array | Uint16Array;

export class HeadKvStore {
  /** [layer][kvHead] -> [slots * headDim] */
  readonly k: KvArray[][] = [];
  readonly v: KvArray[][] = [];
  private readonly scratch: Float32Array;

  constructor(
    readonly layers: number,
    readonly slots: number,
    readonly kvHeads: number,
    readonly headDim: number,
    readonly type: KvType,
  ) {
    const make = () => (type === 'f16' ? new Uint16Array(slots * headDim) : new Float32Array(slots * headDim));
    for (let l = 0; l < layers; l++) {
      this.k.push(Array.from({ length: kvHeads }, make));
      this.v.push(Array.from({ length: kvHeads }, make));
    }
    this.scratch = new Float32Array(headDim);
  }

  get bytes(): number {
    return this.layers * this.slots * this.kvHeads * this.headDim * 2 * (this.type === 'f16' ? 2 : 4);
  }

  checkSlots(slots: Int32Array, what: string): void {
    for (const s of slots) {
      if (!Number.isInteger(s) || s < 0 || s >= this.slots) {
        throw new CachetError(`${what}: KV slot ${s} is outside 0..${this.slots - 1}`, 'Allocate slots from the KV manager sized to the backend\'s kvSlots.');
      }
    }
  }

  /** Stores head rows src[offset + h*headDim ..] (f32, token-major) into slot `slot` of every head. */
  private putRow(heads: KvArray[], src: Float32Array, offset: number, slot: number): void {
    const hd = this.headDim;
    for (let h = 0; h < this.kvHeads; h++) {
      const dst = heads[h]!;
      const s = offset + h * hd;
      if (dst instanceof Float32Array) dst.set(src.subarray(s, s + hd), slot * hd);
      else for (let i = 0; i < hd; i++) dst[slot * hd + i] = f32ToF16(src[s + i]!);
    }
  }

  private getRow(heads: KvArray[], slot: number, dst: Float32Array, offset: number): void {
    const hd = this.headDim;
    for (let h = 0; h < this.kvHeads; h++) {
      const src = heads[h]!;
      const o = offset + h * hd;
      if (src instanceof Float32Array) dst.set(src.subarray(slot * hd, (slot + 1) * hd), o);
      else for (let i = 0; i < hd; i++) dst[o + i] = f16ToF32(src[slot * hd + i]!);
    }
  }

  /** Writes token t's K and V (rows of [n, kvHeads*headDim]) of layer l into slots[t]. */
  put(l: number, k: Float32Array, v: Float32Array, t: number, slot: number): void {
    const kvDim = this.kvHeads * this.headDim;
    this.putRow(this.k[l]!, k, t * kvDim, slot);
    this.putRow(this.v[l]!, v, t * kvDim, slot);
  }

  /**
   * The rows of `context` of one head's array, in order, as [context.length, headDim]: a view when
   * the slots are one ascending run (what a fresh paged allocator hands out), else gathered run by run.
   */
  gather(a: KvArray, context: Int32Array): KvArray {
    const hd = this.headDim;
    const n = context.length;
    const first = context[0]!;
    let runEnd = 1;
    while (runEnd < n && context[runEnd] === first + runEnd) runEnd++;
    if (runEnd === n) return a.subarray(first * hd, (first + n) * hd);
    const out = a instanceof Float32Array ? new Float32Array(n * hd) : new Uint16Array(n * hd);
    for (let i = 0; i < n; ) {
      const s = context[i]!;
      let j = i + 1;
      while (j < n && context[j] === s + (j - i)) j++;
      out.set(a.subarray(s * hd, (s + j - i) * hd), i * hd);
      i = j;
    }
    return out;
  }

  copy(src: Int32Array, dst: Int32Array): void {
    if (src.length !== dst.length) throw new CachetError(`copySlots: ${src.length} sources but ${dst.length} destinations`, 'Pass equally long src and dst slot lists.');
    this.checkSlots(src, 'copySlots');
    this.checkSlots(dst, 'copySlots');
    const hd = this.headDim;
    for (let l = 0; l < this.layers; l++) {
      for (const a of [...this.k[l]!, ...this.v[l]!]) {
        for (let i = 0; i < src.length; i++) a.copyWithin(dst[i]! * hd, src[i]! * hd, (src[i]! + 1) * hd);
      }
    }
  }

  /** Re-rotates the keys in `slots` by `delta` positions (RoPE rotations compose). */
  rotateKeys(rope: Rope, slots: Int32Array, delta: Int32Array): void {
    if (slots.length !== delta.length) throw new CachetError(`rotateKeys: ${slots.length} slots but ${delta.length} deltas`, 'Pass one delta per slot.');
    this.checkSlots(slots, 'rotateKeys');
    const hd = this.headDim;
    const x = this.scratch;
    for (let l = 0; l < this.layers; l++) {
      for (const a of this.k[l]!) {
        for (let i = 0; i < slots.length; i++) {
          if (delta[i] === 0) continue;
          const o = slots[i]! * hd;
          if (a instanceof Float32Array) {
            rope.apply(a, o, 1, delta[i]!);
            continue;
          }
          for (let d = 0; d < hd; d++) x[d] = f16ToF32(a[o + d]!);
          rope.apply(x, 0, 1, delta[i]!);
          for (let d = 0; d < hd; d++) a[o + d] = f32ToF16(x[d]!);
        }
      }
    }
  }

  /** [layer][slot][K|V][kvHeads*headDim] as f32. */
  read(slots: Int32Array): Float32Array {
    this.checkSlots(slots, 'readSlots');
    const d = this.kvHeads * this.headDim;
    const out = new Float32Array(this.layers * slots.length * 2 * d);
    forEachSlotRow(this.layers, slots, d, (l, s, o) => {
      this.getRow(this.k[l]!, s, out, o);
      this.getRow(this.v[l]!, s, out, o + d);
    });
    return out;
  }

  write(slots: Int32Array, data: Float32Array): void {
    this.checkSlots(slots, 'writeSlots');
    const d = this.kvHeads * this.headDim;
    checkSlotData(this.layers, slots, d, data);
    forEachSlotRow(this.layers, slots, d, (l, s, o) => {
      this.putRow(this.k[l]!, data, o, s);
      this.putRow(this.v[l]!, data, o + d, s);
    });
  }
}
