// rotateKeys against llama.cpp's own K-shift: erase tokens from the middle of a cached sequence
// (node-llama-cpp's eraseContextTokenRanges -> llama_memory_seq_rm + seq_add, which re-ropes the
// cached keys of the tail), then decode. The reference does the same with its slots: drop the
// erased slots from the context and rotateKeys the tail by -erased.

import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createReferenceBackend } from '../../engine/backend/reference';
import { openGguf } from '../../engine/gguf';
import { loadWeights } from '../../engine/model';
import { makeTestModel, type TestModelOptions } from '../helpers/make-test-model';
import { argmax, getOracle, maxAbsDiff } from './helpers';

const PROMPT = Array.from({ length: 40 }, (_, i) => (i * 53 + 7) % 256);
const ERASE = { start: 4, end: 12 };
const STEPS = 8;
const TOLERANCE = 1e-4;

const CASES: [string, TestModelOptions][] = [
  ['llama (normal RoPE)', { arch: 'llama', seed: 21 }],
  ['qwen2 (NeoX RoPE, base 1e6)', { arch: 'qwen2', seed: 22 }],
  ['llama, linear RoPE x4', { arch: 'llama', seed: 23, ropeLinearFactor: 4, ropeFreqBase: 1e5 }],
];

let llama: Awaited<ReturnType<typeof getOracle>>;
const report: string[] = [];
beforeAll(async () => {
  llama = await getOracle();
});
afterAll(() => {
  if (report.length) console.log(`\nK-shift agreement (erase tokens ${ERASE.start}..${ERASE.end - 1} of ${PROMPT.length}, then ${STEPS} steps):\n${report.join('\n')}\n`);
});

describe('rotateKeys vs llama.cpp K-shift', () => {
  for (const [label, opts] of CASES) {
    test(`${label}: logits after erasing a middle range agree within ${TOLERANCE}`, async (ctx) => {
      if (!llama) {
        ctx.skip(true, 'node-llama-cpp is not installed in test/oracle (npm ci --omit=optional there)');
        return;
      }
      const path = makeTestModel({ layers: 2, dims: 256, heads: 4, kvHeads: 2, ff: 512, quant: 'F32', ...opts });

      // llama.cpp side.
      const model = await llama.loadModel({ modelPath: path, gpuLayers: 0, useMmap: false });
      const context = await model.createContext({ contextSize: 256, batchSize: 256, sequences: 1, threads: 1, flashAttention: false, experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32' });
      const seq = context.getSequence();
      type Item = Parameters<typeof seq.controlledEvaluate>[0][number];
      const toRow = (m: unknown) => {
        const map = m as Map<number, number>;
        const row = new Float32Array(map.size);
        for (const [t, v] of map) row[t] = v;
        return row;
      };
      await seq.controlledEvaluate(PROMPT as Item[]);
      await seq.eraseContextTokenRanges([ERASE]);
      expect(seq.nextTokenIndex).toBe(PROMPT.length - (ERASE.end - ERASE.start));
      const want: Float32Array[] = [];
      let next = PROMPT[PROMPT.length - 1]! ^ 1;
      for (let s = 0; s < STEPS; s++) {
        const out = await seq.controlledEvaluate([[next, { generateNext: { logits: true } }] as Item]);
        const row = toRow(out[0]?.next.logits);
        want.push(row);
        next = argmax(row);
      }
      await context.dispose();
      await model.dispose();

      // Reference side: same tokens, erased slots dropped, tail keys rotated back.
      const gguf = openGguf(path);
      const be = await createReferenceBackend(loadWeights(gguf), { kvSlots: 128 });
      const n = PROMPT.length;
      const all = Int32Array.from({ length: n }, (_, i) => i);
      await be.forward([{ tokens: Int32Array.from(PROMPT), positions: all, context: all, logits: 'none' }]);
      const erased = ERASE.end - ERASE.start;
      const tail = Int32Array.from({ length: n - ERASE.end }, (_, i) => ERASE.end + i);
      await be.rotateKeys(tail, tail.map(() => -erased));
      const kept = [...all.subarray(0, ERASE.start), ...tail];
      let worst = 0;
      next = PROMPT[PROMPT.length - 1]! ^ 1;
      for (let s = 0; s < STEPS; s++) {
        const slot = n + s;
        kept.push(slot);
        const [res] = await be.forward([{ tokens: Int32Array.of(next), positions: Int32Array.of(n - erased + s), context: Int32Array.from(kept), logits: 'last' }]);
        worst = Math.max(worst, maxAbsDiff(res!.logits, want[s]!));
        expect(argmax(res!.logits), `step ${s} argmax`).toBe(argmax(want[s]!));
        next = argmax(want[s]!);
      }
      await be.dispose();
      gguf.close();
      report.push(`| ${label} | max logit diff ${worst.toExponential(2)} |`);
      expect(worst).toBeLessThanOrEqual(TOLERANCE);
    });
  }
});
