import { describe, expect, test } from 'vitest';
import { CachetError } from '../../engine/errors';
import { Sampler, SeededRng, argmax, softmax, topKIndices } from '../../engine/sampling';

const f = (...x: number[]) => Float32Array.from(x);

describe('greedy', () => {
  test('picks the largest logit; the lowest id wins a tie', () => {
    expect(new Sampler().sample(f(1, 3, 2, 0.5))).toBe(1);
    expect(new Sampler({ temperature: 0 }).sample(f(2, 5, 5, 1))).toBe(1);
    expect(argmax([0, 7, 7])).toBe(1);
  });
});

describe('penalties', () => {
  test('repetition penalty divides positive and multiplies negative logits of recent tokens', () => {
    const s = new Sampler({ repetitionPenalty: 2 });
    expect(Array.from(s.penalize(f(1, 3, 2, -1), [1, 3, 3]))).toEqual([1, 1.5, 2, -2]);
    expect(s.sample(f(1, 3, 2, 0.5), [1])).toBe(2); // 3 -> 1.5 < 2
    expect(s.sample(f(-1, -1.5), [0])).toBe(1); // -1 -> -2 < -1.5
  });

  test('presence penalty subtracts once, frequency penalty per occurrence', () => {
    expect(Array.from(new Sampler({ presencePenalty: 1.5 }).penalize(f(1, 3, 2), [1, 1, 1]))).toEqual([1, 1.5, 2]);
    const freq = new Sampler({ frequencyPenalty: 0.5 });
    expect(Array.from(freq.penalize(f(1, 3, 2), [1, 1]))).toEqual([1, 2, 2]);
    expect(freq.sample(f(1, 3, 2.1), [1])).toBe(1); // 2.5 > 2.1
    expect(freq.sample(f(1, 3, 2.1), [1, 1])).toBe(2); // 2 < 2.1
  });

  test('penaltyLastN limits the window; -1 means the whole history', () => {
    const hist = [1, 0, 0];
    expect(Array.from(new Sampler({ presencePenalty: 1, penaltyLastN: 2 }).penalize(f(5, 5), hist))).toEqual([4, 5]);
    expect(Array.from(new Sampler({ presencePenalty: 1, penaltyLastN: -1 }).penalize(f(5, 5), hist))).toEqual([4, 4]);
  });
});

describe('truncation and temperature', () => {
  const probs = [0.5, 0.3, 0.15, 0.05];
  const logits = Float32Array.from(probs.map(Math.log));

  test('top-k keeps the k most likely, renormalized', () => {
    const c = new Sampler({ temperature: 1, topK: 2 }).candidates(f(1, 3, 2, 0.5));
    expect(c.ids).toEqual([1, 2]);
    expect(c.probs[0]).toBeCloseTo(Math.E / (Math.E + 1), 12);
    expect(c.probs[1]).toBeCloseTo(1 / (Math.E + 1), 12);
  });

  test('top-p keeps the smallest prefix reaching p', () => {
    expect(new Sampler({ temperature: 1, topP: 0.75 }).candidates(logits).ids).toEqual([0, 1]);
    expect(new Sampler({ temperature: 1, topP: 0.85 }).candidates(logits).ids).toEqual([0, 1, 2]);
    expect(new Sampler({ temperature: 1, topP: 0.4 }).candidates(logits).ids).toEqual([0]);
    const c = new Sampler({ temperature: 1, topP: 0.75 }).candidates(logits);
    expect(c.probs[0]).toBeCloseTo(0.5 / 0.8, 6);
  });

  test('min-p drops tokens below minP * top probability', () => {
    expect(new Sampler({ temperature: 1, minP: 0.25 }).candidates(logits).ids).toEqual([0, 1, 2]); // 0.15 >= 0.125
    expect(new Sampler({ temperature: 1, minP: 0.35 }).candidates(logits).ids).toEqual([0, 1]); // 0.15 < 0.175
  });

  test('temperature scales logits before the draw', () => {
    const c = new Sampler({ temperature: 2 }).candidates(f(0, Math.log(4)));
    expect(c.ids).toEqual([1, 0]);
    expect(c.probs[0]).toBeCloseTo(2 / 3, 6);
    expect(c.probs[1]).toBeCloseTo(1 / 3, 6);
  });

  test('softmax is stable for large logits', () => {
    const p = softmax([1000, 1000 + Math.log(3)]);
    expect(p[0]).toBeCloseTo(0.25, 12);
    expect(p[1]).toBeCloseTo(0.75, 12);
  });
});

