// CPU decode/prefill: Cachet's onnxruntime-node backend against llama.cpp CPU (node-llama-cpp) on
// the same random-weight GGUF shaped like Qwen2.5-Coder-0.5B (24 layers, 896 dims, 14/2 heads,
// ff 4864, the real 151,936-token qwen2 vocabulary), in Q8_0 and Q4_0, at context 512 and 4k,
// with the same thread count. Prints JSON and a table; writes bench/results/cpu-2core.json.
//
//   npx esbuild bench/cpu.ts --bundle --platform=node --outfile=bench/tmp/cpu-bench.js \
//     --external:onnxruntime-node --external:webgpu --external:node-llama-cpp && \
//     node bench/tmp/cpu-bench.js [--threads 2] [--quants Q8_0,Q4_0] [--contexts 512,4096] \
//     [--decode 16] [--rounds 4] [--layers 24] [--kv f16|f32] [--no-llama]
// --kv picks the onnx backend's KV cache type (default f16, as llama.cpp's); --no-llama runs ours
// only (a quick probe; the result file is written only when llama.cpp ran beside it).

import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { cpus, hostname, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { createOnnxBackend } from '../engine/backend/onnx';
import type { Backend } from '../engine/backend/types';
import { openGguf } from '../engine/gguf';
import { loadWeights } from '../engine/model';
import { makeTestModel, type TestQuant } from '../test/helpers/make-test-model';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}

const root = process.cwd();
const threads = Number(arg('threads', '2'));
const quants = arg('quants', 'Q8_0,Q4_0').split(',') as TestQuant[];
const contexts = arg('contexts', '512,4096').split(',').map(Number);
const decodeSteps = Number(arg('decode', '16'));
const rounds = Number(arg('rounds', '4'));
const warmupSteps = 2;
const layers = Number(arg('layers', '24'));
const kvType = arg('kv', 'f16') as 'f16' | 'f32';
const withLlama = !process.argv.includes('--no-llama');
const chunk = 512;

interface Row {
  engine: 'cachet-onnx' | 'llama.cpp';
  quant: string;
  context: number;
  prefillTokens: number;
  prefillTokPerS: number;
  /** Median over the decode segments. */
  decodeTokPerS: number;
  decodeSegmentsTokPerS: number[];
}

function promptTokens(n: number, seed: number): number[] {
  let s = seed;
  return Array.from({ length: n }, () => {
    s = (s * 1103515245 + 12345) >>> 0;
    return s % 150000;
  });
}

function argmax(x: Float32Array): number {
  let b = 0;
  for (let i = 1; i < x.length; i++) if (x[i]! > x[b]!) b = i;
  return b;
}

/** One engine holding one prompt's context: prefill once, then decode in segments. */
interface Runner {
  /** Seconds for the whole prompt. */
  prefill(): Promise<number>;
  /** Seconds for `steps` greedy decode steps after what was decoded so far. */
  decode(steps: number): Promise<number>;
  dispose(): Promise<void>;
}

function cachetRunner(backend: Backend, prompt: number[], maxDecode: number): Runner {
  const slots = Int32Array.from({ length: prompt.length + maxDecode }, (_, i) => i);
  let tok = 0;
  let pos = prompt.length;
  return {
    async prefill() {
      const t0 = performance.now();
      for (let at = 0; at < prompt.length; at += chunk) {
        const part = prompt.slice(at, at + chunk);
        const [r] = await backend.forward([{
          tokens: Int32Array.from(part),
          positions: Int32Array.from(part, (_, i) => at + i),
          context: slots.subarray(0, at + part.length),
          logits: at + part.length >= prompt.length ? 'last' : 'none',
        }]);
        tok = argmax(r!.logits);
      }
      return (performance.now() - t0) / 1000;
    },
    async decode(steps) {
      const t0 = performance.now();
      for (let s = 0; s < steps; s++, pos++) {
        const [r] = await backend.forward([{ tokens: Int32Array.of(tok), positions: Int32Array.of(pos), context: slots.subarray(0, pos + 1), logits: 'last' }]);
        tok = argmax(r!.logits);
      }
      return (performance.now() - t0) / 1000;
    },
    dispose: () => backend.dispose(),
  };
}

// Types only; the module is loaded from test/oracle/node_modules at run time.
// @ts-ignore -- node-llama-cpp is installed in test/oracle, not at the root
type NodeLlamaCpp = typeof import('node-llama-cpp');
async function loadLlamaCpp(): Promise<NodeLlamaCpp | undefined> {
  try {
    return (await import(pathToFileURL(resolve(root, 'test/oracle/node_modules/node-llama-cpp/dist/index.js')).href)) as NodeLlamaCpp;
  } catch (e) {
    console.error(`llama.cpp unavailable (run npm ci in test/oracle): ${(e as Error).message}`);
    return undefined;
  }
}

