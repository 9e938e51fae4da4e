// CPU dequantize/quantize for every stored tensor type; layouts shared with the WGSL kernels.

import { GgmlType, BLOCK_LAYOUTS, bytesFor } from './types';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from './half';
import * as q from './blocks';

export { GgmlType, BLOCK_LAYOUTS, bytesFor } from './types';
export type { BlockLayout } from './types';
export { f16ToF32, f32ToF16, bf16ToF32, f32ToBf16, roundF16 } from './half';
export { scaleMinK4 } from './blocks';

type Dequant = (b: Uint8Array, nb: number, y: Float32Array, yo?: number) => void;
type Quant = (x: Float32Array, nb: number, b: Uint8Array) => void;

const BLOCK_CODECS: Partial<Record<GgmlType, [Dequant, Quant]>> = {
  [GgmlType.Q8_0]: [q.dequantQ8_0, q.quantQ8_0],
  [GgmlType.Q4_0]: [q.dequantQ4_0, q.quantQ4_0],
  [GgmlType.Q4_1]: [q.dequantQ4_1, q.quantQ4_1],
  [GgmlType.Q5_0]: [q.dequantQ5_0, q.quantQ5_0],
  [GgmlType.Q5_1]: [q.dequantQ5_1, q.quantQ5_1],
  [GgmlType.Q4_K]: [q.dequantQ4_K, q.quantQ4_K],
  [GgmlType.Q5_K]: [q.dequantQ5_K, q.quantQ5_K],
  [GgmlType.Q6_K]: [q.dequantQ6_K, q.quantQ6_K],
};

/** Types Cachet can load and write. */
export const SUPPORTED_TYPES: GgmlType[] = [GgmlType.F32, GgmlType.F16, GgmlType.BF16, ...Object.keys(BLOCK_CODECS).map(Number)];

function layoutOf(type: GgmlType) {
  const l = BLOCK_LAYOUTS[type];
  if (!l || (!(type in BLOCK_CODECS) && type !== GgmlType.F32 && type !== GgmlType.F16 && type !== GgmlType.BF16)) {
    throw new TypeError(`ggml type ${GgmlType[type] ?? type} is not supported`);
  }
  return l;
}

/**
 * Dequantizes n elements from `bytes` (starting at its first byte) into out[outOffset...].
 * n must be a whole number of blocks.
 */
export function dequantize(type: GgmlType, bytes: Uint8Array, n: number, out: Float32Array = new Float32Array(n), outOffset = 0): Float32Array {
  const need = bytesFor(type, n);
  if (bytes.length < need) throw new RangeError(`${GgmlType[type]}: ${n} elements need ${need} bytes, got ${bytes.length}`);
  switch (type) {
    case GgmlType.F32:
      out.set(new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + need)), outOffset);
      return out;
    case GgmlType.F16:
      for (let i = 0; i < n; i++) out[outOffset + i] = f16ToF32(bytes[2 * i]! | (bytes[2 * i + 1]! << 8));
      return out;
    case GgmlType.BF16:
      for (let i = 0; i < n; i++) out[outOffset + i] = bf16ToF32(bytes[2 * i]! | (bytes[2 * i + 1]! << 8));
      return out;
  }
  const codec = BLOCK_CODECS[type];
  if (!codec) throw new TypeError(`ggml type ${GgmlType[type] ?? type} is not supported`);
  codec[0](bytes, n / layoutOf(type).blockSize, out, outOffset);
  return out;
}

/** Dequantizes row `row` of a [rows, rowLength] tensor. */
export function dequantizeRow(type: GgmlType, bytes: Uint8Array, row: number, rowLength: number, out: Float32Array = new Float32Array(rowLength), outOffset = 0): Float32Array {
  const rowBytes = bytesFor(type, rowLength);
  return dequantize(type, bytes.subarray(row * rowBytes, (row + 1) * rowBytes), rowLength, out, outOffset);
}

/** Quantizes f32 values to `type` (n must be a whole number of blocks). */
export function quantize(type: GgmlType, x: Float32Array): Uint8Array {
  const n = x.length;
  const out = new Uint8Array(bytesFor(type, n));
  switch (type) {
    case GgmlType.F32:
      out.set(new Uint8Array(x.buffer, x.byteOffset, n * 4));
      return out;
    case GgmlType.F16:
    case GgmlType.BF16: {
      const conv = type === GgmlType.F16 ? f32ToF16 : f32ToBf16;
      for (let i = 0; i < n; i++) {
        const h = conv(x[i]!);
        out[2 * i] = h & 0xff;
        out[2 * i + 1] = h >> 8;
      }
      return out;
    }
  }
  const codec = BLOCK_CODECS[type];
  if (!codec) throw new TypeError(`ggml type ${GgmlType[type] ?? type} cannot be written`);
  codec[1](x, n / layoutOf(type).blockSize, out);
  return out;
}
