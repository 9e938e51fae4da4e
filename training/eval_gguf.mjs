// Single-line FIM evaluation of a GGUF under llama.cpp (node-llama-cpp from test/oracle), the same
// protocol as train.py's on-device evaluation: greedy PSM, prefix cut to its last 700 tokens and
// suffix to its first 250, first generated line vs the hole's line (trailing whitespace ignored),
// next to the copy-previous-line baseline.
// usage: node training/eval_gguf.mjs MODEL.gguf [N] [HumanEval-SingleLineInfilling.jsonl.gz]
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(join(root, 'test', 'oracle', 'package.json'));
const { getLlama, LlamaLogLevel } = await import(require.resolve('node-llama-cpp'));

const [modelPath, nArg, evalArg] = process.argv.slice(2);
const evalPath = evalArg ?? join(root, '..', 'shared', 'fixtures', 'eval', 'HumanEval-SingleLineInfilling.jsonl.gz');
const rows = gunzipSync(readFileSync(evalPath)).toString('utf8').trim().split('\n').map((l) => JSON.parse(l));
const tasks = rows.slice(0, nArg ? Number(nArg) : rows.length);

function editSim(a, b) {
  if (!a && !b) return 1;
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] !== b[j - 1] ? 1 : 0));
    prev = cur;
  }
  return 1 - prev[b.length] / Math.max(a.length, b.length);
}

const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error });
const model = await llama.loadModel({ modelPath, gpuLayers: 0 });
const ctx = await model.createContext({ contextSize: 1024, threads: 1 });
const seq = ctx.getSequence();
const [BOS, EOS, HOLE, BEGIN, END] = [32013, 32014, 32015, 32016, 32017];
let em = 0, es = 0, bem = 0, bes = 0;
const t0 = Date.now();
for (const t of tasks) {
  await seq.clearHistory();
  const pre = model.tokenize(t.prompt).slice(-700);
  const suf = model.tokenize(t.suffix).slice(0, 250);
  const out = [];
  for await (const tok of seq.evaluate([BOS, BEGIN, ...pre, HOLE, ...suf, END], { temperature: 0 })) {
    if (tok === EOS || tok >= 32000) break;
    out.push(tok);
    if (model.detokenize([tok]).includes('\n') || out.length >= 40) break;
  }
  const got = model.detokenize(out).split('\n')[0].trimEnd();
  const want = t.canonical_solution.replace(/\r?\n$/, '').trimEnd();
  const lines = t.prompt.split('\n');
  const base = (lines[lines.length - 1] === '' ? lines[lines.length - 2] : lines[lines.length - 1]).trimEnd();
  em += got === want; es += editSim(got, want); bem += base === want; bes += editSim(base, want);
}
const n = tasks.length;
console.log(JSON.stringify({ model: modelPath, n, exact_match: em / n, edit_similarity: es / n, baseline_copy_prev_line: { exact_match: bem / n, edit_similarity: bes / n }, seconds: (Date.now() - t0) / 1000 }));
await model.dispose(); await llama.dispose();
