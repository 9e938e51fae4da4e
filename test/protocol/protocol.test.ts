import { describe, expect, it } from 'vitest';
import { CachetError, GgufError } from '../../engine/errors';
import {
  errorEvent, isEngineEvent, isEngineRequest, isTerminalEvent, PROTOCOL_VERSION, validateRequest,
  type EngineEvent, type EngineRequest,
} from '../../engine/protocol';

const requests: EngineRequest[] = [
  { type: 'loadModel', id: 'l', path: '/m.gguf', backend: 'auto', contextLength: 4096, kvBudget: { slots: 8192 } },
  {
    type: 'complete', id: 'c', priority: 'interactive', maxTokens: 64, stop: ['\n\n'], deadlineMs: 2000,
    sampling: { temperature: 0 }, speculative: { maxDraft: 4 },
    prompt: { kind: 'fim', fim: { prefix: 'a', suffix: 'b', filePath: 'x.ts', languageId: 'typescript', chunks: [{ filePath: 'y.ts', text: 'z' }] } },
  },
  { type: 'complete', id: 'c2', prompt: { kind: 'segments', segments: [{ text: 'header', role: 'header', key: 'h' }, { text: 'x' }] } },
  { type: 'chat', id: 'h', messages: [{ role: 'user', content: 'hi' }], priority: 'chat' },
  { type: 'tokenize', id: 't', text: 'abc' },
  { type: 'cancel', id: 'c' },
  { type: 'metrics', id: 'm' },
  { type: 'clearCache', id: 'x' },
  { type: 'shutdown', id: 's' },
];

describe('engine/protocol', () => {
  it('accepts every well-formed request and survives structured cloning and JSON unchanged', () => {
    for (const r of requests) {
      expect(validateRequest(r)).toBeUndefined();
      expect(isEngineRequest(r)).toBe(true);
      expect(structuredClone(r)).toEqual(r);
      expect(JSON.parse(JSON.stringify(r))).toEqual(r);
    }
  });

  it('names what is wrong with a malformed request', () => {
    expect(validateRequest(null)).toMatch(/not an object/);
    expect(validateRequest({ type: 'fly', id: '1' })).toMatch(/unknown request type "fly"/);
    expect(validateRequest({ type: 'metrics' })).toMatch(/missing string id/);
    expect(validateRequest({ type: 'loadModel', id: '1', path: '/m', backend: 'cuda' })).toMatch(/backend/);
    expect(validateRequest({ type: 'complete', id: '1', prompt: { kind: 'audio' } })).toMatch(/prompt.kind/);
    expect(validateRequest({ type: 'complete', id: '1' })).toMatch(/prompt missing/);
    expect(validateRequest({ type: 'chat', id: '1', messages: 'hi' })).toMatch(/messages/);
    expect(validateRequest({ type: 'tokenize', id: '1' })).toMatch(/text/);
  });

  it('knows which events end a request', () => {
    const timings = { ttftMs: 1, tokensPerSecond: 2, promptTokens: 3, prefillTokens: 3, cachedTokens: 0, generatedTokens: 1, totalMs: 4 };
    const cases: [EngineEvent, boolean][] = [
      [{ type: 'hello', protocolVersion: PROTOCOL_VERSION }, false],
      [{ type: 'progress', id: 'l', fraction: 0.5, what: 'weights' }, false],
      [{ type: 'token', id: 'c', text: 'a', tokenIds: [1], done: false }, false],
      [{ type: 'token', id: 'c', text: '', tokenIds: [], done: true, finishReason: 'stop', timings }, true],
      [{ type: 'tokens', id: 't', tokenIds: [1], pieces: ['a'] }, true],
      [{ type: 'ack', id: 'x', request: 'clearCache' }, true],
      [{ type: 'warning', code: 'backend-fallback', message: 'm' }, false],
      [{ type: 'error', id: 'c', name: 'E', message: 'm', hint: 'h' }, true],
    ];
    for (const [ev, terminal] of cases) {
      expect(isEngineEvent(ev)).toBe(true);
      expect(isTerminalEvent(ev)).toBe(terminal);
    }
    expect(isEngineEvent({ type: 'loadModel' })).toBe(false);
  });

  it('turns thrown values into error events that keep the hint', () => {
    const e = errorEvent(new GgufError('/m.gguf', 'bad magic', 'Pick a GGUF file.'), 'l');
    expect(e).toEqual({ type: 'error', id: 'l', name: 'GgufError', message: '/m.gguf: bad magic', hint: 'Pick a GGUF file.' });
    expect(errorEvent(new CachetError('x', 'y'), undefined, true)).toMatchObject({ name: 'CachetError', hint: 'y', fatal: true });
    const plain = errorEvent('boom');
    expect(plain).toMatchObject({ name: 'Error', message: 'boom' });
    expect(plain.hint.length).toBeGreaterThan(0);
    expect('id' in plain).toBe(false);
  });
});
