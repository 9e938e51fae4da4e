// cos/sin tables for the rope kernels, computed on the host the way ggml_rope_ext does (f32 theta
// recurrence, linear scaling as a frequency factor), so the GPU result tracks the reference.

import { ModelNotSupportedError } from '../../errors';
import type { RopeConfig } from '../../model/types';

export function checkRope(rope: RopeConfig, headDim: number): void {
  if (rope.scaling.type === 'yarn') {
    throw new ModelNotSupportedError('YaRN RoPE scaling is not implemented by the WebGPU backend', 'Use a model without YaRN scaling, or the CPU backend.');
  }
  if (rope.dim % 4 !== 0 || rope.dim > headDim || headDim % 2 !== 0) {
    throw new ModelNotSupportedError(`RoPE over ${rope.dim} of ${headDim} head dims is not supported by the WebGPU backend`, 'Use the CPU backend for this model.');
  }
}

/** [row][pair] (cos, sin) for angle positions[row] * theta_pair, as Float32Array pairs. */
export function ropeTable(rope: RopeConfig, positions: ArrayLike<number>, out?: Float32Array): Float32Array {
  const pairs = rope.dim / 2;
  const thetaScale = Math.fround(Math.pow(Math.fround(rope.freqBase), Math.fround(-2 / rope.dim)));
  const freqScale = Math.fround(1 / rope.scaling.factor);
  const cs = out ?? new Float32Array(positions.length * pairs * 2);
  for (let r = 0; r < positions.length; r++) {
    let theta = Math.fround(positions[r]!);
    for (let i = 0; i < pairs; i++) {
      const t = Math.fround(freqScale * theta);
      cs[(r * pairs + i) * 2] = Math.cos(t);
      cs[(r * pairs + i) * 2 + 1] = Math.sin(t);
      theta = Math.fround(theta * thetaScale);
    }
  }
  return cs;
}
