// The optional local endpoint (LocalServer runs the bundled CLI's `serve`) and the remote backend
// (RemoteBackend, OpenAI /v1/completions with suffix, SSE) against each other, compared with the
// same FIM request sent to the engine directly.
import { mkdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EngineClient } from '../../engine/runtime/client';
import { LocalServer } from '../../src/local-server';
import { RemoteBackend } from '../../src/remote-backend';
import { makeTestModel } from '../helpers/make-test-model';
import { bundleEntry } from '../helpers/bundle';

const tmp = join(__dirname, '..', '.tmp');
const cliPath = join(tmp, `extension-cli-${process.pid}.js`);
const workerPath = join(tmp, `extension-worker2-${process.pid}.js`);
let modelPath: string;
const logs: string[] = [];
const server = new LocalServer((l) => logs.push(l));

const freePort = () =>
  new Promise<number>((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });

beforeAll(async () => {
  mkdirSync(tmp, { recursive: true });
  await bundleEntry('engine/cli/main.ts', cliPath);
  await bundleEntry('engine/runtime/worker.ts', workerPath);
  modelPath = makeTestModel({ arch: 'qwen2', layers: 2, dims: 64, heads: 4, kvHeads: 2, ff: 128, seed: 9 });
});
afterAll(() => {
  server.stop();
  for (const f of [cliPath, workerPath]) {
    rmSync(f, { force: true });
    rmSync(`${f}.map`, { force: true });
  }
});

describe('local endpoint + remote backend', () => {
  it('serves FIM completions that equal the engine\'s own', async () => {
    const port = await freePort();
    server.start({ cliPath, port, modelPath, backend: 'reference', threads: 1, contextLength: 512 });
    const url = `http://127.0.0.1:${port}`;
    let up = false;
    for (let i = 0; i < 150 && !up; i++) {
      up = await fetch(`${url}/health`).then((r) => r.ok, () => false);
      if (!up) await new Promise((r) => setTimeout(r, 200));
    }
    expect(up, logs.join('\n')).toBe(true);
    expect(server.running).toBe(true);

    const fim = { prefix: 'def add(a, b):\n    return ', suffix: '\n\nprint(add(1, 2))\n' };
    const remote = new RemoteBackend(url, '');
    const got = await new Promise<{ text: string; reason: string }>((resolve, reject) => {
      let text = '';
      remote.start(fim, { maxTokens: 8 }, { onText: (t) => (text += t), onDone: (reason) => resolve({ text, reason }), onError: reject });
    });

    const direct = await EngineClient.start({ workerPath });
    await direct.loadModel({ path: modelPath, backend: 'reference', contextLength: 512 });
    const r = await direct.complete({ prompt: { kind: 'fim', fim }, maxTokens: 8 }).result;
    await direct.shutdown();
    expect(r.text.length).toBeGreaterThan(0);
    expect(got.text).toBe(r.text);
    expect(['stop', 'length']).toContain(got.reason);

    // Cancel aborts the HTTP request and ends the stream as cancelled.
    const cancelled = await new Promise<string>((resolve, reject) => {
      const h = remote.start(fim, { maxTokens: 200 }, { onText: () => undefined, onDone: resolve, onError: reject });
      h.cancel();
    });
    expect(cancelled).toBe('cancelled');

    server.stop();
    for (let i = 0; i < 50 && server.running; i++) await new Promise((r) => setTimeout(r, 100));
    expect(server.running).toBe(false);
  });

  it('reports an unreachable endpoint as an error', async () => {
    const port = await freePort();
    const err = await new Promise<Error>((resolve) => {
      new RemoteBackend(`http://127.0.0.1:${port}/v1`, 'm').start({ prefix: 'x', suffix: '' }, { maxTokens: 4 }, { onText: () => undefined, onDone: () => resolve(new Error('no error')), onError: resolve });
    });
    expect(err.message).not.toBe('no error');
  });
});
