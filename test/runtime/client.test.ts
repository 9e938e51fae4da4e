import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EngineEvent, TokenEvent } from '../../engine/protocol';
import { EngineClient, EngineRequestError } from '../../engine/runtime/client';
import { Engine } from '../../engine/runtime/engine';
import { makeTestModel } from '../helpers/make-test-model';
import { bundleEntry } from '../helpers/bundle';

const tmp = join(__dirname, '..', '.tmp');
const workerPath = join(tmp, `runtime-worker-${process.pid}.js`);
let modelPath: string;

beforeAll(async () => {
  mkdirSync(tmp, { recursive: true });
  // A file under the repo, so the externals resolve.
  await bundleEntry('engine/runtime/worker.ts', workerPath);
  modelPath = makeTestModel({ arch: 'qwen2', layers: 2, dims: 64, heads: 4, kvHeads: 2, ff: 128, seed: 11 });
});

afterAll(() => {
  for (const f of [workerPath, `${workerPath}.map`, join(tmp, `fake-worker-${process.pid}.js`), join(tmp, `silent-worker-${process.pid}.js`)]) rmSync(f, { force: true });
});

describe('EngineClient against the real worker', () => {
  let client: EngineClient;
  const broadcast: EngineEvent[] = [];
  beforeAll(async () => {
    client = await EngineClient.start({ workerPath, onEvent: (e) => broadcast.push(e) });
  });
  afterAll(async () => client?.shutdown());

  it('answers before a model is loaded: empty metrics, typed error for generation', async () => {
    const m = await client.metrics();
    expect(m.notes).toContain('no model loaded');
    const s = client.complete({ prompt: { kind: 'text', text: 'x' } });
    await expect(s.result).rejects.toBeInstanceOf(EngineRequestError);
    await expect(s.result).rejects.toMatchObject({ hint: expect.stringMatching(/loadModel/) });
  });

  it('loads a model, streams a FIM completion identical to the in-process engine', async () => {
    const progress: number[] = [];
    const info = await client.loadModel({ path: modelPath, backend: 'reference', contextLength: 256, prefillChunk: 32 }, (p) => progress.push(p.fraction));
    expect(info).toMatchObject({ arch: 'qwen2', backend: 'reference', contextLength: 256, fim: true });
    expect(progress.at(-1)).toBe(1);

    const fim = { prefix: 'let total = 0;\nfor (const x of xs) total += ', suffix: ';\nreturn total;\n', filePath: 'sum.js' };
    const events: TokenEvent[] = [];
    const stream = client.complete({ prompt: { kind: 'fim', fim }, maxTokens: 12 });
    for await (const ev of stream) events.push(ev);
    const result = await stream.result;
    expect(events.at(-1)!.done).toBe(true);
    expect(events.filter((e) => e.done)).toHaveLength(1);
    expect(events.map((e) => e.text).join('')).toBe(result.text);

    const local = await Engine.load({ modelPath, backend: 'reference', contextLength: 256 });
    try {
      const expected = await local.complete({ fim, maxTokens: 12 });
      expect(result.tokenIds).toEqual(expected.tokenIds);
      expect(result.text).toBe(expected.text);
      expect(result.finishReason).toBe(expected.finishReason);
      const t = await client.tokenize('hello');
      expect(t.tokenIds).toEqual(local.tokenize('hello').tokenIds);
    } finally {
      await local.dispose();
    }
  });

  it('cancels a running stream and frees its KV; runs chat and completion concurrently', async () => {
    let stream: ReturnType<EngineClient['complete']> | undefined = undefined;
    stream = client.complete({ prompt: { kind: 'text', text: 'The quick brown fox' }, maxTokens: 200 }, () => stream!.cancel());
    const r = await stream.result;
    expect(r.finishReason).toBe('cancelled');
    expect(r.tokenIds.length).toBeLessThan(200);

    const chat = client.chat({ messages: [{ role: 'user', content: 'hello' }], maxTokens: 8 });
    const fim = client.complete({ prompt: { kind: 'fim', fim: { prefix: 'a = ', suffix: '\n' } }, maxTokens: 8 });
    const [c, f] = await Promise.all([chat.result, fim.result]);
    expect(['length', 'eog', 'stop']).toContain(c.finishReason);
    expect(['length', 'eog', 'stop']).toContain(f.finishReason);

    const m = await client.metrics();
    expect(m.kv.slotsUsed).toBe(0);
    expect(m.requests.cancelled).toBeGreaterThanOrEqual(1);
    expect(m.requests.active + m.requests.queued).toBe(0);
    await client.clearCache();
    expect((await client.metrics()).kv.slotsCached).toBe(0);
  });
});

describe('EngineClient crash handling', () => {
  // A stand-in worker that speaks the protocol and dies on demand.
  const fakeWorker = join(tmp, `fake-worker-${process.pid}.js`);
  beforeAll(() => {
    writeFileSync(fakeWorker, `
const { parentPort } = require('node:worker_threads');
parentPort.postMessage({ type: 'hello', protocolVersion: 1 });
parentPort.on('message', (m) => {
  if (m.type === 'loadModel') parentPort.postMessage({ type: 'ready', id: m.id, protocolVersion: 1, model: { name: 'fake', path: m.path } });
  if (m.type === 'complete') {
    if (m.prompt.text === 'crash') { parentPort.postMessage({ type: 'token', id: m.id, text: 'a', tokenIds: [1], done: false }); setTimeout(() => process.exit(3), 20); return; }
    parentPort.postMessage({ type: 'token', id: m.id, text: 'ok', tokenIds: [2], done: true, finishReason: 'length', timings: {} });
  }
  if (m.type === 'shutdown') { parentPort.postMessage({ type: 'ack', id: m.id, request: 'shutdown' }); parentPort.close(); }
});
`);
  });

  it('turns a worker exit into fatal errors for in-flight requests and restarts with the last model', async () => {
    const exits: Error[] = [];
    const client = await EngineClient.start({ workerPath: fakeWorker, onExit: (e) => exits.push(e) });
    try {
      await client.loadModel({ path: '/models/x.gguf', backend: 'reference' });
      const pending = client.complete({ prompt: { kind: 'text', text: 'slow' } });
      const crashing = client.complete({ prompt: { kind: 'text', text: 'crash' } });
      await pending.result;
      const err = await crashing.result.catch((e) => e);
      expect(err).toBeInstanceOf(EngineRequestError);
      expect(err).toMatchObject({ engineName: 'WorkerCrashedError', fatal: true });
      expect(err.message).toMatch(/code 3/);
      expect(exits).toHaveLength(1);
      expect(client.alive).toBe(false);
      // Requests while down fail at once instead of hanging.
      await expect(client.complete({ prompt: { kind: 'text', text: 'x' } }).result).rejects.toMatchObject({ engineName: 'WorkerCrashedError' });
      const info = await client.restart();
      expect(info).toMatchObject({ name: 'fake', path: '/models/x.gguf' });
      expect((await client.complete({ prompt: { kind: 'text', text: 'again' } }).result).text).toBe('ok');
    } finally {
      await client.shutdown();
    }
    expect(exits).toHaveLength(1); // a requested shutdown is not a crash
  });

  it('refuses a worker that never says hello', async () => {
    const silent = join(tmp, `silent-worker-${process.pid}.js`);
    writeFileSync(silent, `setTimeout(() => {}, 10000);`);
    await expect(EngineClient.start({ workerPath: silent, startTimeoutMs: 300 })).rejects.toThrow(/did not start/);
  });
});
