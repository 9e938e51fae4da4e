// WebGPU backend benchmark: decode tok/s at several context lengths, prefill tok/s, the fraction of
// the memory-bandwidth floor, and GPU time per kernel family (timestamp queries).
// The model is a random-weight GGUF of a given shape, written once by a streaming writer.
//
//   node esbuild bench -> node dist/bench-gpu.js --shape qwen2.5-coder-1.5b --ctx 512,4096,16384
//   options: --shape tiny|deep-tiny|qwen2.5-coder-1.5b|qwen2.5-coder-7b  --quant Q8_0|Q4_K_M
//            --model PATH  --ctx LIST  --prefill-ctx LIST (contexts whose prefill is timed; at the
//            others decode runs over an unfilled cache of that length: same work per token)
//            --decode N  --profile N  --chunk N (prefill tokens per submit)  --out FILE
//            --bandwidth BYTES_PER_S  --dawn-flags "a,b" (default: $CACHET_DAWN_FLAGS or the backend's)

import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { performance } from 'node:perf_hooks';
import { GgufBuilder, GgufValueType, openGguf } from '../engine/gguf';
import { gpt2ByteToUnicode } from '../test/helpers/make-test-model';
import { loadWeights } from '../engine/model';
import { GgmlType } from '../engine/quant/types';
import { f32ToF16 } from '../engine/quant';
import { createWebGpuBackend, DEFAULT_DAWN_FLAGS, type WebGpuBackend } from '../engine/backend/webgpu';

interface Shape {
  layers: number;
  embd: number;
  heads: number;
  kvHeads: number;
  ff: number;
  vocab: number;
  /** token_embd doubles as the output matrix (no output.weight) */
  tied: boolean;
}

const SHAPES: Record<string, Shape> = {
  tiny: { layers: 2, embd: 256, heads: 4, kvHeads: 2, ff: 512, vocab: 1024, tied: true },
  // as many layers (dispatches) as the 1.5B model but tiny matrices: measures per-step overhead
  'deep-tiny': { layers: 28, embd: 256, heads: 2, kvHeads: 1, ff: 512, vocab: 1024, tied: true },
  'qwen2.5-coder-1.5b': { layers: 28, embd: 1536, heads: 12, kvHeads: 2, ff: 8960, vocab: 151936, tied: true },
  'qwen2.5-coder-7b': { layers: 28, embd: 3584, heads: 28, kvHeads: 4, ff: 18944, vocab: 152064, tied: false },
};

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1]! : def;
}

/** xorshift32 bytes: fast enough for 1.6 GB. */
function randomBytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  const u = new Uint32Array(out.buffer, 0, n >> 2);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < u.length; i++) {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    u[i] = s;
  }
  return out;
}

/** Random Q8_0 rows: int8 uniform in [-127, 127], per-block scale so weights have std ~ std. */
function randomQ8(rows: number, k: number, seed: number, std: number): Uint8Array {
  const blocks = (rows * k) / 32;
  const b = randomBytes(blocks * 34 + 4, seed).subarray(0, blocks * 34);
  const d = f32ToF16(std / 73); // uniform int8 has std ~73
  for (let i = 0; i < blocks; i++) {
    b[i * 34] = d & 0xff;
    b[i * 34 + 1] = d >> 8;
  }
  return b;
}

/** Random Q4_K blocks (d, dmin, 12 bytes of 6-bit scales/mins, 128 bytes of nibbles). */
function randomQ4K(rows: number, k: number, seed: number, std: number): Uint8Array {
  const blocks = (rows * k) / 256;
  const b = randomBytes(blocks * 144 + 4, seed).subarray(0, blocks * 144);
  const d = f32ToF16(std / 180); // scale (0..63) x nibble (0..15) has std ~180
  const dmin = f32ToF16((7.5 * std) / 180); // min x dmin ~ centres the block on zero on average
  for (let i = 0; i < blocks; i++) {
    b[i * 144] = d & 0xff;
    b[i * 144 + 1] = d >> 8;
    b[i * 144 + 2] = dmin & 0xff;
    b[i * 144 + 3] = dmin >> 8;
  }
  return b;
}

