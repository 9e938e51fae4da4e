import { describe, expect, it } from 'vitest';
import {
  assembleFim,
  chunkByLines,
  cursorQuery,
  chunksToContextFiles,
  extractImports,
  identifierSet,
  jaccard,
  chunkId,
  KEEP_BONUS,
  repoContextFiles,
  resolveImport,
  selectContext,
  SelectionMemory,
  type PromptTokenizer,
  type RepoContextInput,
} from '../../engine/context';

describe('identifiers and similarity', () => {
  it('drops keywords and one-letter names', () => {
    expect([...identifierSet('const fooBar = x + baz_2; return fooBar')]).toEqual(['fooBar', 'baz_2']);
  });
  it('jaccard', () => {
    expect(jaccard(new Set(['a', 'b']), new Set(['b', 'c']))).toBeCloseTo(1 / 3);
    expect(jaccard(new Set(), new Set())).toBe(0);
  });
  it('chunks by lines with 1-based inclusive ranges', () => {
    expect(chunkByLines('a\nb\nc\n', 2)).toEqual([
      { startLine: 1, endLine: 2, text: 'a\nb\n' },
      { startLine: 3, endLine: 3, text: 'c\n' },
    ]);
  });
});

describe('imports', () => {
  it('finds JS/TS, Python, C, Rust and Go imports', () => {
    const ts = `import { a } from './util';\nimport x from "../lib/x";\nconst y = require('./y');\nexport * from './z';`;
    expect(extractImports(ts).sort()).toEqual(['../lib/x', './util', './y', './z']);
    expect(extractImports('from pkg.mod import f\nimport os, sys\n').sort()).toEqual(['os', 'pkg.mod', 'sys']);
    expect(extractImports('#include "geom/vec.h"\n#include <stdio.h>')).toEqual(['geom/vec.h']);
    expect(extractImports('use crate::kv::radix;\nmod tree;')).toEqual(['crate::kv::radix', 'tree']);
    expect(extractImports('import (\n  "fmt"\n  "example.com/m/pkg"\n)')).toEqual(['fmt', 'example.com/m/pkg']);
  });
  it('resolves specifiers to candidate paths', () => {
    const paths = ['src/util.ts', 'lib/x/index.ts', 'pkg/mod.py', 'src/kv/radix.rs', 'other.ts'];
    expect(resolveImport('./util', 'src/main.ts', paths)).toEqual(['src/util.ts']);
    expect(resolveImport('../lib/x', 'src/main.ts', paths)).toEqual(['lib/x/index.ts']);
    expect(resolveImport('pkg.mod', 'app.py', paths)).toEqual(['pkg/mod.py']);
    expect(resolveImport('crate::kv::radix', 'src/main.rs', paths)).toEqual(['src/kv/radix.rs']);
    expect(resolveImport('os', 'app.py', paths)).toEqual([]);
  });
});

describe('selectContext', () => {
  const util = 'export function parseHeader(bytes) {\n  return readMagic(bytes);\n}\n';
  const noise = 'export function drawCircle(radius) {\n  return radius * 2;\n}\n';
  const recent = 'export function readMagic(bytes) {\n  return bytes[0];\n}\n';

  it('prefers similar and imported chunks, skips unrelated ones and the current file', () => {
    const chunks = selectContext({
      currentPath: 'src/main.ts',
      currentText: "import { parseHeader } from './util';\n",
      query: 'const header = parseHeader(bytes);\nreadMagic(',
      candidates: [
        { path: 'src/util.ts', text: util, sources: ['open'] },
        { path: 'src/draw.ts', text: noise, sources: ['open'] },
        { path: 'src/magic.ts', text: recent, sources: ['recent-edit'], editedAt: 5 },
        { path: 'src/main.ts', text: 'parseHeader readMagic bytes', sources: ['open'] },
      ],
      tokenBudget: 1000,
    });
    expect(chunks.map((c) => c.path)).toEqual(['src/util.ts', 'src/magic.ts']);
    expect(chunks[0]!.sources).toContain('import');
  });

  it('respects the token budget by dropping the lowest scores', () => {
    const chunks = selectContext({
      currentPath: 'a.ts',
      query: 'parseHeader readMagic bytes',
      candidates: [
        { path: 'src/util.ts', text: util, sources: ['open'] },
        { path: 'src/magic.ts', text: recent, sources: ['open'] },
      ],
      tokenBudget: 30,
      countTokens: (s) => Math.ceil(s.length / 4),
    });
    expect(chunks.map((c) => c.path)).toEqual(['src/util.ts']);
  });

  it('orders stable chunks first and recent edits last (oldest edit first)', () => {
    const chunks = selectContext({
      currentPath: 'a.ts',
      query: 'bytes',
      candidates: [
        { path: 'z.ts', text: 'bytes one', sources: ['recent-edit'], editedAt: 10 },
        { path: 'y.ts', text: 'bytes two', sources: ['recent-edit'], editedAt: 5 },
        { path: 'b.ts', text: 'bytes three', sources: ['open'] },
      ],
      tokenBudget: 1000,
    });
    expect(chunks.map((c) => c.path)).toEqual(['b.ts', 'y.ts', 'z.ts']);
  });

  it('merges adjacent chunks of one file', () => {
    const files = chunksToContextFiles([
      { path: 'a', startLine: 1, endLine: 2, text: 'l1\nl2\n', score: 1, sources: ['open'] },
      { path: 'a', startLine: 3, endLine: 4, text: 'l3\nl4\n', score: 1, sources: ['open'] },
      { path: 'a', startLine: 9, endLine: 9, text: 'l9\n', score: 1, sources: ['open'] },
    ]);
    expect(files).toEqual([
      { path: 'a', text: 'l1\nl2\nl3\nl4\n', score: 1 },
      { path: 'a', text: 'l9\n', score: 1 },
    ]);
  });
});

