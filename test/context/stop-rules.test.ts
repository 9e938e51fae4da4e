import { describe, expect, it } from 'vitest';
import { applyStopRules, fimStopTokenCheck, StopRules, trimSuffixOverlap } from '../../engine/context';

describe('stop rules', () => {
  it('cuts at a stop string split across pushes and releases only whole lines before', () => {
    const r = new StopRules({ stopStrings: ['<|file_sep|>'] });
    expect(r.push('return 1\nfoo')).toEqual({ text: 'return 1', stop: false });
    expect(r.push('<|file')).toEqual({ text: '', stop: false });
    expect(r.push('_sep|>more')).toEqual({ text: '\nfoo', stop: true });
    expect(r.reason).toBe('stop-string');
    expect(r.text).toBe('return 1\nfoo');
  });

  it('a stop string starting with a newline holds the line until it is decided', () => {
    const r = new StopRules({ stopStrings: ['\n+++++ '] });
    expect(r.push('a = 1\n++')).toEqual({ text: '', stop: false });
    expect(r.push('+++ other.py')).toEqual({ text: 'a = 1', stop: true });
  });

  it('max lines', () => {
    expect(applyStopRules('a\nb\nc\nd', { maxLines: 2 })).toEqual({ text: 'a\nb', reason: 'max-lines' });
    const r = new StopRules({ maxLines: 1 });
    expect(r.push('only\nnot this')).toEqual({ text: 'only', stop: true });
  });

  it('end of block: a new block body ends when the code returns to the cursor indentation', () => {
    const prefix = 'def f(x):';
    const text = '\n    y = x + 1\n    return y\n\ndef g():\n    pass';
    expect(applyStopRules(text, { prefix, stopAtBlockEnd: true })).toEqual({ text: '\n    y = x + 1\n    return y\n', reason: 'block-end' });
  });

  it('end of block keeps a closing bracket at the cursor indentation', () => {
    const prefix = '  if (x) {';
    const text = '\n    go();\n  }\n  next();';
    expect(applyStopRules(text, { prefix, stopAtBlockEnd: true })).toEqual({ text: '\n    go();\n  }', reason: 'block-end' });
  });

  it('end of block: inside a body, a less indented line ends it', () => {
    const prefix = 'function f() {\n  ';
    expect(applyStopRules('const a = 1;\n  return a;\n}\nfunction g() {}', { prefix, stopAtBlockEnd: true }).text).toBe('const a = 1;\n  return a;');
  });

  it('never repeats the next suffix line', () => {
    const r = applyStopRules('\n  return 1;\n}', { prefix: 'function f() {', suffix: '\n}\n' });
    expect(r).toEqual({ text: '\n  return 1;', reason: 'suffix-repeat' });
  });

  it('trims a tail equal to the rest of the cursor line', () => {
    expect(applyStopRules('a, b)', { suffix: ')\nnext' }).text).toBe('a, b');
    expect(applyStopRules('a, b', { suffix: ')\nnext' }).text).toBe('a, b');
    expect(applyStopRules('a,\n  b)', { suffix: ')\nnext', singleLineMidLine: false }).text).toBe('a,\n  b');
  });

  it('one line only when text follows the cursor on its line', () => {
    expect(applyStopRules('a, b)\nmore()', { suffix: ')\n' })).toEqual({ text: 'a, b', reason: 'max-lines' });
    expect(applyStopRules('x = 1\ny = 2', { suffix: '   \nz' }).text).toBe('x = 1\ny = 2');
  });

  it('typedIndent: strips the already-typed indentation from the first line only', () => {
    const opts = { prefix: 'def f(n):\n    ', typedIndent: '    ', stopAtBlockEnd: true };
    expect(applyStopRules('    return n\n    x = 1', opts).text).toBe('return n\n    x = 1');
    expect(applyStopRules('        deeper()', opts).text).toBe('    deeper()');
    expect(applyStopRules('  partial', opts).text).toBe('partial');
    expect(applyStopRules('    return n\nprint(1)', opts)).toEqual({ text: 'return n', reason: 'block-end' });
  });

  it('stop tokens: EOG plus every FIM token', () => {
    const isStop = fimStopTokenCheck({ fim: { prefix: 10, suffix: 11, middle: 12, fileSep: 14 }, isEog: (id) => id === 2 });
    expect([2, 10, 11, 12, 14, 13, 3].map(isStop)).toEqual([true, true, true, true, true, false, false]);
  });
});

describe('trimSuffixOverlap', () => {
  it('removes the repeated rest of line', () => {
    expect(trimSuffixOverlap('foo(a, b))', '))\n')).toBe('foo(a, b');
  });
  it('removes trailing lines equal to the following suffix lines', () => {
    expect(trimSuffixOverlap('x = 1\n}\n', '\n}\n')).toBe('x = 1');
  });
  it('keeps text that does not repeat', () => {
    expect(trimSuffixOverlap('x = 1', '\ny = 2')).toBe('x = 1');
  });
});
