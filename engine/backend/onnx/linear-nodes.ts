// How each GGUF weight format becomes an ONNX matmul. Q8_0 and Q4_0 map exactly onto
// com.microsoft MatMulNBits (same 32-element blocks, one f32 scale each, implicit zero point
// 128 / 8), so the weights stay quantized in memory; the other formats are dequantized to f32
// and multiplied with MatMul (exact, more memory).

import { dequantize, f16ToF32 } from '../../quant';
import { GgmlType } from '../../quant/types';
import type { TensorView } from '../../model/types';
import { type GraphBuilder, OnnxType } from './graph-builder';

export interface LinearOptions {
  /** MatMulNBits accuracy_level: 0 computes in f32 (exact); 4 uses int8 activations (faster). */
  accuracyLevel: number;
  /** Dequantize every format to f32 MatMul (for measuring what MatMulNBits buys). */
  forceF32?: boolean;
}

function elements(t: TensorView): number {
  return t.dims.reduce((a, b) => a * b, 1);
}

function toF32(t: TensorView): Float32Array {
  if (t.type === GgmlType.F32) {
    const out = new Float32Array(elements(t));
    new Uint8Array(out.buffer).set(t.data.subarray(0, out.length * 4));
    return out;
  }
  return dequantize(t.type, t.data, elements(t));
}

/** Q8_0 blocks -> (uint8 q + 128, f32 scales). */
function repackQ8_0(t: TensorView): { b: Uint8Array; scales: Float32Array } {
  const nBlocks = elements(t) / 32;
  const b = new Uint8Array(nBlocks * 32);
  const scales = new Float32Array(nBlocks);
  const d = t.data;
  for (let i = 0; i < nBlocks; i++) {
    const o = i * 34;
    scales[i] = f16ToF32(d[o]! | (d[o + 1]! << 8));
    for (let j = 0; j < 32; j++) b[i * 32 + j] = (d[o + 2 + j]! + 128) & 0xff; // int8 -> offset uint8
  }
  return { b, scales };
}

/** Q4_0 blocks -> (nibbles in MatMulNBits order: low nibble = even element, f32 scales). */
function repackQ4_0(t: TensorView): { b: Uint8Array; scales: Float32Array } {
  const nBlocks = elements(t) / 32;
  const b = new Uint8Array(nBlocks * 16);
  const scales = new Float32Array(nBlocks);
  const d = t.data;
  const q = new Uint8Array(32);
  for (let i = 0; i < nBlocks; i++) {
    const o = i * 18;
    scales[i] = f16ToF32(d[o]! | (d[o + 1]! << 8));
    // ggml: byte j holds element j (low) and element j + 16 (high)
    for (let j = 0; j < 16; j++) {
      q[j] = d[o + 2 + j]! & 0xf;
      q[j + 16] = d[o + 2 + j]! >> 4;
    }
    for (let m = 0; m < 16; m++) b[i * 16 + m] = q[2 * m]! | (q[2 * m + 1]! << 4);
  }
  return { b, scales };
}

/** y = x W^T (+ bias) for a ggml weight W of dims [K, N] (K = row length). */
export function linear(g: GraphBuilder, x: string, w: TensorView, bias: TensorView | undefined, opt: LinearOptions): string {
  const K = w.dims[0]!;
  const N = w.dims[1] ?? 1;
  let y: string;
  const nbits = opt.forceF32 ? undefined : w.type === GgmlType.Q8_0 ? 8 : w.type === GgmlType.Q4_0 ? 4 : undefined;
  if (nbits) {
    const { b, scales } = nbits === 8 ? repackQ8_0(w) : repackQ4_0(w);
    const bName = g.initializer(`${w.name}.q`, OnnxType.UINT8, [N, K / 32, (32 * nbits) / 8], b);
    const sName = g.f32(`${w.name}.scales`, [N * (K / 32)], scales);
    y = g.op('MatMulNBits', [x, bName, sName], { K, N, bits: nbits, block_size: 32, accuracy_level: opt.accuracyLevel }, 'com.microsoft');
  } else {
    // MatMul wants B as [K, N]: transpose ggml's row-major [N][K].
    const f = toF32(w);
    const t = new Float32Array(K * N);
    for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) t[k * N + n] = f[n * K + k]!;
    y = g.op('MatMul', [x, g.f32(`${w.name}.t`, [K, N], t)]);
  }
  if (bias) y = g.op('Add', [y, g.f32(bias.name, [N], toF32(bias))]);
  return y;
}

export { toF32 as tensorToF32 };
