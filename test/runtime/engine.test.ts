import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createReferenceBackend } from '../../engine/backend/reference';
import type { Backend, BackendFactory } from '../../engine/backend/types';
import { BackendUnavailableError } from '../../engine/errors';
import { openGguf } from '../../engine/gguf';
import { configFromGguf, loadWeights } from '../../engine/model';
import { Engine, type EngineWarning } from '../../engine/runtime/engine';
import { argmax } from '../../engine/runtime/token-sampler';
import { Sampler } from '../../engine/sampling';
import { makeTestModel } from '../helpers/make-test-model';

let modelPath: string;

/** Greedy decoding by recomputing the whole sequence each step: no KV reuse, no scheduler. */
async function recomputeGreedy(prompt: number[], maxTokens: number, stopIds: number[], pick: (logits: Float32Array, history: number[]) => number = argmax): Promise<number[]> {
  const gguf = openGguf(modelPath);
  const weights = loadWeights(gguf, configFromGguf(gguf));
  const backend = await createReferenceBackend(weights, { kvSlots: 512 });
  const tokens = prompt.slice();
  const out: number[] = [];
  for (let i = 0; i < maxTokens; i++) {
    const n = tokens.length;
    const slots = Int32Array.from({ length: n }, (_, k) => k);
    const [r] = await backend.forward([{ tokens: Int32Array.from(tokens), positions: slots, context: slots, logits: 'last' }]);
    const next = pick(r.logits, tokens);
    if (stopIds.includes(next)) break;
    out.push(next);
    tokens.push(next);
  }
  await backend.dispose();
  gguf.close();
  return out;
}

beforeAll(() => {
  modelPath = makeTestModel({ arch: 'qwen2', layers: 2, dims: 64, heads: 4, kvHeads: 2, ff: 128, seed: 7 });
});