// A Qwen-style repo-level tokenizer with one id per character, so prompts compare token by token.
const charTokenizer: PromptTokenizer = {
  fim: { prefix: 1, suffix: 2, middle: 3, repoName: 4, fileSep: 5 },
  tokenText: (id) => ['', '<|fim_prefix|>', '<|fim_suffix|>', '<|fim_middle|>', '<|repo_name|>', '<|file_sep|>'][id]!,
  encode: (text) => [...text].map((c) => 100 + c.charCodeAt(0)),
  isEog: () => false,
};

function commonPrefix(a: number[], b: number[]): number {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}

describe('repository context for a FIM request (the editor\'s candidates)', () => {
  const util = 'def parse_header(data):\n    return read_magic(data)\n';
  const helpers = 'def read_magic(data):\n    return data[0]\n';
  const unrelated = 'def draw_circle(radius):\n    return radius * 2\n';
  const notes = (v: number) => `def checksum(data):\n    return sum(data) % ${v}\n`;
  const request = (edited: number, typed: string) => ({
    filePath: 'app/main.py',
    repoName: 'demo',
    prefix: 'from app.util import parse_header\n\nheader = parse_header(data)\nmagic = read_magic(data)\ntotal = checksum(data)\n' + typed,
    suffix: '\n',
    repoContext: {
      candidates: [
        { filePath: 'app/draw.py', text: unrelated, sources: ['open'] },
        { filePath: 'app/notes.py', text: notes(edited), sources: ['open', 'recent-edit'], editedAt: 1000 + edited },
        { filePath: 'app/helpers.py', text: helpers, sources: ['open'] },
        { filePath: 'app/util.py', text: util, sources: ['open'] },
      ],
      tokenBudget: 500,
    } satisfies RepoContextInput,
  });

  it('picks imported, similar and recently edited files, skips unrelated ones; stable first, recent edits last', () => {
    const files = repoContextFiles(request(7, '').repoContext, request(7, ''));
    expect(files.map((f) => f.path)).toEqual(['app/helpers.py', 'app/util.py', 'app/notes.py']);
    expect(files[1]!.text).toBe(util);
  });

  it('reads imports from the current file head when given, else from the prefix', () => {
    const input: RepoContextInput = { candidates: [{ filePath: 'lib/codec.py', text: 'def encode(x):\n    return x\n', sources: ['open'] }], tokenBudget: 500 };
    const req = { filePath: 'main.py', prefix: 'y = 1\n', suffix: '' };
    expect(repoContextFiles(input, req)).toEqual([]);
    expect(repoContextFiles({ ...input, currentHead: 'from lib.codec import encode\n' }, req).map((f) => f.path)).toEqual(['lib/codec.py']);
    expect(repoContextFiles({ ...input, tokenBudget: 0, currentHead: 'from lib.codec import encode\n' }, req)).toEqual([]);
  });

  it('compares chunks with the lines around the cursor', () => {
    const prefix = Array.from({ length: 50 }, (_, i) => `p${i}`).join('\n');
    const suffix = Array.from({ length: 50 }, (_, i) => `s${i}`).join('\n');
    const q = cursorQuery(prefix, suffix, 2, 2);
    expect(q).toBe('p48\np49s0\ns1');
  });

  it('consecutive keystrokes share the whole stable context as a prompt prefix, even when a recent edit changed', () => {
    // Keystroke 1, then the user edits notes.py and types in main.py: only the recent-edit chunk
    // (last) and the current file's text differ.
    const a = assembleFim(charTokenizer, request(7, 'x'));
    const b = assembleFim(charTokenizer, request(9, 'xy'));
    const contexts = (p: typeof a) => p.tokens.segments.filter((s) => s.kind === 'context');
    expect(contexts(a)).toHaveLength(3);
    const stableEnd = contexts(a)[1]!.end; // helpers.py and util.py
    expect(contexts(b)[1]!.end).toBe(stableEnd);
    const shared = commonPrefix(a.tokens.ids, b.tokens.ids);
    expect(shared).toBeGreaterThanOrEqual(stableEnd);
    // ... and the recent edit is where they part.
    expect(shared).toBeLessThan(contexts(a)[2]!.end);
    // Ordered by score instead, the recent edit (boosted) comes before helpers.py, whose tokens
    // then fall outside the shared prefix: the engine would prefill them again.
    const byScore = (r: ReturnType<typeof request>) =>
      assembleFim(charTokenizer, { ...r, repoContext: undefined, chunks: [...repoContextFiles(r.repoContext, r)].sort((x, y) => (y.score ?? 0) - (x.score ?? 0)).map((f) => ({ filePath: f.path, text: f.text, score: f.score })) });
    const sa = byScore(request(7, 'x'));
    const sharedByScore = commonPrefix(sa.tokens.ids, byScore(request(9, 'xy')).tokens.ids);
    expect(sa.prompt.segments.filter((s) => s.kind === 'context').map((s) => s.key.split(':')[1])).toEqual(['app/util.py', 'app/notes.py', 'app/helpers.py']);
    expect(sharedByScore).toBeLessThan(contexts(sa)[2]!.start);
    expect(sharedByScore).toBeLessThan(shared);
  });

  it('given chunks come first, then the selected ones', () => {
    const r = request(7, '');
    const a = assembleFim(charTokenizer, { ...r, chunks: [{ filePath: 'pinned.py', text: 'PINNED = 1\n', score: 1 }] });
    const order = a.prompt.segments.filter((s) => s.kind === 'context').map((s) => s.key.split(':')[1]);
    expect(order).toEqual(['pinned.py', 'app/helpers.py', 'app/util.py', 'app/notes.py']);
  });
});

