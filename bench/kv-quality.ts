// Chunk-reuse quality vs full recompute on the reference backend (random-weight test models).
// Run: npx esbuild bench/kv-quality.ts --bundle --platform=node --outfile=/tmp/kvq.js \
//        --external:webgpu --external:onnxruntime-node && node /tmp/kvq.js [--prompts N] [--steps N]
//        [--trained N] [--threads N]
// Prints JSON and a table; writes bench/results/kv-quality-cpu.json. The trained-model section
// uses onnxruntime-node when the bundle can resolve it (bundle under the repo, e.g. bench/tmp/),
// else the reference backend (slow: minutes per prompt).

import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { createReferenceBackend } from '../engine/backend/reference';
import { createOnnxBackend } from '../engine/backend/onnx';
import type { BackendFactory } from '../engine/backend/types';
import {
  compare,
  createHarness,
  makeCodePrompts,
  makePrompts,
  modeName,
  runFull,
  runReuse,
  type Comparison,
  type Harness,
  type QualityMode,
  type QualityPrompt,
} from './kv-quality-harness';
import type { TestModelOptions } from '../test/helpers/make-test-model';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
}

const PROMPTS = arg('prompts', 6);
const STEPS = arg('steps', 16);
/** Prompts for the trained model (slow on CPU: ~1 min each); 0 skips it. */
const TRAINED_PROMPTS = arg('trained', 3);
const TRAINED_MODEL = join(process.cwd(), 'models', 'cachet-tiny.Q8_0.gguf');
const TRAINED_SHAPE = { chunks: [64, 64, 64], query: 24 };
const THREADS = arg('threads', 2);
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
  backend: string;
  mode: string;
  kl: number;
  klMax: number;
  top1: number;
  greedyMatch: number;
  greedyPrefix: number;
  recomputedFraction: number;
}

async function measure(h: Harness, model: string, backend: string, prompts: QualityPrompt[], steps: number, rows: Row[]) {
  const acc = new Map<string, { c: Comparison[]; rec: number }>();
  for (const p of prompts) {
    const chunkTokens = p.chunks.reduce((a, c) => a + c.length, 0);
    const full = await runFull(h, p, steps);
    for (const mode of MODES) {
      const out = await runReuse(h, p, mode, steps);
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
      model,
      backend,
      mode,
      kl: mean((c) => c.kl),
      klMax: Math.max(...e.c.map((c) => c.klMax)),
      top1: mean((c) => c.top1),
      greedyMatch: mean((c) => c.greedyMatch),
      greedyPrefix: mean((c) => c.greedyPrefix),
      recomputedFraction: e.rec / e.c.length,
    });
  }
}

/** onnxruntime-node when it loads (much faster on CPU), else the reference backend. */
async function cpuFactory(): Promise<{ factory: BackendFactory; name: string }> {
  try {
    await import('onnxruntime-node');
    return { factory: createOnnxBackend as BackendFactory, name: 'onnx' };
  } catch {
    return { factory: createReferenceBackend, name: 'reference' };
  }
}

async function main() {
  const t0 = Date.now();
  const rows: Row[] = [];
  for (const m of MODELS) {
    const h = await createHarness(m);
    await measure(h, `${m.arch}-L${m.layers}-d${m.dims} (random)`, 'reference', makePrompts(PROMPTS, 1000 + (m.seed ?? 0), SHAPE), STEPS, rows);
    await h.dispose();
  }
  let trained: { model: string; backend: string; prompts: number; shape: typeof TRAINED_SHAPE } | undefined;
  if (TRAINED_PROMPTS > 0 && existsSync(TRAINED_MODEL)) {
    const cpu = await cpuFactory();
    // The reference backend needs minutes per prompt on this model: one prompt unless asked.
    const n = cpu.name === 'reference' && !process.argv.includes('--trained') ? 1 : TRAINED_PROMPTS;
    if (n !== TRAINED_PROMPTS) console.error('onnxruntime-node not resolvable from this bundle: trained model on the reference backend, 1 prompt');
    const h = await createHarness({ path: TRAINED_MODEL }, cpu.factory, THREADS);
    if (h.tokenizer) {
      const prompts = makeCodePrompts(h.tokenizer, process.cwd(), n, 77, TRAINED_SHAPE);
      await measure(h, 'cachet-tiny (trained)', cpu.name, prompts, STEPS, rows);
      trained = { model: 'models/cachet-tiny.Q8_0.gguf', backend: cpu.name, prompts: n, shape: TRAINED_SHAPE };
    }
    await h.dispose();
  }
  const result = {
    bench: 'kv-quality',
    backend: 'reference (CPU, f32) for random models; see trained.backend',
    date: new Date().toISOString(),
    host: `${cpus().length}x ${cpus()[0]?.model ?? '?'}, threads ${THREADS}`,
    prompts: PROMPTS,
    greedySteps: STEPS,
    shape: SHAPE,
    trained,
    note:
      'Random-weight test models (makeTestModel, byte vocab, random byte prompts) and, when present, the trained ' +
      'Cachet-Tiny on code windows from this repository (BOS + header prefix, 3 chunks from different files, query ' +
      'from another file). KL(full || mode) and top-1 agreement averaged over the ' +
      `${SHAPE.query} query positions of each prompt; greedy = fraction of ${STEPS} greedy steps equal to full recompute. ` +
      'blend-r recomputes r of the chunk tokens chosen by V deviation at layer 1 (probe = first 2 layers of the model); ' +
      'random-r recomputes as many tokens picked at random (a control for the selection). ' +
      'ape = chunks at their encoded positions, attention temperature/scale not applied (T = s = 1).',
    seconds: (Date.now() - t0) / 1000,
    rows,
  };
  console.log(JSON.stringify(result, null, 2));
  const pad = (s: string, n: number) => s.padEnd(n);
  console.log(`\n${pad('model', 28)}${pad('mode', 12)}${pad('KL', 12)}${pad('KLmax', 12)}${pad('top1', 8)}${pad('greedy', 8)}${pad('prefix', 8)}recomp`);
  for (const r of rows) {
    console.log(
      `${pad(r.model, 28)}${pad(r.mode, 12)}${pad(r.kl.toExponential(2), 12)}${pad(r.klMax.toExponential(2), 12)}` +
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
