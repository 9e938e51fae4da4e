// BPE merge order, SentencePiece scores and byte fallback, FIM discovery and load errors, on
// small hand-made vocabularies where the right answer can be worked out by hand.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ModelNotSupportedError } from '../../engine/errors';
import {
  BpeModel,
  SpmModel,
  Tokenizer,
  TokenType,
  TokenizerLoadError,
  createPreTokenizer,
  preTokenizerFor,
  spmTokenize,
  vocabSpecFromMetadata,
  type VocabSpec,
} from '../../engine/tokenizer';
import { HAVE_VOCABS, loadTokenizer, loadVectors } from './fixtures';

function bpe(tokens: string[], merges: string[], extra: Partial<VocabSpec> = {}): Tokenizer {
  return Tokenizer.fromSpec({ model: 'gpt2', pre: 'gpt-2', tokens, merges, ...extra });
}

describe('byte-level BPE merges', () => {
  it('merges the lowest rank first, whatever its position', () => {
    const tokens = ['a', 'b', 'c', 'ab', 'bc', 'abc'];
    // "b c" outranks "a b": abc -> a + bc -> abc
    expect(bpe(tokens, ['b c', 'a bc', 'a b']).encode('abc')).toEqual([5]);
    // "a b" outranks "b c": abc -> ab + c, and with no "ab c" merge it stops there
    expect(bpe(tokens, ['a b', 'b c']).encode('abc')).toEqual([3, 2]);
  });

  it('takes the leftmost pair on equal ranks', () => {
    const t = bpe(['a', 'aa'], ['a a']);
    expect(t.encode('aaa')).toEqual([1, 0]);
    expect(t.encode('aaaa')).toEqual([1, 1]);
  });

  it('maps bytes through the GPT-2 table: space is Ġ, é is two byte characters', () => {
    const t = bpe(['a', 'Ġ', 'Ġa', 'Ã', '©', 'Ã©'], ['Ġ a', 'Ã ©']);
    expect(t.encode(' a')).toEqual([2]);
    expect(t.encode('é')).toEqual([5]);
    expect(t.decode([2, 5])).toBe(' aé');
  });

  it('uses a cached result for a repeated word with the same answer', () => {
    const t = bpe(['a', 'b', 'ab', 'Ġ', 'Ġab'], ['a b', 'Ġ ab']);
    expect(t.encode('ab ab ab')).toEqual([2, 4, 4]);
    expect(t.encode('ab')).toEqual([2]);
  });
});

describe('SentencePiece', () => {
  const base = ['<unk>', '<s>', '</s>', '▁', 'a', 'b', '▁a', 'ab', '<0xC3>', '<0xA9>'];
  const types = [TokenType.Unknown, TokenType.Control, TokenType.Control, 1, 1, 1, 1, 1, TokenType.Byte, TokenType.Byte];
  const spm = (scores: number[], extra: Partial<VocabSpec> = {}) =>
    Tokenizer.fromSpec({ model: 'llama', tokens: base, scores, tokenTypes: types, ...extra });

  it('merges the highest-scoring pair first and adds the prefix space', () => {
    // "▁a" (-1) beats "ab" (-2): ▁ab -> ▁a + b
    expect(spm([0, 0, 0, -5, -5, -5, -1, -2, 0, 0]).encode('ab')).toEqual([6, 5]);
    // "ab" (-1) beats "▁a" (-2): ▁ab -> ▁ + ab
    expect(spm([0, 0, 0, -5, -5, -5, -2, -1, 0, 0]).encode('ab')).toEqual([3, 7]);
  });

  it('falls back to byte tokens for unknown characters and decodes them back', () => {
    const t = spm([0, 0, 0, -5, -5, -5, -1, -2, 0, 0]);
    const ids = t.encode('é');
    expect(ids).toEqual([3, 8, 9]);
    expect(t.decode(ids)).toBe(' é');
    expect(t.decode(ids, { stripLeadingSpace: true })).toBe('é');
  });

  it('add_space_prefix=false keeps the text as it is', () => {
    expect(spm([0, 0, 0, -5, -5, -5, -1, -2, 0, 0], { addSpacePrefix: false }).encode('ab')).toEqual([7]);
  });

  it('CodeLlama FIM tokens (▁<PRE> ▁<SUF> ▁<MID> ▁<EOT>) are found by text', () => {
    const tokens = [...base, '▁<PRE>', '▁<SUF>', '▁<MID>', '▁<EOT>'];
    const t = Tokenizer.fromSpec({ model: 'llama', tokens, tokenTypes: [...types, 3, 3, 3, 3] });
    expect(t.fim).toEqual({ prefix: 10, suffix: 11, middle: 12, pad: undefined, repoName: undefined, fileSep: undefined });
    expect(t.isEog(13)).toBe(true);
    expect(t.isEog(2)).toBe(true);
  });

  it('Codestral FIM tokens ([PREFIX] [SUFFIX] [MIDDLE]) are found by text', () => {
    const tokens = [...base, '[PREFIX]', '[SUFFIX]', '[MIDDLE]'];
    const t = Tokenizer.fromSpec({ model: 'llama', tokens, tokenTypes: [...types, 3, 3, 3] });
    expect(t.fim).toMatchObject({ prefix: 10, suffix: 11, middle: 12 });
    expect(t.encode('[PREFIX]a', { parseSpecial: true })[0]).toBe(10);
  });

  it('FIM ids from metadata win over token text', () => {
    const tokens = [...base, '<fim_prefix>', '<fim_suffix>', '<fim_middle>'];
    const t = Tokenizer.fromSpec({ model: 'llama', tokens, tokenTypes: [...types, 3, 3, 3], fimPrefix: 4, fimSuffix: 5, fimMiddle: 6 });
    expect(t.fim).toMatchObject({ prefix: 4, suffix: 5, middle: 6 });
  });
});

