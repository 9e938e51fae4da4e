// Tokenizer.fromGguf on GGUF bytes written by engine/gguf's builder: the metadata types a
// converter writes (string arrays, i32 token types, f32 scores, u32 ids, bools) load as intended.
// Runs without the shared fixtures.
import { describe, expect, it } from 'vitest';
import { GgufBuilder, GgufValueType, parseGguf } from '../../engine/gguf';
import { Tokenizer, TokenizerLoadError } from '../../engine/tokenizer';

// A tiny byte-level BPE vocabulary: all 256 byte characters, a few merges, specials at the end.
function byteVocab(): { tokens: string[]; merges: string[] } {
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const tokens: string[] = [];
  let n = 0;
  for (let b = 0; b < 256; b++) tokens.push(String.fromCharCode(printable(b) ? b : 256 + n++));
  const merges = ['Ġ f', 'Ġf o', 'Ġfo o', 'b a', 'ba r'];
  tokens.push('Ġf', 'Ġfo', 'Ġfoo', 'ba', 'bar');
  return { tokens, merges };
}

function buildBpe(pre: string): Uint8Array {
  const { tokens, merges } = byteVocab();
  const specials = ['<|endoftext|>', '<|fim_prefix|>', '<|fim_middle|>', '<|fim_suffix|>', '<|file_sep|>'];
  const all = [...tokens, ...specials];
  return new GgufBuilder()
    .string('general.architecture', 'qwen2')
    .string('tokenizer.ggml.model', 'gpt2')
    .string('tokenizer.ggml.pre', pre)
    .array('tokenizer.ggml.tokens', GgufValueType.STRING, all)
    .array('tokenizer.ggml.token_type', GgufValueType.INT32, all.map((_, i) => (i < tokens.length ? 1 : 3)))
    .array('tokenizer.ggml.merges', GgufValueType.STRING, merges)
    .u32('tokenizer.ggml.eos_token_id', tokens.length)
    .bool('tokenizer.ggml.add_bos_token', false)
    .string('tokenizer.chat_template', '{% for m in messages %}{{ m.content }}{% endfor %}')
    .toBytes();
}

describe('Tokenizer.fromGguf on builder-written files', () => {
  it('byte-level BPE: merges, specials, FIM and EOG from metadata and token text', () => {
    const tok = Tokenizer.fromGguf(parseGguf(buildBpe('qwen2'), 'tiny-bpe.gguf'));
    const [spaceFoo, bar, base] = [258, 260, 261]; // 256 byte tokens, Ġf, Ġfo, Ġfoo, ba, bar, specials
    expect(tok.vocabSize).toBe(base + 5);
    expect(tok.encode('bar foo')).toEqual([bar, spaceFoo]);
    expect(tok.encode('<|fim_prefix|>bar', { parseSpecial: true })).toEqual([base + 1, bar]);
    expect(tok.fim).toMatchObject({ prefix: base + 1, middle: base + 2, suffix: base + 3, fileSep: base + 4 });
    expect(tok.eos).toBe(base);
    expect(tok.isEog(base) && tok.isEog(base + 4)).toBe(true);
    expect(tok.chatTemplate).toContain('messages');
    expect(tok.decode(tok.encode('héllo 🦙 bar'))).toBe('héllo 🦙 bar');
  });

  it('llama3-style ignore_merges: a word that is a token is taken whole', () => {
    const { tokens, merges } = byteVocab();
    const all = [...tokens, 'xyz']; // no merges lead to "xyz"
    const bytes = new GgufBuilder()
      .string('tokenizer.ggml.model', 'gpt2')
      .string('tokenizer.ggml.pre', 'llama-bpe')
      .array('tokenizer.ggml.tokens', GgufValueType.STRING, all)
      .array('tokenizer.ggml.merges', GgufValueType.STRING, merges)
      .toBytes();
    const tok = Tokenizer.fromGguf(parseGguf(bytes, 'llama3ish.gguf'));
    expect(tok.encode('xyz')).toEqual([all.length - 1]);
    expect(tok.addBos).toBe(true); // llama3 pre-tokenizers default to add_bos
    const gpt2 = Tokenizer.fromSpec({ model: 'gpt2', pre: 'gpt-2', tokens: all, merges });
    expect(gpt2.encode('xyz')).toEqual([0x78, 0x79, 0x7a]); // byte tokens sit at their byte value
  });

  it('SentencePiece: f32 scores, byte tokens, add_space_prefix from metadata', () => {
    const tokens = ['<unk>', '<s>', '</s>', '▁', 'h', 'i', '▁h', 'hi', '▁hi'];
    const bytesTok = Array.from({ length: 256 }, (_, b) => `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
    const all = [...tokens, ...bytesTok];
    const types = [2, 3, 3, 1, 1, 1, 1, 1, 1, ...bytesTok.map(() => 6)];
    const scores = [0, 0, 0, -1, -2, -2, -3, -4, -1, ...bytesTok.map(() => 0)];
    const build = (prefix: boolean) =>
      new GgufBuilder()
        .string('tokenizer.ggml.model', 'llama')
        .array('tokenizer.ggml.tokens', GgufValueType.STRING, all)
        .array('tokenizer.ggml.scores', GgufValueType.FLOAT32, scores)
        .array('tokenizer.ggml.token_type', GgufValueType.INT32, types)
        .bool('tokenizer.ggml.add_space_prefix', prefix)
        .toBytes();
    const tok = Tokenizer.fromGguf(parseGguf(build(true), 'spm.gguf'));
    expect(tok.encode('hi')).toEqual([8]);
    expect(tok.encode('hi', { addSpecial: true })).toEqual([1, 8]);
    expect(tok.encode('ü')).toEqual([3, 9 + 0xc3, 9 + 0xbc]);
    expect(tok.decode(tok.encode('hi ü'), { stripLeadingSpace: true })).toBe('hi ü');
    const noPrefix = Tokenizer.fromGguf(parseGguf(build(false), 'spm.gguf'));
    expect(noPrefix.encode('hi')).toEqual([7]);
  });

  it('a file without tokenizer metadata names the file and the missing key', () => {
    const bytes = new GgufBuilder().string('general.architecture', 'llama').toBytes();
    expect(() => Tokenizer.fromGguf(parseGguf(bytes, 'weights-only.gguf'))).toThrow(TokenizerLoadError);
    expect(() => Tokenizer.fromGguf(parseGguf(bytes, 'weights-only.gguf'))).toThrow(/weights-only\.gguf.*tokenizer\.ggml\.model/);
  });
});
