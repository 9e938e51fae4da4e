import { describe, expect, it } from 'vitest';
import { contextWindow, indentWidth, CHARS_PER_TOKEN } from '../../src/completion/context-window';

describe('contextWindow', () => {
  const doc = 'line one\nline two\n  def f(x):\n    return x\nline five\nline six\n';

  it('splits at the cursor and reports the cursor line halves', () => {
    const offset = doc.indexOf('return') + 3; // "ret|urn"
    const w = contextWindow(doc, offset, { contextTokens: 1000 });
    expect(w.prefix).toBe(doc.slice(0, offset));
    expect(w.suffix).toBe(doc.slice(offset));
    expect(w.linePrefix).toBe('    ret');
    expect(w.lineSuffix).toBe('urn x');
    expect(w.offset).toBe(offset);
  });

  it('cuts the prefix at a line start and the suffix at a line end when over budget', () => {
    const big = Array.from({ length: 200 }, (_, i) => `line number ${i}`).join('\n');
    const offset = big.indexOf('line number 100') + 5;
    const w = contextWindow(big, offset, { contextTokens: 40 });
    const budget = Math.floor(40 * CHARS_PER_TOKEN);
    expect(w.prefix.length).toBeLessThanOrEqual(Math.floor(budget * 0.75));
    expect(w.prefix.startsWith('line number ')).toBe(true);
    expect(big.slice(0, offset).endsWith(w.prefix)).toBe(true);
    expect(w.suffix.length).toBeLessThanOrEqual(budget - Math.floor(budget * 0.75));
    expect(big.slice(offset).startsWith(w.suffix)).toBe(true);
    expect(big[offset + w.suffix.length]).toBe('\n');
  });

  it('handles the document edges and CRLF line ends', () => {
    expect(contextWindow('', 0, { contextTokens: 10 })).toMatchObject({ prefix: '', suffix: '', linePrefix: '', lineSuffix: '' });
    const w = contextWindow('ab\r\ncd', 1, { contextTokens: 100 });
    expect(w.lineSuffix).toBe('b');
    expect(contextWindow('abc', 99, { contextTokens: 100 }).offset).toBe(3);
  });

  it('measures indentation with tabs', () => {
    expect(indentWidth('    x')).toBe(4);
    expect(indentWidth('\tx', 4)).toBe(4);
    expect(indentWidth('  \tx', 4)).toBe(4);
    expect(indentWidth('x')).toBe(0);
  });
});
