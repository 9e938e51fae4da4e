// `cachet generate` and `cachet complete`: one request through the Engine, streamed to stdout
// (or collected into one JSON object with --json).

import { readFileSync } from 'node:fs';
import { relative, resolve, sep } from 'node:path';
import { chunksToContextFiles, selectContext, splitAtLineCol, splitTypedIndent, StopRules, type ContextChunk } from '../context';
import { CachetError } from '../errors';
import type { SamplingParams, Timings } from '../protocol';
import type { GenerationResult } from '../runtime';
import type { Engine } from './engine-link';
import { ms, type Io } from './output';

export interface GenerateReport {
  model: string;
  backend: string;
  /** Prompt ids (generate only: a FIM prompt is assembled inside the engine). */
  promptTokenIds?: number[];
  tokenIds: number[];
  text: string;
  finishReason: string;
  timings: Timings;
  cache: { promptTokens: number; cachedTokens: number; prefilledTokens: number };
}

export async function runGenerate(
  engine: Engine,
  prompt: string,
  opts: { n: number; sampling?: SamplingParams; stop?: string[]; stream?: (text: string) => void },
): Promise<GenerateReport> {
  const promptTokenIds = engine.tokenizer.encode(prompt, { addSpecial: true, parseSpecial: false });
  if (promptTokenIds.length === 0) throw new CachetError('the prompt is empty', 'Pass some text with --prompt or --prompt-file.');
  const r = await engine.generate(
    { prompt: { kind: 'tokens', tokenIds: promptTokenIds }, maxTokens: opts.n, sampling: opts.sampling, stop: opts.stop, priority: 'interactive' },
    opts.stream ? (c) => c.text && opts.stream!(c.text) : undefined,
  );
  return {
    model: engine.info.path,
    backend: engine.backendName,
    promptTokenIds,
    tokenIds: r.tokenIds,
    text: r.text,
    finishReason: r.finishReason,
    timings: r.timings,
    cache: { promptTokens: r.timings.promptTokens, cachedTokens: r.timings.cachedTokens, prefilledTokens: r.timings.prefillTokens },
  };
}

export interface CompleteReport extends GenerateReport {
  file: string;
  line: number;
  col: number;
  /** The model's raw output before the stop rules. */
  rawText: string;
  /** Why the stop rules ended it, if they did. */
  stopRule: string | undefined;
  /** Chunks of the --context files chosen for the prompt, in prompt order. */
  context: { path: string; startLine: number; endLine: number; score: number }[];
}

export interface CompleteOptions {
  file: string;
  line: number;
  col: number;
  n: number;
  maxLines?: number;
  repoName?: string;
  contextFiles?: string[];
  sampling?: SamplingParams;
  stream?: (text: string) => void;
}

export interface CursorCompletion {
  /** What to insert at the cursor, after the stop rules. */
  text: string;
  /** The model's raw output (decoding stops early once the stop rules end the completion). */
  rawText: string;
  stopRule: string | undefined;
  result: GenerationResult;
}

/**
 * FIM at a cursor: indentation typed on an empty line is left out of the prompt (a line-aligned
 * hole) and stripped from the output; the stop rules end decoding early by cancelling the request.
 */
export async function completeAtCursor(
  engine: Engine,
  opts: {
    prefix: string;
    suffix: string;
    filePath?: string;
    repoName?: string;
    chunks?: { filePath: string; text: string; score?: number }[];
    n: number;
    maxLines?: number;
    sampling?: SamplingParams;
    stream?: (text: string) => void;
  },
): Promise<CursorCompletion> {
  const healed = splitTypedIndent(opts.prefix);
  const rules = new StopRules({ prefix: opts.prefix, suffix: opts.suffix, maxLines: opts.maxLines, stopAtBlockEnd: true, typedIndent: healed.indent });
  const ac = new AbortController();
  let raw = '';
  const result = await engine.complete(
    {
      fim: { prefix: healed.prefix, suffix: opts.suffix, filePath: opts.filePath, repoName: opts.repoName, chunks: opts.chunks },
      maxTokens: opts.n,
      sampling: opts.sampling,
    },
    (c) => {
      raw += c.text;
      if (rules.stopped) return;
      const { text: released, stop } = rules.push(c.text);
      if (released) opts.stream?.(released);
      if (stop) ac.abort();
    },
    ac.signal,
  );
  if (!rules.stopped) {
    const tail = rules.finish();
    if (tail) opts.stream?.(tail);
  }
  return { text: rules.text, rawText: raw, stopRule: rules.reason, result };
}

