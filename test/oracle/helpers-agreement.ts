// The arch x format agreement suite against llama.cpp, shared by the per-architecture test files
// (one file per arch so vitest runs them on both cores).

import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { makeTestModel, type TestModelOptions, type TestQuant } from '../helpers/make-test-model';
import { getOracle, maxAbsDiff, openOracleModel, openReferenceModel } from './helpers';

export const FORMATS: TestQuant[] = ['F32', 'F16', 'BF16', 'Q8_0', 'Q4_0', 'Q4_1', 'Q5_0', 'Q5_1', 'Q4_K', 'Q5_K', 'Q6_K'];

/**
 * Max |logit difference| allowed per format, over every step of every prompt.
 *
 * The reference mirrors llama.cpp's CPU numerics: activations are rounded to the weight's
 * dot-product type (f16, bf16, Q8_0, Q8_1, Q8_K) before each matmul, and starcoder2's GELU goes
 * through ggml's f16 table. Most steps then agree to ~1e-6 (the "exact steps" column). What is
 * left is f32 summation order: now and then an activation sits within an ulp of a rounding
 * boundary and the two sides round it to neighbouring steps (one quant step of one activation),
 * and that token's K/V carry the difference into later steps. The bounds below are the size of
 * such flips, measured over these suites with margin; they are not the noise of the formats.
 */
export const TOLERANCE: Record<TestQuant, number> = {
  F32: 1e-4,
  F16: 2e-2,
  BF16: 6e-2,
  Q8_0: 0.5,
  Q4_0: 0.5,
  Q4_1: 0.5,
  Q5_0: 0.5,
  Q5_1: 0.5,
  Q4_K: 0.5,
  Q5_K: 0.5,
  Q6_K: 0.5,
};

/**
 * For block-quantized formats the logit bound above is loose (a flip cascade through 3 layers
 * and a 160-token prompt reached 0.33), so the suite also requires that a fair share of all steps
 * agree to f32 rounding: a real bug in a format's math leaves no step exact, flips leave most.
 * (F16/BF16 round every activation, so flips happen at almost every step there; their logit
 * bounds are tight instead.)
 */
export const MIN_EXACT_FRACTION = 0.15;

/** starcoder2's GELU rounds its input to f16, so F32 sees the same boundary flips (~5e-4 per flip). */
export function toleranceFor(arch: string, format: TestQuant): number {
  return arch === 'starcoder2' && format === 'F32' ? 2e-3 : TOLERANCE[format];
}

/** A logit diff this small means the two sides computed the same numbers up to f32 rounding. */
export const EXACT = 1e-4;

export const STEPS = 32;

/** Token-id prompts for the 260-token byte vocabulary (256 = <|endoftext|>). */
export const PROMPTS: Record<string, number[]> = {
  'one token': [65],
  'code': [...new TextEncoder().encode('def add(a, b):\n    return')],
  'eos + text': [256, ...new TextEncoder().encode('Hello, world')],
  'long 160': Array.from({ length: 160 }, (_, i) => (i * 37 + 11) % 256),
};

export interface AgreementRow {
  model: string;
  format: string;
  prompt: string;
  /** Steps whose argmax differs from llama.cpp's greedy token (each must be a near-tie). */
  argmaxMismatches: number;
  /** Steps whose logits agree within EXACT. */
  exactSteps: number;
  maxLogitDiff: number;
  distinct: number;
}

export function formatTable(rows: AgreementRow[]): string {
  const head = `| model | format | prompt | greedy ${STEPS} identical | exact steps (<${EXACT}) | max logit diff | distinct tokens |`;
  const sep = '|---|---|---|---|---|---|---|';
  const body = rows.map(
    (r) =>
      `| ${r.model} | ${r.format} | ${r.prompt} | ${r.argmaxMismatches === 0 ? 'yes' : `no: ${r.argmaxMismatches} near-tie(s)`} | ${r.exactSteps}/${STEPS} | ${r.maxLogitDiff.toExponential(2)} | ${r.distinct} |`,
  );
  return [head, sep, ...body].join('\n');
}

