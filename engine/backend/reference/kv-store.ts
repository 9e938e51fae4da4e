// Host f32 K/V storage: per layer one [slots, kvDim] array for keys (after RoPE) and one for values.

import { CachetError } from '../../errors';
import type { Rope } from './rope';

/**
 * Walks readSlots/writeSlots' layout [layer][slot][K|V][kvDim]: row(l, slot, o) with K at offset
 * o and V at o + kvDim. Shared by the host KV stores (this one and onnx's head-major one).
 */
export function forEachSlotRow(layers: number, slots: Int32Array, kvDim: number, row: (l: number, slot: number, o: number) => void): void {
  let o = 0;
  for (let l = 0; l < layers; l++) {
    for (const s of slots) {
      row(l, s, o);
      o += 2 * kvDim;
    }
  }
}

/** Throws unless `data` holds exactly the slots in readSlots' layout. */
export function checkSlotData(layers: number, slots: Int32Array, kvDim: number, data: Float32Array): void {
  const expected = layers * slots.length * 2 * kvDim;
  if (data.length !== expected) {
    throw new CachetError(`writeSlots: got ${data.length} floats for ${slots.length} slots, expected ${expected}`, 'Pass data in readSlots\' layout: [layer][slot][K|V][kvHeads*headDim].');
  }
}

export class KvStore {
  readonly k: Float32Array[] = [];
  readonly v: Float32Array[] = [];

  constructor(
    readonly layers: number,
    readonly slots: number,
    readonly kvDim: number,
  ) {
    for (let l = 0; l < layers; l++) {
      this.k.push(new Float32Array(slots * kvDim));
      this.v.push(new Float32Array(slots * kvDim));
    }
  }

  get bytes(): number {
    return this.layers * this.slots * this.kvDim * 2 * 4;
  }

  checkSlots(slots: Int32Array, what: string): void {
    for (const s of slots) {
      if (!Number.isInteger(s) || s < 0 || s >= this.slots) {
        throw new CachetError(`${what}: KV slot ${s} is outside 0..${this.slots - 1}`, 'Allocate slots from the KV manager sized to the backend\'s kvSlots.');
      }
    }
  }

  copy(src: Int32Array, dst: Int32Array): void {
    if (src.length !== dst.length) throw new CachetError(`copySlots: ${src.length} sources but ${dst.length} destinations`, 'Pass equally long src and dst slot lists.');
    this.checkSlots(src, 'copySlots');
    this.checkSlots(dst, 'copySlots');
    const d = this.kvDim;
    for (let l = 0; l < this.layers; l++) {
      for (let i = 0; i < src.length; i++) {
        this.k[l]!.copyWithin(dst[i]! * d, src[i]! * d, (src[i]! + 1) * d);
        this.v[l]!.copyWithin(dst[i]! * d, src[i]! * d, (src[i]! + 1) * d);
      }
    }
  }

  /**
   * Re-rotates the keys in `slots` by `delta` positions in every layer. RoPE rotations compose:
   * rotating a key stored at position p by d gives the key at p + d (llama.cpp's K-shift).
   */
  rotateKeys(rope: Rope, heads: number, slots: Int32Array, delta: Int32Array): void {
    if (slots.length !== delta.length) throw new CachetError(`rotateKeys: ${slots.length} slots but ${delta.length} deltas`, 'Pass one delta per slot.');
    this.checkSlots(slots, 'rotateKeys');
    for (let l = 0; l < this.layers; l++) {
      for (let i = 0; i < slots.length; i++) {
        if (delta[i] !== 0) rope.apply(this.k[l]!, slots[i]! * this.kvDim, heads, delta[i]!);
      }
    }
  }

  /** [layer][slot][K|V][kvDim] as f32. */
  read(slots: Int32Array): Float32Array {
    this.checkSlots(slots, 'readSlots');
    const d = this.kvDim;
    const out = new Float32Array(this.layers * slots.length * 2 * d);
    forEachSlotRow(this.layers, slots, d, (l, s, o) => {
      out.set(this.k[l]!.subarray(s * d, (s + 1) * d), o);
      out.set(this.v[l]!.subarray(s * d, (s + 1) * d), o + d);
    });
    return out;
  }

  write(slots: Int32Array, data: Float32Array): void {
    this.checkSlots(slots, 'writeSlots');
    const d = this.kvDim;
    checkSlotData(this.layers, slots, d, data);
    forEachSlotRow(this.layers, slots, d, (l, s, o) => {
      this.k[l]!.set(data.subarray(o, o + d), s * d);
      this.v[l]!.set(data.subarray(o + d, o + 2 * d), s * d);
    });
  }
}
