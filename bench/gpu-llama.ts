// llama.cpp's Vulkan backend (node-llama-cpp's prebuilt binary) on the same GGUF that bench/gpu.ts
// measures, for the side-by-side table: prefill tok/s of a prompt of each context length (batch
// --batch), then --decode greedy steps after it. Two decode figures: llama.cpp's own eval timing
// (printTimings, the kernel-side number llama-bench reports) and the wall time of node-llama-cpp's
// token loop (what an application embedding it sees).
//
//   node dist/bench-gpu-llama.js --llama DIR/node_modules/node-llama-cpp --model F.gguf
//        --ctx 512,4096 [--passes N (report the last)] [--decode 64] [--batch 2048] [--vocab N (token ids drawn below N)] [--out FILE]
// Pipelines compile on a context's first evaluation (~20 s for a new shape): a short warm-up
// context runs first.

import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1]! : def;
}

// @ts-ignore -- node-llama-cpp is not a dependency of the root package; loaded from --llama
type NodeLlamaCpp = typeof import('node-llama-cpp');

/** "eval time = 123.45 ms / 64 runs" from llama_perf_context_print. */
function evalTime(lines: string[]): { ms: number; runs: number } | undefined {
  for (const l of lines) {
    const m = /\beval time\s*=\s*([\d.]+) ms\s*\/\s*(\d+) runs/.exec(l);
    if (m && !/prompt eval/.test(l)) return { ms: Number(m[1]), runs: Number(m[2]) };
  }
  return undefined;
}

async function main(): Promise<void> {
  const dir = resolve(arg('llama', 'node_modules/node-llama-cpp'));
  const modelPath = arg('model', '');
  const contexts = arg('ctx', '512,4096').split(',').map(Number);
  const decodeSteps = Number(arg('decode', '64'));
  const batch = Number(arg('batch', '2048'));
  const out = arg('out', '');
  const mod = (await import(pathToFileURL(resolve(dir, 'dist/index.js')).href)) as NodeLlamaCpp;
  const logs: string[] = [];
  const llama = await mod.getLlama({
    gpu: arg('gpu', 'vulkan') === 'false' ? false : (arg('gpu', 'vulkan') as 'vulkan'),
    build: 'never',
    logLevel: mod.LlamaLogLevel.info,
    logger: (_level: unknown, message: string) => { logs.push(message); },
  });
  const gpuName = await llama.getGpuDeviceNames().then((n: string[]) => n.join(', '), () => 'unknown');
  const t0 = performance.now();
  const model = await llama.loadModel({ modelPath, gpuLayers: 'max' });
  const loadS = (performance.now() - t0) / 1000;
  const vocab = model.tokens.bos ?? 1;
  const nVocab = Number(arg('vocab', '150000'));
  const tokenAt = (i: number) => ((i * 7919 + 13) % nVocab) || vocab;
  const rows: Record<string, unknown>[] = [];
  const write = (value: unknown) => {
    if (!out) return;
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, JSON.stringify(value, null, 2) + '\n');
  };

  // warm-up: pipelines for prompt and decode shapes compile here
  {
    const ctx = await model.createContext({ contextSize: 1024, batchSize: Math.min(batch, 1024), flashAttention: true, threads: 4 });
    const seq = ctx.getSequence();
    const toks = Array.from({ length: 600 }, (_, i) => tokenAt(i));
    await seq.evaluateWithoutGeneratingNewTokens(toks as never);
    let n = 0;
    for await (const _ of seq.evaluate([tokenAt(600)] as never, { temperature: 0 })) if (++n >= 8) break;
    await ctx.dispose();
  }

  // Vulkan pipelines for each batch and KV size compile on first use: the last pass is reported
  const passes = Number(arg('passes', '1'));
  for (let pass = 1; pass <= passes; pass++) for (const context of contexts) {
    const ctx = await model.createContext({ contextSize: context + decodeSteps + 16, batchSize: batch, flashAttention: true, threads: 4, performanceTracking: true });
    const seq = ctx.getSequence();
    const prompt = Array.from({ length: context }, (_, i) => tokenAt(i));
    let t = performance.now();
    await seq.evaluateWithoutGeneratingNewTokens(prompt.slice(0, -1) as never);
    const prefillS = (performance.now() - t) / 1000;
    await ctx.printTimings(); // resets llama.cpp's counters: the next print covers decode only
    await new Promise((r) => setTimeout(r, 10));
    logs.length = 0;
    t = performance.now();
    let n = 0;
    for await (const _ of seq.evaluate(prompt.slice(-1) as never, { temperature: 0 })) if (++n >= decodeSteps) break;
    const loopS = (performance.now() - t) / 1000;
    logs.length = 0;
    await ctx.printTimings();
    await new Promise((r) => setTimeout(r, 10));
    const own = evalTime(logs);
    const row = {
      context,
      prefillTokPerS: (context - 1) / prefillS,
      decodeTokPerSLoop: decodeSteps / loopS,
      decodeTokPerSLlamaTiming: own ? (1000 * own.runs) / own.ms : null,
      llamaTimingRuns: own?.runs ?? null,
      timingLines: logs.filter((l) => /time/.test(l)).map((l) => l.trim()),
    };
    console.error(JSON.stringify({ pass, ...row }));
    if (pass < passes) { await ctx.dispose(); continue; }
    rows.push(row);
    write({ partial: true, rows });
    await ctx.dispose();
  }
  const result = { bench: 'gpu-llama.cpp-vulkan', date: new Date().toISOString(), gpu: gpuName, model: modelPath, loadSeconds: loadS, batch, decodeSteps, flashAttention: true, rows };
  console.log(JSON.stringify(result, null, 2));
  write(result);
  await model.dispose();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
