// Token sampling over one row of logits, in llama.cpp's default chain order:
// penalties -> top-k -> top-p -> min-p -> temperature -> draw (seeded). temperature <= 0 is greedy.

import { CachetError } from '../errors';
import { SeededRng } from './rng';

export interface SamplerOptions {
  /** <= 0: greedy (argmax after penalties). Default 0. */
  temperature?: number;
  /** Keep the k most likely tokens; 0 disables. */
  topK?: number;
  /** Keep the smallest set of tokens whose probability sums to >= topP; 1 disables. */
  topP?: number;
  /** Drop tokens with probability < minP * (top probability); 0 disables. */
  minP?: number;
  /** Divides positive / multiplies negative logits of recent tokens (llama.cpp repeat_penalty); 1 disables. */
  repetitionPenalty?: number;
  /** Subtracted once from the logit of every recent token; 0 disables. */
  presencePenalty?: number;
  /** Subtracted per occurrence of a recent token; 0 disables. */
  frequencyPenalty?: number;
  /** How many of the last tokens the penalties look at; -1 = all. Default 64. */
  penaltyLastN?: number;
  /** Seed of the random draw. Default 0. */
  seed?: number;
}

export class Sampler {
  readonly options: Required<SamplerOptions>;
  private readonly rng: SeededRng;

  constructor(options: SamplerOptions = {}) {
    this.options = {
      temperature: options.temperature ?? 0,
      topK: options.topK ?? 0,
      topP: options.topP ?? 1,
      minP: options.minP ?? 0,
      repetitionPenalty: options.repetitionPenalty ?? 1,
      presencePenalty: options.presencePenalty ?? 0,
      frequencyPenalty: options.frequencyPenalty ?? 0,
      penaltyLastN: options.penaltyLastN ?? 64,
      seed: options.seed ?? 0,
    };
    const o = this.options;
    if (!(o.topP > 0 && o.topP <= 1)) throw new CachetError(`topP must be in (0, 1], got ${o.topP}`, 'Use 1 to disable top-p.');
    if (!(o.minP >= 0 && o.minP <= 1)) throw new CachetError(`minP must be in [0, 1], got ${o.minP}`, 'Use 0 to disable min-p.');
    if (!(o.topK >= 0) || !Number.isInteger(o.topK)) throw new CachetError(`topK must be a non-negative integer, got ${o.topK}`, 'Use 0 to disable top-k.');
    if (!(o.repetitionPenalty > 0)) throw new CachetError(`repetitionPenalty must be > 0, got ${o.repetitionPenalty}`, 'Use 1 to disable it.');
    this.rng = new SeededRng(o.seed);
  }

  /** Restarts the random stream (same seed -> same draws). */
  reset(seed = this.options.seed): void {
    this.rng.reseed(seed);
  }

  /** Logits after repetition / presence / frequency penalties over the recent `history`. */
  penalize(logits: Float32Array, history: ArrayLike<number> = []): Float32Array {
    const o = this.options;
    const out = Float32Array.from(logits);
    if (o.repetitionPenalty === 1 && o.presencePenalty === 0 && o.frequencyPenalty === 0) return out;
    const start = o.penaltyLastN < 0 ? 0 : Math.max(0, history.length - o.penaltyLastN);
    const counts = new Map<number, number>();
    for (let i = start; i < history.length; i++) counts.set(history[i]!, (counts.get(history[i]!) ?? 0) + 1);
    for (const [tok, count] of counts) {
      if (tok < 0 || tok >= out.length) continue;
      let v = out[tok]!;
      v = v > 0 ? v / o.repetitionPenalty : v * o.repetitionPenalty;
      v -= count * o.frequencyPenalty + o.presencePenalty;
      out[tok] = v;
    }
    return out;
  }

  /**
   * Candidates surviving top-k, top-p and min-p, with their probabilities at the configured
   * temperature (what the draw samples from), most likely first.
   */
  candidates(logits: Float32Array, history: ArrayLike<number> = []): { ids: number[]; probs: number[] } {
    const o = this.options;
    const l = this.penalize(logits, history);
    const sorted = this.sortedCandidates(l);
    let ids = sorted.ids;
    if (o.topP < 1) ids = nucleus(l, ids, sorted.prefixOfAll, o.topP);
    if (o.minP > 0) {
      // p_i >= minP * p_max  <=>  logit_i >= logit_max + ln(minP)
      const threshold = l[ids[0]!]! + Math.log(o.minP);
      ids = ids.filter((i, k) => k === 0 || l[i]! >= threshold);
    }
    const t = o.temperature > 0 ? o.temperature : 1;
    return { ids, probs: softmax(ids.map((i) => l[i]! / t)) };
  }

