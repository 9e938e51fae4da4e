// Prefix/suffix windows around the cursor, by lines and then by a token budget. Truncation always
// keeps the lines nearest the cursor: the prefix loses its top lines, the suffix its bottom lines.

export type CountTokens = (text: string) => number;

/** Rough count for when no tokenizer is at hand (code averages ~3.5–4 chars per BPE token). */
export const approxTokens: CountTokens = (text) => Math.ceil(text.length / 3.5);

export interface CursorSplit {
  prefix: string;
  suffix: string;
}

/** Split a document at a 1-based line and column (column counts UTF-16 units, as editors do). */
export function splitAtLineCol(text: string, line: number, col: number): CursorSplit {
  const offset = offsetOfLineCol(text, line, col);
  return { prefix: text.slice(0, offset), suffix: text.slice(offset) };
}

/** Offset of a 1-based line/column; throws RangeError naming the limit when out of range. */
export function offsetOfLineCol(text: string, line: number, col: number): number {
  if (!Number.isInteger(line) || line < 1) throw new RangeError(`line must be an integer >= 1, got ${line}`);
  if (!Number.isInteger(col) || col < 1) throw new RangeError(`column must be an integer >= 1, got ${col}`);
  let start = 0;
  for (let l = 1; l < line; l++) {
    const nl = text.indexOf('\n', start);
    if (nl < 0) throw new RangeError(`line ${line} is past the end of the text (${l} lines)`);
    start = nl + 1;
  }
  let end = text.indexOf('\n', start);
  if (end < 0) end = text.length;
  const lineLength = end - start;
  if (col - 1 > lineLength) throw new RangeError(`column ${col} is past the end of line ${line} (${lineLength} characters)`);
  return start + col - 1;
}

/** Keep the last `maxLines` lines of the prefix (the cursor line counts as one). */
export function prefixWindow(prefix: string, maxLines: number): string {
  const lines = prefix.split('\n');
  return lines.length <= maxLines ? prefix : lines.slice(lines.length - maxLines).join('\n');
}

/** Keep the first `maxLines` lines of the suffix (the rest of the cursor line counts as one). */
export function suffixWindow(suffix: string, maxLines: number): string {
  const lines = suffix.split('\n');
  return lines.length <= maxLines ? suffix : lines.slice(0, maxLines).join('\n');
}

/**
 * Longest tail of `prefix` that fits `budget` tokens, cut at line starts. The cursor line is kept
 * whole if it fits, otherwise its last characters that do.
 */
export function truncatePrefix(prefix: string, budget: number, count: CountTokens = approxTokens): string {
  if (budget <= 0) return '';
  if (count(prefix) <= budget) return prefix;
  const lines = prefix.split('\n');
  let used = 0;
  let first = lines.length;
  for (let i = lines.length - 1; i >= 0; i--) {
    const piece = i === lines.length - 1 ? lines[i]! : lines[i]! + '\n';
    const n = count(piece);
    if (used + n > budget) break;
    used += n;
    first = i;
  }
  if (first === lines.length) return tailThatFits(lines[lines.length - 1]!, budget, count);
  return lines.slice(first).join('\n');
}

/** Longest head of `suffix` that fits `budget` tokens, cut at line ends. */
export function truncateSuffix(suffix: string, budget: number, count: CountTokens = approxTokens): string {
  if (budget <= 0) return '';
  if (count(suffix) <= budget) return suffix;
  const lines = suffix.split('\n');
  let used = 0;
  let end = 0;
  for (let i = 0; i < lines.length; i++) {
    const piece = i === 0 ? lines[i]! : '\n' + lines[i]!;
    const n = count(piece);
    if (used + n > budget) break;
    used += n;
    end = i + 1;
  }
  if (end === 0) return headThatFits(lines[0]!, budget, count);
  return lines.slice(0, end).join('\n');
}

function tailThatFits(s: string, budget: number, count: CountTokens): string {
  let lo = 0;
  let hi = s.length;
  // smallest start index whose tail fits
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (count(s.slice(mid)) <= budget) hi = mid;
    else lo = mid + 1;
  }
  return s.slice(lo);
}

function headThatFits(s: string, budget: number, count: CountTokens): string {
  let lo = 0;
  let hi = s.length;
  // largest end index whose head fits
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (count(s.slice(0, mid)) <= budget) lo = mid;
    else hi = mid - 1;
  }
  return s.slice(0, lo);
}
