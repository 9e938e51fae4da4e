import { describe, expect, it } from 'vitest';
import { dropSuffixOverlap, nextLineBelow, postprocess, readyLines } from '../../src/completion/postprocess';

const ctx = (linePrefix: string, lineSuffix = '', suffixBelow = '', maxLines = 10) => ({
  linePrefix,
  lineSuffix,
  suffix: lineSuffix + '\n' + suffixBelow,
  maxLines,
});

describe('postprocess', () => {
  it('keeps one line mid-line and drops text that repeats what follows the cursor', () => {
    const r = postprocess('a, b)\nmore', ctx('  foo(', ')'), false);
    expect(r).toEqual({ text: 'a, b', stop: true });
    // Still streaming and no newline yet: nothing is cut.
    expect(postprocess('a, b', ctx('  foo(', ')'), false)).toEqual({ text: 'a, b', stop: false });
    expect(postprocess('a, b)', ctx('  foo(', ')'), true).text).toBe('a, b');
  });

  it('limits the number of lines', () => {
    const r = postprocess('1\n2\n3\n4', ctx('x = ', '', '', 2), false);
    expect(r).toEqual({ text: '1\n2', stop: true });
    // CR and CRLF are line breaks too.
    expect(postprocess('1\r2\r\n3', ctx('x = ', '', '', 2), false)).toEqual({ text: '1\n2', stop: true });
  });

  it('ends the block at a line indented less than the cursor line', () => {
    const r = postprocess('total = 0\n    for v in xs:\n        total += v\nprint(total)\n', ctx('    '), false);
    expect(r.stop).toBe(true);
    expect(r.text).toBe('total = 0\n    for v in xs:\n        total += v');
  });

  it('keeps a closing brace at the cursor line indentation', () => {
    const r = postprocess('\n  return 1;\n}', ctx('function f() {'), true);
    expect(r).toEqual({ text: '\n  return 1;\n}', stop: false });
  });

  it('stops before a line that repeats the next line below the cursor', () => {
    const r = postprocess('\n    return a + b\n\ndef main():\n', ctx('def add(a, b):', '', '\ndef main():\n    pass'), false);
    expect(r.stop).toBe(true);
    expect(r.text).toBe('\n    return a + b');
  });

  it('does not judge an unfinished last line while streaming', () => {
    // "def main" could still become "def main():"; only a finished line is compared.
    const r = postprocess('\n    return 1\ndef main():', ctx('def f():', '', 'def main():'), false);
    expect(r.stop).toBe(false);
    expect(postprocess('\n    return 1\ndef main():', ctx('def f():', '', 'def main():'), true)).toEqual({ text: '\n    return 1', stop: true });
  });

  it('trims trailing blank lines and returns nothing for whitespace', () => {
    expect(postprocess('x + 1  \n\n', ctx('y = '), true).text).toBe('x + 1');
    expect(postprocess('   \n  ', ctx('y = '), true).text).toBe('');
  });

  it('finds the complete lines ready to show', () => {
    expect(readyLines('abc')).toBeUndefined();
    expect(readyLines('abc\nde')).toBe('abc');
    expect(readyLines('abc  \n\n  de\nf')).toBe('abc\n\n  de');
    expect(readyLines('\n    ')).toBeUndefined();
    expect(readyLines('\n  \n')).toBeUndefined();
    expect(readyLines('\n    return x\n')).toBe('\n    return x');
    expect(readyLines('x = 1 \n\n\ny')).toBe('x = 1');
  });

  it('helpers', () => {
    expect(nextLineBelow('rest of line\n\n  next one\nz')).toBe('next one');
    expect(nextLineBelow('only')).toBe('');
    expect(dropSuffixOverlap('x)', ')')).toBe('x');
    expect(dropSuffixOverlap('x', ')')).toBe('x');
  });
});
