// Special, user-defined, FIM and end-of-generation tokens on the real vocabularies.
import { describe, expect, it } from 'vitest';
import { HAVE_VOCABS, loadTokenizer } from './fixtures';

describe.skipIf(!HAVE_VOCABS)('special tokens (fixtures)', () => {
  it('qwen2: control tokens are matched only with parseSpecial', () => {
    const tok = loadTokenizer('qwen2');
    const text = '<|fim_prefix|>def f():<|fim_suffix|>\n<|fim_middle|>';
    const parsed = tok.encode(text, { parseSpecial: true });
    expect(parsed[0]).toBe(151659);
    expect(parsed).toContain(151661);
    expect(parsed[parsed.length - 1]).toBe(151660);
    expect(parsed.slice(1, parsed.indexOf(151661))).toEqual(tok.encode('def f():'));
    const plain = tok.encode(text);
    for (const id of [151659, 151660, 151661]) expect(plain).not.toContain(id);
    expect(tok.decode(plain)).toBe(text);
    expect(tok.decode(parsed, { special: true })).toBe(text);
    expect(tok.decode(parsed)).toBe('def f():\n'); // control tokens print nothing by default
  });

  it('qwen2: user-defined tokens are matched even without parseSpecial', () => {
    const tok = loadTokenizer('qwen2');
    const ids = tok.encode('x<tool_call>y');
    expect(ids).toEqual([...tok.encode('x'), 151657, ...tok.encode('y')]);
  });

  it('deepseek-coder: FIM tokens typed user-defined are treated as control, as llama.cpp does', () => {
    const tok = loadTokenizer('deepseek-coder');
    expect(tok.encode('<｜fim▁begin｜>')).not.toContain(32016);
    expect(tok.encode('<｜fim▁begin｜>a<｜fim▁hole｜>', { parseSpecial: true })).toEqual([32016, ...tok.encode('a'), 32015]);
    // A plain user-defined token (one character) is matched in ordinary text.
    expect(tok.encode('õ')).toEqual([32000]);
  });

  it('phi-3: whitespace after its specials is stripped (llama.cpp rstrip by model name)', () => {
    // </s> is user-defined in phi-3's file, but llama.cpp lists it as end-of-generation and so
    // makes it control: matched only with parseSpecial.
    const tok = loadTokenizer('phi-3');
    expect(tok.encode('a</s>b')).not.toContain(2);
    const a = tok.encode('a</s>  b', { parseSpecial: true });
    expect(a).toContain(2);
    expect(a).toEqual(tok.encode('a</s>b', { parseSpecial: true }));
    const spm = loadTokenizer('llama-spm'); // no rstrip there: the spaces stay
    expect(spm.encode('a</s>  b', { parseSpecial: true })).not.toEqual(spm.encode('a</s>b', { parseSpecial: true }));
  });

  it('addSpecial adds BOS only where the model asks for it', () => {
    expect(loadTokenizer('llama-spm').encode('hi', { addSpecial: true })[0]).toBe(1);
    expect(loadTokenizer('deepseek-coder').encode('hi', { addSpecial: true })[0]).toBe(32013);
    const qwen = loadTokenizer('qwen2');
    expect(qwen.addBos).toBe(false);
    expect(qwen.encode('hi', { addSpecial: true })).toEqual(qwen.encode('hi'));
  });

  it('FIM tokens per family', () => {
    expect(loadTokenizer('qwen2').fim).toEqual({ prefix: 151659, suffix: 151661, middle: 151660, pad: 151662, repoName: 151663, fileSep: 151664 });
    expect(loadTokenizer('deepseek-coder').fim).toEqual({ prefix: 32016, suffix: 32015, middle: 32017, pad: undefined, repoName: undefined, fileSep: undefined });
    expect(loadTokenizer('starcoder').fim).toEqual({ prefix: 1, suffix: 3, middle: 2, pad: 4, repoName: 5, fileSep: 6 });
    expect(loadTokenizer('refact').fim).toEqual({ prefix: 1, suffix: 3, middle: 2, pad: 4, repoName: 18, fileSep: undefined });
    expect(loadTokenizer('gpt-2').fim).toBeUndefined();
    expect(loadTokenizer('llama-spm').fim).toBeUndefined();
    const q = loadTokenizer('qwen2');
    expect(q.tokenText(q.fim!.prefix)).toBe('<|fim_prefix|>');
  });

  it('end-of-generation sets', () => {
    const q = loadTokenizer('qwen2');
    expect(q.eos).toBe(151645);
    for (const id of [151643, 151645, 151662, 151663, 151664]) expect(q.isEog(id)).toBe(true);
    expect(q.isEog(151644)).toBe(false); // <|im_start|>
    expect(q.isEog(q.encode('hello')[0]!)).toBe(false);
    const d = loadTokenizer('deepseek-coder');
    expect(d.eot).toBe(32014);
    expect(d.isEog(32014) && d.isEog(32021)).toBe(true); // <｜end▁of▁sentence｜>, <|EOT|>
    const s = loadTokenizer('starcoder');
    expect([0, 4, 5, 6].every((id) => s.isEog(id))).toBe(true);
    expect(s.isEog(1)).toBe(false);
  });
});

describe.skipIf(!HAVE_VOCABS)('text edge cases', () => {
  it('a lone surrogate is tokenized as U+FFFD (what reaches llama.cpp as UTF-8)', () => {
    for (const name of ['llama-spm', 'qwen2'] as const) {
      const tok = loadTokenizer(name);
      expect(tok.encode('a\ud800b')).toEqual(tok.encode('a\ufffdb'));
    }
  });
  it('decode keeps a leading U+FEFF (TextDecoder would strip it by default)', () => {
    const tok = loadTokenizer('qwen2');
    expect(tok.decode(tok.encode('\ufeffx'))).toBe('\ufeffx');
    const dec = tok.createStreamDecoder();
    expect(tok.encode('\ufeffx').map((id) => dec.push(id)).join('') + dec.flush()).toBe('\ufeffx');
  });
});