/** One line per model x format: prompts with identical greedy runs, exact steps, worst diff. */
export function formatSummary(rows: AgreementRow[]): string {
  const groups = new Map<string, AgreementRow[]>();
  for (const r of rows) {
    const k = `${r.model} | ${r.format}`;
    groups.set(k, [...(groups.get(k) ?? []), r]);
  }
  const head = `| model | format | prompts greedy-identical | near-ties | exact steps | max logit diff |`;
  const sep = '|---|---|---|---|---|---|';
  const body = [...groups].map(([k, rs]) => {
    const same = rs.filter((r) => r.argmaxMismatches === 0).length;
    const ties = rs.reduce((a, r) => a + r.argmaxMismatches, 0);
    const exact = rs.reduce((a, r) => a + r.exactSteps, 0);
    const diff = Math.max(...rs.map((r) => r.maxLogitDiff));
    return `| ${k} | ${same}/${rs.length} | ${ties} | ${exact}/${rs.length * STEPS} | ${diff.toExponential(2)} |`;
  });
  return [head, sep, ...body].join('\n');
}

export function agreementSuite(label: string, base: Omit<TestModelOptions, 'quant'>, formats: TestQuant[] = FORMATS, prompts: Record<string, number[]> = PROMPTS): void {
  const rows: AgreementRow[] = [];
  let llama: Awaited<ReturnType<typeof getOracle>>;

  beforeAll(async () => {
    llama = await getOracle();
  });
  afterAll(() => {
    if (rows.length) console.log(`\nllama.cpp agreement, ${label}:\n${formatTable(rows)}\n\nsummary:\n${formatSummary(rows)}\n`);
  });

  describe(label, () => {
    for (const format of formats) {
      const tol = toleranceFor(base.arch, format);
      test(`${format}: greedy ${STEPS} tokens identical and logits within ${tol}`, async (ctx) => {
        if (!llama) {
          ctx.skip(true, 'node-llama-cpp is not installed in test/oracle (npm ci --omit=optional there)');
          return;
        }
        const path = makeTestModel({ ...base, quant: format });
        // threads: 1 — with 2 threads llama.cpp's spin barriers stall ~100x on this shared 2-core box.
        const oracle = await openOracleModel(llama, path, 512, 1);
        const reference = await openReferenceModel(path);
        try {
          const distinctAll = new Set<number>();
          let exactAll = 0;
          let stepsAll = 0;
          for (const [name, prompt] of Object.entries(prompts)) {
            const want = await oracle.continue(prompt, STEPS);
            // Teacher forcing: the reference consumes llama.cpp's greedy tokens, so all STEPS logit
            // rows are comparable; its own argmax at each step is its greedy choice there.
            const got = await reference.continue(prompt, STEPS, want.tokens);
            let diff = 0;
            let exactSteps = 0;
            let argmaxMismatches = 0;
            for (let s = 0; s < STEPS; s++) {
              const d = maxAbsDiff(want.logits[s]!, got.logits[s]!);
              diff = Math.max(diff, d);
              if (d < EXACT) exactSteps++;
              const mine = got.tokens[s]!;
              const theirs = want.tokens[s]!;
              if (mine !== theirs) {
                argmaxMismatches++;
                // Allowed only where llama.cpp itself scores the two tokens within the tolerance.
                const margin = want.logits[s]![theirs]! - want.logits[s]![mine]!;
                expect.soft(margin, `${format} '${name}' step ${s}: argmax ${mine} vs ${theirs} is not a near-tie`).toBeLessThanOrEqual(tol);
              }
            }
            want.tokens.forEach((t) => distinctAll.add(t));
            exactAll += exactSteps;
            stepsAll += STEPS;
            rows.push({ model: label, format, prompt: name, argmaxMismatches, exactSteps, maxLogitDiff: diff, distinct: new Set(want.tokens).size });
            expect.soft(diff, `${format} '${name}' max logit diff`).toBeLessThanOrEqual(tol);
            // F32 weights with an RMSNorm arch have no rounding boundaries at all: every step must be exact.
            if (format === 'F32' && base.arch !== 'starcoder2') expect.soft(exactSteps, `${format} '${name}' steps agreeing within ${EXACT}`).toBe(STEPS);
          }
          if (format !== 'F16' && format !== 'BF16') {
            expect(exactAll / stepsAll, `${format}: fraction of steps agreeing within ${EXACT}`).toBeGreaterThanOrEqual(MIN_EXACT_FRACTION);
          }
          // A model that repeats one token would make the greedy comparison meaningless.
          expect(distinctAll.size, 'distinct greedy tokens over all prompts').toBeGreaterThanOrEqual(12);
        } finally {
          await reference.dispose();
          await oracle.dispose();
        }
      });
    }
  });
}
