// Repository context selection: which pieces of other files go into a FIM prompt, and in what order.
// Candidates come from the editor (open files, recently edited files, files the current file
// imports). They are cut into line chunks and scored by Jaccard similarity of identifier sets
// against the code around the cursor (the approach of Copilot's neighbor tabs and Continue's
// snippets), plus a boost per source.
//
// Emission order favours cache hits: stable chunks (imports, open files) first in path/line order,
// recently edited chunks last (oldest edit first), so typing elsewhere does not reorder the prompt.
// Chunks chosen for the previous request of the same file rank with a small bonus, so the choice
// does not flip between keystrokes (a flip changes the prompt from that chunk on).
//
// repoContextFiles is the entry point for a FIM request: the editor sends its candidate files
// (protocol RepoContextRequest) and the engine chooses here, so the extension needs no engine code.

import type { ContextFile } from './fim-prompt';
import { approxTokens, type CountTokens } from './windows';

export type ContextSource = 'import' | 'open' | 'recent-edit' | 'visited' | 'clipboard';

export interface CandidateFile {
  path: string;
  text: string;
  sources: ContextSource[];
  /** When the file was last edited (ms since epoch); orders recent-edit chunks. */
  editedAt?: number;
}

export interface ContextChunk {
  path: string;
  /** 1-based, inclusive. */
  startLine: number;
  endLine: number;
  text: string;
  score: number;
  sources: ContextSource[];
  editedAt?: number;
}

export interface SelectOptions {
  /** The current file, to skip it and to read its imports. */
  currentPath: string;
  /** Code around the cursor the chunks are compared against (e.g. the last 30 prefix lines + first 10 suffix lines). */
  query: string;
  /** The current file's full text, for its imports (optional). */
  currentText?: string;
  candidates: CandidateFile[];
  tokenBudget: number;
  countTokens?: CountTokens;
  chunkLines?: number;
  maxChunks?: number;
  /** Chunks scoring below this are never chosen (import chunks are exempt). */
  minScore?: number;
  /**
   * Ids (`chunkId`) of the chunks chosen for the previous request of this file: they rank with
   * KEEP_BONUS, so a chunk near the budget or a rival's score does not flip in and out between
   * keystrokes (each flip changes the prompt from that chunk on, and the prefix cache misses).
   */
  keep?: ReadonlySet<string>;
}

/** Ranking bonus of a chunk chosen last time (scores are Jaccard similarity + source boost). */
export const KEEP_BONUS = 0.1;

export function chunkId(c: { path: string; startLine: number }): string {
  return `${c.path}:${c.startLine}`;
}

export const SOURCE_BOOST: Record<ContextSource, number> = {
  import: 0.3,
  'recent-edit': 0.2,
  clipboard: 0.15,
  open: 0.05,
  visited: 0.02,
};

const KEYWORDS = new Set(
  ('if else for while do return function const let var class def import from export as in of new this self ' +
    'true false null none undefined try catch finally throw raise with async await yield break continue ' +
    'pass public private protected static void int float double char bool string fn pub use mod impl struct ' +
    'enum match type interface package func go defer lambda and or not is elif end then').split(' '),
);

/** Identifier sets of recently seen chunk texts: most candidates do not change between keystrokes. */
const idMemo = new Map<string, Set<string>>();
const ID_MEMO_MAX = 4096;

function chunkIdentifiers(text: string): Set<string> {
  let ids = idMemo.get(text);
  if (!ids) {
    if (idMemo.size >= ID_MEMO_MAX) idMemo.clear();
    ids = identifierSet(text);
    idMemo.set(text, ids);
  }
  return ids;
}

/** Identifiers of a text (length >= 2, keywords out), the unit of the similarity measure. */
export function identifierSet(text: string): Set<string> {
  const out = new Set<string>();
  for (const m of text.matchAll(/[A-Za-z_$][A-Za-z0-9_$]*/g)) {
    const id = m[0];
    if (id.length >= 2 && !KEYWORDS.has(id.toLowerCase())) out.add(id);
  }
  return out;
}

export function jaccard(a: Set<string>, b: Set<string>): number {
  if (a.size === 0 && b.size === 0) return 0;
  let inter = 0;
  const [small, large] = a.size <= b.size ? [a, b] : [b, a];
  for (const x of small) if (large.has(x)) inter++;
  return inter / (a.size + b.size - inter);
}

/** Non-overlapping chunks of `size` lines; 1-based inclusive line ranges. */
export function chunkByLines(text: string, size: number): { startLine: number; endLine: number; text: string }[] {
  const lines = text.split('\n');
  if (lines.length > 1 && lines[lines.length - 1] === '') lines.pop();
  const out: { startLine: number; endLine: number; text: string }[] = [];
  for (let i = 0; i < lines.length; i += size) {
    const slice = lines.slice(i, i + size);
    out.push({ startLine: i + 1, endLine: i + slice.length, text: slice.join('\n') + '\n' });
  }
  return out;
}

