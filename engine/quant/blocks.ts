// Block quantization formats, byte-compatible with ggml (ggml-common.h / ggml-quants.c).
// Dequantization is exact to ggml's; quantization follows ggml's reference rounding for the
// simple formats and a plain min/max fit for the K-quants (layout-exact, not ggml's search).

import { f16ToF32, f32ToF16 } from './half';

const QK = 32;
const QK_K = 256;

function rd16(b: Uint8Array, o: number): number {
  return f16ToF32(b[o]! | (b[o + 1]! << 8));
}
function wr16(b: Uint8Array, o: number, v: number): void {
  const h = f32ToF16(v);
  b[o] = h & 0xff;
  b[o + 1] = h >> 8;
}
/** C's roundf: half away from zero. */
function roundf(x: number): number {
  return x < 0 ? -Math.floor(-x + 0.5) : Math.floor(x + 0.5);
}
/** C's (int) cast: truncation toward zero. */
const trunc = Math.trunc;

// ---- Q8_0: { f16 d; int8 qs[32] } ----
export function dequantQ8_0(b: Uint8Array, nb: number, y: Float32Array, yo = 0): void {
  for (let i = 0; i < nb; i++) {
    const o = i * 34;
    const d = rd16(b, o);
    for (let j = 0; j < QK; j++) y[yo + i * QK + j] = d * ((b[o + 2 + j]! << 24) >> 24);
  }
}
export function quantQ8_0(x: Float32Array, nb: number, b: Uint8Array): void {
  for (let i = 0; i < nb; i++) {
    let amax = 0;
    for (let j = 0; j < QK; j++) amax = Math.max(amax, Math.abs(x[i * QK + j]!));
    const d = amax / 127;
    const id = d ? 1 / d : 0;
    const o = i * 34;
    wr16(b, o, d);
    for (let j = 0; j < QK; j++) b[o + 2 + j] = roundf(x[i * QK + j]! * id) & 0xff;
  }
}

// ---- Q4_0: { f16 d; u8 qs[16] }, value = (q - 8) * d ----
export function dequantQ4_0(b: Uint8Array, nb: number, y: Float32Array, yo = 0): void {
  for (let i = 0; i < nb; i++) {
    const o = i * 18;
    const d = rd16(b, o);
    const base = yo + i * QK;
    for (let j = 0; j < 16; j++) {
      const q = b[o + 2 + j]!;
      y[base + j] = ((q & 0xf) - 8) * d;
      y[base + j + 16] = ((q >> 4) - 8) * d;
    }
  }
}
/** Signed value of largest magnitude in x[from, from+n). */
function signedMax(x: Float32Array, from: number, n: number): number {
  let amax = 0;
  let max = 0;
  for (let j = 0; j < n; j++) {
    const v = x[from + j]!;
    if (amax < Math.abs(v)) { amax = Math.abs(v); max = v; }
  }
  return max;
}
export function quantQ4_0(x: Float32Array, nb: number, b: Uint8Array): void {
  for (let i = 0; i < nb; i++) {
    const d = signedMax(x, i * QK, QK) / -8;
    const id = d ? 1 / d : 0;
    const o = i * 18;
    wr16(b, o, d);
    for (let j = 0; j < 16; j++) {
      const q0 = Math.min(15, trunc(x[i * QK + j]! * id + 8.5));
      const q1 = Math.min(15, trunc(x[i * QK + 16 + j]! * id + 8.5));
      b[o + 2 + j] = q0 | (q1 << 4);
    }
  }
}

