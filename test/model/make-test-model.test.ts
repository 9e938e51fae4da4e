import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { ModelNotSupportedError } from '../../engine/errors';
import { openGguf } from '../../engine/gguf';
import { configFromGguf } from '../../engine/model';
import { BYTE_VOCAB_EOS, gpt2ByteToUnicode, makeTestModel, normalStream } from '../helpers/make-test-model';

const VOCAB_DIR = fileURLToPath(new URL('../../../shared/fixtures/vocab/', import.meta.url));

describe('makeTestModel', () => {
  test('GPT-2 byte map: 256 distinct printable characters, the well-known ones in place', () => {
    const m = gpt2ByteToUnicode();
    expect(new Set(m).size).toBe(256);
    expect(m[32]).toBe('\u0120'); // space -> Ġ
    expect(m[10]).toBe('\u010a'); // newline -> Ċ
    expect(m[65]).toBe('A');
    expect(m[0]).toBe('\u0100');
  });

  test('deterministic in the seed; metadata llama.cpp needs is present', () => {
    const a = makeTestModel({ arch: 'starcoder2', layers: 1, dims: 64, heads: 2, kvHeads: 1, ff: 128, seed: 8 });
    const b = makeTestModel({ arch: 'starcoder2', layers: 1, dims: 64, heads: 2, kvHeads: 1, ff: 128, seed: 8 });
    expect(a).toBe(b); // same options -> same cached file
    const g = openGguf(a);
    try {
      for (const k of ['context_length', 'embedding_length', 'block_count', 'feed_forward_length', 'attention.head_count', 'attention.head_count_kv', 'attention.layer_norm_epsilon', 'rope.freq_base']) {
        expect(g.get(`starcoder2.${k}`), k).toBeDefined();
      }
      expect(g.get('tokenizer.ggml.model')).toBe('gpt2');
      expect(g.get('tokenizer.ggml.eos_token_id')).toBe(BYTE_VOCAB_EOS);
      expect((g.get('tokenizer.ggml.tokens') as string[]).length).toBe(260);
      const other = openGguf(makeTestModel({ arch: 'starcoder2', layers: 1, dims: 64, heads: 2, kvHeads: 1, ff: 128, seed: 9 }));
      try {
        const w8 = g.readTensorData('blk.0.attn_q.weight');
        const w9 = other.readTensorData('blk.0.attn_q.weight');
        expect(Buffer.from(w8).equals(Buffer.from(w9))).toBe(false);
      } finally {
        other.close();
      }
    } finally {
      g.close();
    }
  });

  test('normalStream is standard normal', () => {
    const r = normalStream(1);
    const xs = Array.from({ length: 20000 }, r);
    const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
    const sd = Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / xs.length);
    expect(Math.abs(mean)).toBeLessThan(0.03);
    expect(Math.abs(sd - 1)).toBeLessThan(0.03);
  });

  const vocab = `${VOCAB_DIR}ggml-vocab-deepseek-coder.gguf`;
  test.skipIf(!existsSync(vocab))('a real vocabulary is copied from a fixture (skipped when ../shared/fixtures is absent)', () => {
    const path = makeTestModel({ arch: 'llama', layers: 1, dims: 64, heads: 2, kvHeads: 1, ff: 128, quant: 'F16', seed: 2, vocab: { gguf: vocab } });
    const g = openGguf(path);
    const v = openGguf(vocab);
    try {
      expect(g.get('tokenizer.ggml.pre')).toBe(v.get('tokenizer.ggml.pre'));
      expect(configFromGguf(g).vocabSize).toBe((v.get('tokenizer.ggml.tokens') as string[]).length);
    } finally {
      g.close();
      v.close();
    }
  });

  test.skipIf(!existsSync(vocab))('a vocab-only GGUF is refused with ModelNotSupportedError naming what is missing', () => {
    const v = openGguf(vocab);
    try {
      expect(() => configFromGguf(v)).toThrow(ModelNotSupportedError);
      expect(() => configFromGguf(v)).toThrow(/missing (metadata key|tensor)/);
    } finally {
      v.close();
    }
  });
});
