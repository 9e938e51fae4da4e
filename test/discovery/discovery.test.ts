// Model discovery over fake home folders holding generated GGUFs in the layouts Ollama, LM Studio
// and the Hugging Face cache use, plus broken files of every kind discovery must explain.

import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  checkFit, discoverModels, estimateMemory, findCandidates, formatParameters, inspectCandidate, ollamaName, splitPart, summarizeModel,
  type DiscoveredModelWithFit, type ModelInfo,
} from '../../engine/discovery';
import { GgufBuilder, GgufValueType, openGguf } from '../../engine/gguf';
import { GgmlType } from '../../engine/quant';
import { makeTestModel } from '../helpers/make-test-model';

const LLAMA = { arch: 'llama' as const, layers: 2, dims: 64, heads: 4, kvHeads: 2, ff: 128, quant: 'Q8_0' as const, seed: 3, contextLength: 4096 };
const QWEN = { arch: 'qwen2' as const, layers: 2, dims: 64, heads: 4, kvHeads: 4, ff: 96, quant: 'F16' as const, seed: 4 };
const STARCODER = { arch: 'starcoder2' as const, layers: 1, dims: 64, heads: 2, kvHeads: 1, ff: 128, quant: 'Q4_0' as const, seed: 5 };

/** Parameter count written by makeTestModel for these shapes (byte vocabulary of 260 tokens). */
function expectedParameters(o: { arch: string; layers: number; dims: number; heads: number; kvHeads: number; ff: number }): number {
  const vocab = 260;
  const kvDim = (o.dims / o.heads) * o.kvHeads;
  const d = o.dims;
  let perLayer = 2 * d + d * d + 2 * d * kvDim + d * d; // norms, q, k, v, o
  if (o.arch === 'starcoder2') perLayer += 2 * d * o.ff + 2 * d + d + 2 * kvDim + d + o.ff + d; // up/down, norm biases, all linear biases
  else perLayer += 3 * d * o.ff + (o.arch === 'qwen2' ? d + 2 * kvDim : 0); // gate/up/down, qwen2 q/k/v biases
  const tied = o.arch === 'qwen2';
  const head = tied ? 0 : vocab * d;
  const outNorm = o.arch === 'starcoder2' ? 2 * d : d;
  return vocab * d + head + o.layers * perLayer + outNorm;
}

/** Copy of a GGUF with edited metadata (tensors copied as they are). */
function rewrite(src: string, dst: string, edit: (b: GgufBuilder, meta: Map<string, unknown>) => void, drop: (key: string) => boolean = () => false): void {
  const g = openGguf(src);
  const b = new GgufBuilder().copyFrom(g.metadata, (k) => !drop(k));
  edit(b, new Map([...g.metadata].map(([k, v]) => [k, v.value])));
  for (const t of g.tensors) b.tensor(t.name, t.type, t.dims, g.readTensorData(t).slice());
  b.write(dst);
  g.close();
}

let home: string;
let found: DiscoveredModelWithFit[];
const byName = (name: string) => found.find((m) => m.displayName === name);

