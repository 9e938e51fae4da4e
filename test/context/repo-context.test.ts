import { describe, expect, it } from 'vitest';
import {
  chunkByLines,
  chunksToContextFiles,
  extractImports,
  identifierSet,
  jaccard,
  resolveImport,
  selectContext,
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
