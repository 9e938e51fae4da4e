// Builds a FIM prompt as segments: stable repository/context chunks first, then the current file's
// header, prefix and suffix. Each segment is tokenized on its own, so an unchanged segment gives
// the same ids every time and the engine's prefix cache (and per-file chunk caches) can reuse it.
//
// Special tokens are never parsed out of user text: a file containing "<|fim_prefix|>" stays plain
// text; the FIM tokens come from the tokenizer's ids.

import { CachetError } from '../errors';
import type { FimFormat, FimRole, PromptTokenizer } from './fim-formats';
import { approxTokens, truncatePrefix, truncateSuffix, type CountTokens } from './windows';

export type PromptPart = { text: string; role?: undefined } | { role: FimRole; text: string };

export type SegmentKind = 'repo' | 'context' | 'file' | 'prefix' | 'suffix' | 'middle';

export interface PromptSegment {
  kind: SegmentKind;
  /** Identity for caches: the same key and the same parts give the same tokens. */
  key: string;
  parts: PromptPart[];
}

export interface FimPrompt {
  format: FimFormat;
  segments: PromptSegment[];
  /** Context files that did not fit the budget (lowest priority first out). */
  droppedContext: string[];
}

export interface ContextFile {
  path: string;
  text: string;
  /** Retrieval score (higher = more relevant), when known. */
  score?: number;
}

export interface FimInput {
  /** Repository name (repo-level formats); the folder name is a good value. */
  repoName?: string;
  /** Current file path, repository-relative with '/' separators. */
  path: string;
  prefix: string;
  suffix: string;
  /**
   * Context, emitted in this order (keep it stable for caches). Over budget, the lowest `score`
   * goes first; without scores, the last entries go first.
   */
  context?: ContextFile[];
}

export interface FimBudget {
  prefixTokens: number;
  suffixTokens: number;
  contextTokens: number;
}

export const DEFAULT_FIM_BUDGET: FimBudget = { prefixTokens: 1536, suffixTokens: 512, contextTokens: 2048 };

export interface BuildOptions {
  budget?: Partial<FimBudget>;
  countTokens?: CountTokens;
  /**
   * PSM formats: put the cursor line's text before the cursor after the middle token instead of in
   * the prefix (llama.cpp's /infill does this). While the user types on one line, everything up to
   * and including the middle token stays identical, so only the few tokens after it are recomputed.
   * Not applied when that text is only indentation.
   */
  cursorLineInMiddle?: boolean;
}

/** Assemble the prompt for `format`, fitting prefix, suffix and context to the budget. */
export function buildFimPrompt(format: FimFormat, input: FimInput, options: BuildOptions = {}): FimPrompt {
  const budget = { ...DEFAULT_FIM_BUDGET, ...options.budget };
  const count = options.countTokens ?? approxTokens;
  let prefix = truncatePrefix(input.prefix, budget.prefixTokens, count);
  let linePrefix = '';
  const cursorLine = prefix.slice(prefix.lastIndexOf('\n') + 1);
  // Indentation alone stays in the prefix: a middle that starts with a bare run of spaces is far
  // from anything a model saw in training (measured on Cachet-Tiny: it answers with junk). See
  // splitTypedIndent for the better fix, which needs the caller to strip the output too.
  if (options.cursorLineInMiddle && format.order === 'psm' && cursorLine.trim() !== '') {
    linePrefix = cursorLine;
    prefix = prefix.slice(0, prefix.length - cursorLine.length);
  }
  const suffix = truncateSuffix(input.suffix, budget.suffixTokens, count);

  const all = (input.context ?? []).map((file, index) => {
    const segment = contextSegment(format, file);
    return { file, index, segment, tokens: count(segmentText(segment)) };
  });
  // Drop whole chunks, least relevant first, until the context fits: a partial chunk would change
  // its text, and with it every token after it.
  const dropOrder = [...all].sort((a, b) => (a.file.score ?? -a.index) - (b.file.score ?? -b.index) || b.index - a.index);
  const dropped = new Set<number>();
  let used = all.reduce((n, c) => n + c.tokens, 0);
  for (const c of dropOrder) {
    if (used <= budget.contextTokens) break;
    dropped.add(c.index);
    used -= c.tokens;
  }
  const chunks = all.filter((c) => !dropped.has(c.index));
  const droppedContext = dropOrder.filter((c) => dropped.has(c.index)).map((c) => c.file.path);

  const segments: PromptSegment[] = [];
  const marker = (role: FimRole): PromptPart => ({ role, text: format.marker[role] ?? '' });

  if (format.repoLevel) {
    if (input.repoName !== undefined) {
      segments.push({ kind: 'repo', key: `repo:${input.repoName}`, parts: [marker('repoName'), { text: input.repoName + '\n' }] });
    }
    for (const c of chunks) segments.push(c.segment);
    segments.push({ kind: 'file', key: `file:${input.path}`, parts: [marker('fileSep'), { text: input.path + '\n' }] });
    segments.push({ kind: 'prefix', key: 'prefix', parts: [marker('prefix'), { text: prefix }] });
    segments.push({ kind: 'suffix', key: 'suffix', parts: [marker('suffix'), { text: suffix }] });
    segments.push({ kind: 'middle', key: 'middle', parts: [marker('middle'), { text: linePrefix }] });
  } else if (format.order === 'spm') {
    // Codestral: [SUFFIX]suf[PREFIX]{context}{pre}. The suffix changes least while typing.
    segments.push({ kind: 'suffix', key: 'suffix', parts: [marker('suffix'), { text: suffix }] });
    segments.push({ kind: 'file', key: 'fim-open', parts: [marker('prefix')] });
    for (const c of chunks) segments.push(c.segment);
    segments.push({ kind: 'prefix', key: 'prefix', parts: [{ text: prefix }] });
  } else {
    // PSM without repo tokens: the context goes as commented snippets inside the prefix region.
    segments.push({ kind: 'file', key: 'fim-open', parts: [marker('prefix')] });
    for (const c of chunks) segments.push(c.segment);
    segments.push({ kind: 'prefix', key: 'prefix', parts: [{ text: prefix }] });
    segments.push({ kind: 'suffix', key: 'suffix', parts: [marker('suffix'), { text: suffix }] });
    segments.push({ kind: 'middle', key: 'middle', parts: [marker('middle'), { text: linePrefix }] });
  }
  return { format, segments: segments.filter((s) => s.parts.some((p) => p.role !== undefined || p.text !== '')), droppedContext };
}

