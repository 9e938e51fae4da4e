// Writes small random-weight GGUF models that llama.cpp loads, for tests and oracle comparisons.
// Weights are deterministic in `seed`; scales are chosen so greedy continuations vary instead of
// repeating one token (a random model's usual failure that hides bugs).

import { createHash } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GgufBuilder, GgufValueType, openGguf } from '../../engine/gguf';
import { quantize } from '../../engine/quant';
import { GgmlType } from '../../engine/quant/types';

export type TestQuant = 'F32' | 'F16' | 'BF16' | 'Q8_0' | 'Q4_0' | 'Q4_1' | 'Q5_0' | 'Q5_1' | 'Q4_K' | 'Q5_K' | 'Q6_K';

export interface TestModelOptions {
  arch: 'llama' | 'qwen2' | 'starcoder2';
  layers?: number;
  dims?: number;
  heads?: number;
  kvHeads?: number;
  ff?: number;
  /** 'bytes': 256 GPT-2 byte tokens + 4 specials; or copy tokenizer.* from a vocab GGUF fixture. */
  vocab?: 'bytes' | { gguf: string };
  /** Type of every 2-D weight; norms and biases stay F32 as llama.cpp's converters write them. */
  quant?: TestQuant;
  seed?: number;
  path?: string;
  contextLength?: number;
  /** Drop output.weight so the LM head reuses token_embd (default: true for qwen2 only). */
  tied?: boolean;
  ropeFreqBase?: number;
  /** Linear RoPE scaling factor written as {arch}.rope.scaling.type/factor. */
  ropeLinearFactor?: number;
  /** Std of token_embd (default 1, or 0.1 when tied). */
  embedScale?: number;
}

export const BYTE_VOCAB_SPECIALS = ['<|endoftext|>', '<|fim_prefix|>', '<|fim_suffix|>', '<|fim_middle|>'] as const;
/** Id of the first special token in the byte vocabulary (eos = <|endoftext|>). */
export const BYTE_VOCAB_EOS = 256;

/** GPT-2's byte -> printable unicode map (bytes_to_unicode in the GPT-2 encoder). */
export function gpt2ByteToUnicode(): string[] {
  const keep: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) keep.push(b);
  for (let b = 0xa1; b <= 0xac; b++) keep.push(b);
  for (let b = 0xae; b <= 0xff; b++) keep.push(b);
  const out = new Array<string>(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    out[b] = keep.includes(b) ? String.fromCodePoint(b) : String.fromCodePoint(256 + extra++);
  }
  return out;
}

/** Deterministic normal(0, 1) stream: mulberry32 + Box-Muller. */
/** Deterministic uniform [0, 1) stream (mulberry32). */
export function uniformStream(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function normalStream(seed: number): () => number {
  const uniform = uniformStream(seed >>> 0 || 0x9e3779b9);
  return () => {
    const u = Math.max(uniform(), 1e-12);
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * uniform());
  };
}

const QUANT_TYPES: Record<TestQuant, GgmlType> = {
  F32: GgmlType.F32,
  F16: GgmlType.F16,
  BF16: GgmlType.BF16,
  Q8_0: GgmlType.Q8_0,
  Q4_0: GgmlType.Q4_0,
  Q4_1: GgmlType.Q4_1,
  Q5_0: GgmlType.Q5_0,
  Q5_1: GgmlType.Q5_1,
  Q4_K: GgmlType.Q4_K,
  Q5_K: GgmlType.Q5_K,
  Q6_K: GgmlType.Q6_K,
};

/** Bump when the generated weights or metadata change, so cached files are not reused. */
const GENERATOR_VERSION = 1;

/**
 * Writes the model and returns its path. Without `path`, files go to a cache in the OS temp dir
 * keyed by every option, and an existing file is reused (generation is deterministic; quantizing
 * K-quants in JS takes seconds).
 */
