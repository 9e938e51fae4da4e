// engine/sampling's candidate filtering against llama.cpp's sampler chain (penalties -> top-k ->
// top-p -> min-p -> temperature), through node-llama-cpp's `probabilities` output. Both sides get
// the same raw logits (llama.cpp's own), so this checks sampling semantics only.

import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Sampler, type SamplerOptions } from '../../engine/sampling';
import { makeTestModel } from '../helpers/make-test-model';
import { getOracle } from './helpers';

const PROMPT = [...new TextEncoder().encode('def fib(n): return n if n < 2 else fib(n - 1) + fib(n - 2)')];
const PUNISH = PROMPT.slice(-24);

interface Case {
  name: string;
  ours: SamplerOptions;
  theirs: { temperature: number; topK: number; topP: number; minP: number; repeatPenalty?: { punishTokens: number[]; penalty: number; frequencyPenalty: number; presencePenalty: number } };
}

const CASES: Case[] = [
  { name: 'temp 0.8, top-k 40, top-p 0.9, min-p 0.02', ours: { temperature: 0.8, topK: 40, topP: 0.9, minP: 0.02 }, theirs: { temperature: 0.8, topK: 40, topP: 0.9, minP: 0.02 } },
  { name: 'temp 1.5, top-p 0.97', ours: { temperature: 1.5, topP: 0.97 }, theirs: { temperature: 1.5, topK: 0, topP: 0.97, minP: 0 } },
  { name: 'temp 0.6, min-p 0.1', ours: { temperature: 0.6, minP: 0.1 }, theirs: { temperature: 0.6, topK: 0, topP: 1, minP: 0.1 } },
  {
    name: 'penalties (repeat 1.3, freq 0.2, presence 0.15 over 24 tokens), temp 0.9, top-k 50',
    ours: { temperature: 0.9, topK: 50, repetitionPenalty: 1.3, frequencyPenalty: 0.2, presencePenalty: 0.15, penaltyLastN: PUNISH.length },
    theirs: { temperature: 0.9, topK: 50, topP: 1, minP: 0, repeatPenalty: { punishTokens: PUNISH, penalty: 1.3, frequencyPenalty: 0.2, presencePenalty: 0.15 } },
  },
];

let llama: Awaited<ReturnType<typeof getOracle>>;
const lines: string[] = [];
beforeAll(async () => {
  llama = await getOracle();
});
afterAll(() => {
  if (lines.length) console.log(`\nsampling vs llama.cpp:\n${lines.join('\n')}\n`);
});

describe('Sampler.candidates vs llama.cpp sampler chain', () => {
  test('same surviving tokens in the same order, probabilities within 1e-5', async (ctx) => {
    if (!llama) {
      ctx.skip(true, 'node-llama-cpp is not installed in test/oracle (npm ci --omit=optional there)');
      return;
    }
    // Unscaled (1.0) untied head: logits spread over several units, so every filter bites.
    const path = makeTestModel({ arch: 'llama', layers: 2, dims: 256, heads: 4, kvHeads: 2, ff: 512, quant: 'F32', seed: 31 });
    const model = await llama.loadModel({ modelPath: path, gpuLayers: 0, useMmap: false });
    const context = await model.createContext({ contextSize: 256, sequences: 1, threads: 1, flashAttention: false, experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32' });
    const seq = context.getSequence();
    type Item = Parameters<typeof seq.controlledEvaluate>[0][number];
    try {
      const input = (next: object) => PROMPT.map((t, i) => (i === PROMPT.length - 1 ? [t, { generateNext: next }] : t) as Item);
      const rawOut = await seq.controlledEvaluate(input({ logits: true }));
      const rawMap = rawOut[PROMPT.length - 1]!.next.logits as Map<number, number>;
      const raw = new Float32Array(rawMap.size);
      for (const [t, v] of rawMap) raw[t] = v;

      for (const c of CASES) {
        await seq.clearHistory();
        const out = await seq.controlledEvaluate(input({ probabilities: true, options: { ...c.theirs, seed: 1 } }));
        const probs = out[PROMPT.length - 1]!.next.probabilities!;
        const theirIds = [...probs.keys()];
        const theirP = [...probs.values()];
        const mine = new Sampler({ ...c.ours, seed: 1 }).candidates(raw, PUNISH);
        let worst = 0;
        for (let i = 0; i < Math.min(theirIds.length, mine.ids.length); i++) worst = Math.max(worst, Math.abs(theirP[i]! - mine.probs[i]!));
        lines.push(`| ${c.name} | llama.cpp keeps ${theirIds.length}, we keep ${mine.ids.length} | max prob diff ${worst.toExponential(2)} |`);
        expect(mine.ids, c.name).toEqual(theirIds);
        expect(worst, c.name).toBeLessThan(1e-5);
        // The filters must actually have cut something, or the case tests nothing.
        expect(theirIds.length, c.name).toBeLessThan(raw.length);
        expect(theirIds.length, c.name).toBeGreaterThan(1);
      }
    } finally {
      await context.dispose();
      await model.dispose();
    }
  });
});