beforeAll(() => {
  home = mkdtempSync(join(tmpdir(), 'cachet-discovery-'));
  const llama = makeTestModel(LLAMA);
  const qwen = makeTestModel(QWEN);
  const starcoder = makeTestModel(STARCODER);

  // Ollama: library model, a model whose blob is gone, an hf.co model with an adapter layer, a stray file.
  const ollama = join(home, '.ollama', 'models');
  const hex = 'ab'.repeat(32);
  mkdirSync(join(ollama, 'blobs'), { recursive: true });
  copyFileSync(llama, join(ollama, 'blobs', `sha256-${hex}`));
  copyFileSync(qwen, join(ollama, 'blobs', `sha256:${'cd'.repeat(32)}`)); // older blob naming
  const manifest = (digest: string, extra: object[] = []) =>
    JSON.stringify({
      schemaVersion: 2,
      config: { mediaType: 'application/vnd.docker.container.image.v1+json', digest: `sha256:${'00'.repeat(32)}` },
      layers: [{ mediaType: 'application/vnd.ollama.image.model', digest, size: 1 }, { mediaType: 'application/vnd.ollama.image.template', digest: 'sha256:11', size: 1 }, ...extra],
    });
  const put = (rel: string, text: string) => {
    const p = join(ollama, 'manifests', rel);
    mkdirSync(join(p, '..'), { recursive: true });
    writeFileSync(p, text);
  };
  put('registry.ollama.ai/library/tiny-coder/latest', manifest(`sha256:${hex}`));
  put('registry.ollama.ai/library/gone/7b', manifest(`sha256:${'ef'.repeat(32)}`));
  put('hf.co/someorg/qwen-tiny/F16', manifest(`sha256:${'cd'.repeat(32)}`, [{ mediaType: 'application/vnd.ollama.image.adapter', digest: 'sha256:22', size: 1 }]));
  put('registry.ollama.ai/library/notes/README', 'not a manifest');

  // LM Studio: a good qwen2, bad magic, truncated, a clip projector, a vocab-only file, a 2-part split, no-FIM llama.
  const lms = join(home, '.lmstudio', 'models', 'pub', 'repo');
  mkdirSync(lms, { recursive: true });
  copyFileSync(qwen, join(lms, 'qwen-F16.gguf'));
  writeFileSync(join(lms, 'broken.gguf'), 'this is not a gguf file at all');
  const whole = readFileSync(llama);
  writeFileSync(join(lms, 'truncated.gguf'), whole.subarray(0, Math.floor(whole.length * 0.6)));
  new GgufBuilder()
    .string('general.architecture', 'clip')
    .tensor('v.patch_embd.weight', GgmlType.F32, [32, 2], new Uint8Array(256))
    .write(join(lms, 'mmproj-model-f16.gguf'));
  rewrite(llama, join(lms, 'vocab-only.gguf'), () => {}, (k) => k.startsWith('general.architecture'));
  copyFileSync(llama, join(lms, 'big-00001-of-00002.gguf'));
  copyFileSync(llama, join(lms, 'big-00002-of-00002.gguf'));
  rewrite(
    llama,
    join(lms, 'nofim.gguf'),
    (b, meta) => {
      const tokens = (meta.get('tokenizer.ggml.tokens') as string[]).map((t) => (t.startsWith('<|fim') ? `<|x${t.length}|>` : t));
      b.array('tokenizer.ggml.tokens', GgufValueType.STRING, tokens);
      b.u32('general.file_type', 7);
    },
    (k) => k.includes('fim_') || k === 'tokenizer.ggml.tokens',
  );

  // Hugging Face cache under $HF_HOME: two revisions linking to one blob.
  const hub = join(home, 'hf', 'hub', 'models--org--tiny-starcoder');
  mkdirSync(join(hub, 'blobs'), { recursive: true });
  copyFileSync(starcoder, join(hub, 'blobs', 'deadbeef'));
  for (const rev of ['rev1', 'rev2']) {
    mkdirSync(join(hub, 'snapshots', rev, 'gguf'), { recursive: true });
    symlinkSync(join('..', '..', '..', 'blobs', 'deadbeef'), join(hub, 'snapshots', rev, 'gguf', 'tiny-Q4_0.gguf'));
  }

  found = discoverModels({
    home,
    env: { HF_HOME: join(home, 'hf') },
    systemOllama: false,
    paths: [join(lms, 'qwen-F16.gguf'), join(home, 'missing.gguf')],
    freeBytes: 8 * 1024 ** 3,
  });
});

afterAll(() => rmSync(home, { recursive: true, force: true }));

