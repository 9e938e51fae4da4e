// Files the current file imports that are not open in an editor, as repository-context candidates.
// Folder listings and file texts are read in the background and kept for a while, so a completion
// request never waits on the disk: it takes what is loaded, and the next request gets the rest.
// The file system comes in as an interface (the extension passes vscode.workspace.fs; tests a map).

import { importedFiles } from './import-hints';

export interface NearbyFs {
  /** Paths of the files (not folders) in `dir`. */
  list(dir: string): Promise<string[]>;
  /** The file's text, or undefined when it is too large or unreadable. */
  read(path: string): Promise<string | undefined>;
}

interface Timed<T> {
  at: number;
  value?: T;
  loading?: boolean;
}

export class ImportedFileCache {
  private listings = new Map<string, Timed<string[]>>();
  private texts = new Map<string, Timed<string | undefined>>();

  constructor(
    private fs: NearbyFs,
    private opts: { ttlMs: number; maxFiles: number; now: () => number } = { ttlMs: 30_000, maxFiles: 8, now: Date.now },
  ) {}

  /** Loaded files among those `head`'s imports name in `filePath`'s folder and its parent. */
  get(filePath: string, head: string): { path: string; text: string }[] {
    const dir = dirnameOf(filePath);
    const nearby: string[] = [];
    for (const d of new Set([dir, dirnameOf(dir)])) nearby.push(...(this.load(this.listings, d, () => this.fs.list(d)) ?? []));
    const out: { path: string; text: string }[] = [];
    for (const p of importedFiles(head, nearby.filter((p) => p !== filePath)).slice(0, this.opts.maxFiles)) {
      const text = this.load(this.texts, p, () => this.fs.read(p));
      if (text !== undefined && text.trim().length > 0) out.push({ path: p, text });
    }
    return out;
  }

  /** The cached value (even if stale); starts a reload when missing or older than the TTL. */
  private load<T>(cache: Map<string, Timed<T>>, key: string, read: () => Promise<T>): T | undefined {
    const now = this.opts.now();
    let e = cache.get(key);
    if (!e) {
      if (cache.size >= MAX_ENTRIES) cache.clear();
      e = { at: -Infinity };
      cache.set(key, e);
    }
    if (!e.loading && now - e.at >= this.opts.ttlMs) {
      e.loading = true;
      const entry = e;
      read().then(
        (v) => {
          entry.value = v;
          entry.at = this.opts.now();
          entry.loading = false;
        },
        () => {
          entry.value = undefined;
          entry.at = this.opts.now();
          entry.loading = false;
        },
      );
    }
    return e.value;
  }
}

const MAX_ENTRIES = 1000;

function dirnameOf(p: string): string {
  const i = p.lastIndexOf('/');
  return i > 0 ? p.slice(0, i) : '/';
}