/** Module specifiers the file imports (JS/TS, Python, Go, Rust, C/C++, Java/Kotlin, Ruby, PHP). */
export function extractImports(text: string): string[] {
  const found = new Set<string>();
  const patterns = [
    /\bimport\s+(?:[^'"\n;]*?\s+from\s+)?['"]([^'"\n]+)['"]/g, // import x from 'y' / import 'y'
    /\bexport\s+[^'"\n;]*?\s+from\s+['"]([^'"\n]+)['"]/g,
    /\brequire\(\s*['"]([^'"\n]+)['"]\s*\)/g,
    /\bimport\(\s*['"]([^'"\n]+)['"]\s*\)/g,
    /^\s*from\s+([.\w]+)\s+import\b/gm, // python
    /^\s*import\s+([\w.]+(?:\s*,\s*[\w.]+)*)\s*$/gm, // python / java (no quotes)
    /^\s*#\s*include\s+"([^"\n]+)"/gm,
    /^\s*use\s+((?:crate|super|self)::[\w:]+)/gm,
    /^\s*mod\s+(\w+)\s*;/gm,
    /^\s*require(?:_relative)?\s+['"]([^'"\n]+)['"]/gm,
  ];
  for (const re of patterns) {
    for (const m of text.matchAll(re)) {
      for (const spec of m[1]!.split(',')) found.add(spec.trim());
    }
  }
  // Go: import "x" and import ( "x" "y" )
  for (const m of text.matchAll(/\bimport\s*\(([^)]*)\)/g)) {
    for (const q of m[1]!.matchAll(/"([^"\n]+)"/g)) found.add(q[1]!);
  }
  for (const m of text.matchAll(/\bimport\s+(?:\w+\s+)?"([^"\n]+)"/g)) found.add(m[1]!);
  return [...found].filter((s) => s !== '');
}

function stripExt(p: string): string {
  const slash = p.lastIndexOf('/');
  const dot = p.lastIndexOf('.');
  return dot > slash ? p.slice(0, dot) : p;
}

function normalize(parts: string[]): string {
  const out: string[] = [];
  for (const part of parts) {
    if (part === '' || part === '.') continue;
    if (part === '..') out.pop();
    else out.push(part);
  }
  return out.join('/');
}

/**
 * Which candidate paths an import specifier refers to: relative specifiers are resolved against
 * the current file; dotted/`::` module names match by their trailing path components.
 */
export function resolveImport(spec: string, currentPath: string, candidatePaths: string[]): string[] {
  const dir = currentPath.includes('/') ? currentPath.slice(0, currentPath.lastIndexOf('/')) : '';
  const matches: string[] = [];
  if (spec.startsWith('.') && (spec.startsWith('./') || spec.startsWith('../'))) {
    const target = normalize([...dir.split('/'), ...spec.split('/')]);
    for (const p of candidatePaths) {
      const base = stripExt(p);
      if (base === target || base === target + '/index' || p === target) matches.push(p);
    }
    return matches;
  }
  // python relative ("..pkg.mod"), dotted ("pkg.mod"), rust ("crate::a::b"), C ("x/y.h")
  let tail = spec;
  if (/^\.+\w/.test(spec)) tail = spec.replace(/^\.+/, '');
  tail = tail.replace(/^(crate|super|self)::/, '').replace(/::/g, '/');
  if (!tail.includes('/')) tail = tail.replace(/\./g, '/');
  tail = stripExt(tail);
  for (const p of candidatePaths) {
    const base = stripExt(p);
    if (base === tail || base.endsWith('/' + tail) || base.endsWith('/' + tail + '/__init__') || base.endsWith('/' + tail + '/mod')) {
      matches.push(p);
    }
  }
  return matches;
}

