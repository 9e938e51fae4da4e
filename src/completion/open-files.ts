// Repository-context candidates from the editor: the open files, with when each was last focused
// and last edited. The engine chooses the chunks (engine/context repo-context.ts: files the current
// file imports, recent edits, nearest chunks by similarity, stable-first order for its caches), so
// the extension only decides which files to send and how much of each. Pure.
//
// Over the limits, recently edited files go first, then files the current file imports, then the
// most recently focused; the list is sent sorted by path so the engine sees the same input while
// the user moves between editors.

import type { ContextCandidate } from '../../engine/protocol';

export interface OpenFile {
  uri: string;
  /** Path shown to the model (workspace-relative). */
  path: string;
  text: string;
  languageId: string;
  /** When the file's editor was last focused (ms); 0 if never. */
  lastActive: number;
  /** When the file was last edited in this session (ms); absent if not edited. */
  editedAt?: number;
  /** Not open in an editor: read from disk because the current file seems to import it. */
  imported?: boolean;
}

export interface CandidateLimits {
  /** Files sent at most. */
  maxFiles: number;
  /** Longer files are cut to their head (at a line end). */
  maxFileChars: number;
  /** Characters sent at most over all files (what is copied to the engine per request). */
  maxTotalChars: number;
}

export const DEFAULT_CANDIDATE_LIMITS: CandidateLimits = { maxFiles: 12, maxFileChars: 200_000, maxTotalChars: 800_000 };

export function contextCandidates(files: OpenFile[], current: { uri: string }, limits: CandidateLimits = DEFAULT_CANDIDATE_LIMITS): ContextCandidate[] {
  const picked = files
    .filter((f) => f.uri !== current.uri && f.text.trim().length > 0)
    .sort((a, b) => (b.editedAt ?? 0) - (a.editedAt ?? 0) || Number(!!b.imported) - Number(!!a.imported) || b.lastActive - a.lastActive || (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
    .slice(0, limits.maxFiles);
  const out: ContextCandidate[] = [];
  let total = 0;
  for (const f of picked) {
    const text = headOf(f.text, Math.min(limits.maxFileChars, limits.maxTotalChars - total));
    if (text.trim().length === 0) continue;
    total += text.length;
    out.push({
      filePath: f.path,
      text,
      ...(f.languageId ? { languageId: f.languageId } : {}),
      // An imported file that is not open has no source of its own: the engine finds the import.
      sources: f.imported ? [] : f.editedAt !== undefined ? ['open', 'recent-edit'] : ['open'],
      ...(f.editedAt !== undefined ? { editedAt: f.editedAt } : {}),
    });
  }
  return out.sort((a, b) => (a.filePath < b.filePath ? -1 : a.filePath > b.filePath ? 1 : 0));
}

/** The first `maxChars` characters of `text`, cut back to a whole line when longer. */
export function headOf(text: string, maxChars: number): string {
  if (text.length <= maxChars) return text;
  const nl = text.lastIndexOf('\n', maxChars);
  return nl > 0 ? text.slice(0, nl + 1) : '';
}

/** Remembers when documents were last edited, for the 'recent-edit' source (most recent N kept). */
export class EditTracker {
  private editedAt = new Map<string, number>();

  constructor(private readonly capacity = 32) {}

  edited(uri: string, at: number): void {
    this.editedAt.delete(uri);
    this.editedAt.set(uri, at);
    if (this.editedAt.size > this.capacity) this.editedAt.delete(this.editedAt.keys().next().value!);
  }

  get(uri: string): number | undefined {
    return this.editedAt.get(uri);
  }

  forget(uri: string): void {
    this.editedAt.delete(uri);
  }
}