// ---- Q4_1: { f16 d; f16 m; u8 qs[16] }, value = q * d + m ----
export function dequantQ4_1(b: Uint8Array, nb: number, y: Float32Array, yo = 0): void {
  for (let i = 0; i < nb; i++) {
    const o = i * 20;
    const d = rd16(b, o);
    const m = rd16(b, o + 2);
    const base = yo + i * QK;
    for (let j = 0; j < 16; j++) {
      const q = b[o + 4 + j]!;
      y[base + j] = (q & 0xf) * d + m;
      y[base + j + 16] = (q >> 4) * d + m;
    }
  }
}
function minMax(x: Float32Array, from: number, n: number): [number, number] {
  let min = Infinity;
  let max = -Infinity;
  for (let j = 0; j < n; j++) {
    const v = x[from + j]!;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  return [min, max];
}
export function quantQ4_1(x: Float32Array, nb: number, b: Uint8Array): void {
  for (let i = 0; i < nb; i++) {
    const [min, max] = minMax(x, i * QK, QK);
    const d = (max - min) / 15;
    const id = d ? 1 / d : 0;
    const o = i * 20;
    wr16(b, o, d);
    wr16(b, o + 2, min);
    for (let j = 0; j < 16; j++) {
      const q0 = Math.min(15, trunc((x[i * QK + j]! - min) * id + 0.5));
      const q1 = Math.min(15, trunc((x[i * QK + 16 + j]! - min) * id + 0.5));
      b[o + 4 + j] = q0 | (q1 << 4);
    }
  }
}

// ---- Q5_0: { f16 d; u8 qh[4]; u8 qs[16] }, value = (q - 16) * d, 5th bits in qh ----
function rd32(b: Uint8Array, o: number): number {
  return (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
}
function wr32(b: Uint8Array, o: number, v: number): void {
  b[o] = v & 0xff; b[o + 1] = (v >>> 8) & 0xff; b[o + 2] = (v >>> 16) & 0xff; b[o + 3] = (v >>> 24) & 0xff;
}
export function dequantQ5_0(b: Uint8Array, nb: number, y: Float32Array, yo = 0): void {
  for (let i = 0; i < nb; i++) {
    const o = i * 22;
    const d = rd16(b, o);
    const qh = rd32(b, o + 2);
    const base = yo + i * QK;
    for (let j = 0; j < 16; j++) {
      const q = b[o + 6 + j]!;
      const h0 = ((qh >>> j) << 4) & 0x10;
      const h1 = (qh >>> (j + 12)) & 0x10;
      y[base + j] = (((q & 0xf) | h0) - 16) * d;
      y[base + j + 16] = (((q >> 4) | h1) - 16) * d;
    }
  }
}
export function quantQ5_0(x: Float32Array, nb: number, b: Uint8Array): void {
  for (let i = 0; i < nb; i++) {
    const d = signedMax(x, i * QK, QK) / -16;
    const id = d ? 1 / d : 0;
    const o = i * 22;
    wr16(b, o, d);
    let qh = 0;
    for (let j = 0; j < 16; j++) {
      const q0 = Math.min(31, trunc(x[i * QK + j]! * id + 16.5));
      const q1 = Math.min(31, trunc(x[i * QK + 16 + j]! * id + 16.5));
      b[o + 6 + j] = (q0 & 0xf) | ((q1 & 0xf) << 4);
      qh |= ((q0 & 0x10) >> 4) << j;
      qh |= ((q1 & 0x10) >> 4) << (j + 16);
    }
    wr32(b, o + 2, qh >>> 0);
  }
}

// ---- Q5_1: { f16 d; f16 m; u8 qh[4]; u8 qs[16] }, value = q * d + m ----
export function dequantQ5_1(b: Uint8Array, nb: number, y: Float32Array, yo = 0): void {
  for (let i = 0; i < nb; i++) {
    const o = i * 24;
    const d = rd16(b, o);
    const m = rd16(b, o + 2);
    const qh = rd32(b, o + 4);
    const base = yo + i * QK;
    for (let j = 0; j < 16; j++) {
      const q = b[o + 8 + j]!;
      const h0 = ((qh >>> j) << 4) & 0x10;
      const h1 = (qh >>> (j + 12)) & 0x10;
      y[base + j] = ((q & 0xf) | h0) * d + m;
      y[base + j + 16] = ((q >> 4) | h1) * d + m;
    }
  }
}
export function quantQ5_1(x: Float32Array, nb: number, b: Uint8Array): void {
  for (let i = 0; i < nb; i++) {
    const [min, max] = minMax(x, i * QK, QK);
    const d = (max - min) / 31;
    const id = d ? 1 / d : 0;
    const o = i * 24;
    wr16(b, o, d);
    wr16(b, o + 2, min);
    let qh = 0;
    for (let j = 0; j < 16; j++) {
      const q0 = trunc((x[i * QK + j]! - min) * id + 0.5);
      const q1 = trunc((x[i * QK + 16 + j]! - min) * id + 0.5);
      b[o + 8 + j] = (q0 & 0xf) | ((q1 & 0xf) << 4);
      qh |= ((q0 & 0x10) >> 4) << j;
      qh |= ((q1 & 0x10) >> 4) << (j + 16);
    }
    wr32(b, o + 4, qh >>> 0);
  }
}

// ---- K-quant scale packing: 8 six-bit scales and 8 six-bit mins in 12 bytes ----
export function scaleMinK4(j: number, s: Uint8Array, so: number): [number, number] {
  if (j < 4) return [s[so + j]! & 63, s[so + j + 4]! & 63];
  return [
    (s[so + j + 4]! & 0xf) | ((s[so + j - 4]! >> 6) << 4),
    (s[so + j + 4]! >> 4) | ((s[so + j]! >> 6) << 4),
  ];
}
function packScaleMinK4(ls: number[], lm: number[], s: Uint8Array, so: number): void {
  for (let j = 0; j < 12; j++) s[so + j] = 0;
  for (let j = 0; j < 8; j++) {
    if (j < 4) {
      s[so + j] = ls[j]!;
      s[so + j + 4] = lm[j]!;
    } else {
      s[so + j + 4] = (ls[j]! & 0xf) | ((lm[j]! & 0xf) << 4);
      s[so + j - 4] |= (ls[j]! >> 4) << 6;
      s[so + j] |= (lm[j]! >> 4) << 6;
    }
  }
}

/** Per 32-sub-block affine fit for Q4_K/Q5_K: returns super scales and 6-bit sub-scales. */
function fitKAffine(x: Float32Array, base: number, levels: number) {
  const scales: number[] = [];
  const mins: number[] = [];
  for (let s = 0; s < 8; s++) {
    const [lo, hi] = minMax(x, base + s * 32, 32);
    const min = Math.min(0, lo);
    scales.push((hi - min) / levels);
    mins.push(-min);
  }
  const d = Math.max(...scales) / 63;
  const dmin = Math.max(...mins) / 63;
  const dq = f16ToF32(f32ToF16(d));
  const dminq = f16ToF32(f32ToF16(dmin));
  const ls = scales.map((v) => (dq ? Math.min(63, Math.round(v / dq)) : 0));
  const lm = mins.map((v) => (dminq ? Math.min(63, Math.round(v / dminq)) : 0));
  return { d, dmin, dq, dminq, ls, lm };
}

/**
 * Q4_K/Q5_K block header: fits the 8 sub-block scales and mins, writes d, dmin and the packed
 * 6-bit scales at b[o..], and returns each element's level in 0..levels.
 */
function writeKAffineHeader(x: Float32Array, base: number, levels: number, b: Uint8Array, o: number): Uint8Array {
  const f = fitKAffine(x, base, levels);
  wr16(b, o, f.d);
  wr16(b, o + 2, f.dmin);
  packScaleMinK4(f.ls, f.lm, b, o + 4);
  const L = new Uint8Array(QK_K);
  for (let s = 0; s < 8; s++) {
    const sd = f.dq * f.ls[s]!;
    const sm = f.dminq * f.lm[s]!;
    for (let l = 0; l < 32; l++) {
      const v = x[base + s * 32 + l]!;
      L[s * 32 + l] = sd ? Math.max(0, Math.min(levels, Math.round((v + sm) / sd))) : 0;
    }
  }
  return L;
}

// ---- Q4_K: { f16 d; f16 dmin; u8 scales[12]; u8 qs[128] } ----
export function dequantQ4_K(b: Uint8Array, nb: number, y: Float32Array, yo = 0): void {
  for (let i = 0; i < nb; i++) {
    const o = i * 144;
    const d = rd16(b, o);
    const dmin = rd16(b, o + 2);
    let q = o + 16;
    let out = yo + i * QK_K;
    for (let j = 0, is = 0; j < QK_K; j += 64, is += 2) {
      const [sc1, m1] = scaleMinK4(is, b, o + 4);
      const [sc2, m2] = scaleMinK4(is + 1, b, o + 4);
      const d1 = d * sc1, mm1 = dmin * m1, d2 = d * sc2, mm2 = dmin * m2;
      for (let l = 0; l < 32; l++) y[out + l] = d1 * (b[q + l]! & 0xf) - mm1;
      for (let l = 0; l < 32; l++) y[out + 32 + l] = d2 * (b[q + l]! >> 4) - mm2;
      q += 32;
      out += 64;
    }
  }
}
export function quantQ4_K(x: Float32Array, nb: number, b: Uint8Array): void {
  for (let i = 0; i < nb; i++) {
    const base = i * QK_K;
    const o = i * 144;
    const L = writeKAffineHeader(x, base, 15, b, o);
    for (let j = 0; j < QK_K; j += 64) {
      for (let l = 0; l < 32; l++) b[o + 16 + j / 2 + l] = L[j + l]! | (L[j + l + 32]! << 4);
    }
  }
}

// ---- Q5_K: { f16 d; f16 dmin; u8 scales[12]; u8 qh[32]; u8 qs[128] } ----
export function dequantQ5_K(b: Uint8Array, nb: number, y: Float32Array, yo = 0): void {
  for (let i = 0; i < nb; i++) {
    const o = i * 176;
    const d = rd16(b, o);
    const dmin = rd16(b, o + 2);
    const qh = o + 16;
    let ql = o + 48;
    let out = yo + i * QK_K;
    let u1 = 1, u2 = 2;
    for (let j = 0, is = 0; j < QK_K; j += 64, is += 2) {
      const [sc1, m1] = scaleMinK4(is, b, o + 4);
      const [sc2, m2] = scaleMinK4(is + 1, b, o + 4);
      const d1 = d * sc1, mm1 = dmin * m1, d2 = d * sc2, mm2 = dmin * m2;
      for (let l = 0; l < 32; l++) y[out + l] = d1 * ((b[ql + l]! & 0xf) + (b[qh + l]! & u1 ? 16 : 0)) - mm1;
      for (let l = 0; l < 32; l++) y[out + 32 + l] = d2 * ((b[ql + l]! >> 4) + (b[qh + l]! & u2 ? 16 : 0)) - mm2;
      ql += 32;
      out += 64;
      u1 <<= 2;
      u2 <<= 2;
    }
  }
}
export function quantQ5_K(x: Float32Array, nb: number, b: Uint8Array): void {
  for (let i = 0; i < nb; i++) {
    const base = i * QK_K;
    const o = i * 176;
    const L = writeKAffineHeader(x, base, 31, b, o);
    const qh = o + 16;
    const ql = o + 48;
    for (let l = 0; l < 32; l++) b[qh + l] = 0;
    let m1 = 1, m2 = 2;
    for (let n = 0; n < QK_K; n += 64) {
      for (let j = 0; j < 32; j++) {
        let l1 = L[n + j]!;
        if (l1 > 15) { l1 -= 16; b[qh + j] |= m1; }
        let l2 = L[n + j + 32]!;
        if (l2 > 15) { l2 -= 16; b[qh + j] |= m2; }
        b[ql + n / 2 + j] = l1 | (l2 << 4);
      }
      m1 <<= 2;
      m2 <<= 2;
    }
  }
}

// ---- Q6_K: { u8 ql[128]; u8 qh[64]; int8 scales[16]; f16 d }, value = d * sc * (q - 32) ----
export function dequantQ6_K(b: Uint8Array, nb: number, y: Float32Array, yo = 0): void {
  for (let i = 0; i < nb; i++) {
    const o = i * 210;
    const d = rd16(b, o + 208);
    let ql = o, qh = o + 128, sc = o + 192;
    let out = yo + i * QK_K;
    for (let n = 0; n < QK_K; n += 128) {
      for (let l = 0; l < 32; l++) {
        const is = l >> 4;
        const h = b[qh + l]!;
        const q1 = ((b[ql + l]! & 0xf) | (((h >> 0) & 3) << 4)) - 32;
        const q2 = ((b[ql + l + 32]! & 0xf) | (((h >> 2) & 3) << 4)) - 32;
        const q3 = ((b[ql + l]! >> 4) | (((h >> 4) & 3) << 4)) - 32;
        const q4 = ((b[ql + l + 32]! >> 4) | (((h >> 6) & 3) << 4)) - 32;
        y[out + l] = d * ((b[sc + is]! << 24) >> 24) * q1;
        y[out + l + 32] = d * ((b[sc + is + 2]! << 24) >> 24) * q2;
        y[out + l + 64] = d * ((b[sc + is + 4]! << 24) >> 24) * q3;
        y[out + l + 96] = d * ((b[sc + is + 6]! << 24) >> 24) * q4;
      }
      out += 128;
      ql += 64;
      qh += 32;
      sc += 8;
    }
  }
}
export function quantQ6_K(x: Float32Array, nb: number, b: Uint8Array): void {
  for (let i = 0; i < nb; i++) {
    const base = i * QK_K;
    const o = i * 210;
    const scales: number[] = [];
    for (let s = 0; s < 16; s++) scales.push(signedMax(x, base + s * 16, 16) / -32);
    let maxScale = 0;
    for (const s of scales) if (Math.abs(s) > Math.abs(maxScale)) maxScale = s;
    const iscale = maxScale ? -128 / maxScale : 0;
    const d = iscale ? 1 / iscale : 0;
    wr16(b, o + 208, d);
    const dq = f16ToF32(f32ToF16(d));
    const L = new Uint8Array(QK_K);
    for (let s = 0; s < 16; s++) {
      const sc = Math.max(-128, Math.min(127, roundf(iscale * scales[s]!)));
      b[o + 192 + s] = sc & 0xff;
      const step = dq * sc;
      for (let l = 0; l < 16; l++) {
        const q = step ? roundf(x[base + s * 16 + l]! / step) : 0;
        L[s * 16 + l] = Math.max(-32, Math.min(31, q)) + 32;
      }
    }
    let ql = o, qh = o + 128;
    for (let n = 0; n < QK_K; n += 128) {
      for (let l = 0; l < 32; l++) {
        const q1 = L[n + l]!, q2 = L[n + l + 32]!, q3 = L[n + l + 64]!, q4 = L[n + l + 96]!;
        b[ql + l] = (q1 & 0xf) | ((q3 & 0xf) << 4);
        b[ql + l + 32] = (q2 & 0xf) | ((q4 & 0xf) << 4);
        b[qh + l] = (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6);
      }
      ql += 64;
      qh += 32;
    }
  }
}
