// How the scheduler picks the next token from a row of logits. Greedy lives here (speculative
// decoding depends on it being exactly argmax); everything else goes through engine/sampling.

import type { SamplingParams } from '../protocol';
import { Sampler } from '../sampling';

export interface TokenSampler {
  /** Picks a token from one row of logits; `history` is every token before it (prompt included). */
  sample(logits: Float32Array, history: ArrayLike<number>): number;
  /** True when sample() is plain argmax (the precondition for speculative decoding). */
  readonly greedy: boolean;
}

export type SamplerFactory = (params: SamplingParams | undefined) => TokenSampler;

/** Index of the largest logit; ties go to the lowest index (as llama.cpp's greedy sampler). */
export function argmax(logits: Float32Array): number {
  let best = 0;
  let bestValue = logits[0];
  for (let i = 1; i < logits.length; i++) {
    if (logits[i] > bestValue) { bestValue = logits[i]; best = i; }
  }
  return best;
}

export const greedySampler: TokenSampler = { greedy: true, sample: (logits) => argmax(logits) };

/** True when params ask for plain argmax (no temperature, no penalties). */
export function isGreedy(params: SamplingParams | undefined): boolean {
  if (!params) return true;
  const noPenalty = (params.repeatPenalty ?? 1) === 1 && !params.presencePenalty && !params.frequencyPenalty;
  return (params.temperature ?? 0) <= 0 && noPenalty;
}

/** Stochastic sampling (and greedy with penalties) through engine/sampling's llama.cpp-order chain. */
export const chainSamplerFactory: SamplerFactory = (params) => {
  const sampler = new Sampler({
    temperature: params?.temperature,
    topK: params?.topK,
    topP: params?.topP,
    minP: params?.minP,
    repetitionPenalty: params?.repeatPenalty,
    presencePenalty: params?.presencePenalty,
    frequencyPenalty: params?.frequencyPenalty,
    penaltyLastN: params?.penaltyLastN,
    seed: params?.seed,
  });
  return { greedy: false, sample: (logits, history) => sampler.sample(logits, history) };
};
