import { describe, expect, it } from 'vitest';
import { contextCandidates, EditTracker, headOf, type OpenFile } from '../../src/completion/open-files';

const file = (path: string, lastActive: number, extra: Partial<OpenFile> = {}): OpenFile => ({
  uri: `file:///w/${path}`, path, text: `// ${path}\nexport const x = 1;\n`, languageId: 'typescript', lastActive, ...extra,
});

describe('contextCandidates', () => {
  const current = { uri: 'file:///w/cur.ts' };

  it('skips the current and empty files, marks edited files, and lists them by path', () => {
    const files = [file('cur.ts', 9), file('z.ts', 1), file('a.py', 8, { languageId: 'python' }), file('m.ts', 5, { editedAt: 100 }), file('empty.ts', 7, { text: '  \n' })];
    const c = contextCandidates(files, current);
    expect(c.map((f) => f.filePath)).toEqual(['a.py', 'm.ts', 'z.ts']);
    expect(c[1]).toEqual({ filePath: 'm.ts', text: '// m.ts\nexport const x = 1;\n', languageId: 'typescript', sources: ['open', 'recent-edit'], editedAt: 100 });
    expect(c[0]).toMatchObject({ languageId: 'python', sources: ['open'] });
    expect(c[0].editedAt).toBeUndefined();
  });

  it('over the file limit keeps recently edited files, then the most recently focused', () => {
    const files = [file('a.ts', 1), file('b.ts', 9), file('c.ts', 2, { editedAt: 50 }), file('d.ts', 5), file('e.ts', 3, { editedAt: 70 })];
    const c = contextCandidates(files, current, { maxFiles: 3, maxFileChars: 1000, maxTotalChars: 10_000 });
    expect(c.map((f) => f.filePath)).toEqual(['b.ts', 'c.ts', 'e.ts']);
  });

  it('files the current file imports (not open) rank after edited ones and carry no source of their own', () => {
    const files = [file('a.ts', 9), file('b.ts', 2, { editedAt: 5 }), file('lib/c.ts', 0, { imported: true, languageId: '' })];
    const c = contextCandidates(files, current, { maxFiles: 2, maxFileChars: 1000, maxTotalChars: 10_000 });
    expect(c.map((f) => f.filePath)).toEqual(['b.ts', 'lib/c.ts']);
    expect(c[1]).toEqual({ filePath: 'lib/c.ts', text: '// lib/c.ts\nexport const x = 1;\n', sources: [] });
  });

  it('cuts long files to their head at a line end and stops at the total', () => {
    const long = Array.from({ length: 100 }, (_, i) => `line ${i}`).join('\n');
    const c = contextCandidates([file('a.ts', 2, { text: long }), file('b.ts', 1, { text: long })], current, { maxFiles: 10, maxFileChars: 50, maxTotalChars: 80 });
    expect(c).toHaveLength(2);
    expect(c[0].text.length).toBeLessThanOrEqual(50);
    expect(c[0].text.endsWith('\n') && long.startsWith(c[0].text)).toBe(true);
    expect(c[0].text.length + c[1].text.length).toBeLessThanOrEqual(80);
    expect(contextCandidates([file('a.ts', 2, { text: long })], current, { maxFiles: 10, maxFileChars: 50, maxTotalChars: 0 })).toEqual([]);
  });

  it('headOf keeps whole lines only', () => {
    expect(headOf('ab\ncd\nef', 100)).toBe('ab\ncd\nef');
    expect(headOf('ab\ncd\nef', 4)).toBe('ab\n');
    expect(headOf('abcdef', 3)).toBe('');
  });
});

describe('EditTracker', () => {
  it('remembers the last edit per document, the most recent N, and forgets closed ones', () => {
    const t = new EditTracker(2);
    t.edited('a', 1);
    t.edited('b', 2);
    t.edited('a', 3);
    t.edited('c', 4); // b is the least recently edited: dropped
    expect([t.get('a'), t.get('b'), t.get('c')]).toEqual([3, undefined, 4]);
    t.forget('a');
    expect(t.get('a')).toBeUndefined();
  });
});