describe('Engine on a generated model (reference backend)', () => {
  let engine: Engine;
  beforeAll(async () => {
    engine = await Engine.load({ modelPath, backend: 'reference', contextLength: 256, prefillChunk: 16 });
  });
  afterAll(async () => engine?.dispose());

  it('describes the model it loaded', () => {
    expect(engine.info).toMatchObject({ arch: 'qwen2', backend: 'reference', contextLength: 256, nLayers: 2, nEmbd: 64, fim: true, weightType: 'F32' });
    expect(engine.info.kvSlots).toBe(512);
  });

  it('streams the same greedy tokens as a full recompute, then reuses the prompt prefix', async () => {
    const text = 'function add(a, b) {\n  return a + b;\n}\n';
    const prompt = engine.tokenize(text).tokenIds;
    const expected = await recomputeGreedy(prompt, 12, [256]);
    const streamed: number[] = [];
    const r1 = await engine.generate({ prompt: { kind: 'tokens', tokenIds: prompt }, maxTokens: 12 }, (c) => streamed.push(...c.tokenIds));
    expect(r1.tokenIds).toEqual(expected);
    expect(streamed).toEqual(expected);
    expect(r1.text).toBe(engine.tokenizer.decode(expected));
    expect(r1.timings.prefillTokens).toBe(prompt.length);

    const prompt2 = [...prompt, ...engine.tokenize('const x = add(1, 2);').tokenIds];
    const r2 = await engine.generate({ prompt: { kind: 'tokens', tokenIds: prompt2 }, maxTokens: 8 });
    expect(r2.timings.cachedTokens).toBe(Math.floor(prompt.length / 16) * 16);
    expect(r2.timings.prefillTokens).toBe(prompt2.length - r2.timings.cachedTokens);
    expect(r2.tokenIds).toEqual(await recomputeGreedy(prompt2, 8, [256]));
    const m = engine.metrics();
    expect(m.kv.slotsUsed).toBe(0);
    expect(m.tokens.cached).toBeGreaterThan(0);
    expect(m.requests.completed).toBeGreaterThanOrEqual(2);
  });

  it('speculative decoding keeps greedy output identical and reports its acceptance', async () => {
    const text = 'for (let i = 0; i < n; i++) { sum += a[i]; }\nfor (let i = 0; i < n; i++) { sum += ';
    const prompt = engine.tokenize(text).tokenIds;
    engine.clearCache();
    const plain = await engine.generate({ prompt: { kind: 'tokens', tokenIds: prompt }, maxTokens: 24 });
    engine.clearCache();
    const before = engine.metrics().speculative;
    const spec = await engine.generate({ prompt: { kind: 'tokens', tokenIds: prompt }, maxTokens: 24, speculative: { maxDraft: 4, ngram: 3 } });
    expect(spec.tokenIds).toEqual(plain.tokenIds);
    const after = engine.metrics().speculative;
    expect(spec.timings.draftTokens).toBe(after.drafted - before.drafted);
    expect(spec.timings.draftTokens).toBeGreaterThan(0);
    expect(spec.timings.acceptedDraftTokens).toBeLessThanOrEqual(spec.timings.draftTokens!);
  });

  it('samples with temperature/top-k/penalties exactly as engine/sampling does on recomputed logits', async () => {
    const prompt = engine.tokenize('import numpy as np\n').tokenIds;
    const sampling = { temperature: 0.9, topK: 40, topP: 0.95, repeatPenalty: 1.1, seed: 42 };
    const r1 = await engine.generate({ prompt: { kind: 'tokens', tokenIds: prompt }, maxTokens: 16, sampling });
    const r2 = await engine.generate({ prompt: { kind: 'tokens', tokenIds: prompt }, maxTokens: 16, sampling });
    expect(r2.tokenIds).toEqual(r1.tokenIds);
    const sampler = new Sampler({ temperature: 0.9, topK: 40, topP: 0.95, repetitionPenalty: 1.1, seed: 42 });
    const expected = await recomputeGreedy(prompt, 16, [256], (logits, history) => sampler.sample(logits, history));
    expect(r1.tokenIds).toEqual(expected);
    const greedy = await recomputeGreedy(prompt, 16, [256]);
    expect(r1.tokenIds).not.toEqual(greedy);
    await expect(engine.generate({ prompt: 'x', sampling: { temperature: 1, topP: 2 } })).rejects.toThrow(/topP/);
  });

  it('completes a FIM request with the family prompt and matches a full recompute of that prompt', async () => {
    const fim = { prefix: 'def f(x):\n    return ', suffix: '\n\nprint(f(2))\n', filePath: 'a.py' };
    const r = await engine.complete({ fim, maxTokens: 10 });
    expect(r.timings.promptTokens).toBeGreaterThan(10);
    // The prompt is engine/context's assembly for this family (FIM markers are ids 257..259 here).
    const { assembleFim } = await import('../../engine/context');
    const ids = engine.fimPrompt(fim, 10).ids;
    expect(ids).toEqual(assembleFim(engine.tokenizer, fim).tokens.ids);
    expect(ids).toContain(257);
    const expected = await recomputeGreedy(ids, 10, [256, 257, 258, 259]);
    expect(r.tokenIds).toEqual(expected);
  });

  it('runs chat through the built-in template and tokenizes with pieces', async () => {
    const r = await engine.chat({ messages: [{ role: 'user', content: 'hi' }], maxTokens: 4 });
    expect(r.timings.promptTokens).toBeGreaterThan(2);
    expect(r.timings.generatedTokens).toBeLessThanOrEqual(4);
    expect(r.text).toBe(engine.tokenizer.decode(r.tokenIds));
    const t = engine.tokenize('ab');
    expect(t.tokenIds).toHaveLength(2);
    expect(t.pieces.join('')).toBe('ab');
  });
});