describe('seeded draws', () => {
  test('same seed, same tokens; reset replays; another seed differs', () => {
    const logits = f(0, 0.5, 1, 1.5, 2);
    const draw = (s: Sampler) => Array.from({ length: 50 }, () => s.sample(logits));
    const a = new Sampler({ temperature: 1, seed: 42 });
    const first = draw(a);
    expect(draw(new Sampler({ temperature: 1, seed: 42 }))).toEqual(first);
    a.reset();
    expect(draw(a)).toEqual(first);
    expect(draw(new Sampler({ temperature: 1, seed: 43 }))).not.toEqual(first);
  });

  test('draw frequencies follow the candidate probabilities', () => {
    const s = new Sampler({ temperature: 1, seed: 7 });
    const logits = Float32Array.from([0.6, 0.3, 0.1].map(Math.log));
    const counts = [0, 0, 0];
    const n = 20000;
    for (let i = 0; i < n; i++) counts[s.sample(logits)]!++;
    expect(counts[0]! / n).toBeCloseTo(0.6, 1);
    expect(counts[1]! / n).toBeCloseTo(0.3, 1);
    expect(counts[2]! / n).toBeCloseTo(0.1, 1);
  });

  test('a token cut by top-k is never drawn', () => {
    const s = new Sampler({ temperature: 5, topK: 2, seed: 1 });
    for (let i = 0; i < 500; i++) expect([1, 2]).toContain(s.sample(f(1, 3, 2.9, 2.8)));
  });

  test('SeededRng is uniform in [0, 1) and deterministic', () => {
    const r = new SeededRng(123);
    const xs = Array.from({ length: 10000 }, () => r.next());
    expect(Math.min(...xs)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...xs)).toBeLessThan(1);
    expect(xs.reduce((a, b) => a + b, 0) / xs.length).toBeCloseTo(0.5, 1);
    const again = new SeededRng(123);
    expect(again.next()).toBe(xs[0]);
  });
});

describe('validation', () => {
  test('bad options and empty logits throw CachetError with a hint', () => {
    expect(() => new Sampler({ topP: 0 })).toThrow(CachetError);
    expect(() => new Sampler({ minP: 2 })).toThrow(CachetError);
    expect(() => new Sampler({ topK: 1.5 })).toThrow(CachetError);
    expect(() => new Sampler({ repetitionPenalty: 0 })).toThrow(CachetError);
    expect(() => new Sampler().sample(new Float32Array(0))).toThrow(/empty logits/);
  });
});

describe('topKIndices', () => {
  test('equals a full sort truncated to k, ties to the lower index', () => {
    const rng = new SeededRng(9);
    for (const n of [1, 7, 100, 5000]) {
      // Few distinct values so ties are common.
      const x = Float32Array.from({ length: n }, () => Math.floor(rng.next() * 20));
      const sorted = Array.from(x.keys()).sort((a, b) => x[b]! - x[a]! || a - b);
      for (const k of [1, 3, 40, n]) expect(topKIndices(x, k)).toEqual(sorted.slice(0, k));
    }
  });
});

describe('large vocabularies', () => {
  test('top-p without top-k gives the same nucleus as a full sort, normalized over all tokens', () => {
    const rng = new SeededRng(4);
    const V = 50000;
    const logits = Float32Array.from({ length: V }, () => (rng.next() - 0.5) * 8);
    for (let i = 0; i < 20; i++) logits[i * 997] = 6 + rng.next() * 4; // a few clear leaders
    for (const topP of [0.3, 0.9, 0.999]) {
      const got = new Sampler({ temperature: 1, topP }).candidates(logits).ids;
      // Independent: full sort, softmax over all, shortest prefix reaching p.
      const order = Array.from(logits.keys()).sort((a, b) => logits[b]! - logits[a]! || a - b);
      const p = softmax(order.map((i) => logits[i]!));
      let cum = 0;
      let keep = order.length;
      for (let k = 0; k < p.length; k++) {
        cum += p[k]!;
        if (cum >= topP) {
          keep = k + 1;
          break;
        }
      }
      expect(got).toEqual(order.slice(0, keep));
    }
  });

  test('top-p after top-k normalizes over the k survivors', () => {
    // probs over all: [0.4, 0.3, 0.2, 0.1]; after top-k 2: [4/7, 3/7]; p = 0.55 keeps 1 token.
    const l = Float32Array.from([0.4, 0.3, 0.2, 0.1].map(Math.log));
    expect(new Sampler({ temperature: 1, topK: 2, topP: 0.55 }).candidates(l).ids).toEqual([0]);
    expect(new Sampler({ temperature: 1, topK: 2, topP: 0.6 }).candidates(l).ids).toEqual([0, 1]);
  });
});
