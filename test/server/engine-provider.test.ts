// The server over the real Engine (reference backend, generated model): FIM via suffix, chat SSE,
// and a client disconnect that cancels the engine's generation.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../../engine/runtime';
import { EngineProvider, LeadingStrip, SseParser, startServer, type RunningServer } from '../../engine/server';
import { makeTestModel } from '../helpers/make-test-model';

let engine: Engine;
let server: RunningServer;

beforeAll(async () => {
  const model = makeTestModel({ arch: 'qwen2', layers: 2, dims: 64, heads: 4, kvHeads: 2, ff: 128, seed: 3 });
  engine = await Engine.load({ modelPath: model, backend: 'reference', contextLength: 512 });
  server = await startServer({ provider: new EngineProvider(engine), port: 0 });
});

afterAll(async () => {
  await server?.close();
  await engine?.dispose();
});

const post = (path: string, body: unknown) =>
  fetch(server.url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

describe('server over the Engine', () => {
  it('/v1/models names the loaded model', async () => {
    const body = (await (await fetch(server.url + '/v1/models')).json()) as { data: { id: string; context_length: number }[] };
    expect(body.data).toHaveLength(1);
    expect(body.data[0]!.id).toBe(engine.info.name);
    expect(body.data[0]!.context_length).toBe(512);
  });

  it('/v1/completions with suffix is the engine\'s FIM completion; without it a plain continuation', async () => {
    const fim = (await (await post('/v1/completions', { prompt: 'a = [1, 2', suffix: ']\n', max_tokens: 6 })).json()) as { choices: { text: string; finish_reason: string }[]; usage: { prompt_tokens: number } };
    const direct = await engine.complete({ fim: { prefix: 'a = [1, 2', suffix: ']\n' }, maxTokens: 6 });
    expect(fim.choices[0]!.text).toBe(direct.text);
    expect(fim.usage.prompt_tokens).toBe(direct.timings.promptTokens);
    const plain = (await (await post('/v1/completions', { prompt: 'a = [1, 2', max_tokens: 6 })).json()) as { choices: { text: string }[] };
    const g = await engine.generate({ prompt: 'a = [1, 2', maxTokens: 6 });
    expect(plain.choices[0]!.text).toBe(g.text);
  });

  it('FIM after typed indentation: line-aligned prompt, indentation stripped from the (streamed) output', async () => {
    const prompt = 'def f(x):\n    ';
    const direct = await engine.complete({ fim: { prefix: 'def f(x):\n', suffix: '\n' }, maxTokens: 8 });
    const plain = (await (await post('/v1/completions', { prompt, suffix: '\n', max_tokens: 8 })).json()) as { choices: { text: string }[] };
    const expected = new LeadingStrip('    ').push(direct.text);
    expect(plain.choices[0]!.text).toBe(expected);
    const res = await post('/v1/completions', { prompt, suffix: '\n', max_tokens: 8, stream: true });
    const p = new SseParser();
    const events = [...p.push(await res.text()), ...p.flush()].map((e) => e.data).filter((d) => d !== '[DONE]');
    expect(events.map((d) => JSON.parse(d).choices[0].text).join('')).toBe(expected);
  });

  it('LeadingStrip removes as much of the lead as the stream repeats, across pieces', () => {
    const s = new LeadingStrip('    ');
    expect([s.push('  '), s.push('  ret'), s.push('urn  ')]).toEqual(['', 'ret', 'urn  ']);
    const t = new LeadingStrip('    ');
    expect([t.push('  x'), t.push('  y')]).toEqual(['x', '  y']);
    expect(new LeadingStrip('').push('  a')).toBe('  a');
  });

  it('streams chat; the concatenated deltas equal the engine\'s chat text', async () => {
    const messages = [{ role: 'user' as const, content: 'hi' }];
    const res = await post('/v1/chat/completions', { messages, max_tokens: 8, stream: true });
    const p = new SseParser();
    const events = [...p.push(await res.text()), ...p.flush()].map((e) => e.data);
    expect(events.pop()).toBe('[DONE]');
    const text = events.map((d) => JSON.parse(d).choices[0].delta.content ?? '').join('');
    const direct = await engine.chat({ messages, maxTokens: 8 });
    expect(text).toBe(direct.text);
  });

  it('a client that disconnects mid-stream cancels the engine request', async () => {
    const before = engine.metrics().requests.cancelled;
    const res = await post('/v1/completions', { prompt: 'x', max_tokens: 400, stream: true });
    const reader = res.body!.getReader();
    await reader.read();
    await reader.cancel();
    for (let i = 0; i < 300 && engine.metrics().requests.cancelled === before; i++) await new Promise((r) => setTimeout(r, 10));
    expect(engine.metrics().requests.cancelled).toBe(before + 1);
    await engine.idle();
    expect(engine.metrics().requests.active).toBe(0);
  });
});
