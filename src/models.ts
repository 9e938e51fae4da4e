// Finding GGUF models to offer in "Cachet: Select Model": the extension's embedded models, the
// configured path, common local model folders and the workspace. Plain fs; no vscode import.

import { existsSync, readdirSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, join } from 'node:path';

export interface FoundModel {
  path: string;
  name: string;
  bytes: number;
  source: 'embedded' | 'settings' | 'local' | 'workspace';
}

/** The model shipped inside the extension (models/cachet-tiny*.gguf), if present. */
export function embeddedModel(extensionPath: string): string | undefined {
  const dir = join(extensionPath, 'models');
  if (!existsSync(dir)) return undefined;
  const files = readdirSync(dir).filter((f) => /^cachet-tiny.*\.gguf$/i.test(f)).sort();
  return files.length ? join(dir, files[0]) : undefined;
}

/** Folders where other local tools keep GGUF files. */
export function localModelDirs(home = homedir()): string[] {
  return [
    join(home, '.cache', 'cachet', 'models'),
    join(home, '.cache', 'llama.cpp'),
    join(home, '.lmstudio', 'models'),
    join(home, '.ollama', 'models'),
  ];
}

/** *.gguf files under `dir`, at most `depth` folders down and `limit` files. */
export function findGgufFiles(dir: string, depth = 3, limit = 50): string[] {
  const out: string[] = [];
  const walk = (d: string, level: number) => {
    if (out.length >= limit) return;
    let entries: string[];
    try {
      entries = readdirSync(d);
    } catch {
      return;
    }
    for (const e of entries.sort()) {
      if (out.length >= limit) return;
      const p = join(d, e);
      let st;
      try {
        st = statSync(p);
      } catch {
        continue;
      }
      if (st.isDirectory()) {
        if (level < depth && e !== 'node_modules' && !e.startsWith('.')) walk(p, level + 1);
      } else if (e.toLowerCase().endsWith('.gguf')) out.push(p);
    }
  };
  walk(dir, 0);
  return out;
}

export function discoverModels(opts: { extensionPath: string; configured?: string; workspaceFiles?: string[]; home?: string }): FoundModel[] {
  const seen = new Set<string>();
  const out: FoundModel[] = [];
  const add = (path: string, source: FoundModel['source']) => {
    if (seen.has(path)) return;
    let bytes = 0;
    try {
      const st = statSync(path);
      if (!st.isFile()) return;
      bytes = st.size;
    } catch {
      return;
    }
    seen.add(path);
    out.push({ path, name: basename(path), bytes, source });
  };
  if (opts.configured) add(opts.configured, 'settings');
  for (const f of findGgufFiles(join(opts.extensionPath, 'models'), 0)) add(f, 'embedded');
  for (const d of localModelDirs(opts.home)) for (const f of findGgufFiles(d)) add(f, 'local');
  for (const f of opts.workspaceFiles ?? []) add(f, 'workspace');
  return out;
}
