import { afterEach, describe, expect, it } from 'vitest';
import { request } from 'node:http';
import { SseParser, startServer, type RunningServer } from '../../engine/server';
import { FakeProvider } from './fake-provider';

let running: RunningServer | undefined;
afterEach(async () => {
  await running?.close();
  running = undefined;
});

async function start(opts: { token?: string; maxBodyBytes?: number } = {}) {
  const provider = new FakeProvider();
  running = await startServer({ provider, port: 0, host: '127.0.0.1', ...opts });
  return { provider, url: running.url };
}

async function post(url: string, body: unknown, headers: Record<string, string> = {}) {
  return fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const json = (res: Response): Promise<any> => res.json();

function sseData(text: string): string[] {
  const p = new SseParser();
  return [...p.push(text), ...p.flush()].map((e) => e.data);
}

describe('OpenAI-compatible server', () => {
  it('listens on loopback and serves /v1/models and /health', async () => {
    const { url } = await start();
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const models = await json(await fetch(url + '/v1/models'));
    expect(models).toEqual({ object: 'list', data: [{ id: 'fake-model', object: 'model', created: 0, owned_by: 'cachet', context_length: 4096 }] });
    expect(await json(await fetch(url + '/health'))).toEqual({ status: 'ok' });
  });

  it('/v1/completions passes prompt, suffix and sampling to the provider', async () => {
    const { url, provider } = await start();
    const res = await post(url + '/v1/completions', { model: 'm', prompt: 'def f(', suffix: ')\n', max_tokens: 50, temperature: 0, stop: ['Z'] });
    expect(res.status).toBe(200);
    const body = await json(res);
    expect(body.object).toBe('text_completion');
    expect(body.model).toBe('m');
    expect(body.choices[0]).toEqual({ text: 'DEF F(|\n)', index: 0, logprobs: null, finish_reason: 'stop' });
    expect(body.usage).toEqual({ prompt_tokens: 9, completion_tokens: 9, total_tokens: 18, prompt_tokens_details: { cached_tokens: 2 } });
    const p = provider.calls[0]!.params as { prompt: string; suffix: string; maxTokens: number; temperature: number; stop: string[] };
    expect([p.prompt, p.suffix, p.maxTokens, p.temperature, p.stop]).toEqual(['def f(', ')\n', 50, 0, ['Z']]);
  });

  it('max_tokens limits the output and reports finish_reason length', async () => {
    const { url } = await start();
    const body = await json(await post(url + '/v1/completions', { prompt: 'abcdef', max_tokens: 3 }));
    expect(body.choices[0].text).toBe('ABC');
    expect(body.choices[0].finish_reason).toBe('length');
  });

  it('streams /v1/completions as SSE ending with [DONE]', async () => {
    const { url } = await start();
    const res = await post(url + '/v1/completions', { prompt: 'hello world', stream: true });
    expect(res.headers.get('content-type')).toMatch(/text\/event-stream/);
    const data = sseData(await res.text());
    expect(data[data.length - 1]).toBe('[DONE]');
    const chunks = data.slice(0, -1).map((d) => JSON.parse(d));
    expect(chunks.map((c) => c.choices[0].text).join('')).toBe('HELLO WORLD');
    expect(chunks[chunks.length - 1].choices[0].finish_reason).toBe('stop');
    expect(chunks.slice(0, -1).every((c) => c.choices[0].finish_reason === null)).toBe(true);
  });

  it('/v1/chat/completions: plain and streamed', async () => {
    const { url } = await start();
    const messages = [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'hi there' }];
    const plain = await json(await post(url + '/v1/chat/completions', { messages }));
    expect(plain.object).toBe('chat.completion');
    expect(plain.choices[0].message).toEqual({ role: 'assistant', content: 'echo: hi there' });

    const res = await post(url + '/v1/chat/completions', { messages, stream: true });
    const data = sseData(await res.text());
    expect(data.pop()).toBe('[DONE]');
    const chunks = data.map((d) => JSON.parse(d));
    expect(chunks[0].choices[0].delta).toEqual({ role: 'assistant', content: '' });
    expect(chunks.map((c) => c.choices[0].delta.content ?? '').join('')).toBe('echo: hi there');
    expect(chunks.every((c) => c.object === 'chat.completion.chunk')).toBe(true);
  });

  it('malformed JSON -> 400 with the reason; bad fields -> 400', async () => {
    const { url } = await start();
    const res = await post(url + '/v1/completions', '{"prompt": ');
    expect(res.status).toBe(400);
    const body = await json(res);
    expect(body.error.code).toBe('invalid_json');
    expect(body.error.message).toMatch(/malformed JSON/);
    const bad = await post(url + '/v1/completions', { prompt: 'x', temperature: 'hot' });
    expect(bad.status).toBe(400);
    expect((await json(bad)).error.message).toMatch(/temperature/);
    const noMsgs = await post(url + '/v1/chat/completions', { messages: [] });
    expect(noMsgs.status).toBe(400);
  });

  it('unknown route -> 404, wrong method -> 405', async () => {
    const { url } = await start();
    expect((await fetch(url + '/v1/nope')).status).toBe(404);
    const res = await fetch(url + '/v1/completions');
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('POST');
  });

  it('bearer token: 401 without or with a wrong one, 200 with it; /health stays open', async () => {
    const { url } = await start({ token: 's3cret' });
    expect((await fetch(url + '/v1/models')).status).toBe(401);
    expect((await fetch(url + '/v1/models', { headers: { authorization: 'Bearer nope' } })).status).toBe(401);
    expect((await fetch(url + '/v1/models', { headers: { authorization: 'Bearer s3cret' } })).status).toBe(200);
    expect((await fetch(url + '/health')).status).toBe(200);
  });

  it('refuses web pages: foreign Host (DNS rebinding), foreign Origin, non-JSON bodies', async () => {
    const { url, provider } = await start();
    const port = new URL(url).port;
    const raw = (headers: Record<string, string>, body?: string) =>
      new Promise<number>((resolve, reject) => {
        const req = request(url + '/v1/completions', { method: 'POST', headers }, (r) => {
          r.resume();
          resolve(r.statusCode!);
        });
        req.on('error', reject);
        req.end(body ?? JSON.stringify({ prompt: 'x' }));
      });
    expect(await raw({ host: `evil.example:${port}`, 'content-type': 'application/json' })).toBe(403);
    expect(await raw({ origin: 'https://evil.example', 'content-type': 'application/json' })).toBe(403);
    expect(await raw({ 'content-type': 'text/plain' })).toBe(415);
    expect(await raw({ host: `localhost:${port}`, origin: `http://localhost:${port}`, 'content-type': 'application/json' })).toBe(200);
    expect(provider.calls).toHaveLength(1);
  });

  it('refuses a non-loopback host without a token', async () => {
    await expect(startServer({ provider: new FakeProvider(), host: '0.0.0.0', port: 0 })).rejects.toThrow(/without a token/);
  });

  it('body over the limit -> 413 (declared length and streamed body)', async () => {
    const { url } = await start({ maxBodyBytes: 100 });
    const res = await post(url + '/v1/completions', { prompt: 'x'.repeat(500) });
    expect(res.status).toBe(413);
    // chunked upload without content-length
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(url + '/v1/completions', { method: 'POST', headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' } }, (r) => {
        r.resume();
        resolve(r.statusCode!);
      });
      req.on('error', reject);
      req.write('{"prompt":"' + 'y'.repeat(80));
      req.write('y'.repeat(80));
      req.end('"}');
    });
    expect(status).toBe(413);
  });

  it('client disconnect cancels the generation', async () => {
    const { url, provider } = await start();
    provider.slowPieces = 10_000;
    provider.stepMs = 2;
    const res = await post(url + '/v1/completions', { prompt: 'x', stream: true });
    const reader = res.body!.getReader();
    await reader.read(); // first piece arrived: generation is running
    await reader.cancel();
    // Wait (bounded) for the provider to notice.
    for (let i = 0; i < 200 && provider.cancelledCount === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(provider.cancelledCount).toBe(1);
  });

  it('/metrics is Prometheus text with engine and HTTP counters', async () => {
    const { url } = await start();
    await post(url + '/v1/completions', { prompt: 'a' });
    await fetch(url + '/v1/nope');
    const res = await fetch(url + '/metrics');
    expect(res.headers.get('content-type')).toMatch(/text\/plain; version=0\.0\.4/);
    const text = await res.text();
    expect(text).toContain('# TYPE cachet_http_requests_total counter');
    expect(text).toContain('cachet_http_requests_total{route="/v1/completions",status="200"} 1');
    expect(text).toContain('cachet_http_requests_total{route="/v1/nope",status="404"} 1');
    expect(text).toContain('cachet_tokens_total{kind="cached"} 6');
    expect(text).toContain('cachet_prefix_cache_hit_rate 0.5');
    // every sample line is "name{labels} number"
    for (const line of text.trim().split('\n').filter((l) => !l.startsWith('#'))) {
      expect(line).toMatch(/^[a-z_]+(\{[^}]*\})? -?[0-9.e+-]+$/);
    }
  });
});
