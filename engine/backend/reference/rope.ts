// Rotary position embedding as ggml_rope_ext computes it (f32 theta recurrence, cosf/sinf), with
// the angles of each position computed once and cached.

import { ModelNotSupportedError } from '../../errors';
import type { RopeConfig } from '../../model/types';

export class Rope {
  private readonly pairs: number;
  private readonly thetaScale: number;
  private readonly freqScale: number;
  private readonly cache = new Map<number, Float32Array>();

  constructor(
    private readonly rope: RopeConfig,
    private readonly headDim: number,
  ) {
    if (rope.scaling.type === 'yarn') {
      throw new ModelNotSupportedError('YaRN RoPE scaling is not implemented by the reference backend', 'Use a model without rope.scaling.type = yarn, or another backend.');
    }
    this.pairs = rope.dim / 2;
    this.thetaScale = Math.fround(Math.pow(Math.fround(rope.freqBase), Math.fround(-2 / rope.dim)));
    this.freqScale = Math.fround(1 / rope.scaling.factor);
  }

  /** [cos0, sin0, cos1, sin1, ...] for each rotated pair at `pos`. */
  angles(pos: number): Float32Array {
    let cs = this.cache.get(pos);
    if (cs) return cs;
    cs = new Float32Array(this.pairs * 2);
    let theta = Math.fround(pos);
    for (let i = 0; i < this.pairs; i++) {
      const t = Math.fround(this.freqScale * theta);
      cs[2 * i] = Math.cos(t);
      cs[2 * i + 1] = Math.sin(t);
      theta = Math.fround(theta * this.thetaScale);
    }
    if (this.cache.size > 65536) this.cache.clear();
    this.cache.set(pos, cs);
    return cs;
  }

  /** Rotates `heads` consecutive head vectors starting at `offset` in `x` by position `pos`. */
  apply(x: Float32Array, offset: number, heads: number, pos: number): void {
    const cs = this.angles(pos);
    const half = this.pairs;
    const neox = this.rope.type === 'neox';
    for (let h = 0; h < heads; h++) {
      const base = offset + h * this.headDim;
      for (let i = 0; i < half; i++) {
        const c = cs[2 * i]!;
        const s = cs[2 * i + 1]!;
        // normal: adjacent pairs (2i, 2i+1); neox: halves (i, i + dim/2).
        const a = neox ? base + i : base + 2 * i;
        const b = neox ? base + i + half : base + 2 * i + 1;
        const x0 = x[a]!;
        const x1 = x[b]!;
        x[a] = Math.fround(x0 * c) - Math.fround(x1 * s);
        x[b] = Math.fround(x0 * s) + Math.fround(x1 * c);
      }
    }
  }
}
