// `cachet tokenize`: token ids and pieces for a text, with the model's own tokenizer.

import { openGguf } from '../gguf';
import { Tokenizer } from '../tokenizer';

export interface TokenizeReport {
  model: string;
  tokenIds: number[];
  pieces: string[];
  count: number;
  ms: number;
}

export function tokenizeWithModel(modelPath: string, text: string, opts: { addSpecial?: boolean; parseSpecial?: boolean } = {}): TokenizeReport {
  const gguf = openGguf(modelPath);
  try {
    const tok = Tokenizer.fromGguf(gguf);
    const t0 = performance.now();
    const tokenIds = tok.encode(text, { addSpecial: opts.addSpecial ?? false, parseSpecial: opts.parseSpecial ?? false });
    const ms = performance.now() - t0;
    return { model: modelPath, tokenIds, pieces: tokenIds.map((id) => tok.decode([id], { special: true })), count: tokenIds.length, ms };
  } finally {
    gguf.close();
  }
}

export function formatTokens(r: TokenizeReport): string {
  const rows = r.tokenIds.map((id, i) => `${String(i).padStart(5)}  ${String(id).padStart(7)}  ${JSON.stringify(r.pieces[i])}`);
  return [...rows, `${r.count} tokens (${r.ms.toFixed(2)} ms)`].join('\n');
}