  /**
   * Token ids most likely first (lower id first among equal logits), cut to top-k. Without top-k
   * but with top-p, only tokens within e^-30 of the best are sorted when they already reach the
   * nucleus (they are a prefix of the full order), so a 150k vocabulary is not sorted every step.
   */
  private sortedCandidates(l: Float32Array): { ids: number[]; prefixOfAll: boolean } {
    const o = this.options;
    const byLogit = (a: number, b: number) => l[b]! - l[a]! || a - b;
    if (o.topK > 0 && o.topK < l.length) return { ids: topKIndices(l, o.topK), prefixOfAll: false };
    if (o.topP < 1) {
      let max = -Infinity;
      for (let i = 0; i < l.length; i++) max = Math.max(max, l[i]!);
      let z = 0;
      for (let i = 0; i < l.length; i++) z += Math.exp(l[i]! - max);
      const near: number[] = [];
      for (let i = 0; i < l.length; i++) if (l[i]! >= max - 30) near.push(i);
      near.sort(byLogit);
      let mass = 0;
      for (const i of near) mass += Math.exp(l[i]! - max) / z;
      if (mass >= o.topP) return { ids: near, prefixOfAll: true };
    }
    return { ids: Array.from(l.keys()).sort(byLogit), prefixOfAll: false };
  }

  /** Picks the next token from one row of logits; `history` feeds the penalties. */
  sample(logits: Float32Array, history: ArrayLike<number> = []): number {
    if (logits.length === 0) throw new CachetError('cannot sample from an empty logits row', 'Request logits for the last token of the batch.');
    if (this.options.temperature <= 0) return argmax(this.penalize(logits, history));
    const { ids, probs } = this.candidates(logits, history);
    const r = this.rng.next();
    let cum = 0;
    for (let i = 0; i < ids.length; i++) {
      cum += probs[i]!;
      if (r < cum) return ids[i]!;
    }
    return ids[ids.length - 1]!;
  }
}

/**
 * Top-p: the shortest prefix of `ids` (most likely first) whose probability reaches p. Probabilities
 * are normalized over the candidate set as llama.cpp does (after top-k), which is `ids` itself, or
 * every token of `l` when `ids` is only the leading part of the full order.
 */
function nucleus(l: Float32Array, ids: number[], prefixOfAll: boolean, p: number): number[] {
  if (ids.length === 0) return ids;
  const max = l[ids[0]!]!;
  let z = 0;
  if (prefixOfAll) for (let i = 0; i < l.length; i++) z += Math.exp(l[i]! - max);
  else for (const i of ids) z += Math.exp(l[i]! - max);
  let cum = 0;
  for (let k = 0; k < ids.length; k++) {
    cum += Math.exp(l[ids[k]!]! - max) / z;
    if (cum >= p) return ids.slice(0, k + 1);
  }
  return ids;
}

/** Index of the largest value; the lowest index wins ties. */
export function argmax(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i]! > x[best]!) best = i;
  return best;
}

/** Numerically stable softmax in f64. */
export function softmax(x: ArrayLike<number>): number[] {
  let max = -Infinity;
  for (let i = 0; i < x.length; i++) max = Math.max(max, x[i]!);
  const e = Array.from({ length: x.length }, (_, i) => Math.exp(x[i]! - max));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / sum);
}

/** Indices of the k largest values, largest first (lower index first among equal values). */
export function topKIndices(x: ArrayLike<number>, k: number): number[] {
  // Min-heap of the best k so far; the root is the worst kept (smallest value, then highest index).
  const heap: number[] = [];
  const worse = (a: number, b: number) => x[a]! < x[b]! || (x[a] === x[b] && a > b);
  const down = (i: number) => {
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < heap.length && worse(heap[l]!, heap[m]!)) m = l;
      if (r < heap.length && worse(heap[r]!, heap[m]!)) m = r;
      if (m === i) return;
      [heap[i], heap[m]] = [heap[m]!, heap[i]!];
      i = m;
    }
  };
  for (let i = 0; i < x.length; i++) {
    if (heap.length < k) {
      heap.push(i);
      for (let j = heap.length - 1; j > 0; ) {
        const p = (j - 1) >> 1;
        if (!worse(heap[j]!, heap[p]!)) break;
        [heap[j], heap[p]] = [heap[p]!, heap[j]!];
        j = p;
      }
    } else if (worse(heap[0]!, i)) {
      heap[0] = i;
      down(0);
    }
  }
  return heap.sort((a, b) => x[b]! - x[a]! || a - b);
}
