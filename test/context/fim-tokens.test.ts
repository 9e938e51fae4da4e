// Exact token sequences per family with the fixture vocabularies (llama.cpp's expected
// tokenizations in .inp/.out give the text parts' ids independently of our tokenizer).
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { assembleFim, buildFimPrompt, fimFormatFor, promptText, splitTypedIndent, tokenizePrompt } from '../../engine/context';
import { openGguf } from '../../engine/gguf';
import { Tokenizer } from '../../engine/tokenizer';

const DIR = '../shared/fixtures/vocab';
const have = existsSync(DIR);
if (!have) console.warn(`SKIP fim-tokens: ${DIR} is absent (fixture vocabularies)`);

function load(name: string) {
  const base = `${DIR}/ggml-vocab-${name}.gguf`;
  const tok = Tokenizer.fromGguf(openGguf(base));
  const inp = readFileSync(base + '.inp', 'utf8').split('\n__ggml_vocab_test__\n');
  const out = readFileSync(base + '.out', 'utf8').split('\n').map((l) => (l.trim() === '' ? [] : l.trim().split(/\s+/).map(Number)));
  const expected = (text: string): number[] => {
    const i = inp.indexOf(text);
    if (i < 0) throw new Error(`fixture string not found: ${JSON.stringify(text)}`);
    return out[i]!;
  };
  return { tok, expected };
}

