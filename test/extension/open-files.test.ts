import { describe, expect, it } from 'vitest';
import { headOf, openFileChunks, type OpenFile } from '../../src/completion/open-files';
import { CHARS_PER_TOKEN } from '../../src/completion/context-window';

const file = (path: string, languageId: string, lastActive: number, text = `// ${path}\nexport const x = 1;\n`): OpenFile => ({ uri: `file:///w/${path}`, path, text, languageId, lastActive });

describe('openFileChunks', () => {
  const current = { uri: 'file:///w/cur.ts', languageId: 'typescript' };

  it('skips the current file and empty files, prefers the same language, then recency; sorted by path', () => {
    const files = [file('cur.ts', 'typescript', 9), file('b.ts', 'typescript', 1), file('a.py', 'python', 8), file('z.ts', 'typescript', 5), file('empty.ts', 'typescript', 7, '  \n')];
    const chunks = openFileChunks(files, current, 10_000, 2);
    expect(chunks.map((c) => c.filePath)).toEqual(['b.ts', 'z.ts']);
    // z.ts was focused more recently: higher score, so the engine keeps it longer.
    expect(chunks.find((c) => c.filePath === 'z.ts')!.score).toBeGreaterThan(chunks.find((c) => c.filePath === 'b.ts')!.score!);
    expect(chunks[0]).toMatchObject({ languageId: 'typescript', text: '// b.ts\nexport const x = 1;\n' });
  });

  it('splits the budget between files and cuts each at a line end', () => {
    const long = Array.from({ length: 100 }, (_, i) => `line ${i}`).join('\n');
    const chunks = openFileChunks([file('a.ts', 'typescript', 1, long), file('b.ts', 'typescript', 2, long)], current, 20);
    const perFile = Math.floor(Math.floor(20 * CHARS_PER_TOKEN) / 2);
    for (const c of chunks) {
      expect(c.text.length).toBeLessThanOrEqual(perFile);
      expect(c.text.endsWith('\n')).toBe(true);
      expect(long.startsWith(c.text)).toBe(true);
    }
    expect(openFileChunks([file('a.ts', 'typescript', 1)], current, 0)).toEqual([]);
  });

  it('headOf keeps whole lines only', () => {
    expect(headOf('ab\ncd\nef', 100)).toBe('ab\ncd\nef');
    expect(headOf('ab\ncd\nef', 4)).toBe('ab\n');
    expect(headOf('abcdef', 3)).toBe('');
  });
});
