import { describe, expect, test } from 'vitest';
import { ModelNotSupportedError } from '../../engine/errors';
import { openGguf } from '../../engine/gguf';
import { configFromGguf, loadWeights, requiredTensorNames, type GgufLike, type GgufTensorLike } from '../../engine/model';
import { GgmlType } from '../../engine/quant/types';
import { makeTestModel } from '../helpers/make-test-model';

/** A GGUF header without data: metadata plus tensor infos with the shapes an arch implies. */
function fakeGguf(arch: string, meta: Record<string, unknown> = {}, opts: { tied?: boolean; drop?: string; biases?: boolean } = {}): GgufLike {
  const E = 64;
  const H = 4;
  const KV = 2;
  const D = 16;
  const F = 128;
  const V = 100;
  const L = 2;
  const m = new Map<string, unknown>(
    Object.entries({
      'general.architecture': arch,
      [`${arch}.embedding_length`]: E,
      [`${arch}.block_count`]: L,
      [`${arch}.feed_forward_length`]: F,
      [`${arch}.attention.head_count`]: H,
      [`${arch}.attention.head_count_kv`]: KV,
      [`${arch}.context_length`]: 4096,
      [`${arch}.attention.layer_norm_rms_epsilon`]: 1e-6,
      [`${arch}.attention.layer_norm_epsilon`]: 1e-5,
      ...meta,
    }),
  );
  const t: GgufTensorLike[] = [];
  const add = (name: string, dims: number[]) => t.push({ name, dims, type: GgmlType.F32 });
  const sc2 = arch === 'starcoder2';
  const qkvBias = arch !== 'llama' || opts.biases;
  add('token_embd.weight', [E, V]);
  for (let i = 0; i < L; i++) {
    const p = `blk.${i}.`;
    add(`${p}attn_norm.weight`, [E]);
    if (sc2) add(`${p}attn_norm.bias`, [E]);
    add(`${p}attn_q.weight`, [E, H * D]);
    add(`${p}attn_k.weight`, [E, KV * D]);
    add(`${p}attn_v.weight`, [E, KV * D]);
    if (qkvBias) {
      add(`${p}attn_q.bias`, [H * D]);
      add(`${p}attn_k.bias`, [KV * D]);
      add(`${p}attn_v.bias`, [KV * D]);
    }
    add(`${p}attn_output.weight`, [H * D, E]);
    if (sc2) add(`${p}attn_output.bias`, [E]);
    add(`${p}ffn_norm.weight`, [E]);
    if (sc2) add(`${p}ffn_norm.bias`, [E]);
    if (!sc2) add(`${p}ffn_gate.weight`, [E, F]);
    add(`${p}ffn_up.weight`, [E, F]);
    add(`${p}ffn_down.weight`, [F, E]);
    if (sc2) {
      add(`${p}ffn_up.bias`, [F]);
      add(`${p}ffn_down.bias`, [E]);
    }
  }
  add('output_norm.weight', [E]);
  if (sc2) add('output_norm.bias', [E]);
  if (!opts.tied) add('output.weight', [E, V]);
  return {
    path: `fake-${arch}.gguf`,
    get: (k) => m.get(k),
    tensors: t.filter((x) => x.name !== opts.drop),
    readTensorData: () => new Uint8Array(0),
  };
}