describe.skipIf(!have)('FIM token sequences with fixture vocabularies', () => {
  const pre = 'Hello world';
  const suf = ' Hello World';

  it('qwen2.5-coder: <|fim_prefix|>P<|fim_suffix|>S<|fim_middle|> with ids 151659/151661/151660', () => {
    const { tok, expected } = load('qwen2');
    const format = fimFormatFor(tok)!;
    expect(format.family).toBe('qwen');
    // Without the repo header (plain PSM), as llama.cpp's /infill builds it with no extra context.
    const p = buildFimPrompt({ ...format, repoLevel: false }, { path: 'a.py', prefix: pre, suffix: suf });
    expect(tokenizePrompt(p, tok).ids).toEqual([151659, ...expected(pre), 151661, ...expected(suf), 151660]);
  });

  it('deepseek-coder: <｜fim▁begin｜>P<｜fim▁hole｜>S<｜fim▁end｜> with ids 32016/32015/32017', () => {
    const { tok, expected } = load('deepseek-coder');
    const format = fimFormatFor(tok)!;
    expect(format.family).toBe('deepseek');
    const p = buildFimPrompt(format, { path: 'a.py', prefix: pre, suffix: suf });
    expect(tokenizePrompt(p, tok).ids).toEqual([32016, ...expected(pre), 32015, ...expected(suf), 32017]);
  });

  it('starcoder2: <fim_prefix>P<fim_suffix>S<fim_middle> with ids 1/3/2', () => {
    const { tok, expected } = load('starcoder');
    const format = fimFormatFor(tok)!;
    expect(format.family).toBe('starcoder');
    expect(format.repoLevel).toBe(true);
    const p = buildFimPrompt({ ...format, repoLevel: false }, { path: 'a.py', prefix: pre, suffix: suf });
    expect(tokenizePrompt(p, tok).ids).toEqual([1, ...expected(pre), 3, ...expected(suf), 2]);
  });

  it('refact (StarCoder-1 tokens, no file_sep): repo-level off', () => {
    const { tok } = load('refact');
    expect(fimFormatFor(tok)).toMatchObject({ family: 'starcoder', repoLevel: false });
  });

  for (const name of ['qwen2', 'starcoder', 'deepseek-coder']) {
    it(`${name}: segment-wise ids equal the whole prompt text tokenized with special parsing`, () => {
      const { tok } = load(name);
      const p = buildFimPrompt(fimFormatFor(tok)!, {
        repoName: 'cachet',
        path: 'engine/kv/radix.ts',
        prefix: 'export function match(tree: Tree, ids: number[]) {\n  let node = tree.root;\n  ',
        suffix: '\n  return node;\n}\n',
        context: [
          { path: 'engine/kv/tree.ts', text: 'export interface Tree {\n  root: Node;\n}\n' },
          { path: 'engine/kv/node.ts', text: 'export class Node {\n  children = new Map<number, Node>();\n}\n' },
        ],
      });
      const t = tokenizePrompt(p, tok);
      expect(t.ids).toEqual(tok.encode(promptText(p), { addSpecial: false, parseSpecial: true }));
      // segments tile the ids
      expect(t.segments[0]!.start).toBe(0);
      for (let i = 1; i < t.segments.length; i++) expect(t.segments[i]!.start).toBe(t.segments[i - 1]!.end);
      expect(t.segments[t.segments.length - 1]!.end).toBe(t.ids.length);
    });
  }

  it('qwen2: repo-level ids start with <|repo_name|> and the current file follows <|file_sep|>', () => {
    const { tok } = load('qwen2');
    const a = assembleFim(tok, {
      repoName: 'demo',
      filePath: 'main.py',
      prefix: 'import util\nx = util.',
      suffix: '\n',
      chunks: [{ filePath: 'util.py', text: 'def helper():\n    return 1\n', score: 1 }],
    });
    const ids = a.tokens.ids;
    expect(ids[0]).toBe(151663);
    expect(ids.filter((i) => i === 151664)).toHaveLength(2);
    // The cursor line's typed text follows <|fim_middle|> (cursorLineInMiddle, on by default).
    const middle = a.tokens.segments[a.tokens.segments.length - 1]!;
    expect(ids[middle.start]).toBe(151660);
    expect(tok.decode(ids.slice(middle.start + 1))).toBe('x = util.');
    expect(tok.decode(ids.slice(a.tokens.segments[3]!.start + 1, a.tokens.segments[3]!.end))).toBe('import util\n');
    expect(a.tokens.segments.map((s) => s.kind)).toEqual(['repo', 'context', 'file', 'prefix', 'suffix', 'middle']);
    expect(tok.decode(ids.slice(a.tokens.segments[1]!.start + 1, a.tokens.segments[1]!.end))).toBe('util.py\ndef helper():\n    return 1\n');
    expect([151664, 151659, 151643, 151645].every(a.isStopToken)).toBe(true);
    expect(a.isStopToken(tok.encode('x')[0]!)).toBe(false);
  });

  it('assembleFim keeps the caller\'s chunk order and drops the lowest score when over budget', () => {
    const { tok } = load('qwen2');
    const chunks = [
      { filePath: 'a.py', text: 'alpha = 1\n'.repeat(20), score: 0.9 },
      { filePath: 'b.py', text: 'beta = 2\n'.repeat(20), score: 0.1 },
      { filePath: 'c.py', text: 'gamma = 3\n'.repeat(20), score: 0.5 },
    ];
    const a = assembleFim(tok, { filePath: 'm.py', prefix: 'x', suffix: '', chunks }, { budget: { contextTokens: 250 } });
    expect(a.prompt.droppedContext).toEqual(['b.py']);
    const order = a.prompt.segments.filter((s) => s.kind === 'context').map((s) => s.key.split(':')[1]);
    expect(order).toEqual(['a.py', 'c.py']);
  });
});

describe.skipIf(!have)('prefix reuse while typing (deepseek-coder vocabulary)', () => {
  it('with the cursor line after the middle token and typed indentation healed, every keystroke keeps all tokens up to the middle token', () => {
    const { tok } = load('deepseek-coder');
    const before = 'def total(xs):\n    """Sum of xs."""\n    s = 0\n';
    const after = '\n    return s\n\n\nprint(total([1, 2, 3]))\n';
    const line = '    for x in xs:';
    let prev: number[] | undefined;
    let middleEnd = 0;
    for (let k = 0; k <= line.length; k++) {
      const pre = before + line.slice(0, k);
      const a = assembleFim(tok, { prefix: splitTypedIndent(pre).prefix, suffix: after, filePath: 'a.py' });
      const ids = a.tokens.ids;
      const middle = a.tokens.segments.find((s) => s.kind === 'middle')!;
      if (prev) {
        // Everything through the middle token is unchanged; only the typed text after it grows.
        expect(ids.slice(0, middle.start + 1)).toEqual(prev.slice(0, middleEnd));
      }
      prev = ids;
      middleEnd = middle.start + 1;
    }
  });
});