/** Random Q6_K blocks (128 bytes low bits, 64 high bits, 16 int8 scales, then d). */
function randomQ6K(rows: number, k: number, seed: number, std: number): Uint8Array {
  const blocks = (rows * k) / 256;
  const b = randomBytes(blocks * 210 + 4, seed).subarray(0, blocks * 210);
  const d = f32ToF16(std / 1370); // int8 scale x (q - 32) has std ~74 x 18.5
  for (let i = 0; i < blocks; i++) {
    b[i * 210 + 208] = d & 0xff;
    b[i * 210 + 209] = d >> 8;
  }
  return b;
}

export type BenchQuant = 'Q8_0' | 'Q4_K_M';

function f32(values: number, fill: number): Uint8Array {
  return new Uint8Array(new Float32Array(values).fill(fill).buffer);
}

/**
 * Streams a qwen2-architecture GGUF of the shape to `path` (tensors generated one by one).
 * Q4_K_M follows llama.cpp's mix: Q4_K everywhere except attn_v and ffn_down in the first and last
 * eighth of the layers and every third layer between (Q6_K), and Q6_K for the output matrix.
 */
export function writeBenchModel(path: string, s: Shape, quant: BenchQuant = 'Q8_0'): void {
  const headDim = s.embd / s.heads;
  const kvDim = s.kvHeads * headDim;
  const b = new GgufBuilder();
  b.string('general.architecture', 'qwen2');
  b.string('general.name', `cachet-bench-${s.layers}x${s.embd}-${quant}`);
  b.u32('general.alignment', 32);
  b.u32('qwen2.context_length', 65536);
  b.u32('qwen2.embedding_length', s.embd);
  b.u32('qwen2.block_count', s.layers);
  b.u32('qwen2.feed_forward_length', s.ff);
  b.u32('qwen2.attention.head_count', s.heads);
  b.u32('qwen2.attention.head_count_kv', s.kvHeads);
  b.f32('qwen2.attention.layer_norm_rms_epsilon', 1e-6);
  b.f32('qwen2.rope.freq_base', 1000000);
  // A synthetic byte-level vocabulary of the real size, so llama.cpp loads the same file: the 256
  // GPT-2 byte tokens, unique fillers, and an end-of-text token last.
  const bytes = gpt2ByteToUnicode();
  const tokens = Array.from({ length: s.vocab }, (_, i) => (i < 256 ? bytes[i]! : i === s.vocab - 1 ? '<|endoftext|>' : `<t${i}>`));
  b.string('tokenizer.ggml.model', 'gpt2');
  b.string('tokenizer.ggml.pre', 'default');
  b.array('tokenizer.ggml.tokens', GgufValueType.STRING, tokens);
  b.array('tokenizer.ggml.token_type', GgufValueType.INT32, tokens.map((_, i) => (i === s.vocab - 1 ? 3 : 1)));
  b.array('tokenizer.ggml.merges', GgufValueType.STRING, []);
  b.u32('tokenizer.ggml.eos_token_id', s.vocab - 1);
  b.u32('tokenizer.ggml.bos_token_id', s.vocab - 1);
  b.bool('tokenizer.ggml.add_bos_token', false);
  let seed = 1;
  const mat = (name: string, rows: number, k: number, std: number, type: 'q8' | 'q4k' | 'q6k') => {
    const sd = seed++;
    if (type === 'q8') b.tensor(name, GgmlType.Q8_0, [k, rows], () => randomQ8(rows, k, sd, std));
    else if (type === 'q4k') b.tensor(name, GgmlType.Q4_K, [k, rows], () => randomQ4K(rows, k, sd, std));
    else b.tensor(name, GgmlType.Q6_K, [k, rows], () => randomQ6K(rows, k, sd, std));
  };
  const k4 = quant === 'Q8_0' ? 'q8' : 'q4k';
  const moreBits = (l: number) => l < s.layers / 8 || l >= (7 * s.layers) / 8 || (l - Math.floor(s.layers / 8)) % 3 === 2;
  const k6 = (l: number) => (quant === 'Q8_0' ? 'q8' : moreBits(l) ? 'q6k' : 'q4k');
  // tied: token_embd is also the output matrix, so it gets the output's type
  mat('token_embd.weight', s.vocab, s.embd, 0.35, quant === 'Q8_0' ? 'q8' : s.tied ? 'q6k' : 'q4k');
  for (let l = 0; l < s.layers; l++) {
    const p = `blk.${l}.`;
    b.tensor(`${p}attn_norm.weight`, GgmlType.F32, [s.embd], f32(s.embd, 1));
    mat(`${p}attn_q.weight`, s.embd, s.embd, 0.02, k4);
    mat(`${p}attn_k.weight`, kvDim, s.embd, 0.02, k4);
    mat(`${p}attn_v.weight`, kvDim, s.embd, 0.02, k6(l));
    b.tensor(`${p}attn_q.bias`, GgmlType.F32, [s.embd], f32(s.embd, 0.01));
    b.tensor(`${p}attn_k.bias`, GgmlType.F32, [kvDim], f32(kvDim, 0.01));
    b.tensor(`${p}attn_v.bias`, GgmlType.F32, [kvDim], f32(kvDim, 0.01));
    mat(`${p}attn_output.weight`, s.embd, s.embd, 0.02, k4);
    b.tensor(`${p}ffn_norm.weight`, GgmlType.F32, [s.embd], f32(s.embd, 1));
    mat(`${p}ffn_gate.weight`, s.ff, s.embd, 0.02, k4);
    mat(`${p}ffn_up.weight`, s.ff, s.embd, 0.02, k4);
    mat(`${p}ffn_down.weight`, s.embd, s.ff, 0.02, k6(l));
  }
  b.tensor('output_norm.weight', GgmlType.F32, [s.embd], f32(s.embd, 1));
  if (!s.tied) mat('output.weight', s.vocab, s.embd, 0.02, quant === 'Q8_0' ? 'q8' : 'q6k');
  mkdirSync(dirname(path), { recursive: true });
  b.write(path);
}

