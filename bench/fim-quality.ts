// Quality of the embedded model (Cachet-Tiny) on held-out single-line FIM, through our engine on the
// Q8_0 GGUF, compared with the training run's own PyTorch numbers (training/results-cachet-tiny.json).
//
// (a) HumanEval-SingleLineInfilling (../shared/fixtures/eval; skipped with a message when absent),
// (b) single-line holes cut from JS/TS files of node_modules packages that were NOT in the training
//     data (training/js-packages.json lists what was; the Python hold-outs networkx/seaborn/xarray
//     are not installed here). Every task reports exact match and edit similarity of the first
//     generated line (train.py's metrics), with the copy-previous-line baseline beside it.
// Two prompt modes:
//   extension: engine.complete({fim}) exactly as the extension asks (engine/context assembles the
//              prompt with its budget for the model's 1024-token context);
//   training:  train.py's layout as token ids (BOS FIM_BEGIN prefix[-700:] HOLE suffix[:250] END),
//              so the difference to PyTorch is the engine's numerics alone.
// --speculative: also runs (b) with prompt-lookup speculative decoding and reports acceptance,
// decode time and whether the output is identical.
// --procs N forks N copies of itself over shards of the tasks (one engine each, --threads each).
//
// Run from the repository root:
//   npx esbuild bench/fim-quality.ts --bundle --platform=node --packages=external --loader:.wgsl=text \
//     --outfile=bench/tmp/fim-quality.js && node bench/tmp/fim-quality.js [--backend onnx] [--limit 200] \
//     [--heldout 100] [--modes extension,training] [--procs 1] [--threads 1] [--speculative] [--out FILE] [--tag KEY]
//     [--max-seconds 270: each process stops starting tasks after this; n says how many ran]
// Held-out tasks can be cut once and carried elsewhere: --dump-heldout F.json --dump-only, then
// --heldout-tasks F.json(.gz). Results merge into --out under runs[--tag] (default: backend+sets+modes).

import { fork } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { gunzipSync } from 'node:zlib';
import type { BackendChoice } from '../engine/protocol';
import { Engine } from '../engine/runtime/engine';
import {
  cutLineTasks, firstLine, listSources, previousLine, readHumanEval, scoreLine, spread, type LineTask,
} from './fim-quality-tasks';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}
const flag = (name: string) => process.argv.includes(`--${name}`);

const root = process.cwd();
const modelPath = resolve(root, arg('model', 'models/cachet-tiny.Q8_0.gguf'));
const evalPath = resolve(root, arg('eval', '../shared/fixtures/eval/HumanEval-SingleLineInfilling.jsonl.gz'));
const backend = arg('backend', 'onnx') as BackendChoice;
const limitArg = arg('limit', '200');
const heldoutCount = Number(arg('heldout', '100'));
const modes = arg('modes', 'extension,training').split(',').filter((m) => m === 'extension' || m === 'training') as Mode[];
const procs = Math.max(1, Number(arg('procs', '1')));
const threads = Number(arg('threads', '1'));
const maxTokens = Number(arg('max-tokens', '40'));
const speculative = flag('speculative');
const maxSeconds = Number(arg('max-seconds', '270'));
const outPath = resolve(root, arg('out', `bench/results/fim-quality-cpu.json`));
const shard = arg('shard', '');
const partPath = arg('part', '');

/** Packages in no training set (checked against training/js-packages.json at run time). */
const HELDOUT_PACKAGES = [
  'test/oracle/node_modules/minimist', 'test/oracle/node_modules/yargs', 'test/oracle/node_modules/yargs-parser',
  'test/oracle/node_modules/simple-git', 'test/oracle/node_modules/cmake-js', 'test/oracle/node_modules/lifecycle-utils',
  'test/oracle/node_modules/ipull', 'test/oracle/node_modules/eventemitter3', 'test/oracle/node_modules/node-llama-cpp/dist',
  'node_modules/glob', 'node_modules/minimatch', 'node_modules/sax', 'node_modules/path-scurry',
];

type Mode = 'extension' | 'training';
type SetName = 'humaneval' | 'heldout';

interface Job { set: SetName; task: LineTask }

interface Row {
  set: SetName;
  mode: Mode;
  id: string;
  want: string;
  got: string;
  exact: boolean;
  editSim: number;
  promptTokens: number;
  generatedTokens: number;
  ms: number;
  spec?: { identical: boolean; drafted: number; accepted: number; plainDecodeMs: number; specDecodeMs: number; plainSteps: number };
}

// train.py's prompt constants (deepseek-coder vocabulary).
const TRAIN_MAX_PREFIX = 700;
const TRAIN_MAX_SUFFIX = 250;