describe('loading errors', () => {
  it('unknown pre-tokenizer names the value and how to fix it', () => {
    let err: unknown;
    try {
      bpe(['a'], [], { pre: 'no-such-pre' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ModelNotSupportedError);
    expect((err as Error).message).toContain('no-such-pre');
    expect((err as ModelNotSupportedError).hint).toContain('qwen2');
  });

  it('unsupported tokenizer model', () => {
    expect(() => Tokenizer.fromSpec({ model: 'bert', tokens: ['a'] })).toThrow(ModelNotSupportedError);
  });

  it('metadata without tokens or with bad types', () => {
    const meta = (m: Record<string, unknown>) => ({ get: (k: string) => m[k], path: 'x.gguf' });
    expect(() => vocabSpecFromMetadata(meta({}))).toThrow(TokenizerLoadError);
    expect(() => vocabSpecFromMetadata(meta({ 'tokenizer.ggml.model': 'gpt2' }))).toThrow(/tokenizer.ggml.tokens/);
    expect(() => vocabSpecFromMetadata(meta({ 'tokenizer.ggml.model': 'gpt2', 'tokenizer.ggml.tokens': ['a', 'b'], 'tokenizer.ggml.token_type': [1] })))
      .toThrow(/token_type has 1 entries for 2 tokens/);
    expect(() => Tokenizer.fromSpec({ model: 'gpt2', pre: 'gpt-2', tokens: ['a'] })).toThrow(TokenizerLoadError);
  });
});

describe.skipIf(!HAVE_VOCABS)('BPE id path and string path agree', () => {
  for (const name of ['qwen2', 'deepseek-coder', 'gpt-2'] as const) {
    it(name, () => {
      const tok = loadTokenizer(name);
      const model = new BpeModel({ tokenToId: tok.vocab.tokenToId, merges: tok.vocab.merges, ignoreMerges: false });
      const split = createPreTokenizer(preTokenizerFor(tok.vocab.pre).regexes);
      const text = loadVectors(name).map((v) => v.text).join('\n') + readFileSync(resolve(__dirname, '../../node_modules/typescript/lib/lib.es5.d.ts'), 'utf8').slice(0, 20_000);
      const words = [...new Set(split(text))];
      expect(words.length).toBeGreaterThan(500);
      for (const w of words) {
        expect(model.encodeBytes(new TextEncoder().encode(w))).toEqual(model.encodeUncached(BpeModel.byteEncode(w)));
      }
    });
  }
});

describe.skipIf(!HAVE_VOCABS)('SentencePiece in pieces equals SentencePiece over the whole text', () => {
  for (const name of ['llama-spm', 'phi-3'] as const) {
    it(name, () => {
      const tok = loadTokenizer(name);
      const model = new SpmModel(tok.vocab);
      const text = (' ' + loadVectors(name).map((v) => v.text).join('\n') + readFileSync(resolve(__dirname, '../../node_modules/typescript/lib/lib.es5.d.ts'), 'utf8').slice(0, 6_000)).replaceAll(' ', '\u2581');
      const whole: number[] = [];
      spmTokenize(text, tok.vocab, whole);
      const pieces: number[] = [];
      model.encode(text, pieces);
      expect(pieces).toEqual(whole);
    });
  }

  it('a vocabulary with a token like "a▁b" is not cut', () => {
    const tokens = ['<unk>', '▁', 'a', 'b', 'a▁', 'a▁b'];
    const vocab = { tokens, tokenToId: new Map(tokens.map((t, i) => [t, i])), scores: [0, -1, -1, -1, -2, -1], byteToken: () => undefined };
    const out: number[] = [];
    new SpmModel(vocab).encode('a▁b', out);
    expect(out).toEqual([5]);
  });
});
