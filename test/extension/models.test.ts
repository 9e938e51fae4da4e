// "Cachet: Select Model" without VS Code: quick pick rows from discovery answers, and the
// choose -> fit check -> persist flow driven through a recording UI.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { DiscoveredModelInfo, FitInfo } from '../../engine/protocol';
import { describeModel, embeddedModel, fitWarning, modelPickItems, selectModel, settingsTarget, type ModelPickItem, type SelectModelUi } from '../../src/models';

const root = mkdtempSync(join(tmpdir(), 'cachet-models-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const GiB = 1024 ** 3;
const fits: FitInfo = { verdict: 'fits', contextLength: 4096, totalBytes: 200 * 1024 ** 2, weightsBytes: 150 * 1024 ** 2, kvBytes: 30 * 1024 ** 2, budgetBytes: 6 * GiB, maxContext: 4096, suggestions: [] };
const tooBig: FitInfo = {
  verdict: 'too-big', contextLength: 32768, totalBytes: 9 * GiB, weightsBytes: 4 * GiB, kvBytes: 4.5 * GiB, budgetBytes: 6 * GiB, maxContext: 12288,
  suggestions: ['At 32768 tokens the KV cache needs 4.5 GiB (144 KiB per token); reduce the context to 12288 tokens or less to fit in about 6.0 GiB.'],
};
const bundledPath = '/ext/models/cachet-tiny.Q8_0.gguf';
const models: DiscoveredModelInfo[] = [
  { path: '/ollama/blobs/sha256-aa', displayName: 'qwen2.5-coder:1.5b', source: 'ollama', bytes: 986e6, loadable: true, arch: 'qwen2', family: 'Qwen2.5 Coder', sizeLabel: '1.5B', quantization: 'Q4_K_M', contextLength: 32768, fim: true, fit: tooBig },
  { path: bundledPath, displayName: 'cachet-tiny.Q8_0.gguf', source: 'configured', bytes: 38787488, loadable: true, arch: 'llama', family: 'llama', sizeLabel: '35M', quantization: 'Q8_0', contextLength: 1024, fim: true, fit: fits },
  { path: '/hf/org/m-q8.gguf', displayName: 'org/m/m-q8.gguf', source: 'huggingface', bytes: 5e8, loadable: true, arch: 'llama', family: 'llama', sizeLabel: '500M', quantization: 'Q8_0', contextLength: 4096, fim: false, fit: fits },
  { path: '/lms/pub/repo/mmproj.gguf', displayName: 'pub/repo/mmproj.gguf', source: 'lmstudio', bytes: 6e8, loadable: false, arch: 'clip', family: 'clip', sizeLabel: '300M', quantization: 'F16', problem: { kind: 'unknown-arch', message: "architecture 'clip' is not supported", hint: 'Choose a llama, qwen2 or starcoder2 model.' } },
  { path: '/ws/broken.gguf', displayName: 'broken.gguf', source: 'configured', bytes: 30, loadable: false, problem: { kind: 'bad-magic', message: '/ws/broken.gguf: bad magic', hint: 'Choose a .gguf model file.' } },
];

describe('embedded model', () => {
  it('finds models/cachet-tiny*.gguf in the extension folder', () => {
    const ext = join(root, 'ext');
    mkdirSync(join(ext, 'models'), { recursive: true });
    writeFileSync(join(ext, 'models', 'cachet-tiny-q8.gguf'), 'x');
    writeFileSync(join(ext, 'models', 'README.md'), 'not a model');
    expect(embeddedModel(ext)).toBe(join(ext, 'models', 'cachet-tiny-q8.gguf'));
    expect(embeddedModel(join(root, 'nope'))).toBeUndefined();
  });
});

describe('quick pick rows', () => {
  const items = modelPickItems(models, { bundledPath, currentPath: '/hf/org/m-q8.gguf', workspaceFiles: ['/ws/broken.gguf'] });

  it('lists the bundled Cachet-Tiny first as a small demo model, each model once, browse last', () => {
    expect(items.map((i) => i.path)).toEqual([bundledPath, '/ollama/blobs/sha256-aa', '/hf/org/m-q8.gguf', '/lms/pub/repo/mmproj.gguf', '/ws/broken.gguf', '']);
    expect(items[0]).toMatchObject({ label: 'Cachet-Tiny (bundled)', bundled: true });
    expect(items[0].description).toBe('small demo model · 35M Q8_0 · llama · context 1024 · FIM');
    expect(items[0].detail).toMatch(/^fits \(200 MiB of 6\.0 GiB at 4096 tokens\) · ships with Cachet/);
    expect(items.at(-1)!.label).toMatch(/Browse/);
  });

  it('shows family, size, quantization, context, FIM and source per model; marks the current one', () => {
    expect(items[1].description).toBe('1.5B Q4_K_M · qwen2 · context 32768 · FIM · Ollama');
    expect(items[1].detail).toBe('Qwen2.5 Coder · $(warning) does not fit at 32768 tokens (9.0 GiB > 6.0 GiB) · /ollama/blobs/sha256-aa');
    expect(items[2]).toMatchObject({ label: '$(check) org/m/m-q8.gguf', description: '500M Q8_0 · llama · context 4096 · no FIM · Hugging Face' });
    expect(items[2].detail).toBe('fits (200 MiB of 6.0 GiB at 4096 tokens) · /hf/org/m-q8.gguf');
  });

  it('shows unloadable files with $(warning), the reason and the hint', () => {
    expect(items[3]).toMatchObject({ label: '$(warning) pub/repo/mmproj.gguf', detail: "architecture 'clip' is not supported — Choose a llama, qwen2 or starcoder2 model." });
    expect(items[3].description).toBe('cannot load · 300M F16 · clip · LM Studio');
    // The file path the engine's message starts with is left out (the row names the file).
    expect(items[4]).toMatchObject({ label: '$(warning) broken.gguf', description: 'cannot load · 1 KiB · workspace', detail: 'bad magic — Choose a .gguf model file.' });
  });

  it('describes a model whose header was unreadable by its file size', () => {
    expect(describeModel({ path: 'x', displayName: 'x', source: 'configured', bytes: 3 * 1024 ** 2, loadable: false }, 'path')).toBe('3 MiB · path');
  });
});

describe('fit warning, settings target', () => {
  it('offers the largest context that fits, and loading anyway', () => {
    const w = fitWarning('qwen2.5-coder:1.5b', tooBig);
    expect(w.message).toContain('needs about 9.0 GiB at 32768 tokens but about 6.0 GiB is free');
    expect(w.message).toContain('reduce the context to 12288 tokens');
    expect(w.actions).toEqual(['Use context 12288', 'Load anyway']);
    const weightsTooBig = fitWarning('big', { ...tooBig, maxContext: 0, suggestions: ['choose a smaller quantization (Q4_K_M of this model is about 3.9 GiB)'] });
    expect(weightsTooBig.actions).toEqual(['Load anyway']);
    expect(weightsTooBig.message).toContain('smaller quantization');
  });

  it('writes where the setting already lives: workspace if set there, else global', () => {
    expect(settingsTarget({ workspaceValue: '/a.gguf' })).toBe('workspace');
    expect(settingsTarget({ workspaceFolderValue: '' })).toBe('workspace');
    expect(settingsTarget({})).toBe('global');
    expect(settingsTarget(undefined)).toBe('global');
  });
});

function fakeUi(choose: (items: ModelPickItem[]) => ModelPickItem | undefined, o: { warnAnswer?: string; browsed?: string; target?: 'global' | 'workspace'; fit?: { fit?: FitInfo } } = {}) {
  const calls = { updates: [] as [string, unknown, string][], errors: [] as string[], warnings: [] as { message: string; actions: string[] }[], items: [] as ModelPickItem[], fitChecks: [] as string[] };
  const ui: SelectModelUi = {
    discover: async () => models,
    checkFit: async (p) => {
      calls.fitChecks.push(p);
      return o.fit ?? {};
    },
    pick: async (items) => {
      calls.items = items;
      return choose(items);
    },
    browse: async () => o.browsed,
    warn: async (message, actions) => {
      calls.warnings.push({ message, actions });
      return o.warnAnswer;
    },
    error: (m) => calls.errors.push(m),
    update: async (key, value, target) => {
      calls.updates.push([key, value, target]);
    },
    target: () => o.target ?? 'global',
  };
  return { ui, calls };
}

describe('select model flow', () => {
  const opts = { bundledPath, currentPath: bundledPath };
  const byPath = (p: string) => (items: ModelPickItem[]) => items.find((i) => i.path === p);

  it('persists a model that fits, in the target VS Code reports', async () => {
    const { ui, calls } = fakeUi(byPath('/hf/org/m-q8.gguf'), { target: 'workspace' });
    expect(await selectModel(ui, opts)).toEqual({ kind: 'selected', path: '/hf/org/m-q8.gguf' });
    expect(calls.updates).toEqual([['modelPath', '/hf/org/m-q8.gguf', 'workspace']]);
    expect(calls.warnings).toEqual([]);
  });

  it('stores the bundled model as the empty default', async () => {
    const { ui, calls } = fakeUi((items) => items[0]);
    await selectModel(ui, opts);
    expect(calls.updates).toEqual([['modelPath', '', 'global']]);
  });

  it('refuses an unloadable file with its reason and writes nothing', async () => {
    const { ui, calls } = fakeUi(byPath('/lms/pub/repo/mmproj.gguf'));
    const r = await selectModel(ui, opts);
    expect(r).toMatchObject({ kind: 'unloadable', problem: { kind: 'unknown-arch' } });
    expect(calls.errors).toEqual(["Cachet: pub/repo/mmproj.gguf cannot be loaded: architecture 'clip' is not supported — Choose a llama, qwen2 or starcoder2 model."]);
    expect(calls.updates).toEqual([]);
  });

  it('shows the suggestion before loading a model that does not fit; smaller context is written with it', async () => {
    const { ui, calls } = fakeUi(byPath('/ollama/blobs/sha256-aa'), { warnAnswer: 'Use context 12288' });
    expect(await selectModel(ui, opts)).toEqual({ kind: 'selected', path: '/ollama/blobs/sha256-aa', contextLength: 12288 });
    expect(calls.warnings[0].message).toContain('reduce the context to 12288 tokens');
    expect(calls.updates).toEqual([['modelPath', '/ollama/blobs/sha256-aa', 'global'], ['contextLength', 12288, 'global']]);
  });

  it('cancelling the fit warning writes nothing; "Load anyway" keeps the context', async () => {
    const cancel = fakeUi(byPath('/ollama/blobs/sha256-aa'));
    expect(await selectModel(cancel.ui, opts)).toEqual({ kind: 'cancelled' });
    expect(cancel.calls.updates).toEqual([]);
    const anyway = fakeUi(byPath('/ollama/blobs/sha256-aa'), { warnAnswer: 'Load anyway' });
    await selectModel(anyway.ui, opts);
    expect(anyway.calls.updates).toEqual([['modelPath', '/ollama/blobs/sha256-aa', 'global']]);
  });

  it('checks the fit of a browsed file through the engine before writing it', async () => {
    const { ui, calls } = fakeUi(byPath(''), { browsed: '/tmp/big.gguf', fit: { fit: tooBig }, warnAnswer: undefined });
    expect(await selectModel(ui, opts)).toEqual({ kind: 'cancelled' });
    expect(calls.fitChecks).toEqual(['/tmp/big.gguf']);
    expect(calls.warnings[0].message).toMatch(/^big\.gguf needs about 9\.0 GiB/);
    expect(calls.updates).toEqual([]);
  });

  it('dismissing the pick does nothing', async () => {
    const { ui, calls } = fakeUi(() => undefined);
    expect(await selectModel(ui, opts)).toEqual({ kind: 'cancelled' });
    expect(calls.updates).toEqual([]);
  });
});
