// The Engine's scheduling paths (chunked prefill, prefix reuse, batched decodes, speculative
// verification with logits for every position) on the WebGPU and ONNX backends, against the same
// engine on the reference backend. A backend that cannot start here is skipped with its reason.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackendUnavailableError } from '../../engine/errors';
import { Engine } from '../../engine/runtime/engine';
import { makeTestModel } from '../helpers/make-test-model';

let cpu: Engine;
let modelPath: string;
const options = () => ({ modelPath, contextLength: 256, prefillChunk: 16 });

beforeAll(async () => {
  process.env.XDG_RUNTIME_DIR ??= '/tmp';
  modelPath = makeTestModel({ arch: 'qwen2', layers: 2, dims: 64, heads: 4, kvHeads: 2, ff: 128, seed: 21 });
  cpu = await Engine.load({ ...options(), backend: 'reference' });
});

afterAll(async () => {
  await cpu?.dispose();
});

describe.each(['webgpu', 'onnx'] as const)('Engine on %s vs reference', (backend) => {
  let engine: Engine | undefined;
  let skipReason = '';
  beforeAll(async () => {
    try {
      engine = await Engine.load({ ...options(), backend });
    } catch (err) {
      if (!(err instanceof BackendUnavailableError)) throw err;
      skipReason = err.message;
      console.log(`SKIP engine on ${backend}: ${err.message}`);
    }
  });
  afterAll(async () => engine?.dispose());

  it('gives the same greedy tokens through chunked prefill, prefix reuse, batching and speculation', async (ctx) => {
    if (!engine) ctx.skip(skipReason);
    const g = engine!;
    expect(g.backendName).toBe(backend);
    const base = cpu.tokenize('const values = [1, 2, 3];\nconst doubled = values.map((v) => v * 2);\n').tokenIds;
    const prompts = [base, [...base, ...cpu.tokenize('console.log(doubled').tokenIds]];
    for (const engine of [g, cpu]) expect(engine.info.contextLength).toBe(256);
    const run = async (engine: Engine) => {
      const out: number[][] = [];
      out.push((await engine.generate({ prompt: { kind: 'tokens', tokenIds: prompts[0] }, maxTokens: 10 })).tokenIds);
      // Reuses the first prompt's prefix.
      const second = await engine.generate({ prompt: { kind: 'tokens', tokenIds: prompts[1] }, maxTokens: 10 });
      expect(second.timings.cachedTokens).toBeGreaterThan(0);
      out.push(second.tokenIds);
      // Two at once: decodes share forward calls.
      const both = await Promise.all(prompts.map((p, i) => engine.generate({ prompt: { kind: 'tokens', tokenIds: [...p, 10 + i] }, maxTokens: 8, priority: 'chat' })));
      out.push(...both.map((r) => r.tokenIds));
      engine.clearCache();
      out.push((await engine.generate({ prompt: { kind: 'tokens', tokenIds: prompts[1] }, maxTokens: 10, speculative: { maxDraft: 4 } })).tokenIds);
      return out;
    };
    // the KV manager counts device bytes as the backend stores K/V (f16 here, f32 on reference)
    const perSlot = (e: Engine) => (e as unknown as { kv: { manager: { bytesPerSlot: number } } }).kv.manager.bytesPerSlot;
    expect(perSlot(g)).toBe(g.metrics().memory.kvBytes / g.kvStats().total);
    expect(perSlot(g)).toBeLessThan(perSlot(cpu));
    const [onGpu, onCpu] = [await run(g), await run(cpu)];
    expect(onGpu).toEqual(onCpu);
    expect(onGpu[4]).toEqual(onGpu[1]); // speculation does not change greedy output
    expect(g.kvStats()).toMatchObject({ used: 0, sequences: 0 });
  });
});
