// One call from a FIM request (prefix, suffix, file, chunks: the protocol's FimInput shape) to
// token ids, segment boundaries and the stop rules for the model's family.

import { CachetError } from '../errors';
import { fimFormatFor, type FimFormat, type PromptTokenizer } from './fim-formats';
import { buildFimPrompt, tokenizePrompt, type FimBudget, type FimPrompt, type TokenizedPrompt } from './fim-prompt';
import { fimStopTokenCheck } from './stop-rules';
import { prefixWindow, suffixWindow } from './windows';

export interface FimRequestInput {
  prefix: string;
  suffix: string;
  filePath?: string;
  repoName?: string;
  /** Retrieved chunks; higher score = higher priority when the budget forces dropping. */
  chunks?: { filePath: string; text: string; score?: number }[];
}

export interface AssembleOptions {
  budget?: Partial<FimBudget>;
  /** Line windows applied before the token budget (llama.vscode: 256 / 64). */
  prefixLines?: number;
  suffixLines?: number;
  /** Cursor line's prefix after the middle token (cache-friendly while typing). Default true. */
  cursorLineInMiddle?: boolean;
}

export interface AssembledFim {
  format: FimFormat;
  prompt: FimPrompt;
  tokens: TokenizedPrompt;
  stopStrings: string[];
  isStopToken: (id: number) => boolean;
}

export function assembleFim(tokenizer: PromptTokenizer, input: FimRequestInput, options: AssembleOptions = {}): AssembledFim {
  const format = fimFormatFor(tokenizer);
  if (!format) {
    throw new CachetError(
      'this model has no fill-in-the-middle tokens (or a FIM format Cachet does not know)',
      'Use a code model with FIM support (Qwen2.5-Coder, DeepSeek-Coder, StarCoder2, CodeLlama, Codestral), or send a plain prompt instead.',
    );
  }
  const prefix = prefixWindow(input.prefix, options.prefixLines ?? 256);
  const suffix = suffixWindow(input.suffix, options.suffixLines ?? 64);
  // Chunks come in any order; the stable order for the prompt is the caller's, priority by score.
  const chunks = [...(input.chunks ?? [])];
  const byPriority = [...chunks].sort((a, b) => (b.score ?? 0) - (a.score ?? 0));
  const countTokens = (text: string) => tokenizer.encode(text, { addSpecial: false, parseSpecial: false }).length;
  const prompt = buildFimPrompt(
    format,
    {
      path: input.filePath ?? 'untitled',
      repoName: input.repoName,
      prefix,
      suffix,
      context: byPriority.map((c) => ({ path: c.filePath, text: c.text })),
    },
    { budget: options.budget, countTokens, cursorLineInMiddle: options.cursorLineInMiddle ?? true },
  );
  // Put surviving context back into the caller's order (stable for caches).
  const order = new Map(chunks.map((c, i) => [c.filePath + '\u0000' + c.text, i]));
  const ctx = prompt.segments.filter((s) => s.kind === 'context');
  const keyed = ctx.map((s) => {
    const found = byPriority.find((c) => s.key.startsWith(`ctx:${c.filePath}:`) && s.parts.some((p) => p.text.includes(c.text)));
    return { s, i: found ? order.get(found.filePath + '\u0000' + found.text) ?? 0 : 0 };
  });
  keyed.sort((a, b) => a.i - b.i);
  let k = 0;
  prompt.segments = prompt.segments.map((s) => (s.kind === 'context' ? keyed[k++]!.s : s));
  return {
    format,
    prompt,
    tokens: tokenizePrompt(prompt, tokenizer),
    stopStrings: format.stopStrings,
    isStopToken: fimStopTokenCheck(tokenizer),
  };
}
