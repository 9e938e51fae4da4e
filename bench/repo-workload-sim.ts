// The repository-completion workload of bench/repo-workload.ts: a workspace of real source files,
// a deterministic stream of editor events (switch file, type lines, edit another file) and, per
// event, one FIM request built the way the extension builds it (engine/context's repo-context
// selection, stable chunks first, then the FIM prompt as segments).
//
// Pure (no model): test/bench/repo-workload-sim.test.ts checks it.

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import {
  assembleFim,
  chunksToContextFiles,
  selectContext,
  segmentText,
  type CandidateFile,
  type PromptTokenizer,
} from '../engine/context';
import { uniformStream as seeded } from '../test/helpers/make-test-model';

export interface Workspace {
  /** Where the files came from (package name, version, licence). */
  source: { package: string; version: string; license: string; dir: string };
  files: Map<string, string>;
}

/** The `count` largest .ts sources (no .d.ts) of an installed package, keyed by package-relative path. */
export function loadWorkspace(packageDir: string, subdir: string, count: number): Workspace {
  const pkg = JSON.parse(readFileSync(join(packageDir, 'package.json'), 'utf8')) as { name: string; version: string; license: string };
  const found: { path: string; size: number }[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const f = join(dir, e.name);
      if (e.isDirectory()) walk(f);
      else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) found.push({ path: f, size: statSync(f).size });
    }
  };
  walk(join(packageDir, subdir));
  found.sort((a, b) => b.size - a.size || a.path.localeCompare(b.path));
  const files = new Map<string, string>();
  for (const f of found.slice(0, count).sort((a, b) => a.path.localeCompare(b.path))) {
    files.set(relative(packageDir, f.path).split('\\').join('/'), readFileSync(f.path, 'utf8'));
  }
  return { source: { package: pkg.name, version: pkg.version, license: pkg.license, dir: packageDir }, files };
}

export type EventKind = 'start' | 'switch' | 'type' | 'edit-context';

export interface WorkloadEvent {
  kind: EventKind;
  current: string;
  /** For 'edit-context': the other file that was edited. */
  edited?: string;
}

export interface FimRequest {
  index: number;
  event: WorkloadEvent;
  path: string;
  prefix: string;
  suffix: string;
  candidates: CandidateFile[];
}

export { seeded };

export interface SimOptions {
  requests: number;
  seed: number;
  /** Probability that the next request is in another file. */
  switchProb?: number;
  /** Probability that another (open) file was edited before the next request. */
  editContextProb?: number;
  /** Files kept "open" in the editor (most recent first). */
  openFiles?: number;
}

/**
 * The editor session: starts in the largest file, then per request either switches file (cursor
 * somewhere in its body), or types 1–3 lines at the cursor (copies of lines elsewhere in the file,
 * so the prefix grows and the file becomes a recent edit), and sometimes also edits a line of
 * another open file (its chunks change, so their chunk-cache keys change). The cursor sits in the
 * middle of a line: the typed half is the prefix's end, the rest of the line starts the suffix.
 */
