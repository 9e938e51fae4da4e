import { describe, expect, it } from 'vitest';
import { GgmlType, bytesFor, dequantize, dequantizeRow, f16ToF32, f32ToF16, f32ToBf16, bf16ToF32, quantize } from '../../engine/quant';
import { uniformStream as rng } from '../helpers/make-test-model';

function randn(n: number, seed: number, scale = 1): Float32Array {
  const r = rng(seed);
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = scale * (r() * 2 - 1 + (r() * 2 - 1)) ;
  return x;
}

describe('half precision', () => {
  it('round-trips every finite f16 bit pattern', () => {
    for (let h = 0; h < 0x7c00; h++) {
      expect(f32ToF16(f16ToF32(h))).toBe(h);
      expect(f32ToF16(f16ToF32(h | 0x8000))).toBe(h | 0x8000);
    }
  });
  it('rounds to nearest even, saturates to inf, keeps subnormals', () => {
    expect(f32ToF16(1 + 2 ** -11)).toBe(0x3c00); // tie -> even (1.0)
    expect(f32ToF16(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie -> even (up)
    expect(f32ToF16(70000)).toBe(0x7c00);
    expect(f32ToF16(2 ** -24)).toBe(1);
    expect(f16ToF32(0x3555)).toBeCloseTo(0.33325, 5);
  });
  it('bf16 rounds to nearest even', () => {
    expect(f32ToBf16(1)).toBe(0x3f80);
    expect(bf16ToF32(f32ToBf16(3.140625))).toBe(3.140625);
    expect(bf16ToF32(f32ToBf16(1 + 2 ** -8))).toBe(1); // tie -> even
    expect(bf16ToF32(f32ToBf16(1 + 3 * 2 ** -8))).toBe(1 + 2 ** -6);
  });
});

// Worst-case reconstruction error relative to the block's value range, per format.
const FORMATS: Array<[GgmlType, number]> = [
  [GgmlType.F32, 0],
  [GgmlType.F16, 1e-3],
  [GgmlType.BF16, 8e-3],
  [GgmlType.Q8_0, 1 / 127],
  [GgmlType.Q4_0, 1 / 8],
  [GgmlType.Q4_1, 1 / 15],
  [GgmlType.Q5_0, 1 / 16],
  [GgmlType.Q5_1, 1 / 31],
  [GgmlType.Q4_K, 0.12],
  [GgmlType.Q5_K, 0.06],
  [GgmlType.Q6_K, 0.04],
];

describe('block formats', () => {
  for (const [type, tol] of FORMATS) {
    it(`${GgmlType[type]} quantize -> dequantize stays within ${tol} of the range`, () => {
      const n = 1024;
      const x = randn(n, type + 1, 0.7);
      const bytes = quantize(type, x);
      expect(bytes.length).toBe(bytesFor(type, n));
      const y = dequantize(type, bytes, n);
      let range = 0;
      for (const v of x) range = Math.max(range, Math.abs(v));
      let err = 0;
      let sumErr = 0;
      for (let i = 0; i < n; i++) {
        err = Math.max(err, Math.abs(x[i]! - y[i]!));
        sumErr += Math.abs(x[i]! - y[i]!);
      }
      expect(err).toBeLessThanOrEqual(tol * range * 1.05 + 1e-7);
      if (type !== GgmlType.F32) expect(sumErr / n).toBeGreaterThan(0); // it really quantized
      // Re-quantizing what we dequantized reproduces nearly the same values (a stable grid).
      const y2 = dequantize(type, quantize(type, y), n);
      let drift = 0;
      for (let i = 0; i < n; i++) drift = Math.max(drift, Math.abs(y[i]! - y2[i]!));
      expect(drift).toBeLessThanOrEqual(tol * range * 0.6 + 1e-6);
    });
  }

  it('dequantizeRow picks the right row', () => {
    const x = randn(512, 9);
    const bytes = quantize(GgmlType.Q8_0, x);
    const all = dequantize(GgmlType.Q8_0, bytes, 512);
    expect(Array.from(dequantizeRow(GgmlType.Q8_0, bytes, 1, 256))).toEqual(Array.from(all.subarray(256)));
  });

  it('decodes hand-made blocks exactly as ggml defines them', () => {
    // Q4_0: d = 0.5, nibble 0x1 (low, element 0) and 0xF (high, element 16)
    const q40 = new Uint8Array(18);
    q40.set([0x00, 0x38]); // f16 0.5
    q40[2] = 0xf1;
    const y40 = dequantize(GgmlType.Q4_0, q40, 32);
    expect(y40[0]).toBe((1 - 8) * 0.5);
    expect(y40[16]).toBe((15 - 8) * 0.5);
    expect(y40[1]).toBe(-4);
    // Q8_0: d = 2, q = -3
    const q80 = new Uint8Array(34);
    q80.set([0x00, 0x40]);
    q80[2 + 5] = 0xfd;
    expect(dequantize(GgmlType.Q8_0, q80, 32)[5]).toBe(-6);
    // Q6_K: d = 1, scale[0] = 2, element 0 has ql low nibble 5 and qh bits 2 -> q = 5 | (2<<4) = 37 -> 37-32 = 5
    const q6 = new Uint8Array(210);
    q6[0] = 0x05;
    q6[128] = 0x02;
    q6[192] = 2;
    q6.set([0x00, 0x3c], 208);
    const y6 = dequantize(GgmlType.Q6_K, q6, 256);
    expect(y6[0]).toBe(10);
    expect(Math.abs(y6[64]!)).toBe(0); // scale[4] is 0
    // Q4_K: d = 1, dmin = 1, sub-block 0 scale 3 min 2, element 0 nibble 7 -> 3*7 - 2 = 19
    const q4k = new Uint8Array(144);
    q4k.set([0x00, 0x3c, 0x00, 0x3c]);
    q4k[4] = 3;
    q4k[8] = 2;
    q4k[16] = 0x07;
    expect(dequantize(GgmlType.Q4_K, q4k, 256)[0]).toBe(19);
  });

  it('rejects unsupported types and partial blocks', () => {
    expect(() => quantize(GgmlType.Q2_K, new Float32Array(256))).toThrow(/unsupported|not supported|cannot/);
    expect(() => quantize(GgmlType.Q8_0, new Float32Array(33))).toThrow(/multiple/);
    expect(() => dequantize(GgmlType.Q8_0, new Uint8Array(10), 32)).toThrow(/need 34 bytes/);
  });
});
