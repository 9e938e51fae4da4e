// Prefix/suffix windows around the cursor. Pure: no vscode import, so vitest runs it directly.
//
// The budget is in tokens but counted in characters (≈ CHARS_PER_TOKEN per token) so the
// extension never waits on the tokenizer. Windows are cut at line starts/ends so the model never
// sees half a line at the edges; the prefix gets 3/4 of the budget (it matters most for FIM).

export const CHARS_PER_TOKEN = 3.5;

export interface ContextWindowOptions {
  /** Prompt budget in tokens for prefix + suffix together. */
  contextTokens: number;
  /** Share of the budget given to the prefix (default 0.75). */
  prefixShare?: number;
}

export interface ContextWindow {
  /** Text before the cursor, at most the prefix budget, starting at a line start. */
  prefix: string;
  /** Text after the cursor, at most the suffix budget, ending at a line end. */
  suffix: string;
  /** The cursor line up to the cursor. */
  linePrefix: string;
  /** The cursor line after the cursor. */
  lineSuffix: string;
  /** Absolute offset of the cursor in the document (cache keys use it). */
  offset: number;
}

export function contextWindow(text: string, offset: number, opts: ContextWindowOptions): ContextWindow {
  const o = Math.max(0, Math.min(offset, text.length));
  const share = opts.prefixShare ?? 0.75;
  const totalChars = Math.max(0, Math.floor(opts.contextTokens * CHARS_PER_TOKEN));
  const prefixChars = Math.floor(totalChars * share);
  const suffixChars = totalChars - prefixChars;

  let start = Math.max(0, o - prefixChars);
  if (start > 0) {
    // Move forward to the next line start so the window begins with a whole line.
    const nl = text.indexOf('\n', start - 1);
    start = nl === -1 || nl >= o ? start : nl + 1;
  }
  let end = Math.min(text.length, o + suffixChars);
  if (end < text.length) {
    // Move back to the previous line end so the window ends with a whole line.
    const nl = text.lastIndexOf('\n', end);
    end = nl === -1 || nl < o ? end : nl;
  }
  const lineStart = text.lastIndexOf('\n', o - 1) + 1;
  let lineEnd = text.indexOf('\n', o);
  if (lineEnd === -1) lineEnd = text.length;
  return {
    prefix: text.slice(start, o),
    suffix: text.slice(o, end),
    linePrefix: text.slice(lineStart, o),
    lineSuffix: text.slice(o, lineEnd).replace(/\r$/, ''),
    offset: o,
  };
}

/** Leading whitespace of a line, tabs counted as `tabSize` columns. */
export function indentWidth(line: string, tabSize = 4): number {
  let w = 0;
  for (const ch of line) {
    if (ch === ' ') w += 1;
    else if (ch === '\t') w += tabSize - (w % tabSize);
    else break;
  }
  return w;
}
