// Comparing a backend with the reference backend: same prompt, same (non-contiguous) KV slots,
// prefill logits for every row, then greedy decoding step by step on the same input tokens.

import { expect } from 'vitest';
import type { Backend, SequenceBatch } from '../../engine/backend/types';

export function maxAbs(a: Float32Array): number {
  let m = 0;
  for (const v of a) m = Math.max(m, Math.abs(v));
  return m;
}

/** Largest absolute difference relative to the largest |b|. */
export function relDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return Number.isNaN(d) ? Infinity : d / Math.max(1e-6, maxAbs(b));
}

export function argmax(l: Float32Array, row = 0, vocab = l.length): number {
  let best = 0;
  for (let i = 1; i < vocab; i++) if (l[row * vocab + i]! > l[row * vocab + best]!) best = i;
  return best;
}

export const batch = (tokens: number[], nPast: number, slots: Int32Array, logits: SequenceBatch['logits']): SequenceBatch => ({
  tokens: Int32Array.from(tokens),
  positions: Int32Array.from(tokens, (_, i) => nPast + i),
  context: slots.subarray(0, nPast + tokens.length),
  logits,
});

/**
 * Prefill + greedy decode on both backends, `other` fed the reference's tokens (teacher forcing) so
 * every step compares like with like. Returns the largest relative logits difference seen, both
 * token streams, and `worstTieGap`: over the steps where the argmaxes differ, the largest gap (in
 * the reference's own logits, relative to its largest |logit|) between the two chosen tokens — a
 * difference of rounding can only flip a near-tie, so this stays below the logits tolerance.
 */
export async function compareBackends(
  ref: Backend,
  other: Backend,
  prompt: number[],
  steps: number,
  kvSlots = 64,
): Promise<{ diff: number; refTokens: number[]; otherTokens: number[]; worstTieGap: number }> {
  const vocab = ref.config.vocabSize;
  // a non-contiguous slot assignment, as a paged KV manager hands out
  const slots = Int32Array.from({ length: prompt.length + steps }, (_, i) => (i * 5 + 3) % kvSlots);
  const [r0] = await ref.forward([batch(prompt, 0, slots, 'all')]);
  const [o0] = await other.forward([batch(prompt, 0, slots, 'all')]);
  let diff = relDiff(o0!.logits, r0!.logits);
  let worstTieGap = 0;
  const refTokens: number[] = [];
  const otherTokens: number[] = [];
  const record = (r: Float32Array, o: Float32Array, row: number) => {
    const a = argmax(r, row, vocab);
    const b = argmax(o, row, vocab);
    refTokens.push(a);
    otherTokens.push(b);
    if (a !== b) worstTieGap = Math.max(worstTieGap, (r[row * vocab + a]! - r[row * vocab + b]!) / Math.max(1e-6, maxAbs(r)));
  };
  record(r0!.logits, o0!.logits, prompt.length - 1);
  for (let s = 0; s < steps; s++) {
    const nPast = prompt.length + s;
    const [r] = await ref.forward([batch([refTokens[s]!], nPast, slots, 'last')]);
    const [o] = await other.forward([batch([refTokens[s]!], nPast, slots, 'last')]);
    diff = Math.max(diff, relDiff(o!.logits, r!.logits));
    record(r!.logits, o!.logits, 0);
  }
  return { diff, refTokens, otherTokens, worstTieGap };
}

export const HELLO_PROMPT = [104, 101, 108, 108, 111, 32, 119, 111, 114, 108, 100, 33, 10];
