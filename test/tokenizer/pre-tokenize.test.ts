// The hand-written splitters must split exactly as the regexes they stand for. JS regexes with
// the u flag are the reference here (same patterns as llama.cpp's tokenizer.json originals).
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createPreTokenizer, preTokenizerFor } from '../../engine/tokenizer';
import { HAVE_VOCABS, loadVectors } from './fixtures';

function regexSplit(pattern: string, text: string): string[] {
  const out: string[] = [];
  let prev = 0;
  for (const m of text.matchAll(new RegExp(pattern, 'gu'))) {
    if (m.index! > prev) out.push(text.slice(prev, m.index));
    out.push(m[0]);
    prev = m.index! + m[0].length;
  }
  if (prev < text.length) out.push(text.slice(prev));
  return out;
}

const CODE = `export function add(a: number, b: number): number {
  // it's 2024's best   code, isn't it? We'RE sure; x1234567 = 0x1F;\r\n\tconst s = "héllo wörld — 你好世界";
    return a + b;   \n\n\n  }
const π = 3.14159, arr = [1,2,3]; /* ¡olé! */ if (x !== y && z >= 10) { y += '\\'s'; }`;

function corpus(): string[] {
  const lib = readFileSync(resolve(__dirname, '../../node_modules/typescript/lib/lib.es5.d.ts'), 'utf8').slice(0, 40_000);
  const texts = [CODE, lib, "'s 'S 'Re 've 'LL 'd 'x", '   a  \n  b \t\n\t c    ', 'ab12345cd 1 22 333 4444'];
  if (HAVE_VOCABS) texts.push(...loadVectors('qwen2').map((v) => v.text));
  // U+0085 and U+FEFF: JS and llama.cpp disagree on whether they are \s; keep them out.
  return texts.map((t) => t.replace(/[\u0085\uFEFF]/g, ''));
}

describe('pre-tokenizers', () => {
  const cases: [string, string][] = [
    ['gpt-2', "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"],
    ['llama-bpe', "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"],
    ['qwen2', "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"],
  ];
  for (const [pre, pattern] of cases) {
    it(`${pre}: hand-written splitter equals the regex`, () => {
      const split = createPreTokenizer(preTokenizerFor(pre).regexes);
      for (const text of corpus()) expect(split(text)).toEqual(regexSplit(pattern, text));
    });
  }

  it('digits: qwen2 one by one, llama3 in threes, deepseek-coder one by one', () => {
    const words = (pre: string, t: string) => createPreTokenizer(preTokenizerFor(pre).regexes)(t);
    expect(words('qwen2', 'x 12345')).toEqual(['x', ' ', '1', '2', '3', '4', '5']);
    expect(words('llama-bpe', 'x 12345')).toEqual(['x', ' ', '123', '45']);
    expect(words('deepseek-coder', 'x 12345')).toEqual(['x', ' ', '1', '2', '3', '4', '5']);
    expect(words('starcoder', 'v12 ab')).toEqual(['v', '1', '2', ' ab']);
  });

  it('deepseek-coder: CJK runs and punctuation runs are words of their own', () => {
    const split = createPreTokenizer(preTokenizerFor('deepseek-coder').regexes);
    expect(split('a 你好世界!! b\n')).toEqual(['a', ' ', '你好世界', '!!', ' b', '\n']);
  });

  it('pieces always cover the text exactly', () => {
    for (const pre of ['gpt-2', 'llama-bpe', 'qwen2', 'deepseek-coder', 'starcoder', 'refact', 'default', 'deepseek-llm', 'deepseek-v3', 'falcon']) {
      const split = createPreTokenizer(preTokenizerFor(pre).regexes);
      for (const text of corpus()) {
        const words = split(text);
        expect(words.join('')).toBe(text);
        expect(words.every((w) => w.length > 0)).toBe(true);
      }
    }
  });
});
