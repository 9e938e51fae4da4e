// Causal attention of n new query rows over KV slots, on host f32 arrays. It runs in JS between
// the ORT stage graphs because K/V live in engine-owned slot storage (paged, shared by prefix and
// chunk caches); copying a context's K/V into ORT tensors every step would cost more than this.

export interface AttentionShape {
  nHeads: number;
  nKvHeads: number;
  headDim: number;
}

/**
 * out[t, h, :] = softmax(q[t, h] . K[ctx[j]] * scale, j <= nPast + t) . V[ctx[j]]
 * K, V: [slots, nKvHeads * headDim]; q, out: [n, nHeads * headDim].
 */
export function attend(
  s: AttentionShape,
  q: Float32Array,
  n: number,
  K: Float32Array,
  V: Float32Array,
  context: Int32Array,
  out: Float32Array,
  scores: Float32Array,
): void {
  const { nHeads, nKvHeads, headDim } = s;
  const qDim = nHeads * headDim;
  const kvDim = nKvHeads * headDim;
  const group = nHeads / nKvHeads;
  const scale = 1 / Math.sqrt(headDim);
  const nPast = context.length - n;
  const acc = new Float32Array(headDim);
  for (let t = 0; t < n; t++) {
    const visible = nPast + t + 1;
    for (let h = 0; h < nHeads; h++) {
      const qo = t * qDim + h * headDim;
      const kvo = Math.floor(h / group) * headDim;
      let max = -Infinity;
      for (let j = 0; j < visible; j++) {
        const ko = context[j]! * kvDim + kvo;
        let dot = 0;
        for (let d = 0; d < headDim; d++) dot += q[qo + d]! * K[ko + d]!;
        const v = dot * scale;
        scores[j] = v;
        if (v > max) max = v;
      }
      let sum = 0;
      for (let j = 0; j < visible; j++) {
        const e = Math.exp(scores[j]! - max);
        scores[j] = e;
        sum += e;
      }
      acc.fill(0);
      for (let j = 0; j < visible; j++) {
        const p = scores[j]! / sum;
        const vo = context[j]! * kvDim + kvo;
        for (let d = 0; d < headDim; d++) acc[d] = acc[d]! + p * V[vo + d]!;
      }
      out.set(acc, qo);
    }
  }
}
