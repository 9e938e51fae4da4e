import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  cutLineTasks, editSimilarity, firstLine, listSources, previousLine, readHumanEval, scoreLine, spread,
} from '../../bench/fim-quality-tasks';

describe('fim-quality metrics (train.py edit_sim / prev_line)', () => {
  it('edit similarity is 1 - levenshtein / max length', () => {
    expect(editSimilarity('', '')).toBe(1);
    expect(editSimilarity('abc', 'abc')).toBe(1);
    expect(editSimilarity('abc', '')).toBe(0);
    expect(editSimilarity('kitten', 'sitting')).toBeCloseTo(1 - 3 / 7, 12);
    expect(editSimilarity('    return x', '    return y')).toBeCloseTo(1 - 1 / 12, 12);
    // Code points, like Python strings: one astral character is one edit, not two.
    expect(editSimilarity('a😀', 'ab')).toBeCloseTo(0.5, 12);
  });

  it('scores rstripped strings; the baseline is the last prefix line', () => {
    expect(scoreLine('  x = 1   ', '  x = 1')).toEqual({ exact: true, editSim: 1 });
    expect(scoreLine('x', 'y').exact).toBe(false);
    expect(previousLine('def f():\n    a = 1\n')).toBe('    a = 1');
    expect(previousLine('def f():\n    a')).toBe('    a');
    expect(previousLine('')).toBe('');
    expect(firstLine('abc\ndef')).toBe('abc');
    expect(firstLine('abc')).toBe('abc');
  });

  it('spread picks evenly over the set', () => {
    const xs = Array.from({ length: 10 }, (_, i) => i);
    expect(spread(xs, 5)).toEqual([0, 2, 4, 6, 8]);
    expect(spread(xs, 20)).toEqual(xs);
  });
});

describe('held-out line tasks', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fimq-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('cuts whole-line holes that put the file back together, reproducibly', () => {
    const text = Array.from({ length: 40 }, (_, i) => (i % 7 === 3 ? '' : `const v${i} = f(${i});`)).join('\n') + '\n';
    const files = [{ path: 'pkg/a.js', text }];
    const tasks = cutLineTasks(files, 2, 10);
    expect(tasks.length).toBe(10);
    expect(cutLineTasks(files, 2, 10)).toEqual(tasks);
    expect(cutLineTasks(files, 3, 10)).not.toEqual(tasks);
    for (const t of tasks) {
      expect(t.prefix + t.want + '\n' + t.suffix).toBe(text);
      expect(t.want.trim().length).toBeGreaterThanOrEqual(3);
      expect(t.prefix.length).toBeGreaterThan(0); // never the first line
      expect(t.suffix.length).toBeGreaterThan(0); // never the last line
    }
    expect(new Set(tasks.map((t) => t.id)).size).toBe(tasks.length);
  });

  it('lists JS/TS sources like collect_js.py: no minified, no .d.ts, no nested node_modules', () => {
    const pkg = join(dir, 'pkg');
    mkdirSync(join(pkg, 'lib'), { recursive: true });
    mkdirSync(join(pkg, 'node_modules', 'dep'), { recursive: true });
    const normal = 'let a = 1;\n'.repeat(300);
    writeFileSync(join(pkg, 'lib', 'ok.js'), normal);
    writeFileSync(join(pkg, 'lib', 'types.d.ts'), normal);
    writeFileSync(join(pkg, 'lib', 'x.min.js'), normal);
    writeFileSync(join(pkg, 'lib', 'long.js'), 'x'.repeat(5000) + '\n');
    writeFileSync(join(pkg, 'lib', 'notes.md'), normal);
    writeFileSync(join(pkg, 'node_modules', 'dep', 'dep.js'), normal);
    const files = listSources([pkg]);
    expect(files.map((f) => f.path)).toEqual(['pkg/lib/ok.js']);
  });

  it('readHumanEval returns undefined when the file is absent', () => {
    expect(readHumanEval(join(dir, 'missing.jsonl.gz'))).toBeUndefined();
  });
});

describe('HumanEval fixture', () => {
  const path = join(__dirname, '../../../shared/fixtures/eval/HumanEval-SingleLineInfilling.jsonl.gz');
  const tasks = readHumanEval(path);
  it.skipIf(!tasks)('reads 1033 single-line tasks whose hole is one line', () => {
    if (!tasks) return;
    expect(tasks.length).toBe(1033);
    for (const t of tasks) expect(t.want.includes('\n')).toBe(false);
    expect(tasks[0]!.prefix.endsWith('\n')).toBe(true);
  });
  if (!tasks) it.skip(`HumanEval fixture absent at ${path}`, () => {});
});
