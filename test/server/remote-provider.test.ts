import { afterEach, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CancelledError } from '../../engine/errors';
import { RemoteProvider, RemoteServerError, startServer, type RunningServer } from '../../engine/server';
import { FakeProvider } from './fake-provider';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function cachet(token?: string) {
  const provider = new FakeProvider();
  const s: RunningServer = await startServer({ provider, port: 0, token });
  cleanups.push(() => s.close());
  return { provider, url: s.url };
}

/** A stub server answering every request with the given handler; closes itself after the test. */
async function stub(handler: Parameters<typeof createServer>[1]): Promise<string> {
  const server: Server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  cleanups.push(() => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe('RemoteProvider', () => {
  it('lists models and completes with FIM suffix (through Cachet\'s own endpoint)', async () => {
    const { url, provider } = await cachet('tok');
    const remote = new RemoteProvider({ baseUrl: url, apiKey: 'tok' });
    expect(await remote.models()).toEqual([{ id: 'fake-model', ownedBy: 'cachet', contextLength: 4096 }]);
    const out = await remote.complete({ prompt: 'ab', suffix: 'xy', maxTokens: 20, temperature: 0 });
    expect(out.text).toBe('AB|yx');
    expect(out.finishReason).toBe('stop');
    expect(out.promptTokens).toBe(5);
    expect(out.cachedTokens).toBe(2);
    const sent = provider.calls[0]!.params as { suffix?: string; maxTokens?: number };
    expect(sent.suffix).toBe('xy');
    expect(sent.maxTokens).toBe(20);
  });

  it('fim prompt mode formats the FIM prompt for the family and adds its stop strings', async () => {
    const { url, provider } = await cachet();
    const remote = new RemoteProvider({ baseUrl: url, model: 'fake-model', fim: { mode: 'prompt', family: 'qwen', path: 'a.py' } });
    await remote.complete({ prompt: 'def f(x):\n    ret', suffix: '\n', stop: ['\n\n'] });
    const sent = provider.calls[0]!.params as { prompt: string; suffix?: string; stop: string[] };
    expect(sent.prompt).toBe('<|file_sep|>a.py\n<|fim_prefix|>def f(x):\n<|fim_suffix|>\n<|fim_middle|>    ret');
    expect(sent.suffix).toBeUndefined();
    expect(sent.stop).toContain('\n\n');
    expect(sent.stop).toContain('<|file_sep|>');
  });

  it('streams completions and chat through SSE', async () => {
    const { url } = await cachet();
    const remote = new RemoteProvider({ baseUrl: url + '/v1/', model: 'fake-model' });
    const pieces: string[] = [];
    const out = await remote.complete({ prompt: 'stream me', onText: (d) => pieces.push(d) });
    expect(pieces.length).toBeGreaterThan(1);
    expect(pieces.join('')).toBe('STREAM ME');
    expect(out.text).toBe('STREAM ME');
    const chatPieces: string[] = [];
    const chat = await remote.chat({ messages: [{ role: 'user', content: 'yo' }], onText: (d) => chatPieces.push(d) });
    expect(chat.text).toBe('echo: yo');
    expect(chatPieces.join('')).toBe('echo: yo');
  });

  it('connection refused -> hint asks whether the server is running at the URL', async () => {
    const url = await stub((_req, res) => res.end());
    await cleanups.pop()!(); // close it: the port is now free
    const remote = new RemoteProvider({ baseUrl: url, model: 'm' });
    const err = await remote.complete({ prompt: 'x' }).catch((e) => e);
    expect(err).toBeInstanceOf(RemoteServerError);
    expect(err.message).toMatch(/connection refused/);
    expect(err.hint).toContain(`Is the server running at ${url}/v1?`);
  });

  it('HTTP errors carry the server message and a status hint', async () => {
    const url = await stub((req, res) => {
      if (req.url === '/v1/completions') {
        res.writeHead(401, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { message: 'bad key' } }));
      } else {
        res.writeHead(404);
        res.end('nothing here');
      }
    });
    const remote = new RemoteProvider({ baseUrl: url, model: 'm' });
    const err = await remote.complete({ prompt: 'x' }).catch((e) => e);
    expect(err).toBeInstanceOf(RemoteServerError);
    expect(err.status).toBe(401);
    expect(err.message).toMatch(/answered 401: bad key/);
    expect(err.hint).toMatch(/API key/);
    const err2 = await remote.models().catch((e) => e);
    expect(err2.status).toBe(404);
    expect(err2.hint).toMatch(/base URL/);
  });

  it('an error event inside the stream becomes an error', async () => {
    const url = await stub((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: {"choices":[{"text":"par","finish_reason":null}]}\n\n');
      res.end('data: {"error":{"message":"out of memory"}}\n\n');
    });
    const remote = new RemoteProvider({ baseUrl: url, model: 'm' });
    const got: string[] = [];
    const err = await remote.complete({ prompt: 'x', onText: (d) => got.push(d) }).catch((e) => e);
    expect(got).toEqual(['par']);
    expect(err).toBeInstanceOf(RemoteServerError);
    expect(err.message).toMatch(/out of memory/);
  });

  it('cancel: the AbortSignal and cancelAll end a streaming request with CancelledError', async () => {
    const { url, provider } = await cachet();
    provider.slowPieces = 100_000;
    provider.stepMs = 2;
    const remote = new RemoteProvider({ baseUrl: url, model: 'fake-model' });
    const ac = new AbortController();
    const p1 = remote.complete({ prompt: 'x', signal: ac.signal, onText: () => ac.abort() });
    await expect(p1).rejects.toBeInstanceOf(CancelledError);
    let started!: () => void;
    const first = new Promise<void>((r) => (started = r));
    const p2 = remote.complete({ prompt: 'x', onText: () => started() });
    await first;
    remote.cancelAll();
    await expect(p2).rejects.toBeInstanceOf(CancelledError);
    // both server-side generations noticed the disconnect (bounded wait)
    for (let i = 0; i < 200 && provider.cancelledCount < 2; i++) await new Promise((r) => setTimeout(r, 10));
    expect(provider.cancelledCount).toBe(2);
  });

  it('timeout -> hint about an overloaded or loading server', async () => {
    const url = await stub(() => { /* never answers */ });
    const remote = new RemoteProvider({ baseUrl: url, model: 'm', timeoutMs: 100 });
    const err = await remote.complete({ prompt: 'x' }).catch((e) => e);
    expect(err).toBeInstanceOf(RemoteServerError);
    expect(err.message).toMatch(/did not answer within 100 ms/);
  });
});
