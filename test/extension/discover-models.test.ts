// discoverModels / checkFit through the protocol, against the real bundled worker: the answer is
// engine/discovery's report (same facts as calling it in-process), unloadable files carry their
// reason and hint, and the fit check suggests a smaller context when memory is short.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { discoverModels } from '../../engine/discovery';
import { EngineClient, EngineRequestError } from '../../engine/runtime/client';
import { discoveredModelInfo } from '../../engine/runtime/host';
import { EngineLink } from '../../src/engine-link';
import { makeTestModel } from '../helpers/make-test-model';
import { bundleEntry } from '../helpers/bundle';

const tmp = join(__dirname, '..', '.tmp');
const workerPath = join(tmp, `discover-worker-${process.pid}.js`);
const dir = join(tmp, `discover-models-${process.pid}`);
let modelPath: string;
const badPath = join(dir, 'not-a-model.gguf');
const GiB = 1024 ** 3;

beforeAll(async () => {
  mkdirSync(dir, { recursive: true });
  await bundleEntry('engine/runtime/worker.ts', workerPath);
  modelPath = makeTestModel({ arch: 'qwen2', layers: 2, dims: 64, heads: 4, kvHeads: 2, ff: 128, quant: 'Q8_0', seed: 3, contextLength: 2048, path: join(dir, 'tiny-qwen.gguf') });
  writeFileSync(badPath, 'this is not a gguf file at all');
});
afterAll(() => {
  rmSync(workerPath, { force: true });
  rmSync(`${workerPath}.map`, { force: true });
  rmSync(dir, { recursive: true, force: true });
});

describe('discoverModels and checkFit over the worker protocol', () => {
  let client: EngineClient;
  beforeAll(async () => {
    client = await EngineClient.start({ workerPath });
  });
  afterAll(async () => client?.shutdown());

  it('answers with a typed models event equal to engine/discovery in-process, no model loaded', async () => {
    const models = await client.discoverModels({ paths: [dir], contextLength: 1024, freeBytes: 4 * GiB });
    const ours = models.filter((m) => m.path.startsWith(dir));
    const expected = discoverModels({ paths: [dir], context: 1024, freeBytes: 4 * GiB }).filter((m) => m.path.startsWith(dir)).map(discoveredModelInfo);
    expect(ours).toEqual(expected);
    const model = ours.find((m) => m.path === modelPath)!;
    expect(model).toMatchObject({
      displayName: 'tiny-qwen.gguf', source: 'configured', loadable: true, arch: 'qwen2', quantization: 'Q8_0', contextLength: 2048, fim: true,
      fit: { verdict: 'fits', contextLength: 1024, budgetBytes: Math.floor(4 * GiB * 0.9), suggestions: [] },
    });
    expect(model.bytes).toBeGreaterThan(0);
    // KV at 1024 tokens: 2 layers x (K,V) x 2 kv heads x 16 dims x f16.
    expect(model.fit!.kvBytes).toBe(1024 * 2 * 2 * 32 * 2);
    expect(model.fit!.totalBytes).toBeGreaterThan(model.fit!.weightsBytes + model.fit!.kvBytes);
    const bad = ours.find((m) => m.path === badPath)!;
    expect(bad).toMatchObject({ loadable: false, problem: { kind: 'bad-magic' } });
    expect(bad.problem!.hint.length).toBeGreaterThan(0);
    expect(bad.fit).toBeUndefined();
    // Loadable first.
    expect(ours.map((m) => m.loadable)).toEqual([true, false]);
  });

  it('checkFit: fits with memory to spare, suggests a smaller context when short', async () => {
    const ok = await client.checkFit({ path: modelPath, contextLength: 2048, freeBytes: 4 * GiB });
    expect(ok).toMatchObject({ path: modelPath, fit: { verdict: 'fits', contextLength: 2048, maxContext: 2048 } });
    // Budget: the weights and scratch at 256 tokens plus KV for ~300 tokens (2 layers x 64 kv dims x K,V x f16).
    const at256 = await client.checkFit({ path: modelPath, contextLength: 256, freeBytes: 64 * GiB });
    const kvPerToken = 2 * 2 * (2 * 16) * 2;
    const free = Math.ceil((at256.fit!.totalBytes + 300 * kvPerToken) / 0.9);
    const short = await client.checkFit({ path: modelPath, contextLength: 2048, freeBytes: free });
    expect(short.fit).toMatchObject({ verdict: 'too-big', contextLength: 2048 });
    expect(short.fit!.maxContext).toBeGreaterThanOrEqual(256);
    expect(short.fit!.maxContext).toBeLessThan(2048);
    expect(short.fit!.suggestions[0]).toContain(`reduce the context to ${short.fit!.maxContext} tokens`);
  });

  it('checks the fit at the context a load would use: the requested one capped by the model\'s', async () => {
    const [m] = (await client.discoverModels({ paths: [modelPath], contextLength: 8192, freeBytes: 4 * GiB })).filter((x) => x.path === modelPath);
    expect(m.fit!.contextLength).toBe(2048);
    const r = await client.checkFit({ path: modelPath, contextLength: 100_000, freeBytes: 4 * GiB });
    expect(r.fit!.contextLength).toBe(2048);
  });

  it('checkFit on an unloadable file answers its problem; malformed requests get a typed error', async () => {
    const r = await client.checkFit({ path: badPath, contextLength: 1024 });
    expect(r.fit).toBeUndefined();
    expect(r.problem).toMatchObject({ kind: 'bad-magic' });
    const missing = await client.checkFit({ path: join(dir, 'missing.gguf') });
    expect(missing.problem).toMatchObject({ kind: 'unreadable' });
    await expect(client.discoverModels({ paths: [42 as unknown as string] })).rejects.toBeInstanceOf(EngineRequestError);
    await expect(client.discoverModels({ paths: [42 as unknown as string] })).rejects.toThrow(/paths must be an array of strings/);
  });
});

describe('EngineLink model discovery', () => {
  it('uses a short-lived worker when the engine is stopped and leaves it stopped', async () => {
    const link = new EngineLink(workerPath, () => ({ modelPath: '', backend: 'reference', contextLength: 512, threads: 1 }), () => undefined);
    const models = await link.discoverModels({ paths: [modelPath], contextLength: 512 });
    expect(models.find((m) => m.path === modelPath)).toMatchObject({ loadable: true, arch: 'qwen2' });
    const fit = await link.checkFit(modelPath, 512);
    expect(fit.fit?.contextLength).toBe(512);
    expect(link.state.kind).toBe('stopped');
    await link.dispose();
  });
});
