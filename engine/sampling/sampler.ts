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
    // Most likely first; ties broken by the lower id so the order is deterministic.
    let ids = Array.from(l.keys()).sort((a, b) => l[b]! - l[a]! || a - b);
    if (o.topK > 0 && o.topK < ids.length) ids = ids.slice(0, o.topK);
    if (o.topP < 1) {
      const p = softmax(ids.map((i) => l[i]!));
      let cum = 0;
      let keep = ids.length;
      for (let i = 0; i < p.length; i++) {
        cum += p[i]!;
        if (cum >= o.topP) {
          keep = i + 1;
          break;
        }
      }
      ids = ids.slice(0, keep);
    }
    if (o.minP > 0) {
      // p_i >= minP * p_max  <=>  logit_i >= logit_max + ln(minP)
      const threshold = l[ids[0]!]! + Math.log(o.minP);
      ids = ids.filter((i, k) => k === 0 || l[i]! >= threshold);
    }
    const t = o.temperature > 0 ? o.temperature : 1;
    return { ids, probs: softmax(ids.map((i) => l[i]! / t)) };
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
