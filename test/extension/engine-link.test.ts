// EngineLink (the extension's engine handle) against the real bundled worker and a generated
// model on the reference backend: lazy start, load states, streaming FIM into the session, cancel,
// errors with hints, restart.
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EngineClient } from '../../engine/runtime/client';
import type { MetricsSnapshot } from '../../engine/protocol';
import { EngineLink, type EngineState, type LoadSettings } from '../../src/engine-link';
import { CompletionSession, type SessionEvent } from '../../src/completion/session';
import { postprocess } from '../../src/completion/postprocess';
import { makeTestModel } from '../helpers/make-test-model';
import { bundleEntry } from '../helpers/bundle';

const tmp = join(__dirname, '..', '.tmp');
const workerPath = join(tmp, `extension-worker-${process.pid}.js`);
let modelPath: string;
const never = { isCancellationRequested: false, onCancellationRequested: () => ({ dispose() {} }) };

beforeAll(async () => {
  mkdirSync(tmp, { recursive: true });
  await bundleEntry('engine/runtime/worker.ts', workerPath);
  modelPath = makeTestModel({ arch: 'qwen2', layers: 2, dims: 64, heads: 4, kvHeads: 2, ff: 128, seed: 5 });
});
afterAll(() => {
  rmSync(workerPath, { force: true });
  rmSync(`${workerPath}.map`, { force: true });
});

function link(path: () => string, extra: Partial<LoadSettings> = {}) {
  const logs: string[] = [];
  const states: EngineState['kind'][] = [];
  const l = new EngineLink(workerPath, () => ({ modelPath: path(), backend: 'reference', contextLength: 512, threads: 1, ...extra }), (line) => logs.push(line));
  l.onState((s) => states.push(s.kind));
  return { l, logs, states };
}

const prefix = 'def add(a, b):\n    return a + b\n\nx = ';
const suffix = '\nprint(x)\n';
const post = { linePrefix: 'x = ', lineSuffix: '', suffix, maxLines: 3 };
const fim = { prefix, suffix, filePath: 'a.py', languageId: 'python' };

describe('EngineLink', () => {
  it('starts nothing until needed, then loads lazily and streams a FIM completion equal to the engine\'s', async () => {
    const { l, states } = link(() => modelPath);
    expect(l.state.kind).toBe('stopped');
    const session = new CompletionSession(l, { debounceMs: 0, maxTokens: 12, streamFirstLine: false });
    const events: SessionEvent[] = [];
    session.onEvent((e) => events.push(e));
    const a = await session.complete({ doc: 'd', offset: prefix.length, prefix, suffix, fim, post }, never);
    expect(states).toEqual(expect.arrayContaining(['starting', 'loading', 'ready']));
    expect(l.state.kind).toBe('ready');
    const end = events.find((e) => e.kind === 'end');
    expect(end && end.kind === 'end' && end.timings?.generatedTokens).toBeGreaterThan(0);

    // The same request straight through EngineClient: the session shows its post-processed text.
    const direct = await EngineClient.start({ workerPath });
    await direct.loadModel({ path: modelPath, backend: 'reference', contextLength: 512 });
    const r = await direct.complete({ prompt: { kind: 'fim', fim }, maxTokens: 12, priority: 'interactive' }).result;
    await direct.shutdown();
    const expected = postprocess(r.text, post, true).text;
    expect(await (a?.full ?? Promise.resolve(''))).toBe(expected);
    if (expected) expect(a?.text).toBe(expected);
    else expect(a).toBeUndefined();
    await l.dispose();
  });

  it('cancels an in-flight request and keeps serving', async () => {
    const { l } = link(() => modelPath);
    await l.ensureReady();
    const done: string[] = [];
    const h = l.start(fim, { maxTokens: 400 }, { onText: () => undefined, onDone: (r) => done.push(r), onError: (e) => done.push(`error ${e.message}`) });
    await new Promise((r) => setTimeout(r, 50));
    h.cancel();
    const second = await new Promise<string>((resolve, reject) => {
      let text = '';
      l.start(fim, { maxTokens: 4 }, { onText: (t) => (text += t), onDone: () => resolve(text), onError: reject });
    });
    expect(typeof second).toBe('string');
    await new Promise((r) => setTimeout(r, 100));
    // The long request ended as cancelled, not after its 400 tokens.
    expect(done).toEqual(['cancelled']);
    await l.dispose();
  });

  it('loads with the chunk reuse settings: the engine reports chunk metrics in that mode, none when off', async () => {
    const metricsOf = async (extra: Partial<LoadSettings>) => {
      const { l, logs } = link(() => modelPath, extra);
      await l.ensureReady();
      const m = await new Promise<MetricsSnapshot>((resolve) => {
        l.onMetrics(resolve);
        l.requestMetrics();
      });
      await l.dispose();
      return { m, logs };
    };
    const blend = await metricsOf({ chunkReuse: 'blend', chunkBlendRatio: 0.25 });
    expect(blend.m.kv.chunks).toMatchObject({ mode: 'blend', blendRatio: 0.25, hits: 0, misses: 0 });
    expect(blend.logs.some((line) => line.includes('chunk reuse blend 0.25'))).toBe(true);
    const off = await metricsOf({ chunkReuse: 'off' });
    expect(off.m.kv.chunks).toBeUndefined();
  });

  it('reports a missing model and an unreadable file with a hint, then recovers after restart', async () => {
    let path = '';
    const { l, logs } = link(() => path);
    await expect(l.ensureReady()).rejects.toMatchObject({ errorName: 'NoModelError' });
    expect(l.state.kind).toBe('error');
    path = join(tmp, 'does-not-exist.gguf');
    const err = await l.ensureReady().catch((e) => e);
    expect(err.hint).toBeTruthy();
    expect(l.state.kind).toBe('error');
    path = modelPath;
    const m = await l.restart();
    expect(m.arch).toBe('qwen2');
    expect(l.state.kind).toBe('ready');
    logs.length = 0;
    await l.dispose();
    expect(l.state.kind).toBe('stopped');
    // dispose (the extension's deactivate) shuts the worker thread down and says so.
    expect(logs).toContain('engine worker stopped');
  });
});
