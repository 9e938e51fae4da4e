// Settings -> the engine's loadModel request: readSettings (with a stand-in `vscode` whose
// configuration is a plain map), its defaults against package.json, which changes reload the
// model, and the request the extension sends (checked by the engine's own validateRequest).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';

const configured = new Map<string, unknown>();
vi.mock('vscode', () => ({
  workspace: {
    getConfiguration: (section: string) => ({
      get: <T>(key: string, def: T): T => (configured.has(`${section}.${key}`) ? (configured.get(`${section}.${key}`) as T) : def),
    }),
  },
}));

const { readSettings, engineSettingsKey, serverSettingsKey } = await import('../../src/config');
const { loadModelRequest, loadSettingsFor } = await import('../../src/engine-link');
const { validateRequest } = await import('../../engine/protocol');

function settingsWith(values: Record<string, unknown>) {
  configured.clear();
  for (const [k, v] of Object.entries(values)) configured.set(k, v);
  return readSettings();
}

/** Value at a dotted path of the settings object: 'completion.maxTokens' -> s.completion.maxTokens. */
function at(obj: unknown, path: string): unknown {
  return path.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown> | undefined)?.[k], obj);
}

describe('settings', () => {
  it('default to what package.json declares, for every cachet.* setting', () => {
    const pkg = JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8'));
    const props = pkg.contributes.configuration.properties as Record<string, { default: unknown }>;
    expect(Object.keys(props)).toEqual(expect.arrayContaining(['cachet.kvCache.chunkReuse', 'cachet.kvCache.chunkBlendRatio']));
    const s = settingsWith({});
    for (const [key, decl] of Object.entries(props)) {
      expect(at(s, key.slice('cachet.'.length)), key).toEqual(decl.default);
    }
    expect(s.kvCache).toEqual({ chunkReuse: 'off', chunkBlendRatio: 0.15 });
  });

  it('declare chunkReuse as the engine modes and chunkBlendRatio as a fraction', () => {
    const pkg = JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8'));
    const props = pkg.contributes.configuration.properties;
    expect(props['cachet.kvCache.chunkReuse'].enum).toEqual(['off', 'rotate', 'blend']);
    expect(props['cachet.kvCache.chunkReuse'].enumDescriptions).toHaveLength(3);
    expect(props['cachet.kvCache.chunkBlendRatio']).toMatchObject({ type: 'number', minimum: 0, maximum: 1 });
  });

  it('read chunk reuse, keeping bad values from reaching the engine', () => {
    expect(settingsWith({ 'cachet.kvCache.chunkReuse': 'rotate' }).kvCache.chunkReuse).toBe('rotate');
    expect(settingsWith({ 'cachet.kvCache.chunkReuse': 'blend', 'cachet.kvCache.chunkBlendRatio': 0.3 }).kvCache).toEqual({ chunkReuse: 'blend', chunkBlendRatio: 0.3 });
    expect(settingsWith({ 'cachet.kvCache.chunkReuse': 'fast' }).kvCache.chunkReuse).toBe('off');
    expect(settingsWith({ 'cachet.kvCache.chunkBlendRatio': 1.5 }).kvCache.chunkBlendRatio).toBe(1);
    expect(settingsWith({ 'cachet.kvCache.chunkBlendRatio': -0.2 }).kvCache.chunkBlendRatio).toBe(0);
    expect(settingsWith({ 'cachet.kvCache.chunkBlendRatio': Number.NaN }).kvCache.chunkBlendRatio).toBe(0.15);
    expect(settingsWith({ 'cachet.kvCache.chunkBlendRatio': '0.5' }).kvCache.chunkBlendRatio).toBe(0.15);
  });

  it('reload the model when chunk reuse changes, and on the blend ratio only while blending', () => {
    const key = (v: Record<string, unknown>) => engineSettingsKey(settingsWith(v));
    const off = key({});
    expect(key({ 'cachet.kvCache.chunkReuse': 'rotate' })).not.toBe(off);
    expect(key({ 'cachet.kvCache.chunkReuse': 'blend' })).not.toBe(key({ 'cachet.kvCache.chunkReuse': 'rotate' }));
    expect(key({ 'cachet.kvCache.chunkBlendRatio': 0.5 })).toBe(off);
    expect(key({ 'cachet.kvCache.chunkReuse': 'rotate', 'cachet.kvCache.chunkBlendRatio': 0.5 })).toBe(key({ 'cachet.kvCache.chunkReuse': 'rotate' }));
    expect(key({ 'cachet.kvCache.chunkReuse': 'blend', 'cachet.kvCache.chunkBlendRatio': 0.5 })).not.toBe(key({ 'cachet.kvCache.chunkReuse': 'blend' }));
    // Settings that do not touch the engine keep the key.
    expect(key({ 'cachet.completion.maxTokens': 64 })).toBe(off);
  });

  it('leave the local endpoint running when only chunk reuse changes (the CLI server does not use it)', () => {
    const key = (v: Record<string, unknown>) => serverSettingsKey(settingsWith(v));
    expect(key({ 'cachet.kvCache.chunkReuse': 'rotate' })).toBe(key({}));
    expect(key({ 'cachet.server.port': 9000 })).not.toBe(key({}));
    expect(key({ 'cachet.contextLength': 4096 })).not.toBe(key({}));
  });
});

describe('loadModelRequest', () => {
  const request = (values: Record<string, unknown>, cacheDir?: string) => loadModelRequest(loadSettingsFor(settingsWith(values), '/m/model.gguf', cacheDir));
  const valid = (req: object) => validateRequest({ type: 'loadModel', id: 'l1', ...req });

  it('sends chunkReuse off by default, without a blend ratio', () => {
    const req = request({}, '/store/kv-cache');
    expect(req).toEqual({ path: '/m/model.gguf', backend: 'auto', contextLength: 8192, cacheDir: '/store/kv-cache', chunkReuse: 'off' });
    expect(valid(req)).toBeUndefined();
  });

  it('sends rotate without a ratio and blend with the configured ratio', () => {
    const rotate = request({ 'cachet.kvCache.chunkReuse': 'rotate', 'cachet.kvCache.chunkBlendRatio': 0.4 });
    expect(rotate.chunkReuse).toBe('rotate');
    expect(rotate).not.toHaveProperty('chunkBlendRatio');
    expect(valid(rotate)).toBeUndefined();
    const blend = request({ 'cachet.kvCache.chunkReuse': 'blend', 'cachet.kvCache.chunkBlendRatio': 0.4 });
    expect(blend).toMatchObject({ chunkReuse: 'blend', chunkBlendRatio: 0.4 });
    expect(valid(blend)).toBeUndefined();
    // Even an out-of-range setting arrives clamped, so the engine never refuses the load for it.
    const clamped = request({ 'cachet.kvCache.chunkReuse': 'blend', 'cachet.kvCache.chunkBlendRatio': 7 });
    expect(clamped.chunkBlendRatio).toBe(1);
    expect(valid(clamped)).toBeUndefined();
  });

  it('carries the other load settings: backend, context, threads only when set, no cacheDir when absent', () => {
    const req = request({ 'cachet.backend': 'onnx', 'cachet.contextLength': 4096, 'cachet.threads': 2 });
    expect(req).toEqual({ path: '/m/model.gguf', backend: 'onnx', contextLength: 4096, threads: 2, chunkReuse: 'off' });
    expect(request({ 'cachet.threads': 0 })).not.toHaveProperty('threads');
    expect(valid(req)).toBeUndefined();
  });
});