function writeResult(out: string, value: unknown): void {
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, JSON.stringify(value, null, 2) + '\n');
}

function fmt(n: number, d = 1): string {
  return n.toFixed(d);
}

async function main(): Promise<void> {
  const shapeName = arg('shape', 'tiny');
  const shape = SHAPES[shapeName];
  if (!shape) throw new Error(`unknown --shape ${shapeName}; known: ${Object.keys(SHAPES).join(', ')}`);
  const contexts = arg('ctx', '512,4096,16384').split(',').map(Number);
  const decodeSteps = Number(arg('decode', '32'));
  const profileSteps = Number(arg('profile', '4'));
  const chunk = Number(arg('chunk', '512'));
  const bandwidth = Number(arg('bandwidth', '3.0e12'));
  const out = arg('out', '');
  const flagsArg = arg('dawn-flags', process.env.CACHET_DAWN_FLAGS ?? '');
  const quant = arg('quant', 'Q8_0') as BenchQuant;
  if (quant !== 'Q8_0' && quant !== 'Q4_K_M') throw new Error(`unknown --quant ${quant}; known: Q8_0, Q4_K_M`);
  const prefillCtx = new Set(arg('prefill-ctx', arg('ctx', '512,4096,16384')).split(',').map(Number));
  const modelPath = arg('model', `/tmp/cachet-bench-${shapeName}-${quant}.gguf`);

  let t = performance.now();
  if (!existsSync(modelPath)) {
    writeBenchModel(modelPath, shape, quant);
    console.error(`wrote ${modelPath} in ${fmt((performance.now() - t) / 1000, 2)} s`);
  }
  const gguf = openGguf(modelPath);
  const weights = loadWeights(gguf);
  const maxCtx = Math.max(...contexts);
  t = performance.now();
  const backend = (await createWebGpuBackend(weights, {
    kvSlots: maxCtx + 2 * decodeSteps + profileSteps + 16,
    maxBatchTokens: chunk,
    // unquantized timestamps for the per-kernel table (Dawn rounds them otherwise)
    dawnFlags: [...(flagsArg ? [flagsArg] : DEFAULT_DAWN_FLAGS), 'disable-dawn-features=timestamp_quantization'],
  })) as WebGpuBackend;
  const loadS = (performance.now() - t) / 1000;
  const mem = backend.memory();
  console.error(`loaded on ${backend.gpu.adapterName} in ${fmt(loadS, 2)} s; weights ${fmt(mem.weightsBytes / 2 ** 20)} MiB, KV ${fmt(mem.kvBytes / 2 ** 20)} MiB, kvF16 ${backend.kvF16}, features ${JSON.stringify(backend.gpu.features)}`);

  const c = backend.config;
  // the floor counts the file's bytes (Q8_0 blocks), not the repacked upload
  const fileWeightBytes = gguf.tensors.reduce((a, t) => a + t.byteLength, 0);
  const slots = Int32Array.from({ length: maxCtx + 2 * decodeSteps + profileSteps + 16 }, (_, i) => i);
  const tokenAt = (i: number) => (i * 7919 + 13) % c.vocabSize;
  const rows: Record<string, unknown>[] = [];
  const kvBytesPerToken = c.nLayers * 2 * c.nKvHeads * c.headDim * (backend.kvF16 ? 2 : 4);

  for (const ctx of contexts) {
    const prompt = Int32Array.from({ length: ctx }, (_, i) => tokenAt(i));
    // warm-up: a short prefill + a decode step compiles nothing new but primes caches
    await backend.forwardGreedy({ tokens: prompt.subarray(0, 8), positions: Int32Array.from({ length: 8 }, (_, i) => i), context: slots.subarray(0, 8), logits: 'last' });
    let prefillS = NaN;
    if (prefillCtx.has(ctx)) {
      t = performance.now();
      await backend.forwardGreedy({ tokens: prompt, positions: Int32Array.from({ length: ctx }, (_, i) => i), context: slots.subarray(0, ctx), logits: 'last' });
      prefillS = (performance.now() - t) / 1000;
    }
    let next = tokenAt(ctx);
    const step = async (pos: number) => {
      const r = await backend.forwardGreedy({ tokens: Int32Array.of(next), positions: Int32Array.of(pos), context: slots.subarray(0, pos + 1), logits: 'last' });
      next = r[0]!;
    };
    // warm-up: the first context's first steps ran ~2x slower (GPU clocks, lazy driver work);
    // these steps rewrite the same slots the timed ones use, so the KV state is unchanged
    for (let s = 0; s <= decodeSteps >> 1; s++) await step(ctx + s);
    t = performance.now();
    for (let s = 1; s <= decodeSteps; s++) await step(ctx + s);
    const decodeS = (performance.now() - t) / 1000;
    const encodeMs = backend.encodeMs;
    // the same steps through the generic kernels (no fused matvec / grouped attention)
    backend.useFused = false;
    const genericSteps = Math.max(4, decodeSteps >> 1);
    await step(ctx + decodeSteps + 1);
    t = performance.now();
    for (let s = 2; s <= genericSteps + 1; s++) await step(ctx + decodeSteps + s);
    const genericTps = genericSteps / ((performance.now() - t) / 1000);
    backend.useFused = true;
    const decodeTps = decodeSteps / decodeS;
    // per-family GPU time over a few profiled steps (each dispatch in its own timed pass)
    backend.kernelTimes.clear();
    backend.setProfiling(true);
    const p0 = ctx + decodeSteps + genericSteps + 2;
    for (let s = 0; s < profileSteps; s++) await step(p0 + s);
    backend.setProfiling(false);
    const kernelTimes = new Map(backend.kernelTimes);
    // whole-step GPU time (one pass, as in the timed run): what the kernels cost without the
    // per-dispatch pass overhead of the family profile
    backend.kernelTimes.clear();
    backend.setProfiling('step');
    for (let s = 0; s < profileSteps; s++) await step(p0 + profileSteps + s);
    backend.setProfiling(false);
    const stepGpuUs = (backend.kernelTimes.get('step')?.ns ?? NaN) / 1000 / Math.max(1, profileSteps);
    const families: Record<string, number> = {};
    let gpuUs = 0;
    for (const [f, v] of kernelTimes) {
      families[f] = v.ns / 1000 / Math.max(1, profileSteps);
      gpuUs += families[f]!;
    }
    // per-family GPU time of one prefill chunk after the context (where prefill is timed)
    let prefillFamilies: Record<string, number> | undefined;
    if (prefillCtx.has(ctx) && profileSteps > 0) {
      const p1 = p0 + 2 * profileSteps;
      const n = Math.min(chunk, slots.length - p1);
      backend.kernelTimes.clear();
      backend.setProfiling(true);
      await backend.forwardGreedy({ tokens: Int32Array.from({ length: n }, (_, i) => tokenAt(p1 + i)), positions: Int32Array.from({ length: n }, (_, i) => p1 + i), context: slots.subarray(0, p1 + n), logits: 'last' });
      backend.setProfiling(false);
      prefillFamilies = {};
      for (const [f, v] of backend.kernelTimes) prefillFamilies[f] = v.ns / 1000;
    }
    const bytesPerToken = fileWeightBytes + kvBytesPerToken * ctx;
    const floorTps = bandwidth / bytesPerToken;
    const row = {
      context: ctx,
      prefillTokPerS: ctx / prefillS,
      prefillS,
      decodeTokPerS: decodeTps,
      decodeMsPerToken: 1000 / decodeTps,
      decodeTokPerSGenericKernels: genericTps,
      encodeMsPerToken: encodeMs,
      bandwidthFloorTokPerS: floorTps,
      fractionOfFloor: decodeTps / floorTps,
      profiledGpuUsPerToken: gpuUs,
      stepGpuUsPerToken: stepGpuUs,
      kernelUsPerToken: families,
      ...(prefillFamilies ? { prefillChunkTokens: chunk, prefillKernelUsPerChunk: prefillFamilies } : {}),
    };
    rows.push(row);
    if (out) writeResult(out, { partial: true, shape: shapeName, quant, results: rows });
    console.error(`ctx ${ctx}: prefill ${fmt(ctx / prefillS)} tok/s, decode ${fmt(decodeTps)} tok/s (${fmt(100 * decodeTps / floorTps)}% of floor ${fmt(floorTps)}; generic kernels ${fmt(genericTps)}), host encode ${fmt(encodeMs, 2)} ms/token, GPU ${fmt(stepGpuUs)} µs/token`);
  }

  const result = {
    bench: 'gpu',
    date: new Date().toISOString(),
    device: backend.gpu.adapterName,
    features: backend.gpu.features,
    shape: shapeName,
    fileWeightBytes,
    quant,
    kvF16: backend.kvF16,
    prefillChunk: chunk,
    decodeSteps,
    loadSeconds: loadS,
    memory: mem,
    bandwidthAssumed: bandwidth,
    results: rows,
  };
  console.log(JSON.stringify(result, null, 2));
  // table
  console.log('\n| context | prefill tok/s | decode tok/s | ms/token | generic-kernel decode tok/s | floor tok/s | % of floor |');
  console.log('| ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const r of rows as { context: number; prefillTokPerS: number; decodeTokPerS: number; decodeMsPerToken: number; decodeTokPerSGenericKernels: number; bandwidthFloorTokPerS: number; fractionOfFloor: number }[]) {
    console.log(`| ${r.context} | ${fmt(r.prefillTokPerS)} | ${fmt(r.decodeTokPerS)} | ${fmt(r.decodeMsPerToken, 2)} | ${fmt(r.decodeTokPerSGenericKernels)} | ${fmt(r.bandwidthFloorTokPerS)} | ${fmt(100 * r.fractionOfFloor)} |`);
  }
  const fams = new Set(rows.flatMap((r) => Object.keys(r.kernelUsPerToken as object)));
  console.log(`\n| kernel family (µs/token) | ${rows.map((r) => `ctx ${r.context}`).join(' | ')} |`);
  console.log(`| --- | ${rows.map(() => '---:').join(' | ')} |`);
  for (const f of fams) console.log(`| ${f} | ${rows.map((r) => fmt((r.kernelUsPerToken as Record<string, number>)[f] ?? 0)).join(' | ')} |`);
  for (const r of rows.filter((r) => r.prefillKernelUsPerChunk)) {
    const pf = r.prefillKernelUsPerChunk as Record<string, number>;
    console.log(`\n| prefill kernel family (µs per ${chunk}-token chunk at ctx ${r.context}) | µs |\n| --- | ---: |`);
    for (const [f, us] of Object.entries(pf)) console.log(`| ${f} | ${fmt(us)} |`);
  }
  if (out) writeResult(out, result);
  await backend.dispose();
  gguf.close();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
