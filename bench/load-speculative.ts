// Prompt-lookup speculative decoding on a trained model: HumanEval single-line infilling tasks
// completed greedily with and without drafting. Checks the outputs are identical and reports the
// draft acceptance rate, forward steps saved and decode speed on the chosen backend. Prints JSON
// and a table; writes bench/results/load-speculative-<backend>.json.
//
// Run from the repository root:
//   npx esbuild bench/load-speculative.ts --bundle --platform=node --packages=external --loader:.wgsl=text \
//     --outfile=bench/tmp/load-speculative.js && node bench/tmp/load-speculative.js \
//     [--model models/cachet-tiny.Q8_0.gguf] [--tasks 12] [--max-tokens 48] [--draft 4] [--backend reference]

import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { resolve } from 'node:path';
import { gunzipSync } from 'node:zlib';
import type { BackendChoice } from '../engine/protocol';
import { Engine } from '../engine/runtime/engine';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}

const root = process.cwd();
const modelPath = resolve(root, arg('model', 'models/cachet-tiny.Q8_0.gguf'));
const evalPath = resolve(root, arg('eval', '../shared/fixtures/eval/HumanEval-SingleLineInfilling.jsonl.gz'));
const tasks = Number(arg('tasks', '12'));
const maxTokens = Number(arg('max-tokens', '48'));
const maxDraft = Number(arg('draft', '4'));
const ngram = Number(arg('ngram', '3'));
const backend = arg('backend', 'reference') as BackendChoice;

interface Task { task_id: string; prompt: string; suffix: string; canonical_solution: string }

async function main(): Promise<void> {
  if (!existsSync(modelPath) || !existsSync(evalPath)) {
    console.log(`SKIP: needs ${modelPath} and ${evalPath}`);
    return;
  }
  const lines = gunzipSync(readFileSync(evalPath)).toString('utf8').split('\n').filter((l) => l.trim());
  // Spread the picked tasks over the set (many consecutive tasks share one problem).
  const stride = Math.max(1, Math.floor(lines.length / tasks));
  const picked: Task[] = Array.from({ length: tasks }, (_, i) => JSON.parse(lines[i * stride]!) as Task);

  const engine = await Engine.load({ modelPath, backend, contextLength: 2048 });
  const rows: { task: string; identical: boolean; tokens: number; drafted: number; accepted: number; plainMs: number; specMs: number; exact: boolean }[] = [];
  try {
    for (const t of picked) {
      const fim = { prefix: t.prompt, suffix: t.suffix, filePath: 'solution.py' };
      engine.clearCache();
      const plain = await engine.complete({ fim, maxTokens });
      engine.clearCache();
      const spec = await engine.complete({ fim, maxTokens, speculative: { maxDraft, ngram } });
      const decodeMs = (r: typeof plain) => r.timings.totalMs - r.timings.ttftMs;
      rows.push({
        task: t.task_id,
        identical: plain.text === spec.text && plain.tokenIds.join() === spec.tokenIds.join(),
        tokens: plain.tokenIds.length,
        drafted: spec.timings.draftTokens ?? 0,
        accepted: spec.timings.acceptedDraftTokens ?? 0,
        plainMs: decodeMs(plain),
        specMs: decodeMs(spec),
        exact: plain.text.trim() === t.canonical_solution.trim(),
      });
      process.stderr.write('.');
    }
  } finally {
    await engine.dispose();
  }
  process.stderr.write('\n');
  const sum = (f: (r: (typeof rows)[number]) => number) => rows.reduce((a, r) => a + f(r), 0);
  const drafted = sum((r) => r.drafted);
  const accepted = sum((r) => r.accepted);
  const tokens = sum((r) => r.tokens);
  const result = {
    bench: 'load-speculative',
    date: new Date().toISOString(),
    machine: { cpus: cpus().length, cpu: cpus()[0]?.model ?? 'unknown', node: process.version },
    model: { path: arg('model', 'models/cachet-tiny.Q8_0.gguf'), name: engine.info.name, weights: engine.info.weightType, backend: engine.info.backend },
    settings: { tasks: rows.length, maxTokens, maxDraft, ngram, eval: 'HumanEval-SingleLineInfilling (every Nth task)' },
    identicalOutputs: `${rows.filter((r) => r.identical).length}/${rows.length}`,
    generatedTokens: tokens,
    drafted,
    accepted,
    acceptanceRate: drafted ? Math.round((accepted / drafted) * 1000) / 1000 : 0,
    /** Decode steps: one per token without drafting; with it, tokens minus accepted drafts. */
    decodeSteps: { plain: tokens, speculative: tokens - accepted },
    decodeMs: { plain: Math.round(sum((r) => r.plainMs)), speculative: Math.round(sum((r) => r.specMs)) },
    exactMatch: `${rows.filter((r) => r.exact).length}/${rows.length}`,
    rows,
  };
  console.log(JSON.stringify(result, null, 2));
  console.log('');
  console.log('| metric | value |');
  console.log('|---|---|');
  console.log(`| identical greedy outputs | ${result.identicalOutputs} |`);
  console.log(`| drafted / accepted (rate) | ${drafted} / ${accepted} (${result.acceptanceRate}) |`);
  console.log(`| decode steps plain / speculative | ${result.decodeSteps.plain} / ${result.decodeSteps.speculative} |`);
  console.log(`| decode ms plain / speculative (${result.model.backend}) | ${result.decodeMs.plain} / ${result.decodeMs.speculative} |`);
  console.log(`| exact match vs canonical | ${result.exactMatch} |`);
  mkdirSync(resolve(root, 'bench/results'), { recursive: true });
  const out = resolve(root, `bench/results/load-speculative-${result.model.backend === 'reference' ? 'cpu' : result.model.backend}.json`);
  writeFileSync(out, JSON.stringify(result, null, 2) + '\n');
  console.log(`wrote ${out}`);
  if (rows.some((r) => !r.identical)) process.exitCode = 1;
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