/** FIM at a 1-based line/column of a file. */
export async function runComplete(engine: Engine, opts: CompleteOptions): Promise<CompleteReport> {
  let text: string;
  try {
    text = readFileSync(opts.file, 'utf8');
  } catch (err) {
    throw new CachetError(`cannot read ${opts.file}`, 'Check the --file path.', { cause: err });
  }
  let split;
  try {
    split = splitAtLineCol(text, opts.line, opts.col);
  } catch (err) {
    throw new CachetError(`${opts.file}: ${(err as Error).message}`, 'Lines and columns are 1-based; the column may be one past the last character.');
  }
  const context = pickContext(opts.file, text, split.prefix, split.suffix, opts.contextFiles ?? []);
  const chunks = chunksToContextFiles(context).map((f) => ({ filePath: f.path, text: f.text, score: f.score }));
  const c = await completeAtCursor(engine, {
    prefix: split.prefix,
    suffix: split.suffix,
    filePath: repoPath(opts.file),
    repoName: opts.repoName,
    chunks,
    n: opts.n,
    maxLines: opts.maxLines,
    sampling: opts.sampling,
    stream: opts.stream,
  });
  const r = c.result;
  return {
    model: engine.info.path,
    backend: engine.backendName,
    file: opts.file,
    line: opts.line,
    col: opts.col,
    tokenIds: r.tokenIds,
    rawText: c.rawText,
    text: c.text,
    stopRule: c.stopRule,
    context: context.map((x) => ({ path: x.path, startLine: x.startLine, endLine: x.endLine, score: x.score })),
    finishReason: c.stopRule && r.finishReason === 'cancelled' ? 'stop' : r.finishReason,
    timings: r.timings,
    cache: { promptTokens: r.timings.promptTokens, cachedTokens: r.timings.cachedTokens, prefilledTokens: r.timings.prefillTokens },
  };
}

/** Path as the prompt shows it: relative to the working directory (the repository root), with '/'. */
function repoPath(path: string): string {
  return relative(process.cwd(), resolve(path)).split(sep).join('/');
}

/** Chunks of the given files most similar to the code around the cursor (Jaccard over identifiers). */
function pickContext(file: string, text: string, prefix: string, suffix: string, files: string[]): ContextChunk[] {
  if (files.length === 0) return [];
  const candidates = files.map((path) => {
    try {
      return { path: repoPath(path), text: readFileSync(path, 'utf8'), sources: ['open' as const] };
    } catch (err) {
      throw new CachetError(`cannot read context file ${path}`, 'Check the --context paths.', { cause: err });
    }
  });
  const query = prefix.split('\n').slice(-30).join('\n') + suffix.split('\n').slice(0, 10).join('\n');
  return selectContext({ currentPath: repoPath(file), currentText: text, query, candidates, tokenBudget: 2048 });
}

export function formatTimings(r: GenerateReport): string {
  const t = r.timings;
  return (
    `[${r.backend}] prompt ${t.promptTokens} tok (${t.cachedTokens} cached, ${t.prefillTokens} computed), ` +
    `generated ${t.generatedTokens} tok, first token ${ms(t.ttftMs)} ms, ${t.tokensPerSecond.toFixed(1)} tok/s, total ${ms(t.totalMs)} ms, finish ${r.finishReason}`
  );
}
