import { describe, expect, test } from 'vitest';
import { activationFormatFor, roundTripActivations } from '../../../engine/backend/reference';
import { geluGgml, geluTanh } from '../../../engine/backend/reference/ops';
import { dequantize, quantize, roundF16 } from '../../../engine/quant';
import { GgmlType } from '../../../engine/quant/types';
import { normalStream } from '../../helpers/make-test-model';

describe('activation round trips (what llama.cpp multiplies quantized weights with)', () => {
  test('weight type -> vec_dot type', () => {
    expect(activationFormatFor(GgmlType.F32)).toBe('f32');
    expect(activationFormatFor(GgmlType.F16)).toBe('f16');
    expect(activationFormatFor(GgmlType.Q4_0)).toBe('q8_0');
    expect(activationFormatFor(GgmlType.Q5_1)).toBe('q8_1');
    expect(activationFormatFor(GgmlType.Q6_K)).toBe('q8_K');
  });

  test('q8_0 equals engine/quant Q8_0 quantize -> dequantize', () => {
    const rnd = normalStream(5);
    const x = Float32Array.from({ length: 1024 }, () => 3 * rnd());
    const got = new Float64Array(1024);
    roundTripActivations('q8_0', x, got);
    const want = dequantize(GgmlType.Q8_0, quantize(GgmlType.Q8_0, x), 1024);
    // + 0 folds -0 into 0 (a zero quant times a negative scale)
    expect(Array.from(got, (v) => v + 0)).toEqual(Array.from(want, (v) => v + 0));
  });

  test('q8_K: scale -127/max of the largest-magnitude value, ties to even', () => {
    const x = new Float32Array(256);
    x[0] = -2;
    x[1] = 1; // 63.5 -> 64 (ties to even)
    x[2] = 0.5; // 31.75 -> 32
    x[3] = 2 / 127; // exactly one step
    const out = new Float64Array(256);
    roundTripActivations('q8_K', x, out);
    const d = Math.fround(1 / Math.fround(63.5));
    expect(out[0]).toBeCloseTo(-127 * d, 12);
    expect(out[1]).toBe(64 * d);
    expect(out[2]).toBe(32 * d);
    expect(out[3]).toBe(1 * d);
    expect(out[4]).toBe(0);
  });

  test('f16 rounds every value through half precision', () => {
    const x = Float32Array.from([1 / 3, 1000.123, -1e-5, 65504]);
    const out = new Float64Array(4);
    roundTripActivations('f16', x, out);
    expect(Array.from(out)).toEqual(Array.from(x, roundF16));
  });

  test('ggml GELU: f16 table inside (-10, 10), identity / zero outside', () => {
    expect(geluGgml(12)).toBe(12);
    expect(geluGgml(-12)).toBe(0);
    expect(geluGgml(1)).toBe(roundF16(geluTanh(1)));
    expect(geluGgml(0.1234567)).toBe(roundF16(geluTanh(roundF16(0.1234567))));
    expect(geluTanh(1)).toBeCloseTo(0.8411920, 6);
  });
});
