// llama.cpp's CPU matmul converts the activations to the weight's "vec_dot_type" before the dot
// product (f16 for F16 weights, Q8_0 for Q4_0/Q5_0/Q8_0, Q8_1 for Q4_1/Q5_1, Q8_K for K-quants).
// The reference mirrors that as a quantize -> dequantize round trip of each activation row, so its
// logits agree with llama.cpp to float rounding instead of to quantization noise.

import { f32ToBf16, bf16ToF32, roundF16 } from '../../quant';
import { GgmlType } from '../../quant/types';

export type ActivationFormat = 'f32' | 'f16' | 'bf16' | 'q8_0' | 'q8_1' | 'q8_K';

export function activationFormatFor(weightType: GgmlType): ActivationFormat {
  switch (weightType) {
    case GgmlType.F32:
      return 'f32';
    case GgmlType.F16:
      return 'f16';
    case GgmlType.BF16:
      return 'bf16';
    case GgmlType.Q4_0:
    case GgmlType.Q5_0:
    case GgmlType.Q8_0:
      return 'q8_0';
    case GgmlType.Q4_1:
    case GgmlType.Q5_1:
      return 'q8_1';
    case GgmlType.Q2_K:
    case GgmlType.Q3_K:
    case GgmlType.Q4_K:
    case GgmlType.Q5_K:
    case GgmlType.Q6_K:
      return 'q8_K';
    default:
      return 'f32';
  }
}

export const roundToF16 = roundF16;

export function roundToBf16(x: number): number {
  return bf16ToF32(f32ToBf16(x));
}

/** Round half to even, as _mm256_round_ps(_MM_ROUND_NEAREST) and ggml's nearest_int do. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** Writes the activation row `x` as llama.cpp would see it after conversion to `format` (f64 out: the
 * products d * q are exact there, as in ggml's integer dot products). */
export function roundTripActivations(format: ActivationFormat, x: Float32Array, out: Float64Array): void {
  const n = x.length;
  switch (format) {
    case 'f32':
      out.set(x);
      return;
    case 'f16':
      for (let i = 0; i < n; i++) out[i] = roundToF16(x[i]!);
      return;
    case 'bf16':
      for (let i = 0; i < n; i++) out[i] = roundToBf16(x[i]!);
      return;
    case 'q8_0':
    case 'q8_1':
      // quantize_row_q8_0 (x86 path): d = amax/127 stored as f16, q = round(x * 127/amax).
      for (let b = 0; b < n; b += 32) {
        let amax = 0;
        for (let j = b; j < b + 32; j++) amax = Math.max(amax, Math.abs(x[j]!));
        const d = Math.fround(amax / 127);
        const dStored = roundToF16(d);
        const id = amax !== 0 ? Math.fround(127 / amax) : 0;
        for (let j = b; j < b + 32; j++) out[j] = dStored * roundHalfEven(Math.fround(x[j]! * id));
      }
      return;
    case 'q8_K':
      // quantize_row_q8_K_ref: iscale = -127/max (max = the signed value of largest magnitude), d = 1/iscale in f32.
      for (let b = 0; b < n; b += 256) {
        let amax = 0;
        let max = 0;
        for (let j = b; j < b + 256; j++) {
          const ax = Math.abs(x[j]!);
          if (ax > amax) {
            amax = ax;
            max = x[j]!;
          }
        }
        if (amax === 0) {
          out.fill(0, b, b + 256);
          continue;
        }
        const iscale = Math.fround(-127 / max);
        const d = Math.fround(1 / iscale);
        for (let j = b; j < b + 256; j++) out[j] = d * Math.min(127, roundHalfEven(Math.fround(iscale * x[j]!)));
      }
      return;
  }
}

/**
 * Q8_1 blocks also carry s = f16(d * sum(q)) (d before f16 rounding), which Q4_1/Q5_1 dot products
 * multiply by the weight block's min. The round trip above implies d_f16 * sum(q) instead; this
 * returns, per 32-block, the difference llama.cpp's s adds on top of it.
 */
export function q8_1SumCorrection(x: Float32Array, out: Float64Array): void {
  for (let b = 0, k = 0; b < x.length; b += 32, k++) {
    let amax = 0;
    for (let j = b; j < b + 32; j++) amax = Math.max(amax, Math.abs(x[j]!));
    const d = Math.fround(amax / 127);
    const id = amax !== 0 ? Math.fround(127 / amax) : 0;
    let sum = 0;
    for (let j = b; j < b + 32; j++) sum += roundHalfEven(Math.fround(x[j]! * id));
    out[k] = roundF16(Math.fround(d * sum)) - roundF16(d) * sum;
  }
}