describe('sources', () => {
  test('Ollama names follow the registry and namespace', () => {
    expect(ollamaName('registry.ollama.ai', 'library', 'qwen2.5-coder', '1.5b')).toBe('qwen2.5-coder:1.5b');
    expect(ollamaName('registry.ollama.ai', 'jdoe', 'm', 'q4')).toBe('jdoe/m:q4');
    expect(ollamaName('hf.co', 'org', 'repo', 'Q4_K_M')).toBe('hf.co/org/repo:Q4_K_M');
  });

  test('every file is found once, configured paths first; later split parts and stray manifests are skipped', () => {
    const names = found.map((m) => `${m.source}:${m.displayName}`).sort();
    expect(names).toEqual(
      [
        'configured:missing.gguf',
        'configured:qwen-F16.gguf', // the same file as LM Studio's pub/repo/qwen-F16.gguf: listed once
        'huggingface:org/tiny-starcoder/gguf/tiny-Q4_0.gguf', // two revisions, one blob
        'lmstudio:pub/repo/big-00001-of-00002.gguf',
        'lmstudio:pub/repo/broken.gguf',
        'lmstudio:pub/repo/mmproj-model-f16.gguf',
        'lmstudio:pub/repo/nofim.gguf',
        'lmstudio:pub/repo/truncated.gguf',
        'lmstudio:pub/repo/vocab-only.gguf',
        'ollama:gone:7b',
        'ollama:hf.co/someorg/qwen-tiny:F16',
        'ollama:tiny-coder:latest',
      ].sort(),
    );
  });

  test('HF_HUB_CACHE overrides HF_HOME; OLLAMA_MODELS adds a store', () => {
    const c = findCandidates({ home: join(home, 'nowhere'), env: { HF_HUB_CACHE: join(home, 'hf', 'hub'), OLLAMA_MODELS: join(home, '.ollama', 'models') }, systemOllama: false });
    expect(c.map((x) => x.displayName).sort()).toEqual(['gone:7b', 'hf.co/someorg/qwen-tiny:F16', 'org/tiny-starcoder/gguf/tiny-Q4_0.gguf', 'tiny-coder:latest']);
  });
});

