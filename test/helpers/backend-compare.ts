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

/** Prefill + greedy decode on both backends; returns the largest relative logits difference seen. */
export async function compareBackends(
  ref: Backend,
  other: Backend,
  prompt: number[],
  steps: number,
  kvSlots = 64,
): Promise<{ diff: number; refTokens: number[]; otherTokens: number[] }> {
  const vocab = ref.config.vocabSize;
  // a non-contiguous slot assignment, as a paged KV manager hands out
  const slots = Int32Array.from({ length: prompt.length + steps }, (_, i) => (i * 5 + 3) % kvSlots);
  const [r0] = await ref.forward([batch(prompt, 0, slots, 'all')]);
  const [o0] = await other.forward([batch(prompt, 0, slots, 'all')]);
  let diff = relDiff(o0!.logits, r0!.logits);
  const refTokens = [argmax(r0!.logits, prompt.length - 1, vocab)];
  const otherTokens = [argmax(o0!.logits, prompt.length - 1, vocab)];
  for (let s = 0; s < steps; s++) {
    const nPast = prompt.length + s;
    const [r] = await ref.forward([batch([refTokens[s]!], nPast, slots, 'last')]);
    const [o] = await other.forward([batch([refTokens[s]!], nPast, slots, 'last')]);
    diff = Math.max(diff, relDiff(o!.logits, r!.logits));
    refTokens.push(argmax(r!.logits));
    otherTokens.push(argmax(o!.logits));
  }
  return { diff, refTokens, otherTokens };
}

export const HELLO_PROMPT = [104, 101, 108, 108, 111, 32, 119, 111, 114, 108, 100, 33, 10];
