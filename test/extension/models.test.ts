import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { discoverModels, embeddedModel, findGgufFiles } from '../../src/models';

const root = mkdtempSync(join(tmpdir(), 'cachet-models-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('model discovery', () => {
  const ext = join(root, 'ext');
  const home = join(root, 'home');
  mkdirSync(join(ext, 'models'), { recursive: true });
  writeFileSync(join(ext, 'models', 'cachet-tiny-q8.gguf'), 'x'.repeat(10));
  writeFileSync(join(ext, 'models', 'README.md'), 'not a model');
  mkdirSync(join(home, '.cache', 'llama.cpp', 'sub', 'deeper'), { recursive: true });
  writeFileSync(join(home, '.cache', 'llama.cpp', 'a.gguf'), 'aa');
  writeFileSync(join(home, '.cache', 'llama.cpp', 'sub', 'deeper', 'b.GGUF'), 'bbb');
  mkdirSync(join(home, '.cache', 'llama.cpp', 'node_modules'), { recursive: true });
  writeFileSync(join(home, '.cache', 'llama.cpp', 'node_modules', 'skip.gguf'), '');

  it('finds the embedded model', () => {
    expect(embeddedModel(ext)).toBe(join(ext, 'models', 'cachet-tiny-q8.gguf'));
    expect(embeddedModel(join(root, 'nope'))).toBeUndefined();
  });

  it('walks folders for .gguf files, skipping node_modules and respecting depth', () => {
    const all = findGgufFiles(join(home, '.cache', 'llama.cpp'));
    expect(all).toEqual([join(home, '.cache', 'llama.cpp', 'a.gguf'), join(home, '.cache', 'llama.cpp', 'sub', 'deeper', 'b.GGUF')]);
    expect(findGgufFiles(join(home, '.cache', 'llama.cpp'), 0)).toEqual([join(home, '.cache', 'llama.cpp', 'a.gguf')]);
  });

  it('lists settings, embedded, local and workspace models once each, with sizes', () => {
    const ws = join(root, 'w.gguf');
    writeFileSync(ws, 'wwww');
    const found = discoverModels({ extensionPath: ext, configured: join(home, '.cache', 'llama.cpp', 'a.gguf'), workspaceFiles: [ws, join(root, 'missing.gguf')], home });
    expect(found.map((m) => [m.name, m.source, m.bytes])).toEqual([
      ['a.gguf', 'settings', 2],
      ['cachet-tiny-q8.gguf', 'embedded', 10],
      ['b.GGUF', 'local', 3],
      ['w.gguf', 'workspace', 4],
    ]);
  });
});
