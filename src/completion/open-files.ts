// Context from other open files: the head of each (imports, top-level definitions) goes into the
// FIM prompt as chunks, the way twinny's "open files" and Copilot's neighbor tabs start. Pure.
//
// Same-language files first, then the most recently focused. Chunks come back sorted by path so
// the prompt's order stays the same while the user moves between editors (the engine's prefix
// cache keeps their KV); `score` carries the recency so the engine drops the least recent first
// when its token budget is short.

import type { ContextChunk } from '../../engine/protocol';
import { CHARS_PER_TOKEN } from './context-window';

export interface OpenFile {
  uri: string;
  /** Path shown to the model (workspace-relative). */
  path: string;
  text: string;
  languageId: string;
  /** When the file's editor was last focused (ms); 0 if never. */
  lastActive: number;
}

/** Files larger than this are skipped (generated or data files). */
export const MAX_OPEN_FILE_CHARS = 1_000_000;

export function openFileChunks(files: OpenFile[], current: { uri: string; languageId: string }, budgetTokens: number, maxFiles = 4): ContextChunk[] {
  const budgetChars = Math.floor(budgetTokens * CHARS_PER_TOKEN);
  if (budgetChars <= 0) return [];
  const picked = files
    .filter((f) => f.uri !== current.uri && f.text.trim().length > 0 && f.text.length <= MAX_OPEN_FILE_CHARS)
    .sort((a, b) => Number(b.languageId === current.languageId) - Number(a.languageId === current.languageId) || b.lastActive - a.lastActive)
    .slice(0, maxFiles);
  if (picked.length === 0) return [];
  const perFile = Math.floor(budgetChars / picked.length);
  const chunks: ContextChunk[] = [];
  picked.forEach((f, rank) => {
    const text = headOf(f.text, perFile);
    if (text.trim().length > 0) chunks.push({ filePath: f.path, text, languageId: f.languageId, score: picked.length - rank });
  });
  return chunks.sort((a, b) => (a.filePath < b.filePath ? -1 : a.filePath > b.filePath ? 1 : 0));
}

/** The first `maxChars` characters of `text`, cut back to a whole line when longer. */
export function headOf(text: string, maxChars: number): string {
  if (text.length <= maxChars) return text;
  const nl = text.lastIndexOf('\n', maxChars);
  return nl > 0 ? text.slice(0, nl + 1) : '';
}