function trainingPrompt(engine: Engine, t: LineTask): number[] {
  const tok = engine.tokenizer;
  const fim = tok.fim!;
  const p = tok.encode(t.prefix, { addSpecial: false, parseSpecial: false });
  const s = tok.encode(t.suffix, { addSpecial: false, parseSpecial: false });
  return [tok.bos!, fim.prefix, ...p.slice(-TRAIN_MAX_PREFIX), fim.suffix, ...s.slice(0, TRAIN_MAX_SUFFIX), fim.middle];
}

async function runJobs(jobs: Job[]): Promise<Row[]> {
  const engine = await Engine.load({ modelPath, backend, threads });
  const rows: Row[] = [];
  try {
    const started = performance.now();
    for (const { set, task } of jobs) {
      // Time budget: stop starting tasks (rows so far are kept and reported as n).
      if ((performance.now() - started) / 1000 > maxSeconds) break;
      for (const mode of modes) {
        const t0 = performance.now();
        // Single-line holes: the answer is the first line, so generation may stop at the newline
        // (train.py also stops at the first token containing one).
        const r = mode === 'extension'
          ? await engine.complete({ fim: { prefix: task.prefix, suffix: task.suffix, filePath: task.filePath }, maxTokens, stop: ['\n'] })
          : await engine.generate({ prompt: { kind: 'tokens', tokenIds: trainingPrompt(engine, task) }, maxTokens, stop: ['\n'] });
        const ms = performance.now() - t0;
        const got = firstLine(r.text);
        const row: Row = {
          set, mode, id: task.id, want: task.want, got, ...scoreLine(got, task.want),
          promptTokens: r.timings.promptTokens, generatedTokens: r.timings.generatedTokens, ms,
        };
        if (speculative && set === 'heldout' && mode === 'extension') {
          const fim = { prefix: task.prefix, suffix: task.suffix, filePath: task.filePath };
          const s = await engine.complete({ fim, maxTokens, stop: ['\n'], speculative: { maxDraft: 4, ngram: 3 } });
          const decode = (x: typeof r) => x.timings.totalMs - Math.max(0, x.timings.ttftMs);
          row.spec = {
            identical: s.text === r.text && s.tokenIds.join() === r.tokenIds.join(),
            drafted: s.timings.draftTokens ?? 0, accepted: s.timings.acceptedDraftTokens ?? 0,
            plainDecodeMs: decode(r), specDecodeMs: decode(s), plainSteps: Math.max(0, r.timings.generatedTokens - 1),
          };
        }
        rows.push(row);
      }
      if (!partPath) process.stderr.write('.');
    }
  } finally {
    await engine.dispose();
  }
  return rows;
}

function summarize(rows: Row[], tasks: LineTask[], set: SetName, mode: Mode) {
  const rs = rows.filter((r) => r.set === set && r.mode === mode);
  const n = rs.length;
  if (n === 0) return undefined;
  // The baseline over the same tasks as the rows (a time budget may have cut the list short).
  const byId = new Map(tasks.map((t) => [t.id, t]));
  const base = rs.map((r) => byId.get(r.id)!).map((t) => scoreLine(previousLine(t.prefix), t.want));
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  const ms = rs.map((r) => r.ms).sort((a, b) => a - b);
  return {
    n,
    exactMatch: round(mean(rs.map((r) => (r.exact ? 1 : 0))), 4),
    editSimilarity: round(mean(rs.map((r) => r.editSim)), 4),
    baselineCopyPrevLine: { exactMatch: round(mean(base.map((b) => (b.exact ? 1 : 0))), 4), editSimilarity: round(mean(base.map((b) => b.editSim)), 4) },
    meanPromptTokens: round(mean(rs.map((r) => r.promptTokens)), 1),
    meanGeneratedTokens: round(mean(rs.map((r) => r.generatedTokens)), 2),
    msPerTaskP50: round(ms[Math.floor(ms.length / 2)]!, 0),
    examples: rs.slice(0, 6).map((r) => ({ id: r.id, want: r.want, got: r.got })),
  };
}

const round = (x: number, d: number) => Math.round(x * 10 ** d) / 10 ** d;

