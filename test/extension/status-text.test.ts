import { describe, expect, it } from 'vitest';
import { statusText } from '../../src/status-text';

describe('statusText', () => {
  it('shows each engine state', () => {
    expect(statusText({ engine: 'stopped', enabled: true }).text).toBe('$(circle-outline) Cachet: idle');
    expect(statusText({ engine: 'ready', enabled: true, modelName: 'm.gguf', backend: 'webgpu' })).toMatchObject({ text: '$(check) Cachet: idle', error: false });
    expect(statusText({ engine: 'ready', enabled: true, modelName: 'm.gguf', backend: 'webgpu' }).tooltip).toContain('m.gguf on webgpu');
    expect(statusText({ engine: 'loading', enabled: true, progress: 0.426 }).text).toBe('$(loading~spin) Cachet: loading 43%');
    expect(statusText({ engine: 'loading', enabled: true, progress: 7 }).text).toContain('100%');
    expect(statusText({ engine: 'error', enabled: true, errorMessage: 'bad file' })).toMatchObject({ text: '$(error) Cachet: error', error: true });
    expect(statusText({ engine: 'remote', enabled: true }).text).toContain('remote');
  });

  it('shows activity over the engine state', () => {
    expect(statusText({ engine: 'ready', enabled: true, activity: 'thinking' }).text).toBe('$(sync~spin) Cachet: thinking');
    expect(statusText({ engine: 'ready', enabled: true, activity: 'cache-hit' }).text).toBe('$(zap) Cachet: cache hit');
    const tps = statusText({ engine: 'ready', enabled: true, activity: { tokensPerSecond: 123.4, cachedTokens: 90, promptTokens: 100 } });
    expect(tps.text).toBe('$(check) Cachet: 123 tok/s');
    expect(tps.tooltip).toContain('90/100 prompt tokens reused');
    expect(statusText({ engine: 'ready', enabled: true, activity: { tokensPerSecond: 4.25 } }).text).toBe('$(check) Cachet: 4.3 tok/s');
  });

  it('off wins over everything and says how to turn it on', () => {
    const s = statusText({ engine: 'error', enabled: false, activity: 'thinking' });
    expect(s.text).toBe('$(circle-slash) Cachet: off');
    expect(s.tooltip).toContain('turn completions on');
    expect(s.error).toBe(false);
  });
});