async function llamaCppRunner(mod: NodeLlamaCpp, path: string, prompt: number[], contextSize: number): Promise<Runner> {
  const llama = await mod.getLlama({ gpu: false, build: 'never', logLevel: mod.LlamaLogLevel.error });
  const model = await llama.loadModel({ modelPath: path, gpuLayers: 0 });
  const context = await model.createContext({ contextSize, batchSize: chunk, threads, flashAttention: true, sequences: 1 });
  const seq = context.getSequence();
  type Tokens = Parameters<typeof seq.evaluateWithoutGeneratingNewTokens>[0];
  // The last prompt token is fed by the first decode step; then each segment feeds the token the
  // previous one sampled last (breaking out of evaluate leaves it unfed).
  let next = prompt.slice(-1) as unknown as Tokens;
  return {
    async prefill() {
      const t0 = performance.now();
      await seq.evaluateWithoutGeneratingNewTokens(prompt.slice(0, -1) as unknown as Tokens);
      return (performance.now() - t0) / 1000;
    },
    async decode(steps) {
      const t0 = performance.now();
      let n = 0;
      for await (const t of seq.evaluate(next, { temperature: 0 })) {
        next = [t] as unknown as Tokens;
        if (++n >= steps) break;
      }
      return (performance.now() - t0) / 1000;
    },
    async dispose() {
      await context.dispose();
      await model.dispose();
    },
  };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

async function main(): Promise<void> {
  const vocab = resolve(root, '../shared/fixtures/vocab/ggml-vocab-qwen2.gguf');
  const dir = resolve(root, 'bench/tmp');
  mkdirSync(dir, { recursive: true });
  const loadBefore = loadavg();
  const llamaCpp = withLlama ? await loadLlamaCpp() : undefined;
  const rows: Row[] = [];
  for (const quant of quants) {
    const t = performance.now();
    // Written once (about 3 minutes here) and reused: the weights depend only on these options.
    const path = join(dir, `qwen2.5-coder-0.5b-shape-${layers}L-${quant}.gguf`);
    if (!existsSync(path)) {
      makeTestModel({ arch: 'qwen2', layers, dims: 896, heads: 14, kvHeads: 2, ff: 4864, quant, seed: 1, vocab: { gguf: vocab }, contextLength: 32768, path });
    }
    console.error(`model ${path} ready in ${((performance.now() - t) / 1000).toFixed(1)} s`);
    for (const context of contexts) {
      const maxDecode = warmupSteps + rounds * decodeSteps;
      const prompt = promptTokens(context - maxDecode, context);
      const g = openGguf(path);
      const ours = cachetRunner(await createOnnxBackend(loadWeights(g), { kvSlots: context, threads, kvType }), prompt, maxDecode);
      const theirs = llamaCpp ? await llamaCppRunner(llamaCpp, path, prompt, context) : undefined;
      try {
        const oursPrefill = await ours.prefill();
        const theirPrefill = theirs ? await theirs.prefill() : 0;
        await ours.decode(warmupSteps);
        await theirs?.decode(warmupSteps);
        // Decode segments alternate between the engines (and which goes first), so load from other
        // work on a shared box hits both alike; each round's ratio compares neighbours in time.
        const oursSeg: number[] = [];
        const theirSeg: number[] = [];
        for (let r = 0; r < rounds; r++) {
          const order = r % 2 === 0 ? [ours, theirs] : [theirs, ours];
          for (const runner of order) {
            if (!runner) continue;
            const rate = decodeSteps / (await runner.decode(decodeSteps));
            (runner === ours ? oursSeg : theirSeg).push(rate);
          }
        }
        rows.push({ engine: 'cachet-onnx', quant, context, prefillTokens: prompt.length, prefillTokPerS: prompt.length / oursPrefill, decodeTokPerS: median(oursSeg), decodeSegmentsTokPerS: oursSeg });
        console.error(JSON.stringify(rows[rows.length - 1]));
        if (theirs) {
          rows.push({ engine: 'llama.cpp', quant, context, prefillTokens: prompt.length - 1, prefillTokPerS: (prompt.length - 1) / theirPrefill, decodeTokPerS: median(theirSeg), decodeSegmentsTokPerS: theirSeg });
          console.error(JSON.stringify(rows[rows.length - 1]));
        }
      } finally {
        await ours.dispose();
        await theirs?.dispose();
        g.close();
      }
    }
  }
  const result = {
    bench: 'cpu',
    date: new Date().toISOString(),
    host: hostname(),
    cpu: cpus()[0]?.model,
    cores: cpus().length,
    threads,
    // 1/5/15-minute load averages before and after (this run's own threads count in 'after'):
    // on a shared box, other work's load shows here.
    loadavg: { before: loadBefore, after: loadavg() },
    model: `random-weight qwen2, Qwen2.5-Coder-0.5B shape (${layers} layers, 896 dims, 14/2 heads, ff 4864, vocab 151936, tied)`,
    kvCache: { 'cachet-onnx': kvType, 'llama.cpp': 'f16 (default)' },
    method: `prefill in chunks of ${chunk} (llama.cpp batch ${chunk}, flash attention), ${warmupSteps} untimed decode steps, then ${rounds} rounds of ${decodeSteps} greedy decode steps alternating between the engines; decode tok/s is the median segment, the decode ratio the median of the rounds' ratios`,
    rows,
    ratios: quants.flatMap((quant) => contexts.map((context) => {
      const ours = rows.find((r) => r.engine === 'cachet-onnx' && r.quant === quant && r.context === context);
      const theirs = rows.find((r) => r.engine === 'llama.cpp' && r.quant === quant && r.context === context);
      if (!ours || !theirs) return undefined;
      const decode = median(ours.decodeSegmentsTokPerS.map((x, i) => x / theirs.decodeSegmentsTokPerS[i]!));
      return { quant, context, decode, prefill: ours.prefillTokPerS / theirs.prefillTokPerS };
    })).filter(Boolean),
  };
  console.log(JSON.stringify(result, null, 2));
  console.log('\n| engine | quant | context | prefill tok/s | decode tok/s |\n|---|---|---|---|---|');
  for (const r of rows) console.log(`| ${r.engine} | ${r.quant} | ${r.context} | ${r.prefillTokPerS.toFixed(1)} | ${r.decodeTokPerS.toFixed(2)} |`);
  if (!llamaCpp) return;
  mkdirSync(resolve(root, 'bench/results'), { recursive: true });
  writeFileSync(resolve(root, 'bench/results/cpu-2core.json'), JSON.stringify(result, null, 2) + '\n');
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
