import { describe, expect, it } from 'vitest';
import { importedFiles, importLines } from '../../src/completion/import-hints';
import { ImportedFileCache, type NearbyFs } from '../../src/completion/imported-files';

describe('import hints', () => {
  it('finds import-looking lines across languages', () => {
    const head = "import os\nfrom util import parse\nx = 1\nconst fs = require('fs');\n#include \"vec.h\"\nuse crate::kv;\nexport { a } from './a';\nprint(util)\n";
    expect(importLines(head)).toEqual(['import os', 'from util import parse', "const fs = require('fs');", '#include "vec.h"', 'use crate::kv;', "export { a } from './a';"]);
  });

  it('picks nearby files whose base name an import line mentions as a word', () => {
    const near = ['/w/src/util.py', '/w/src/utility.py', '/w/src/vec.h', '/w/src/main.py', '/w/lib.py', '/w/src/import.py'];
    expect(importedFiles('from util import parse\n#include "vec.h"\n', near)).toEqual(['/w/src/util.py', '/w/src/vec.h']);
    expect(importedFiles("import { lib } from '../lib';\n", near)).toEqual(['/w/lib.py']);
    // Names outside import lines do not count.
    expect(importedFiles('x = util.parse()\n', near)).toEqual([]);
    expect(importedFiles('import x\n', near)).toEqual([]);
  });
});

describe('ImportedFileCache', () => {
  function fakeFs(files: Record<string, string>) {
    const calls: string[] = [];
    const fs: NearbyFs = {
      list: async (dir) => {
        calls.push(`list ${dir}`);
        return Object.keys(files).filter((p) => p.slice(0, p.lastIndexOf('/')) === dir);
      },
      read: async (p) => {
        calls.push(`read ${p}`);
        return files[p];
      },
    };
    return { fs, calls };
  }
  const flush = () => new Promise((r) => setTimeout(r, 0));

  it('answers from what is loaded and loads the rest in the background', async () => {
    const { fs, calls } = fakeFs({ '/w/src/main.py': 'from util import f\n', '/w/src/util.py': 'def f():\n    return 1\n', '/w/src/other.py': 'x = 1\n', '/w/helpers.py': 'def h(): pass\n' });
    let t = 0;
    const c = new ImportedFileCache(fs, { ttlMs: 1000, maxFiles: 8, now: () => t });
    const head = 'from util import f\nimport helpers\n';
    expect(c.get('/w/src/main.py', head)).toEqual([]); // nothing listed yet
    await flush();
    expect(c.get('/w/src/main.py', head)).toEqual([]); // listed; texts being read
    await flush();
    expect(c.get('/w/src/main.py', head)).toEqual([
      { path: '/w/src/util.py', text: 'def f():\n    return 1\n' },
      { path: '/w/helpers.py', text: 'def h(): pass\n' },
    ]);
    expect(calls.filter((x) => x.startsWith('read'))).toEqual(['read /w/src/util.py', 'read /w/helpers.py']);
    // Within the TTL nothing is read again; after it, entries reload (the cached value still answers).
    const n = calls.length;
    c.get('/w/src/main.py', head);
    expect(calls.length).toBe(n);
    t = 2000;
    expect(c.get('/w/src/main.py', head)).toHaveLength(2);
    expect(calls.length).toBeGreaterThan(n);
  });

  it('a failed read or an unreadable file is left out', async () => {
    const fs: NearbyFs = { list: async () => ['/w/a.py', '/w/b.py'], read: async (p) => (p === '/w/a.py' ? undefined : Promise.reject(new Error('EACCES'))) };
    const c = new ImportedFileCache(fs);
    const head = 'import a\nimport b\n';
    c.get('/w/m.py', head);
    await flush();
    c.get('/w/m.py', head);
    await flush();
    expect(c.get('/w/m.py', head)).toEqual([]);
  });
});