describe('keeping the previous choice between keystrokes', () => {
  const shared = Array.from({ length: 30 }, (_, i) => `shared${i}`).join(' ');
  const a = { path: 'a.ts', text: `${shared} onlyA1 onlyA2\n`, sources: ['open' as const] };
  const b = { path: 'b.ts', text: `${shared} onlyB1 onlyB2\n`, sources: ['open' as const] };
  // Room for one chunk: 10 tokens of text + 10 of path + 2.
  const pick = (query: string, keep?: ReadonlySet<string>) =>
    selectContext({ currentPath: 'm.ts', query, candidates: [a, b], tokenBudget: 30, countTokens: () => 10, keep }).map((c) => c.path);

  it('a rival slightly ahead does not replace the chunk chosen last time; a clearly better one does', () => {
    const q1 = `${shared} onlyA1`;
    const q2 = `${shared} onlyB1`;
    expect(pick(q1)).toEqual(['a.ts']);
    // Without memory the choice flips on a small change of the code around the cursor...
    const [sa, sb] = [selectContext({ currentPath: 'm.ts', query: q2, candidates: [a], tokenBudget: 99, countTokens: () => 10 })[0]!.score, selectContext({ currentPath: 'm.ts', query: q2, candidates: [b], tokenBudget: 99, countTokens: () => 10 })[0]!.score];
    expect(sb - sa).toBeGreaterThan(0);
    expect(sb - sa).toBeLessThan(KEEP_BONUS);
    expect(pick(q2)).toEqual(['b.ts']);
    // ... with the previous choice kept, it stays.
    expect(pick(q2, new Set([chunkId({ path: 'a.ts', startLine: 1 })]))).toEqual(['a.ts']);
    // Once the kept chunk no longer relates to the cursor at all, it goes.
    expect(pick('onlyB1 onlyB2', new Set(['a.ts:1']))).toEqual(['b.ts']);
  });

  it('repoContextFiles remembers what it chose per file', () => {
    const memory = new SelectionMemory(2);
    const input: RepoContextInput = { candidates: [{ filePath: 'a.ts', text: a.text, sources: ['open'] }], tokenBudget: 500 };
    repoContextFiles(input, { filePath: 'm.ts', prefix: 'shared1 shared2', suffix: '' }, memory);
    expect([...memory.get('m.ts')!]).toEqual(['a.ts:1']);
    repoContextFiles(input, { filePath: 'n.ts', prefix: 'nothing alike', suffix: '' }, memory);
    expect([...memory.get('n.ts')!]).toEqual([]);
    repoContextFiles(input, { filePath: 'o.ts', prefix: 'shared1', suffix: '' }, memory);
    expect(memory.get('m.ts')).toBeUndefined(); // two files remembered at most
  });
});
