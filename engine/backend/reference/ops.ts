// Row-wise building blocks of the forward pass, written to follow ggml's CPU numerics (f32 values,
// sums in double where ggml uses ggml_float) so results track llama.cpp to float rounding.

import { roundToF16 } from './activation-quant';

/** ggml_rms_norm then ggml_mul by weight: y = x / sqrt(mean(x^2) + eps) * w, per row of `dim`. */
export function rmsNorm(x: Float32Array, rows: number, dim: number, eps: number, weight: Float32Array, out: Float32Array): void {
  for (let r = 0; r < rows; r++) {
    const o = r * dim;
    let sum = 0;
    for (let i = 0; i < dim; i++) {
      const v = x[o + i]!;
      sum += Math.fround(v * v);
    }
    const scale = Math.fround(1 / Math.fround(Math.sqrt(Math.fround(Math.fround(sum / dim) + eps)))); // 1.0f/sqrtf(mean + eps)
    for (let i = 0; i < dim; i++) out[o + i] = Math.fround(x[o + i]! * scale) * weight[i]!;
  }
}

/** ggml_norm then * w + b: y = (x - mean) / sqrt(var + eps) * w + b, per row of `dim`. */
export function layerNorm(
  x: Float32Array,
  rows: number,
  dim: number,
  eps: number,
  weight: Float32Array,
  bias: Float32Array,
  out: Float32Array,
): void {
  for (let r = 0; r < rows; r++) {
    const o = r * dim;
    let sum = 0;
    for (let i = 0; i < dim; i++) sum += x[o + i]!;
    const mean = Math.fround(sum / dim);
    let sum2 = 0;
    for (let i = 0; i < dim; i++) {
      const c = Math.fround(x[o + i]! - mean);
      out[o + i] = c;
      sum2 += Math.fround(c * c);
    }
    const scale = Math.fround(1 / Math.fround(Math.sqrt(Math.fround(Math.fround(sum2 / dim) + eps))));
    for (let i = 0; i < dim; i++) {
      out[o + i] = Math.fround(Math.fround(out[o + i]! * scale) * weight[i]!) + bias[i]!;
    }
  }
}

export function silu(x: number): number {
  return x / (1 + Math.exp(-x));
}

const GELU_COEF_A = Math.fround(0.044715);
const SQRT_2_OVER_PI = Math.fround(0.7978845608028654);

/** ggml_gelu_f32: the tanh approximation. */
export function geluTanh(x: number): number {
  return Math.fround(0.5 * x * (1 + Math.tanh(Math.fround(SQRT_2_OVER_PI * x * Math.fround(1 + Math.fround(GELU_COEF_A * x * x))))));
}

/**
 * ggml's CPU GELU (GGML_GELU_FP16): inputs in (-10, 10) are rounded to f16 and looked up in a
 * table of f16 results; outside, 0 or x.
 */
export function geluGgml(x: number): number {
  if (x <= -10) return 0;
  if (x >= 10) return x;
  return roundToF16(geluTanh(roundToF16(x)));
}

/**
 * ggml_soft_max_ext over `n` scores with `scale`, in place; entries past `n` are untouched
 * (the causal mask is expressed by passing only the visible length).
 */
export function softmaxScaled(scores: Float32Array, n: number, scale: number): void {
  let max = -Infinity;
  for (let i = 0; i < n; i++) {
    const v = Math.fround(scores[i]! * scale);
    scores[i] = v;
    if (v > max) max = v;
  }
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const e = Math.fround(Math.exp(Math.fround(scores[i]! - max)));
    scores[i] = e;
    sum += e;
  }
  const inv = Math.fround(1 / sum);
  for (let i = 0; i < n; i++) scores[i] = scores[i]! * inv;
}
