// Prompt-lookup speculative decoding on a trained model: HumanEval single-line infilling tasks
// completed greedily. For every task the acceptance drafting would get is computed from the plain
// greedy output (simulateSpeculative, which the tests tie to the scheduler's own counts); the
// first --verify tasks also run the real speculative path, which must give identical output and
// the same counts. Reports acceptance rate, forward steps saved and decode time on the backend.
// Prints JSON and a table; writes bench/results/load-speculative-<backend>.json.
//
// Run from the repository root:
//   npx esbuild bench/load-speculative.ts --bundle --platform=node --packages=external --loader:.wgsl=text \
//     --outfile=bench/tmp/load-speculative.js && node bench/tmp/load-speculative.js \
//     [--model models/cachet-tiny.Q8_0.gguf] [--tasks 8] [--max-tokens 32] [--draft 4] [--verify 2] [--backend reference]

import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { resolve } from 'node:path';
import { gunzipSync } from 'node:zlib';
import type { BackendChoice } from '../engine/protocol';
import { Engine } from '../engine/runtime/engine';
import { simulateSpeculative } from '../engine/runtime/speculative';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}

const root = process.cwd();
const modelPath = resolve(root, arg('model', 'models/cachet-tiny.Q8_0.gguf'));
const evalPath = resolve(root, arg('eval', '../shared/fixtures/eval/HumanEval-SingleLineInfilling.jsonl.gz'));
const tasks = Number(arg('tasks', '8'));
const maxTokens = Number(arg('max-tokens', '32'));
const verify = Number(arg('verify', '2'));
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
  const rows: {
    task: string; tokens: number; finish: string; drafted: number; accepted: number; steps: number;
    verified?: { identical: boolean; drafted: number; accepted: number; plainDecodeMs: number; specDecodeMs: number };
    exact: boolean;
  }[] = [];
  try {
    for (const [i, t] of picked.entries()) {
      const fim = { prefix: t.prompt, suffix: t.suffix, filePath: 'solution.py' };
      engine.clearCache();
      const plain = await engine.complete({ fim, maxTokens });
      // The prompt ids the engine used and the output with its end-of-generation token.
      const promptIds = engine.fimPrompt(fim, maxTokens).ids;
      const output = plain.finishReason === 'eog' ? [...plain.tokenIds, -1] : plain.tokenIds;
      const sim = simulateSpeculative(promptIds, output, { maxDraft, ngram, maxTokens });
      const row: (typeof rows)[number] = {
        task: t.task_id, tokens: plain.tokenIds.length, finish: plain.finishReason, ...sim,
        exact: plain.text.trim() === t.canonical_solution.trim(),
      };
      if (i < verify) {
        engine.clearCache();
        const spec = await engine.complete({ fim, maxTokens, speculative: { maxDraft, ngram } });
        const decodeMs = (r: typeof plain) => Math.round(r.timings.totalMs - r.timings.ttftMs);
        row.verified = {
          identical: plain.text === spec.text && plain.tokenIds.join() === spec.tokenIds.join(),
          drafted: spec.timings.draftTokens ?? 0, accepted: spec.timings.acceptedDraftTokens ?? 0,
          plainDecodeMs: decodeMs(plain), specDecodeMs: decodeMs(spec),
        };
      }
      rows.push(row);
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
  const verified = rows.filter((r) => r.verified);
  const verifiedOk = verified.filter((r) => r.verified!.identical && r.verified!.drafted === r.drafted && r.verified!.accepted === r.accepted);
  const result = {
    bench: 'load-speculative',
    date: new Date().toISOString(),
    machine: { cpus: cpus().length, cpu: cpus()[0]?.model ?? 'unknown', node: process.version },
    model: { path: arg('model', 'models/cachet-tiny.Q8_0.gguf'), name: engine.info.name, weights: engine.info.weightType, backend: engine.info.backend },
    settings: { tasks: rows.length, maxTokens, maxDraft, ngram, verify, eval: 'HumanEval-SingleLineInfilling (every Nth task)' },
    generatedTokens: tokens,
    drafted,
    accepted,
    acceptanceRate: drafted ? Math.round((accepted / drafted) * 1000) / 1000 : 0,
    /** Forward passes after the prefill: one per token without drafting, one per verify step with it. */
    decodeSteps: { plain: sum((r) => r.tokens + (r.finish === 'eog' ? 1 : 0)) - rows.length, speculative: sum((r) => r.steps) },
    verifiedTasks: `${verifiedOk.length}/${verified.length} identical output and identical counts`,
    exactMatch: `${rows.filter((r) => r.exact).length}/${rows.length}`,
    rows,
  };
  console.log(JSON.stringify(result, null, 2));
  console.log('');
  console.log('| metric | value |');
  console.log('|---|---|');
  console.log(`| tasks / generated tokens | ${rows.length} / ${tokens} |`);
  console.log(`| drafted / accepted (rate) | ${drafted} / ${accepted} (${result.acceptanceRate}) |`);
  console.log(`| decode steps plain / speculative | ${result.decodeSteps.plain} / ${result.decodeSteps.speculative} |`);
  console.log(`| verified with the real speculative path | ${result.verifiedTasks} |`);
  for (const r of verified) console.log(`| ${r.task} decode ms plain / speculative (${result.model.backend}) | ${r.verified!.plainDecodeMs} / ${r.verified!.specDecodeMs} |`);
  console.log(`| exact match vs canonical | ${result.exactMatch} |`);
  mkdirSync(resolve(root, 'bench/results'), { recursive: true });
  const out = resolve(root, `bench/results/load-speculative-${result.model.backend === 'reference' ? 'cpu' : result.model.backend}.json`);
  writeFileSync(out, JSON.stringify(result, null, 2) + '\n');
  console.log(`wrote ${out}`);
  if (verifiedOk.length !== verified.length) process.exitCode = 1;
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