export function simulate(ws: Workspace, o: SimOptions): FimRequest[] {
  const rnd = seeded(o.seed);
  const switchProb = o.switchProb ?? 0.2;
  const editProb = o.editContextProb ?? 0.12;
  const maxOpen = o.openFiles ?? 6;
  const files = new Map(ws.files);
  const paths = [...files.keys()];
  const editedAt = new Map<string, number>();
  const cursor = new Map<string, number>(); // 0-based line index of the cursor line
  const open: string[] = [];
  const pick = <T>(xs: T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const lineCount = (p: string) => files.get(p)!.split('\n').length;
  const placeCursor = (p: string) => {
    const n = lineCount(p);
    cursor.set(p, Math.min(n - 2, 15 + Math.floor(rnd() * Math.max(1, n - 30))));
  };
  const visit = (p: string) => {
    const i = open.indexOf(p);
    if (i >= 0) open.splice(i, 1);
    open.unshift(p);
    if (open.length > maxOpen) open.pop();
  };

  let current = [...paths].sort((a, b) => files.get(b)!.length - files.get(a)!.length)[0]!;
  placeCursor(current);
  visit(current);
  const out: FimRequest[] = [];
  for (let i = 0; i < o.requests; i++) {
    let event: WorkloadEvent = { kind: 'start', current };
    if (i > 0) {
      if (rnd() < switchProb) {
        const others = paths.filter((p) => p !== current);
        current = pick(others);
        if (!cursor.has(current)) placeCursor(current);
        visit(current);
        event = { kind: 'switch', current };
      } else {
        // Type 1-3 lines at the cursor.
        const lines = files.get(current)!.split('\n');
        const at = cursor.get(current)!;
        const k = 1 + Math.floor(rnd() * 3);
        const typed: string[] = [];
        for (let j = 0; j < k; j++) {
          const src = lines[Math.floor(rnd() * lines.length)]!;
          typed.push(src.trim() === '' ? '' : src);
        }
        lines.splice(at, 0, ...typed);
        files.set(current, lines.join('\n'));
        cursor.set(current, at + k);
        editedAt.set(current, i);
        event = { kind: 'type', current };
      }
      if (rnd() < editProb) {
        const others = open.filter((p) => p !== current);
        if (others.length > 0) {
          const p = pick(others);
          const lines = files.get(p)!.split('\n');
          const l = Math.floor(rnd() * lines.length);
          lines[l] = lines[l] + ` // edit ${i}`;
          files.set(p, lines.join('\n'));
          editedAt.set(p, i);
          event = { ...event, kind: event.kind === 'switch' ? 'switch' : 'edit-context', edited: p };
        }
      }
    }
    const lines = files.get(current)!.split('\n');
    const at = cursor.get(current)!;
    const line = lines[at] ?? '';
    const half = line.length - line.trimStart().length + Math.ceil(line.trimStart().length / 2);
    const prefix = lines.slice(0, at).join('\n') + '\n' + line.slice(0, half);
    const suffix = line.slice(half) + '\n' + lines.slice(at + 1).join('\n');
    const candidates: CandidateFile[] = paths
      .filter((p) => p !== current)
      .map((p) => ({
        path: p,
        text: files.get(p)!,
        sources: editedAt.has(p) ? ['recent-edit'] : open.includes(p) ? ['open'] : ['visited'],
        editedAt: editedAt.get(p),
      }));
    out.push({ index: i, event, path: current, prefix, suffix, candidates });
  }
  return out;
}

export interface Budget {
  contextTokens: number;
  prefixTokens: number;
  suffixTokens: number;
  maxChunks: number;
  chunkLines: number;
}

export interface BuiltPrompt {
  /** BOS + the FIM prompt's ids. */
  ids: number[];
  /** [start, end) in ids of the leading FIM-open segment (the shared prefix P for chunk encoding). */
  head: number;
  /** Context segments: text (cache identity) and [start, end) in ids. */
  chunks: { key: string; text: string; start: number; end: number }[];
  /** Where the query (current file header/prefix/suffix/middle) starts in ids. */
  queryStart: number;
  contextPaths: string[];
}

/**
 * Context chunks by engine/context's selection (stable chunks first), assembled as FIM segments.
 * The query for similarity is the last 30 prefix lines plus the first 10 suffix lines.
 */
export function buildPrompt(tok: PromptTokenizer & { bos?: number }, req: FimRequest, b: Budget, perChunk = true): BuiltPrompt {
  const query = req.prefix.split('\n').slice(-30).join('\n') + req.suffix.split('\n').slice(0, 10).join('\n');
  const chosen = selectContext({
    currentPath: req.path,
    currentText: req.prefix + req.suffix,
    query,
    candidates: req.candidates,
    tokenBudget: b.contextTokens,
    chunkLines: b.chunkLines,
    maxChunks: b.maxChunks,
  });
  // One segment per selected chunk (not chunksToContextFiles' merge of line-adjacent chunks): a
  // merged segment changes whenever a neighbour chunk enters or leaves the selection, which makes
  // every chunk-cache key of that file miss. Per-chunk segments keep a chunk's key stable.
  const context = perChunk ? chosen.map((c) => ({ path: `${c.path}:${c.startLine}-${c.endLine}`, text: c.text, score: c.score })) : chunksToContextFiles(chosen);
  const fim = assembleFim(
    tok,
    { prefix: req.prefix, suffix: req.suffix, filePath: req.path, chunks: context.map((c) => ({ filePath: c.path, text: c.text, score: c.score })) },
    { budget: { contextTokens: b.contextTokens, prefixTokens: b.prefixTokens, suffixTokens: b.suffixTokens } },
  );
  const bos = tok.bos !== undefined ? [tok.bos] : [];
  const off = bos.length;
  const ids = [...bos, ...fim.tokens.ids];
  const segs = fim.tokens.segments;
  const chunks: BuiltPrompt['chunks'] = [];
  let head = off;
  let queryStart = -1;
  for (const [i, s] of segs.entries()) {
    if (s.kind === 'context') chunks.push({ key: s.key, text: segmentText(fim.prompt.segments[i]!), start: s.start + off, end: s.end + off });
    else if (chunks.length === 0) head = s.end + off;
    else if (queryStart < 0) queryStart = s.start + off;
  }
  if (queryStart < 0) queryStart = head;
  return { ids, head, chunks, queryStart, contextPaths: context.map((c) => `${c.path}`) };
}
