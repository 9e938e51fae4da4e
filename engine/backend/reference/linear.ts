// A weight matrix y = W x (+ b) over f32 activations. W is dequantized once and kept as f32 when it
// fits the cache budget, else dequantized row by row on every call (large files, slow but bounded).

import { dequantize } from '../../quant';
import { bytesFor, GgmlType } from '../../quant/types';
import type { TensorView } from '../../model/types';
import { f16ToF32 } from '../../quant';
import { activationFormatFor, q8_1SumCorrection, roundTripActivations, type ActivationFormat } from './activation-quant';

export class Linear {
  /** Input length (a row of W in ggml order: dims[0]). */
  readonly cols: number;
  /** Output length (dims[1]). */
  readonly rows: number;
  readonly bias: Float32Array | undefined;
  private readonly f32: Float32Array | undefined;
  private readonly rowBytes: number;
  private readonly format: ActivationFormat;
  /** Per (row, 32-block) min of Q4_1/Q5_1 weights, for the Q8_1 sum term (see q8_1SumCorrection). */
  private readonly blockMins: Float32Array | undefined;

  constructor(
    private readonly tensor: TensorView,
    bias: TensorView | undefined,
    cacheF32: boolean,
    mirrorActivationQuant: boolean,
  ) {
    this.cols = tensor.dims[0]!;
    this.rows = tensor.dims[1] ?? 1;
    this.rowBytes = bytesFor(tensor.type, this.cols);
    this.f32 = cacheF32 ? toF32(tensor) : undefined;
    this.bias = bias ? toF32(bias) : undefined;
    this.format = mirrorActivationQuant ? activationFormatFor(tensor.type) : 'f32';
    if (this.format === 'q8_1') {
      // Q4_1 / Q5_1 blocks start with f16 d then f16 m.
      const blocks = this.cols / 32;
      const blockBytes = this.rowBytes / blocks;
      const mins = new Float32Array(this.rows * blocks);
      const data = tensor.data;
      for (let i = 0; i < mins.length; i++) mins[i] = f16ToF32(data[i * blockBytes + 2]! | (data[i * blockBytes + 3]! << 8));
      this.blockMins = mins;
    }
  }

  get f32Bytes(): number {
    return this.f32 ? this.f32.byteLength : 0;
  }

  /** One row of W as f32 (a copy when W is not cached). */
  row(r: number): Float32Array {
    if (this.f32) return this.f32.subarray(r * this.cols, (r + 1) * this.cols);
    const bytes = this.tensor.data.subarray(r * this.rowBytes, (r + 1) * this.rowBytes);
    return dequantize(this.tensor.type, bytes, this.cols);
  }

  /** out[t * rows + o] = sum_i W[o, i] * x[t * cols + i] (+ b[o]) for t < n. */
  apply(x: Float32Array, n: number, out: Float32Array): void {
    const { cols, rows } = this;
    // Activations as the weight's dot-product type sees them, one row per token.
    const act = new Float64Array(n * cols);
    for (let t = 0; t < n; t++) roundTripActivations(this.format, x.subarray(t * cols, (t + 1) * cols), act.subarray(t * cols, (t + 1) * cols));
    const mins = this.blockMins;
    const blocks = cols / 32;
    const sumFix = mins ? new Float64Array(n * blocks) : undefined;
    if (sumFix) for (let t = 0; t < n; t++) q8_1SumCorrection(x.subarray(t * cols, (t + 1) * cols), sumFix.subarray(t * blocks, (t + 1) * blocks));
    const bias = this.bias;
    const finish = (o: number, t: number, dot: number) => {
      let sum = dot;
      if (mins && sumFix) for (let k = 0; k < blocks; k++) sum += mins[o * blocks + k]! * sumFix[t * blocks + k]!;
      out[t * rows + o] = bias ? Math.fround(sum) + bias[o]! : sum;
    };
    for (let o = 0; o < rows; o++) {
      const w = this.row(o);
      let t = 0;
      // Four tokens per pass over the weight row: same sums, a quarter of the row reads.
      for (; t + 4 <= n; t += 4) {
        const a0 = t * cols;
        const a1 = a0 + cols;
        const a2 = a1 + cols;
        const a3 = a2 + cols;
        let s0 = 0;
        let s1 = 0;
        let s2 = 0;
        let s3 = 0;
        for (let i = 0; i < cols; i++) {
          const wi = w[i]!;
          s0 += wi * act[a0 + i]!;
          s1 += wi * act[a1 + i]!;
          s2 += wi * act[a2 + i]!;
          s3 += wi * act[a3 + i]!;
        }
        finish(o, t, s0);
        finish(o, t + 1, s1);
        finish(o, t + 2, s2);
        finish(o, t + 3, s3);
      }
      for (; t < n; t++) {
        const a0 = t * cols;
        let s0 = 0;
        for (let i = 0; i < cols; i++) s0 += w[i]! * act[a0 + i]!;
        finish(o, t, s0);
      }
    }
  }
}

export function toF32(t: TensorView): Float32Array {
  let n = 1;
  for (const d of t.dims) n *= d;
  if (t.type === GgmlType.F32) {
    // Copy: the source may be an unaligned view into a file buffer.
    const out = new Float32Array(n);
    new Uint8Array(out.buffer).set(t.data.subarray(0, n * 4));
    return out;
  }
  return dequantize(t.type, t.data, n);
}
