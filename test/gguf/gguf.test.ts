import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GgufError } from '../../engine/errors';
import { GgufBuilder, GgufValueType, openGguf, parseGguf } from '../../engine/gguf';
import { GgmlType, dequantize, quantize } from '../../engine/quant';

const VOCAB_DIR = resolve(__dirname, '../../../shared/fixtures/vocab');
const tmp = mkdtempSync(join(tmpdir(), 'cachet-gguf-'));

function sample(): GgufBuilder {
  const w = new Float32Array(64 * 2).map((_, i) => Math.sin(i));
  return new GgufBuilder()
    .string('general.architecture', 'llama')
    .u32('llama.block_count', 2)
    .i32('test.neg', -7)
    .f32('test.f', 0.25)
    .bool('test.flag', true)
    .u64('test.big', 2n ** 60n)
    .array('tokenizer.ggml.tokens', GgufValueType.STRING, ['a', 'bé', '<s>'])
    .array('tokenizer.ggml.scores', GgufValueType.FLOAT32, [0, -1.5, 2])
    .tensor('w.f32', GgmlType.F32, [64, 2], new Uint8Array(w.buffer))
    .tensor('w.q8', GgmlType.Q8_0, [64, 2], quantize(GgmlType.Q8_0, w))
    .tensor('w.q4k', GgmlType.Q4_K, [256], () => quantize(GgmlType.Q4_K, new Float32Array(256).fill(0.5)));
}

describe('GGUF reader and writer', () => {
  it('round-trips metadata of every kind and tensor data, in memory and on disk', () => {
    const path = join(tmp, 'rt.gguf');
    sample().write(path);
    const bytes = readFileSync(path);
    expect(Buffer.from(sample().toBytes()).equals(bytes)).toBe(true);
    for (const f of [openGguf(path), parseGguf(bytes)]) {
      expect(f.version).toBe(3);
      expect(f.getString('general.architecture')).toBe('llama');
      expect(f.getNumber('llama.block_count')).toBe(2);
      expect(f.get('test.neg')).toBe(-7);
      expect(f.get('test.f')).toBe(0.25);
      expect(f.getBool('test.flag')).toBe(true);
      expect(f.get('test.big')).toBe(2n ** 60n);
      expect(f.getArray('tokenizer.ggml.tokens')).toEqual(['a', 'bé', '<s>']);
      expect(f.getArray('tokenizer.ggml.scores')).toEqual([0, -1.5, 2]);
      expect(f.metadata.get('tokenizer.ggml.scores')?.arrayType).toBe(GgufValueType.FLOAT32);
      expect(f.tensors.map((t) => t.name)).toEqual(['w.f32', 'w.q8', 'w.q4k']);
      const t = f.tensor('w.q8')!;
      expect(t.dims).toEqual([64, 2]);
      expect(t.byteLength).toBe(4 * 34);
      expect(t.offset % f.alignment).toBe(0);
      const w = new Float32Array(f.readTensorData('w.f32').slice().buffer);
      expect(w[3]).toBeCloseTo(Math.sin(3), 6);
      const q = dequantize(GgmlType.Q4_K, f.readTensorData('w.q4k'), 256);
      expect(q[100]).toBeCloseTo(0.5, 2);
      f.close();
    }
  });

  const broken: Array<[string, (b: Uint8Array) => Uint8Array, RegExp]> = [
    ['bad magic', (b) => { const c = b.slice(); c[0] = 0x47 + 1; return c; }, /not a GGUF file/],
    ['unknown version', (b) => { const c = b.slice(); c[4] = 9; return c; }, /version 9 is not supported/],
    ['truncated header', (b) => b.slice(0, 60), /truncated: the header/],
    ['truncated data', (b) => b.slice(0, b.length - 40), /truncated: tensor w.q4k/],
    ['empty file', () => new Uint8Array(0), /not a GGUF file/],
  ];
  for (const [what, damage, message] of broken) {
    it(`rejects ${what} with a GgufError naming the file and a fix`, () => {
      const path = join(tmp, `${what.replace(/ /g, '-')}.gguf`);
      writeFileSync(path, damage(sample().toBytes()));
      let err: unknown;
      try { openGguf(path); } catch (e) { err = e; }
      expect(err).toBeInstanceOf(GgufError);
      expect((err as GgufError).message).toContain(path);
      expect((err as GgufError).message).toMatch(message);
      expect((err as GgufError).hint.length).toBeGreaterThan(10);
    });
  }

  it('rejects an unsupported tensor type and a missing file', () => {
    const bytes = new GgufBuilder().tensor('x', GgmlType.F32, [4], new Uint8Array(16)).toBytes();
    // patch the tensor type (the u32 after the dims) to Q2_K
    const view = new DataView(bytes.buffer);
    const typeOffset = 4 + 4 + 8 + 8 + (8 + 1) + 4 + 8;
    expect(view.getUint32(typeOffset, true)).toBe(GgmlType.F32);
    view.setUint32(typeOffset, GgmlType.Q2_K, true);
    expect(() => parseGguf(bytes, 'q2.gguf')).toThrow(/unsupported type Q2_K/);
    expect(() => openGguf(join(tmp, 'nope.gguf'))).toThrow(GgufError);
    expect(() => openGguf(tmp)).toThrow(/EISDIR|cannot open/);
  });

  it('keeps a string that is exactly U+FEFF (a real SentencePiece token)', () => {
    const f = parseGguf(new GgufBuilder().array('tokenizer.ggml.tokens', GgufValueType.STRING, ['\uFEFF', 'a\uFEFF']).toBytes());
    expect(f.getArray('tokenizer.ggml.tokens')).toEqual(['\uFEFF', 'a\uFEFF']);
  });

  it('require() names a missing key', () => {
    const f = parseGguf(sample().toBytes(), 'm.gguf');
    expect(() => f.require('llama.context_length')).toThrow(/missing metadata key llama.context_length/);
  });

  it.skipIf(!existsSync(VOCAB_DIR))('reads every fixture vocabulary (skips without ../shared)', () => {
    const files = readdirSync(VOCAB_DIR).filter((f) => f.endsWith('.gguf'));
    expect(files.length).toBeGreaterThanOrEqual(7);
    for (const name of files) {
      const f = openGguf(join(VOCAB_DIR, name));
      const tokens = f.getArray('tokenizer.ggml.tokens')!;
      expect(tokens.length).toBeGreaterThan(30000);
      expect(['gpt2', 'llama']).toContain(f.getString('tokenizer.ggml.model'));
      // the writer reproduces a real file's metadata byte for byte
      const copy = new GgufBuilder().copyFrom(f.metadata, () => true).toBytes();
      const again = parseGguf(copy);
      expect(again.getArray('tokenizer.ggml.tokens')).toEqual(tokens);
      f.close();
    }
  });
});
