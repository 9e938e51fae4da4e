import { describe, expect, test } from 'vitest';
import { StopStrings, isStopToken } from '../../engine/sampling';

describe('StopStrings', () => {
  test('holds back a possible stop-string prefix until it is decided', () => {
    const s = new StopStrings(['\n\n', 'END']);
    expect(s.push('hello')).toEqual({ text: 'hello', stopped: false });
    expect(s.push('\n')).toEqual({ text: '', stopped: false });
    expect(s.push('world')).toEqual({ text: '\nworld', stopped: false });
    expect(s.push('E')).toEqual({ text: '', stopped: false });
    expect(s.push('ND more')).toEqual({ text: '', stopped: true, matched: 'END' });
    expect(s.push('ignored')).toEqual({ text: '', stopped: true });
    expect(s.flush()).toBe('');
  });

  test('a stop string inside one piece cuts the text before it', () => {
    const s = new StopStrings(['</s>']);
    expect(s.push('a = 1</s>b')).toEqual({ text: 'a = 1', stopped: true, matched: '</s>' });
  });

  test('the earliest match wins', () => {
    const s = new StopStrings(['b', 'abc']);
    expect(s.push('xabc')).toEqual({ text: 'x', stopped: true, matched: 'abc' });
  });

  test('flush returns held-back text when generation ends without a stop', () => {
    const s = new StopStrings(['###']);
    expect(s.push('x #')).toEqual({ text: 'x ', stopped: false });
    expect(s.push('#')).toEqual({ text: '', stopped: false });
    expect(s.flush()).toBe('##');
  });

  test('no stop strings: text passes through', () => {
    const s = new StopStrings(['']);
    expect(s.push('abc')).toEqual({ text: 'abc', stopped: false });
  });
});

test('isStopToken accepts a set or an array', () => {
  expect(isStopToken(2, new Set([2, 7]))).toBe(true);
  expect(isStopToken(3, [2, 7])).toBe(false);
  expect(isStopToken(7, [2, 7])).toBe(true);
});