/**
 * Indentation typed on an otherwise empty cursor line, split off the prefix. Prompting with the
 * prefix up to the line start (a line-aligned hole, as FIM training mostly uses) and removing the
 * indentation from the completion's start (StopRules `typedIndent`) avoids the tokenization
 * artifacts of a prompt that ends in a run of spaces.
 */
export function splitTypedIndent(prefix: string): { prefix: string; indent: string } {
  const cursorLine = prefix.slice(prefix.lastIndexOf('\n') + 1);
  if (cursorLine === '' || cursorLine.trim() !== '' || !prefix.includes('\n')) return { prefix, indent: '' };
  return { prefix: prefix.slice(0, prefix.length - cursorLine.length), indent: cursorLine };
}

function contextSegment(format: FimFormat, file: ContextFile): PromptSegment {
  const body = file.text.endsWith('\n') || file.text === '' ? file.text : file.text + '\n';
  const key = `ctx:${file.path}:${hashText(body)}`;
  if (format.repoLevel) {
    return { kind: 'context', key, parts: [{ role: 'fileSep', text: format.marker.fileSep ?? '' }, { text: file.path + '\n' + body }] };
  }
  if (format.family === 'codestral') return { kind: 'context', key, parts: [{ text: `+++++ ${file.path}\n${body}` }] };
  return { kind: 'context', key, parts: [{ text: `${commentLine(file.path)}\n${body}` }] };
}

/** "// path: x" in the comment syntax of the file's language (llama.cpp uses a plain separator). */
export function commentLine(path: string): string {
  const ext = path.slice(path.lastIndexOf('.') + 1).toLowerCase();
  const hash = ['py', 'sh', 'bash', 'rb', 'pl', 'r', 'yaml', 'yml', 'toml', 'jl', 'ex', 'exs', 'nim', 'cmake', 'mk'];
  const dash = ['lua', 'sql', 'hs', 'elm', 'ada'];
  if (hash.includes(ext) || path.endsWith('Makefile') || path.endsWith('Dockerfile')) return `# path: ${path}`;
  if (dash.includes(ext)) return `-- path: ${path}`;
  if (['html', 'xml', 'svg', 'md', 'vue'].includes(ext)) return `<!-- path: ${path} -->`;
  return `// path: ${path}`;
}

/** FNV-1a 32-bit: a cheap content key, not a security hash. */
export function hashText(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0).toString(16).padStart(8, '0');
}

export function segmentText(segment: PromptSegment): string {
  return segment.parts.map((p) => p.text).join('');
}

/** The whole prompt as text, FIM tokens written as the model's markers (for remote servers, logs). */
export function promptText(prompt: FimPrompt): string {
  return prompt.segments.map(segmentText).join('');
}

export interface TokenizedPrompt {
  ids: number[];
  /** For each segment: its key and [start, end) in ids. */
  segments: { key: string; kind: SegmentKind; start: number; end: number }[];
}

/** Token ids per segment: FIM markers become the tokenizer's ids, text is encoded without parsing specials. */
export function tokenizePrompt(prompt: FimPrompt, tokenizer: PromptTokenizer): TokenizedPrompt {
  const fim = tokenizer.fim;
  if (!fim) {
    throw new CachetError('this model has no FIM tokens', 'Use a code model with fill-in-the-middle support (Qwen2.5-Coder, DeepSeek-Coder, StarCoder2).');
  }
  const ids: number[] = [];
  const segments: TokenizedPrompt['segments'] = [];
  for (const segment of prompt.segments) {
    const start = ids.length;
    for (const part of segment.parts) {
      if (part.role !== undefined) {
        const id = fim[part.role];
        if (id === undefined) {
          throw new CachetError(`the tokenizer has no ${part.role} token`, 'This prompt layout needs repo-level FIM tokens; build it with fimFormatFor(tokenizer).');
        }
        ids.push(id);
      } else if (part.text !== '') {
        for (const id of tokenizer.encode(part.text, { addSpecial: false, parseSpecial: false })) ids.push(id);
      }
    }
    segments.push({ key: segment.key, kind: segment.kind, start, end: ids.length });
  }
  return { ids, segments };
}