export function makeTestModel(options: TestModelOptions): string {
  const o = {
    layers: 2,
    dims: 256,
    heads: 4,
    kvHeads: 2,
    ff: 512,
    vocab: 'bytes' as const,
    quant: 'F32' as const,
    seed: 1,
    contextLength: 2048,
    tied: options.arch === 'qwen2',
    ropeFreqBase: options.arch === 'llama' ? 10000 : 1000000,
    ...options,
  };
  const arch = o.arch;
  let path = o.path;
  if (!path) {
    const dir = join(tmpdir(), 'cachet-test-models');
    mkdirSync(dir, { recursive: true });
    const key = JSON.stringify({ v: GENERATOR_VERSION, ...o });
    path = join(dir, `${arch}-${o.quant}-${createHash('sha256').update(key).digest('hex').slice(0, 16)}.gguf`);
    if (existsSync(path)) return path;
  }
  const headDim = o.dims / o.heads;
  const qType = QUANT_TYPES[o.quant];
  const rnd = normalStream(o.seed * 7919 + 17);
  const b = new GgufBuilder();

  b.string('general.architecture', arch);
  b.string('general.name', `cachet-test-${arch}-${o.quant}-s${o.seed}`);
  b.u32('general.alignment', 32);
  b.u32(`${arch}.context_length`, o.contextLength);
  b.u32(`${arch}.embedding_length`, o.dims);
  b.u32(`${arch}.block_count`, o.layers);
  b.u32(`${arch}.feed_forward_length`, o.ff);
  b.u32(`${arch}.attention.head_count`, o.heads);
  b.u32(`${arch}.attention.head_count_kv`, o.kvHeads);
  if (arch === 'starcoder2') b.f32(`${arch}.attention.layer_norm_epsilon`, 1e-5);
  else b.f32(`${arch}.attention.layer_norm_rms_epsilon`, 1e-6);
  b.f32(`${arch}.rope.freq_base`, o.ropeFreqBase);
  b.u32(`${arch}.rope.dimension_count`, headDim);
  if (o.ropeLinearFactor !== undefined) {
    b.string(`${arch}.rope.scaling.type`, 'linear');
    b.f32(`${arch}.rope.scaling.factor`, o.ropeLinearFactor);
  }

  let vocabSize: number;
  if (o.vocab === 'bytes') {
    const byteChars = gpt2ByteToUnicode();
    const tokens = [...byteChars, ...BYTE_VOCAB_SPECIALS];
    vocabSize = tokens.length;
    b.string('tokenizer.ggml.model', 'gpt2');
    b.string('tokenizer.ggml.pre', 'default');
    b.array('tokenizer.ggml.tokens', GgufValueType.STRING, tokens);
    b.array('tokenizer.ggml.token_type', GgufValueType.INT32, tokens.map((_, i) => (i < 256 ? 1 : 3)));
    b.array('tokenizer.ggml.merges', GgufValueType.STRING, []);
    b.u32('tokenizer.ggml.bos_token_id', BYTE_VOCAB_EOS);
    b.u32('tokenizer.ggml.eos_token_id', BYTE_VOCAB_EOS);
    b.bool('tokenizer.ggml.add_bos_token', false);
    b.u32('tokenizer.ggml.fim_pre_token_id', BYTE_VOCAB_EOS + 1);
    b.u32('tokenizer.ggml.fim_suf_token_id', BYTE_VOCAB_EOS + 2);
    b.u32('tokenizer.ggml.fim_mid_token_id', BYTE_VOCAB_EOS + 3);
  } else {
    const vocab = openGguf(o.vocab.gguf);
    try {
      b.copyFrom(vocab.metadata, (k) => k.startsWith('tokenizer.'));
      vocabSize = (vocab.getArray('tokenizer.ggml.tokens') ?? []).length;
    } finally {
      vocab.close();
    }
  }

  // Gaussian weights with std `scale`; 2-D ones stored as `type`.
  const tensor = (name: string, dims: number[], scale: number, mean = 0, type = GgmlType.F32) => {
    const n = dims.reduce((x, y) => x * y, 1);
    const f = new Float32Array(n);
    for (let i = 0; i < n; i++) f[i] = mean + scale * rnd();
    b.tensor(name, type, dims, type === GgmlType.F32 ? new Uint8Array(f.buffer) : quantize(type, f));
  };
  const layerNorm = arch === 'starcoder2';
  const qkvBias = arch !== 'llama';
  const allBias = arch === 'starcoder2';
  const qDim = o.heads * headDim;
  const kvDim = o.kvHeads * headDim;

  // A tied head sees the token's own embedding in the residual; at 0.35 (measured-here.md) these
  // tiny models still repeat one token, at 0.1 greedy runs of 32 show 10-25 distinct tokens.
  tensor('token_embd.weight', [o.dims, vocabSize], o.embedScale ?? (o.tied ? 0.1 : 1), 0, qType);
  for (let i = 0; i < o.layers; i++) {
    const p = `blk.${i}.`;
    tensor(`${p}attn_norm.weight`, [o.dims], 0.1, 1);
    if (layerNorm) tensor(`${p}attn_norm.bias`, [o.dims], 0.05);
    // q/k a bit larger than 1/sqrt(n) so attention is not uniform.
    tensor(`${p}attn_q.weight`, [o.dims, qDim], 2 / Math.sqrt(o.dims), 0, qType);
    tensor(`${p}attn_k.weight`, [o.dims, kvDim], 2 / Math.sqrt(o.dims), 0, qType);
    tensor(`${p}attn_v.weight`, [o.dims, kvDim], 1 / Math.sqrt(o.dims), 0, qType);
    if (qkvBias) {
      tensor(`${p}attn_q.bias`, [qDim], 0.1);
      tensor(`${p}attn_k.bias`, [kvDim], 0.1);
      tensor(`${p}attn_v.bias`, [kvDim], 0.1);
    }
    tensor(`${p}attn_output.weight`, [qDim, o.dims], 1 / Math.sqrt(qDim), 0, qType);
    if (allBias) tensor(`${p}attn_output.bias`, [o.dims], 0.05);
    tensor(`${p}ffn_norm.weight`, [o.dims], 0.1, 1);
    if (layerNorm) tensor(`${p}ffn_norm.bias`, [o.dims], 0.05);
    if (arch !== 'starcoder2') tensor(`${p}ffn_gate.weight`, [o.dims, o.ff], 1 / Math.sqrt(o.dims), 0, qType);
    tensor(`${p}ffn_up.weight`, [o.dims, o.ff], 1 / Math.sqrt(o.dims), 0, qType);
    if (allBias) tensor(`${p}ffn_up.bias`, [o.ff], 0.05);
    tensor(`${p}ffn_down.weight`, [o.ff, o.dims], 1 / Math.sqrt(o.ff), 0, qType);
    if (allBias) tensor(`${p}ffn_down.bias`, [o.dims], 0.05);
  }
  tensor('output_norm.weight', [o.dims], 0.1, 1);
  if (layerNorm) tensor('output_norm.bias', [o.dims], 0.05);
  if (!o.tied) tensor('output.weight', [o.dims, vocabSize], 3 / Math.sqrt(o.dims), 0, qType);

  b.write(path);
  return path;
}
