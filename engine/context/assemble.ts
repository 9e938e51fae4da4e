// One call from a FIM request (prefix, suffix, file, chunks: the protocol's FimInput shape) to
// token ids, segment boundaries and the stop rules for the model's family.

import { CachetError } from '../errors';
import { fimFormatFor, type FimFormat, type PromptTokenizer } from './fim-formats';
import { buildFimPrompt, tokenizePrompt, type FimBudget, type FimPrompt, type TokenizedPrompt } from './fim-prompt';
import { fimStopTokenCheck } from './stop-rules';
import { repoContextFiles, type RepoContextInput } from './repo-context';
import { prefixWindow, suffixWindow } from './windows';

export interface FimRequestInput {
  prefix: string;
  suffix: string;
  filePath?: string;
  repoName?: string;
  /** Retrieved chunks; higher score = higher priority when the budget forces dropping. */
  chunks?: { filePath: string; text: string; score?: number }[];
  /** Candidate files to select more chunks from (after `chunks`), see repo-context.ts. */
  repoContext?: RepoContextInput;
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
  const countTokens = (text: string) => tokenizer.encode(text, { addSpecial: false, parseSpecial: false }).length;
  const prompt = buildFimPrompt(
    format,
    {
      path: input.filePath ?? 'untitled',
      repoName: input.repoName,
      prefix,
      suffix,
      // The caller's order is kept (stable for caches); the budget drops the lowest scores first.
      context: [
        ...(input.chunks ?? []).map((c) => ({ path: c.filePath, text: c.text, score: c.score })),
        // Selected against the whole text the editor sent (imports and the cursor's neighbourhood).
        ...(input.repoContext ? repoContextFiles(input.repoContext, input) : []),
      ],
    },
    { budget: options.budget, countTokens, cursorLineInMiddle: options.cursorLineInMiddle ?? true },
  );
  return {
    format,
    prompt,
    tokens: tokenizePrompt(prompt, tokenizer),
    stopStrings: format.stopStrings,
    isStopToken: fimStopTokenCheck(tokenizer),
  };
}