function buildJobs(): { jobs: Job[]; humaneval?: LineTask[]; heldout: LineTask[]; notes: string[]; heldoutFiles: number; packages: string[] } {
  const notes: string[] = [];
  const all = readHumanEval(evalPath);
  let humaneval: LineTask[] | undefined;
  if (!all) notes.push(`SKIP HumanEval: ${evalPath} is absent`);
  else if (limitArg === 'all') humaneval = all;
  // --pick first: the first N tasks (the training run's examples are tasks 0..7); default spread.
  else humaneval = arg('pick', 'spread') === 'first' ? all.slice(0, Number(limitArg)) : spread(all, Number(limitArg));

  let heldout: LineTask[] = [];
  let heldoutFiles = 0;
  let packages: string[] = [];
  const from = arg('heldout-tasks', '');
  if (from) {
    const raw = readFileSync(resolve(root, from));
    const saved = JSON.parse((from.endsWith('.gz') ? gunzipSync(raw) : raw).toString('utf8')) as { packages: string[]; files: number; tasks: LineTask[] };
    heldout = saved.tasks.slice(0, heldoutCount);
    packages = saved.packages;
    heldoutFiles = saved.files;
  } else if (heldoutCount > 0) {
    const trained = new Set((JSON.parse(readFileSync(resolve(root, 'training/js-packages.json'), 'utf8')) as { package: string }[]).map((p) => p.package));
    packages = HELDOUT_PACKAGES.filter((p) => existsSync(resolve(root, p)));
    for (const p of packages) {
      const name = p.replace(/^.*node_modules\//, '').replace(/\/dist$/, '');
      if (trained.has(name)) throw new Error(`${name} was in the training data; pick another held-out package`);
    }
    const files = listSources(packages.map((p) => resolve(root, p)));
    heldoutFiles = files.length;
    heldout = cutLineTasks(files, 2, heldoutCount);
    if (heldout.length === 0) notes.push('SKIP held-out: none of the held-out packages is installed');
  }
  const dump = arg('dump-heldout', '');
  if (dump) writeFileSync(resolve(root, dump), JSON.stringify({ packages, files: heldoutFiles, tasks: heldout }));
  const jobs: Job[] = [...(humaneval ?? []).map((task) => ({ set: 'humaneval' as const, task })), ...heldout.map((task) => ({ set: 'heldout' as const, task }))];
  return { jobs, humaneval, heldout, notes, heldoutFiles, packages };
}

async function main(): Promise<void> {
  if (!existsSync(modelPath)) {
    console.log(`SKIP: no model at ${modelPath}`);
    return;
  }
  const { jobs, humaneval, heldout, notes, heldoutFiles, packages } = buildJobs();
  if (flag('dump-only')) return;
  if (shard) {
    // Child: one shard of the jobs, rows to the part file.
    const [k, n] = shard.split('/').map(Number) as [number, number];
    const rows = await runJobs(jobs.filter((_, i) => i % n === k));
    writeFileSync(partPath, JSON.stringify(rows));
    return;
  }
  for (const n of notes) console.log(n);
  const t0 = performance.now();
  const load0 = loadavg();
  let rows: Row[];
  if (procs === 1) rows = await runJobs(jobs);
  else {
    const tmp = resolve(root, 'bench/tmp');
    mkdirSync(tmp, { recursive: true });
    const parts = await Promise.all(Array.from({ length: procs }, (_, k) => new Promise<Row[]>((ok, fail) => {
      const part = join(tmp, `fim-quality-part-${k}.json`);
      const args = process.argv.slice(2).filter((a, i, xs) => a !== '--dump-heldout' && xs[i - 1] !== '--dump-heldout');
      const child = fork(process.argv[1]!, [...args, '--shard', `${k}/${procs}`, '--part', part], { stdio: 'inherit' });
      child.on('exit', (code) => {
        if (code !== 0) return fail(new Error(`shard ${k} exited with ${code}`));
        const r = JSON.parse(readFileSync(part, 'utf8')) as Row[];
        unlinkSync(part);
        process.stderr.write(`[shard ${k}: ${r.length} rows] `);
        ok(r);
      });
    })));
    rows = parts.flat();
  }
  const wallS = (performance.now() - t0) / 1000;
  const load1 = loadavg();

  const training = JSON.parse(readFileSync(resolve(root, 'training/results-cachet-tiny.json'), 'utf8')) as {
    fim_humaneval_single_line: { n: number; exact_match: number; edit_similarity: number };
    fim_heldout: { n: number; exact_match: number; edit_similarity: number };
  };
  const pt = training.fim_humaneval_single_line;
  const results: Record<string, unknown> = {};
  for (const set of ['humaneval', 'heldout'] as SetName[]) {
    const tasks = set === 'humaneval' ? humaneval ?? [] : heldout;
    const bySet: Record<string, unknown> = {};
    for (const mode of modes) bySet[mode] = summarize(rows, tasks, set, mode);
    results[set] = bySet;
  }
  const heEngine = (results.humaneval as Record<Mode, ReturnType<typeof summarize>>)?.training;
  const specRows = rows.filter((r) => r.spec);
  const spec = specRows.length === 0 ? undefined : (() => {
    const sum = (f: (r: Row) => number) => specRows.reduce((a, r) => a + f(r), 0);
    const drafted = sum((r) => r.spec!.drafted);
    const accepted = sum((r) => r.spec!.accepted);
    const plain = sum((r) => r.spec!.plainDecodeMs);
    const sp = sum((r) => r.spec!.specDecodeMs);
    return {
      tasks: specRows.length, identical: specRows.filter((r) => r.spec!.identical).length,
      drafted, accepted, acceptanceRate: round(accepted / Math.max(1, drafted), 3),
      generatedTokens: sum((r) => r.generatedTokens),
      plainDecodeMs: round(plain, 0), specDecodeMs: round(sp, 0), decodeSpeedup: round(plain / Math.max(1e-9, sp), 2),
    };
  })();

  const out = {
    bench: 'fim-quality',
    date: new Date().toISOString(),
    machine: { cpus: cpus().length, cpu: cpus()[0]?.model ?? 'unknown', node: process.version, loadavgStart: load0.map((x) => round(x, 2)), loadavgEnd: load1.map((x) => round(x, 2)) },
    model: { path: 'models/cachet-tiny.Q8_0.gguf', backend, threadsPerProcess: threads, processes: procs },
    settings: { maxSeconds, humanevalTasks: humaneval?.length ?? 0, humanevalPick: limitArg === 'all' ? 'all' : arg('pick', 'spread') === 'first' ? 'first N' : 'evenly spaced', heldoutTasks: heldout.length, heldoutFiles, heldoutPackages: packages, maxTokens, modes, stop: 'first newline' },
    wallSeconds: round(wallS, 1),
    notes,
    ...results,
    pytorchReference: {
      source: 'training/results-cachet-tiny.json (bf16 PyTorch on the H100, all 1033 tasks, training layout)',
      humaneval: { n: pt.n, exactMatch: round(pt.exact_match, 4), editSimilarity: round(pt.edit_similarity, 4) },
      heldoutPythonNetworkxSeabornXarray: { n: training.fim_heldout.n, exactMatch: round(training.fim_heldout.exact_match, 4), editSimilarity: round(training.fim_heldout.edit_similarity, 4) },
      engineMinusPytorch: heEngine ? {
        exactMatch: round(heEngine.exactMatch - pt.exact_match, 4), editSimilarity: round(heEngine.editSimilarity - pt.edit_similarity, 4),
        comparable: heEngine.n === pt.n ? `same ${pt.n} tasks` : `subset of ${heEngine.n} tasks vs all ${pt.n}`,
      } : undefined,
    },
    speculative: spec,
    rows: rows.map(({ spec: _s, ...r }) => ({ ...r, ms: round(r.ms, 0), editSim: round(r.editSim, 3) })),
  };
  console.log(JSON.stringify({ ...out, rows: `${rows.length} rows (in the file)` }, null, 1));

  const lines = ['', `| set | prompt mode | n | exact match | edit sim | copy-prev-line EM / ES | ms/task p50 |`, '|---|---|--:|--:|--:|--:|--:|'];
  for (const set of ['humaneval', 'heldout'] as SetName[]) {
    for (const mode of modes) {
      const s = (results[set] as Record<Mode, ReturnType<typeof summarize>>)[mode];
      if (s) lines.push(`| ${set} | ${mode} | ${s.n} | ${s.exactMatch.toFixed(3)} | ${s.editSimilarity.toFixed(3)} | ${s.baselineCopyPrevLine.exactMatch.toFixed(3)} / ${s.baselineCopyPrevLine.editSimilarity.toFixed(3)} | ${s.msPerTaskP50} |`);
    }
  }
  lines.push(`| humaneval | PyTorch (training run) | ${pt.n} | ${pt.exact_match.toFixed(3)} | ${pt.edit_similarity.toFixed(3)} | 0.000 / 0.305 | |`);
  if (spec) lines.push('', `speculative (prompt lookup, draft 4, n-gram 3) on held-out: acceptance ${spec.acceptanceRate}, decode ${spec.plainDecodeMs} -> ${spec.specDecodeMs} ms (x${spec.decodeSpeedup}), identical ${spec.identical}/${spec.tasks}`);
  console.log(lines.join('\n'));

  // One file holds several runs (machines, backends, sets), keyed by --tag or backend+sets+modes.
  const key = arg('tag', '') || `${backend}-${humaneval?.length ? 'humaneval' + humaneval.length : ''}${heldout.length ? '-heldout' + heldout.length : ''}-${modes.join('+')}`;
  const prior = existsSync(outPath) ? JSON.parse(readFileSync(outPath, 'utf8')) as { runs?: Record<string, unknown> } : {};
  mkdirSync(dirname(outPath), { recursive: true });
  writeFileSync(outPath, JSON.stringify({ bench: 'fim-quality', runs: { ...(prior.runs ?? {}), [key]: out } }, null, 1) + '\n');
  console.log(`wrote ${outPath} (${round(wallS, 1)} s)`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