describe('Engine backend choice', () => {
  it("'auto' falls back with a warning when a backend cannot start", async () => {
    const warnings: EngineWarning[] = [];
    const failing: BackendFactory = async () => {
      throw new BackendUnavailableError('no WebGPU adapter', 'Install Mesa lavapipe or use a GPU.');
    };
    const noOrt: BackendFactory = async () => {
      throw new BackendUnavailableError('onnxruntime-node failed to load', 'Reinstall the extension.');
    };
    const engine = await Engine.load({
      modelPath, backend: 'auto', contextLength: 128, backendFactories: { webgpu: failing, onnx: noOrt }, onWarning: (w) => warnings.push(w),
    });
    try {
      expect(engine.info.backend).toBe('reference');
      expect(warnings.map((w) => w.code)).toEqual(['backend-fallback', 'backend-fallback']);
      expect(warnings[0].message).toMatch(/webgpu.*no WebGPU adapter.*using onnx/);
      expect(warnings[1].message).toMatch(/onnx.*failed to load.*using reference/);
      expect(engine.metrics().notes.join('\n')).toMatch(/webgpu/);
    } finally {
      await engine.dispose();
    }
  });

  it('drafts FIM completions by default on backends that verify cheaply, not on reference', async () => {
    const fim = { prefix: 'x = [1, 2, 3]\ny = [1, 2, 3]\nz = [1, 2', suffix: ']\n' };
    const ref = await Engine.load({ modelPath, backend: 'reference', contextLength: 128 });
    // A backend named 'onnx' that is really the reference backend (same numbers, other name).
    const asOnnx: BackendFactory = async (weights, options) => {
      const inner = await createReferenceBackend(weights, options);
      const named: Backend = Object.create(inner);
      Object.defineProperty(named, 'name', { value: 'onnx' });
      return named;
    };
    const ort = await Engine.load({ modelPath, backend: 'onnx', contextLength: 128, backendFactories: { onnx: asOnnx } });
    try {
      const plain = await ref.complete({ fim, maxTokens: 12 });
      expect(plain.timings.draftTokens).toBeUndefined();
      const drafted = await ort.complete({ fim, maxTokens: 12 });
      expect(drafted.timings.draftTokens).toBeGreaterThan(0);
      expect(drafted.tokenIds).toEqual(plain.tokenIds);
      const off = await ort.complete({ fim, maxTokens: 12, speculative: { maxDraft: 0 } });
      expect(off.timings.draftTokens).toBeUndefined();
      expect(off.tokenIds).toEqual(plain.tokenIds);
    } finally {
      await ref.dispose();
      await ort.dispose();
    }
  });

  it('caps the context length at the trained one, with a warning', async () => {
    const warnings: EngineWarning[] = [];
    const engine = await Engine.load({ modelPath, backend: 'reference', contextLength: 100_000, onWarning: (w) => warnings.push(w) });
    try {
      expect(engine.info.contextLength).toBe(2048);
      expect(engine.info.trainedContextLength).toBe(2048);
      expect(warnings).toMatchObject([{ code: 'context-truncated' }]);
    } finally {
      await engine.dispose();
    }
  });

  it('an explicit backend that cannot start is a typed error (no fallback)', async () => {
    const failing: BackendFactory = async () => {
      throw new BackendUnavailableError('onnxruntime-node failed to load', 'Reinstall the extension.');
    };
    await expect(Engine.load({ modelPath, backend: 'onnx', contextLength: 128, backendFactories: { onnx: failing } }))
      .rejects.toBeInstanceOf(BackendUnavailableError);
  });

  it('continues on the next backend when the current one fails mid-run', async () => {
    // A "webgpu" that is really the reference backend but loses its device on the 4th forward.
    let calls = 0;
    const flaky: BackendFactory = async (weights, options) => {
      const inner = await createReferenceBackend(weights, options);
      const wrapped: Backend = Object.create(inner);
      Object.defineProperty(wrapped, 'name', { value: 'webgpu' });
      wrapped.forward = async (batches) => {
        if (++calls === 4) throw new Error('GPU device lost');
        return inner.forward(batches);
      };
      return wrapped;
    };
    const warnings: EngineWarning[] = [];
    // ONNX "cannot start" here, so the failover lands on the reference backend.
    const noOrt: BackendFactory = async () => {
      throw new BackendUnavailableError('onnxruntime-node failed to load', 'Reinstall the extension.');
    };
    const engine = await Engine.load({
      modelPath, backend: 'auto', contextLength: 128, prefillChunk: 8, backendFactories: { webgpu: flaky, onnx: noOrt }, onWarning: (w) => warnings.push(w),
    });
    try {
      expect(engine.info.backend).toBe('webgpu');
      const prompt = engine.tokenize('hello world, this is a test').tokenIds;
      const r = await engine.generate({ prompt: { kind: 'tokens', tokenIds: prompt }, maxTokens: 6 });
      expect(r.tokenIds).toEqual(await recomputeGreedy(prompt, 6, [256]));
      expect(engine.backendName).toBe('reference');
      expect(warnings.map((w) => w.code)).toContain('backend-lost');
      expect(engine.kvStats()).toMatchObject({ used: 0, sequences: 0 });
    } finally {
      await engine.dispose();
    }
  });
});