describe('what each model is', () => {
  test('Ollama library model: llama, Q8_0, its context, FIM tokens, exact parameter count', () => {
    const m = byName('tiny-coder:latest')!;
    expect(m.source).toBe('ollama');
    expect(m.path.endsWith(`sha256-${'ab'.repeat(32)}`)).toBe(true);
    expect(m.loadable).toBe(true);
    expect(m.problem).toBeUndefined();
    const i = m.info!;
    expect(i).toMatchObject({ arch: 'llama', quantization: 'Q8_0', contextLength: 4096, layers: 2, embedding: 64, heads: 4, kvHeads: 2, headDim: 16, vocabSize: 260, fim: true });
    expect(i.fimTokens).toEqual({ prefix: 257, suffix: 258, middle: 259 });
    expect(i.parameters).toBe(expectedParameters(LLAMA));
    expect(i.sizeLabel).toBe(formatParameters(i.parameters));
  });

  test('older sha256:<hex> blob naming and an adapter layer note', () => {
    const m = byName('hf.co/someorg/qwen-tiny:F16')!;
    expect(m.loadable).toBe(true);
    expect(m.info).toMatchObject({ arch: 'qwen2', quantization: 'F16', fim: true });
    expect(m.info!.parameters).toBe(expectedParameters(QWEN));
    expect(m.notes).toEqual(['has a LoRA adapter layer, which Cachet does not apply']);
  });

  test('HF cache starcoder2 Q4_0; general.file_type wins over tensor types; no FIM tokens reported as such', () => {
    const sc = byName('org/tiny-starcoder/gguf/tiny-Q4_0.gguf')!;
    expect(sc.info).toMatchObject({ arch: 'starcoder2', quantization: 'Q4_0' });
    expect(sc.info!.parameters).toBe(expectedParameters(STARCODER));
    const nofim = byName('pub/repo/nofim.gguf')!;
    expect(nofim.loadable).toBe(true);
    expect(nofim.info).toMatchObject({ fim: false, quantization: 'Q8_0' });
    expect(nofim.info!.fimTokens).toBeUndefined();
  });

  test('each unusable file says why and what to do', () => {
    const problem = (name: string) => {
      const m = byName(name)!;
      expect(m.loadable, name).toBe(false);
      expect(m.problem!.hint.length, name).toBeGreaterThan(10);
      return m.problem!.kind;
    };
    expect(problem('pub/repo/broken.gguf')).toBe('bad-magic');
    expect(problem('pub/repo/truncated.gguf')).toBe('truncated');
    expect(problem('pub/repo/mmproj-model-f16.gguf')).toBe('unknown-arch');
    expect(byName('pub/repo/mmproj-model-f16.gguf')!.info!.arch).toBe('clip');
    expect(problem('pub/repo/vocab-only.gguf')).toBe('not-a-model');
    expect(problem('pub/repo/big-00001-of-00002.gguf')).toBe('split');
    expect(byName('pub/repo/big-00001-of-00002.gguf')!.problem!.hint).toContain('llama-gguf-split --merge');
    expect(problem('gone:7b')).toBe('missing-blob');
    expect(byName('gone:7b')!.problem!.hint).toContain('ollama pull gone:7b');
    expect(problem('missing.gguf')).toBe('unreadable');
  });

  test('a tensor type Cachet cannot dequantize is named', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cachet-discovery-iq-'));
    try {
      // Patch token_embd.weight's type field in the header to IQ2_XS (16), as a real IQ2 file would have it.
      const bytes = new Uint8Array(readFileSync(makeTestModel({ ...LLAMA, quant: 'F32' })));
      const name = new TextEncoder().encode('token_embd.weight');
      let at = -1;
      for (let i = 0; i < bytes.length - name.length && at < 0; i++) if (name.every((c, j) => bytes[i + j] === c)) at = i;
      const view = new DataView(bytes.buffer);
      const nDims = view.getUint32(at + name.length, true);
      view.setUint32(at + name.length + 4 + 8 * nDims, 16, true);
      const path = join(dir, 'iq2.gguf');
      writeFileSync(path, bytes);
      const m = inspectCandidate({ path, source: 'configured', displayName: 'iq2.gguf' });
      expect(m.loadable).toBe(false);
      expect(m.problem!.kind).toBe('unsupported-tensor-type');
      expect(m.problem!.message).toContain('token_embd.weight');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('loadable models sort first', () => {
    const firstBad = found.findIndex((m) => !m.loadable);
    expect(found.slice(firstBad).every((m) => !m.loadable)).toBe(true);
    expect(found.slice(0, firstBad).map((m) => m.displayName).sort()).toEqual(
      ['hf.co/someorg/qwen-tiny:F16', 'org/tiny-starcoder/gguf/tiny-Q4_0.gguf', 'pub/repo/nofim.gguf', 'qwen-F16.gguf', 'tiny-coder:latest'].sort(),
    );
  });

  test('split names and parameter labels', () => {
    expect(splitPart('/m/x-00002-of-00005.gguf')).toEqual({ index: 2, count: 5 });
    expect(splitPart('/m/x.gguf')).toBeUndefined();
    expect(formatParameters(1_543_714_304)).toBe('1.5B');
    expect(formatParameters(35_400_000)).toBe('35M');
    expect(formatParameters(6_740_000_000)).toBe('6.7B');
  });
});

describe('fit check', () => {
  // A 7B-shaped model: 32 layers, 4096 wide, 32 heads, 8 KV heads, 3.9 GiB of weights.
  const big: ModelInfo = {
    arch: 'llama', family: 'test', sizeLabel: '7B', parameters: 7e9, quantization: 'Q4_K_M', weightBytes: 3.9 * 1024 ** 3,
    contextLength: 32768, layers: 32, embedding: 4096, feedForward: 14336, heads: 32, kvHeads: 8, headDim: 128, vocabSize: 32000, fim: true,
  };
  const GiB = 1024 ** 3;

  test('KV bytes follow layers x KV heads x head size x context x 2 (K and V) x element size', () => {
    const e = estimateMemory(big, { context: 8192 })!;
    expect(e.kvPerToken).toBe(2 * 32 * 8 * 128 * 2);
    expect(e.kv).toBe(e.kvPerToken * 8192);
    expect(e.total).toBe(e.weights + e.kv + e.scratch);
    expect(estimateMemory(big, { context: 8192, kvBytesPerElement: 4 })!.kv).toBe(2 * e.kv);
    expect(e.scratch).toBeGreaterThan(0);
    expect(e.scratch).toBeLessThan(GiB);
  });

  test('plenty of memory: fits, the whole context available', () => {
    const f = checkFit(big, 64 * GiB, { context: 8192 })!;
    expect(f.verdict).toBe('fits');
    expect(f.maxContext).toBe(32768);
    expect(f.suggestions).toEqual([]);
  });

  test('too little for the context: too-big, the largest context that fits, and the q8_0 KV option', () => {
    const free = 5.5 * GiB;
    const f = checkFit(big, free, { context: 32768 })!;
    expect(f.verdict).toBe('too-big');
    const budget = Math.floor(free * 0.9);
    expect(f.budget).toBe(budget);
    expect(f.maxContext % 256).toBe(0);
    expect(f.maxContext).toBeGreaterThan(0);
    expect(estimateMemory(big, { context: f.maxContext })!.total).toBeLessThanOrEqual(budget);
    expect(estimateMemory(big, { context: f.maxContext + 256 })!.total).toBeGreaterThan(budget);
    expect(f.suggestions[0]).toContain(`reduce the context to ${f.maxContext} tokens`);
    const q8 = estimateMemory(big, { context: 32768, kvBytesPerElement: 1.0625 })!;
    expect(q8.total <= budget).toBe(f.suggestions.some((s) => s.includes('q8_0')));
  });

  test('weights alone over the budget: suggests a smaller quantization or model', () => {
    const f = checkFit(big, 3 * GiB)!;
    expect(f.verdict).toBe('too-big');
    expect(f.maxContext).toBe(0);
    expect(f.suggestions[0]).toContain('smaller quantization');
  });

  test('discovered loadable models carry a fit report against the given free memory', () => {
    for (const m of found) {
      if (m.loadable) {
        expect(m.fit?.verdict, m.displayName).toBe('fits');
        expect(m.fit!.budget).toBe(Math.floor(8 * GiB * 0.9));
      } else expect(m.fit).toBeUndefined();
    }
  });
});

describe('summary lines', () => {
  test('loadable, unloadable and too-big models read as one line each', () => {
    const ok = byName('tiny-coder:latest')!;
    expect(summarizeModel(ok)).toMatch(/^tiny-coder:latest \(ollama\): llama \S+ Q8_0, context 4096, FIM; fits \(\d+ MiB of 7\.2 GiB at 4096 tokens\)$/);
    expect(summarizeModel(byName('pub/repo/nofim.gguf')!)).toContain(', no FIM; fits');
    expect(summarizeModel(byName('hf.co/someorg/qwen-tiny:F16')!)).toContain('[has a LoRA adapter layer, which Cachet does not apply]');
    expect(summarizeModel(byName('pub/repo/broken.gguf')!)).toMatch(/^pub\/repo\/broken\.gguf \(lmstudio\): cannot load — bad-magic: Choose a \.gguf/);
    expect(summarizeModel(byName('pub/repo/mmproj-model-f16.gguf')!)).toContain('cannot load — unknown-arch (clip ');
    const tight = { ...ok, fit: checkFit(ok.info!, ok.info!.weightBytes + 1024 ** 2)! };
    expect(tight.fit.verdict).toBe('too-big');
    expect(summarizeModel(tight)).toMatch(/; too big \(.+ > .+\): /);
  });
});