describe('configFromGguf', () => {
  test('llama: RMSNorm, normal RoPE, SwiGLU, no biases, GQA', () => {
    const c = configFromGguf(fakeGguf('llama', { 'llama.rope.freq_base': 1e6 }));
    expect(c).toMatchObject({
      arch: 'llama',
      nLayers: 2,
      nEmbd: 64,
      nHeads: 4,
      nKvHeads: 2,
      headDim: 16,
      nFf: 128,
      vocabSize: 100,
      contextLength: 4096,
      norm: { type: 'rms', eps: 1e-6 },
      rope: { type: 'normal', dim: 16, freqBase: 1e6, scaling: { type: 'none', factor: 1 } },
      ffn: { type: 'gated', activation: 'silu' },
      qkvBias: false,
      linearBias: false,
      tiedEmbeddings: false,
    });
  });

  test('llama with q/k/v biases present loads them', () => {
    expect(configFromGguf(fakeGguf('llama', {}, { biases: true })).qkvBias).toBe(true);
  });

  test('qwen2: NeoX RoPE, QKV bias, tied embeddings when output.weight is absent', () => {
    const c = configFromGguf(fakeGguf('qwen2', {}, { tied: true }));
    expect(c.rope.type).toBe('neox');
    expect(c.qkvBias).toBe(true);
    expect(c.tiedEmbeddings).toBe(true);
    expect(requiredTensorNames(c)).not.toContain('output.weight');
    expect(requiredTensorNames(c)).toContain('blk.1.attn_k.bias');
  });

  test('starcoder2: LayerNorm with eps from layer_norm_epsilon, GELU plain MLP, biases everywhere', () => {
    const c = configFromGguf(fakeGguf('starcoder2'));
    expect(c.norm).toEqual({ type: 'layer', eps: 1e-5 });
    expect(c.ffn).toEqual({ type: 'plain', activation: 'gelu' });
    expect(c.linearBias).toBe(true);
    expect(c.rope.type).toBe('neox');
    const names = requiredTensorNames(c);
    expect(names).toContain('blk.0.ffn_down.bias');
    expect(names).toContain('output_norm.bias');
    expect(names).not.toContain('blk.0.ffn_gate.weight');
  });

  test('linear RoPE scaling (DeepSeek-Coder 1.x style) and the legacy scale_linear key', () => {
    const a = configFromGguf(fakeGguf('llama', { 'llama.rope.scaling.type': 'linear', 'llama.rope.scaling.factor': 4, 'llama.rope.freq_base': 100000 }));
    expect(a.rope.scaling).toMatchObject({ type: 'linear', factor: 4 });
    expect(a.rope.freqBase).toBe(100000);
    const b = configFromGguf(fakeGguf('llama', { 'llama.rope.scale_linear': 2 }));
    expect(b.rope.scaling).toMatchObject({ type: 'linear', factor: 2 });
  });

  test('rope.dimension_count and key_length are honoured', () => {
    const c = configFromGguf(fakeGguf('llama', { 'llama.rope.dimension_count': 8 }));
    expect(c.rope.dim).toBe(8);
  });

  test('unsupported architecture: ModelNotSupportedError with a hint naming the supported ones', () => {
    try {
      configFromGguf(fakeGguf('gemma3'));
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(ModelNotSupportedError);
      expect((e as ModelNotSupportedError).message).toContain("'gemma3'");
      expect((e as ModelNotSupportedError).hint).toMatch(/llama, qwen2, starcoder2/);
    }
  });

  test('missing metadata and missing tensors are named', () => {
    expect(() => configFromGguf(fakeGguf('llama', { 'llama.block_count': undefined }))).toThrow(/missing metadata key llama.block_count/);
    expect(() => configFromGguf(fakeGguf('qwen2', {}, { drop: 'blk.1.attn_v.bias' }))).toThrow(/missing tensor blk.1.attn_v.bias/);
    expect(() => configFromGguf(fakeGguf('starcoder2', {}, { drop: 'output_norm.bias' }))).toThrow(ModelNotSupportedError);
    const noArch: GgufLike = { get: () => undefined, tensors: [], readTensorData: () => new Uint8Array(0) };
    expect(() => configFromGguf(noArch)).toThrow(/general.architecture/);
  });

  test('a tensor shape that disagrees with the metadata is reported with both shapes', () => {
    const g = fakeGguf('llama');
    g.tensors.find((t) => t.name === 'blk.0.attn_k.weight')!.dims = [64, 64];
    expect(() => configFromGguf(g)).toThrow(/blk.0.attn_k.weight has shape \[64, 64\], expected \[64, 32\]/);
  });

  test('heads not divisible by KV heads is rejected', () => {
    expect(() => configFromGguf(fakeGguf('llama', { 'llama.attention.head_count_kv': 3 }))).toThrow(/KV heads/);
  });
});

describe('real files from makeTestModel', () => {
  for (const arch of ['llama', 'qwen2', 'starcoder2'] as const) {
    test(`${arch}: config and lazily read weights round-trip through a written GGUF`, () => {
      const path = makeTestModel({ arch, layers: 1, dims: 64, heads: 2, kvHeads: 1, ff: 128, quant: 'Q8_0', seed: 3 });
      const gguf = openGguf(path);
      try {
        const c = configFromGguf(gguf);
        expect(c).toMatchObject({ arch, nLayers: 1, nEmbd: 64, nHeads: 2, nKvHeads: 1, headDim: 32, nFf: 128, vocabSize: 260 });
        expect(c.tiedEmbeddings).toBe(arch === 'qwen2');
        const w = loadWeights(gguf);
        for (const name of requiredTensorNames(c)) expect(w.has(name), name).toBe(true);
        const q = w.get('blk.0.attn_q.weight');
        expect(q.type).toBe(GgmlType.Q8_0);
        expect(q.dims).toEqual([64, 64]);
        expect(q.data.length).toBe((64 * 64 / 32) * 34);
        expect(() => w.get('nope.weight')).toThrow(/missing tensor nope.weight/);
      } finally {
        gguf.close();
      }
    });
  }
});
