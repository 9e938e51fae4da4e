// Tokenizer throughput: Cachet's tokenizer against llama.cpp's (node-llama-cpp, CPU) on ~1 MiB of
// TypeScript declarations, for the qwen2 and deepseek-coder vocabularies, checking both give the
// same ids. Prints JSON and a table; writes bench/results/tokenize-cpu.json.
//
// Run from the repository root:
//   npx esbuild bench/tokenize.ts --bundle --platform=node --outfile=/tmp/tokenize-bench.js \
//     && node /tmp/tokenize-bench.js [--vocab-dir ../shared/fixtures/vocab] [--bytes 1048576] [--runs 3]

import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { openGguf } from '../engine/gguf';
import { Tokenizer } from '../engine/tokenizer';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}

const root = process.cwd();
const vocabDir = resolve(root, arg('vocab-dir', '../shared/fixtures/vocab'));
const targetBytes = Number(arg('bytes', String(1 << 20)));
const runs = Number(arg('runs', '3'));
const vocabs = arg('vocabs', 'qwen2,deepseek-coder').split(',');

function corpus(): string {
  const dir = resolve(root, 'node_modules/typescript/lib');
  const files = readdirSync(dir).filter((f) => f.endsWith('.d.ts')).sort();
  let text = '';
  for (const f of files) {
    text += readFileSync(join(dir, f), 'utf8');
    if (Buffer.byteLength(text) >= targetBytes) break;
  }
  // Cut at a line end near the target size.
  const cut = text.lastIndexOf('\n', targetBytes);
  return text.slice(0, cut > 0 ? cut + 1 : text.length);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function ms(t0: bigint): number {
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

interface OracleTokenizer {
  tokenize(text: string): number[];
  dispose(): Promise<void>;
}

// The slice of node-llama-cpp used here (it lives in test/oracle/node_modules, outside the
// root package, so its types are not visible to this file).
interface NodeLlamaCpp {
  LlamaLogLevel: { error: unknown };
  getLlama(opts: { gpu: false; build: 'never'; logLevel: unknown }): Promise<{
    loadModel(opts: { modelPath: string; vocabOnly: boolean }): Promise<{
      tokenize(text: string, specialTokens: boolean): readonly number[];
      dispose(): Promise<void>;
    }>;
  }>;
}

async function openOracle(path: string): Promise<OracleTokenizer | undefined> {
  let mod: NodeLlamaCpp;
  try {
    const entry = resolve(root, 'test/oracle/node_modules/node-llama-cpp/dist/index.js');
    mod = (await import(pathToFileURL(entry).href)) as NodeLlamaCpp;
  } catch (e) {
    console.error(`llama.cpp oracle unavailable (test/oracle/node_modules/node-llama-cpp): ${(e as Error).message}`);
    return undefined;
  }
  const llama = await mod.getLlama({ gpu: false, build: 'never', logLevel: mod.LlamaLogLevel.error });
  const model = await llama.loadModel({ modelPath: path, vocabOnly: true });
  return {
    tokenize: (text) => Array.from(model.tokenize(text, false)),
    dispose: () => model.dispose(),
  };
}

async function main(): Promise<void> {
  const text = corpus();
  const bytes = Buffer.byteLength(text);
  const mb = bytes / 1e6;
  const results = [];
  for (const name of vocabs) {
    const path = join(vocabDir, `ggml-vocab-${name}.gguf`);
    const t0 = process.hrtime.bigint();
    const gguf = openGguf(path);
    const loadOnce = () => Tokenizer.fromGguf(gguf);
    loadOnce();
    const loadMs = ms(t0);

    // Runs interleave Cachet and llama.cpp so that load from other processes hits both alike.
    // Cold: a fresh tokenizer each run (empty word cache). Warm: the same tokenizer again.
    const oracle = await openOracle(path);
    const cold: number[] = [];
    const warm: number[] = [];
    const llamaTimes: number[] = [];
    let ids: number[] = [];
    let ref: number[] | undefined;
    for (let r = 0; r < runs; r++) {
      const tok = loadOnce();
      let t = process.hrtime.bigint();
      ids = tok.encode(text);
      cold.push(ms(t));
      t = process.hrtime.bigint();
      tok.encode(text);
      warm.push(ms(t));
      if (oracle) {
        t = process.hrtime.bigint();
        ref = oracle.tokenize(text);
        llamaTimes.push(ms(t));
      }
    }
    gguf.close();
    await oracle?.dispose();

    const llamaMs = ref ? median(llamaTimes) : undefined;
    const llamaTokens = ref?.length;
    let identical: boolean | undefined;
    let firstMismatch: number | undefined;
    if (ref) {
      identical = ref.length === ids.length && ref.every((id, i) => id === ids[i]);
      if (!identical) {
        firstMismatch = ref.findIndex((id, i) => id !== ids[i]);
        if (firstMismatch < 0) firstMismatch = Math.min(ref.length, ids.length);
      }
    }
    results.push({
      vocab: name,
      tokens: ids.length,
      cachet: {
        loadMs: Math.round(loadMs),
        coldMs: Math.round(median(cold)),
        warmMs: Math.round(median(warm)),
        coldMBps: +(mb / (median(cold) / 1000)).toFixed(2),
        warmMBps: +(mb / (median(warm) / 1000)).toFixed(2),
      },
      llamaCpp: llamaMs === undefined ? null : { ms: Math.round(llamaMs), MBps: +(mb / (llamaMs / 1000)).toFixed(2), tokens: llamaTokens },
      identical: identical ?? null,
      ...(firstMismatch !== undefined ? { firstMismatch } : {}),
    });
  }

  const report = {
    bench: 'tokenize',
    date: new Date().toISOString(),
    machine: { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, node: process.version, loadAvg1m: +loadavg()[0]!.toFixed(2) },
    corpus: { source: 'node_modules/typescript/lib/*.d.ts (sorted, concatenated)', bytes, chars: text.length },
    runs,
    note: 'median of runs (Cachet and llama.cpp interleaved); cold = fresh tokenizer (empty per-word BPE cache), warm = same tokenizer again; llama.cpp via node-llama-cpp model.tokenize(text) (add_special=false, parse_special=false)',
    results,
  };
  console.log(JSON.stringify(report, null, 2));
  console.log('');
  console.log('vocab            tokens   cachet cold MB/s   cachet warm MB/s   llama.cpp MB/s   identical');
  for (const r of results) {
    console.log(
      `${r.vocab.padEnd(16)} ${String(r.tokens).padStart(7)}   ${String(r.cachet.coldMBps).padStart(16)}   ${String(r.cachet.warmMBps).padStart(16)}   ` +
        `${String(r.llamaCpp?.MBps ?? 'n/a').padStart(14)}   ${r.identical ?? 'n/a'}`,
    );
  }
  mkdirSync(resolve(root, 'bench/results'), { recursive: true });
  writeFileSync(resolve(root, 'bench/results/tokenize-cpu.json'), JSON.stringify(report, null, 2) + '\n');
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
