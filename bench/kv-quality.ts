// Chunk-reuse quality vs full recompute on the reference backend (random-weight test models).
// Run: npx esbuild bench/kv-quality.ts --bundle --platform=node --outfile=/tmp/kvq.js \
//        --external:webgpu --external:onnxruntime-node && node /tmp/kvq.js [--prompts N] [--steps N]
// Prints JSON and a table; writes bench/results/kv-quality-cpu.json.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { compare, createHarness, makePrompts, modeName, runFull, runReuse, type Comparison, type QualityMode } from './kv-quality-harness';
import type { TestModelOptions } from '../test/helpers/make-test-model';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
}

const PROMPTS = arg('prompts', 6);
const STEPS = arg('steps', 16);
const SHAPE = { prefix: 32, chunks: [96, 80, 64], query: 16 };
const MODES: QualityMode[] = [
  { kind: 'rotate' },
  { kind: 'blend', ratio: 0 },
  { kind: 'blend', ratio: 0.1 },
  { kind: 'blend', ratio: 0.15 },
  { kind: 'blend', ratio: 0.2 },
  { kind: 'blend', ratio: 0.3 },
  { kind: 'blend', ratio: 1 },
  { kind: 'random', ratio: 0.2 },
  { kind: 'ape' },
];
const MODELS: TestModelOptions[] = [
  { arch: 'llama', layers: 4, dims: 128, heads: 4, kvHeads: 2, ff: 256, seed: 11 },
  { arch: 'qwen2', layers: 4, dims: 128, heads: 4, kvHeads: 2, ff: 256, seed: 12 },
];

interface Row {
  model: string;
  mode: string;
  kl: number;
  klMax: number;
  top1: number;
  greedyMatch: number;
  greedyPrefix: number;
  recomputedFraction: number;
}

async function main() {
  const t0 = Date.now();
  const rows: Row[] = [];
  for (const m of MODELS) {
    const h = await createHarness(m);
    const prompts = makePrompts(PROMPTS, 1000 + (m.seed ?? 0), SHAPE);
    const acc = new Map<string, { c: Comparison[]; rec: number }>();
    const chunkTokens = SHAPE.chunks.reduce((a, b) => a + b, 0);
    for (const p of prompts) {
      const full = await runFull(h, p, STEPS);
      for (const mode of MODES) {
        const out = await runReuse(h, p, mode, STEPS);
        const key = modeName(mode);
        const e = acc.get(key) ?? { c: [], rec: 0 };
        e.c.push(compare(full, out));
        e.rec += out.recomputed / chunkTokens;
        acc.set(key, e);
      }
    }
    for (const [mode, e] of acc) {
      const mean = (f: (c: Comparison) => number) => e.c.reduce((s, c) => s + f(c), 0) / e.c.length;
      rows.push({
        model: `${m.arch}-L${m.layers}-d${m.dims}`,
        mode,
        kl: mean((c) => c.kl),
        klMax: Math.max(...e.c.map((c) => c.klMax)),
        top1: mean((c) => c.top1),
        greedyMatch: mean((c) => c.greedyMatch),
        greedyPrefix: mean((c) => c.greedyPrefix),
        recomputedFraction: e.rec / e.c.length,
      });
    }
    await h.dispose();
  }
  const result = {
    bench: 'kv-quality',
    backend: 'reference (CPU, f32)',
    date: new Date().toISOString(),
    prompts: PROMPTS,
    greedySteps: STEPS,
    shape: SHAPE,
    note:
      'Random-weight test models (makeTestModel, byte vocab). KL(full || mode) and top-1 agreement averaged over the ' +
      `${SHAPE.query} query positions of each prompt; greedy = fraction of ${STEPS} greedy steps equal to full recompute. ` +
      'blend-r recomputes r of the chunk tokens chosen by V deviation at layer 1 (probe = first 2 layers of the model); ' +
      'random-r recomputes as many tokens picked at random (a control for the selection). ' +
      'ape = chunks at their encoded positions, attention temperature/scale not applied (T = s = 1).',
    seconds: (Date.now() - t0) / 1000,
    rows,
  };
  console.log(JSON.stringify(result, null, 2));
  const pad = (s: string, n: number) => s.padEnd(n);
  console.log(`\n${pad('model', 18)}${pad('mode', 12)}${pad('KL', 12)}${pad('KLmax', 12)}${pad('top1', 8)}${pad('greedy', 8)}${pad('prefix', 8)}recomp`);
  for (const r of rows) {
    console.log(
      `${pad(r.model, 18)}${pad(r.mode, 12)}${pad(r.kl.toExponential(2), 12)}${pad(r.klMax.toExponential(2), 12)}` +
        `${pad(r.top1.toFixed(3), 8)}${pad(r.greedyMatch.toFixed(3), 8)}${pad(r.greedyPrefix.toFixed(1), 8)}${r.recomputedFraction.toFixed(2)}`,
    );
  }
  const dir = join(process.cwd(), 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'kv-quality-cpu.json'), JSON.stringify(result, null, 2) + '\n');
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