/** Choose chunks within the token budget, then order them for the prompt (see the header comment). */
export function selectContext(options: SelectOptions): ContextChunk[] {
  const count = options.countTokens ?? approxTokens;
  const size = options.chunkLines ?? 32;
  const maxChunks = options.maxChunks ?? 16;
  const minScore = options.minScore ?? 0.05;
  const query = identifierSet(options.query);

  const candidates = options.candidates.filter((c) => c.path !== options.currentPath);
  const imported = new Set<string>();
  if (options.currentText !== undefined) {
    const paths = candidates.map((c) => c.path);
    for (const spec of extractImports(options.currentText)) {
      for (const p of resolveImport(spec, options.currentPath, paths)) imported.add(p);
    }
  }

  const scored: ContextChunk[] = [];
  for (const file of candidates) {
    const sources = [...new Set<ContextSource>([...file.sources, ...(imported.has(file.path) ? (['import'] as const) : [])])];
    const boost = Math.max(0, ...sources.map((s) => SOURCE_BOOST[s]));
    for (const chunk of chunkByLines(file.text, size)) {
      const sim = jaccard(query, chunkIdentifiers(chunk.text));
      const score = sim + boost;
      if (sim === 0 && !sources.includes('import')) continue;
      if (score < minScore && !sources.includes('import')) continue;
      scored.push({ path: file.path, ...chunk, score, sources, editedAt: file.editedAt });
    }
  }
  const rank = (c: ContextChunk) => c.score + (options.keep?.has(chunkId(c)) ? KEEP_BONUS : 0);
  scored.sort((a, b) => rank(b) - rank(a) || a.path.localeCompare(b.path) || a.startLine - b.startLine);

  const chosen: ContextChunk[] = [];
  let used = 0;
  for (const chunk of scored) {
    if (chosen.length >= maxChunks) break;
    const n = count(chunk.text) + count(chunk.path) + 2;
    if (used + n > options.tokenBudget) continue;
    used += n;
    chosen.push(chunk);
  }
  return orderForCache(chosen);
}

/** Stable chunks first (path, line order); recently edited ones last, oldest edit first. */
export function orderForCache(chunks: ContextChunk[]): ContextChunk[] {
  const isRecent = (c: ContextChunk) => c.sources.includes('recent-edit');
  return [...chunks].sort((a, b) => {
    const ra = isRecent(a) ? 1 : 0;
    const rb = isRecent(b) ? 1 : 0;
    if (ra !== rb) return ra - rb;
    if (ra === 1 && (a.editedAt ?? 0) !== (b.editedAt ?? 0)) return (a.editedAt ?? 0) - (b.editedAt ?? 0);
    return a.path.localeCompare(b.path) || a.startLine - b.startLine;
  });
}

/** Chunks as prompt context files, merging line-adjacent chunks of one file (score: the best). */
export function chunksToContextFiles(chunks: ContextChunk[]): ContextFile[] {
  const out: ContextFile[] = [];
  let last: ContextChunk | undefined;
  for (const c of chunks) {
    if (last && last.path === c.path && last.endLine + 1 === c.startLine) {
      const merged = out[out.length - 1]!;
      merged.text += c.text;
      merged.score = Math.max(merged.score ?? -Infinity, c.score);
      last = { ...c, startLine: last.startLine };
      continue;
    }
    out.push({ path: c.path, text: c.text, score: c.score });
    last = c;
  }
  return out;
}

/** Candidate files as the editor sends them (the protocol's RepoContextRequest, structurally). */
export interface RepoContextInput {
  candidates: { filePath: string; text: string; sources: ContextSource[]; editedAt?: number }[];
  tokenBudget: number;
  /** The start of the current file, for its imports; the prefix is used when absent. */
  currentHead?: string;
}

/** The code around the cursor that chunks are compared with: the last lines before it and the first after. */
export function cursorQuery(prefix: string, suffix: string, linesBefore = 30, linesAfter = 10): string {
  const before = prefix.split('\n').slice(-linesBefore).join('\n');
  const after = suffix.split('\n').slice(0, linesAfter).join('\n');
  return before + after;
}

/** What was chosen for the last request of each file (the `keep` of the next one), for a few files. */
export class SelectionMemory {
  private byFile = new Map<string, Set<string>>();

  constructor(private readonly files = 64) {}

  get(path: string): ReadonlySet<string> | undefined {
    return this.byFile.get(path);
  }

  set(path: string, chosen: ContextChunk[]): void {
    this.byFile.delete(path);
    this.byFile.set(path, new Set(chosen.map(chunkId)));
    if (this.byFile.size > this.files) this.byFile.delete(this.byFile.keys().next().value!);
  }
}

/** The engine's memory across requests (one engine per worker). */
const defaultMemory = new SelectionMemory();

/** Context files for one FIM request: selectContext over the editor's candidates, adjacent chunks merged. */
export function repoContextFiles(
  input: RepoContextInput,
  request: { filePath?: string; prefix: string; suffix: string },
  memory: SelectionMemory = defaultMemory,
): ContextFile[] {
  if (input.candidates.length === 0 || input.tokenBudget <= 0) return [];
  const currentPath = request.filePath ?? '';
  const chosen = selectContext({
    currentPath,
    query: cursorQuery(request.prefix, request.suffix),
    currentText: input.currentHead ?? request.prefix,
    candidates: input.candidates.map((c) => ({ path: c.filePath, text: c.text, sources: c.sources, editedAt: c.editedAt })),
    tokenBudget: input.tokenBudget,
    keep: memory.get(currentPath),
  });
  memory.set(currentPath, chosen);
  return chunksToContextFiles(chosen);
}
