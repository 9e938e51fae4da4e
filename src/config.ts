// Settings: the one place that reads `cachet.*` from VS Code; everything else receives the typed
// object. Defaults here mirror package.json's contributes.configuration.

import * as vscode from 'vscode';
import type { BackendChoice, ChunkReuseMode } from '../engine/protocol';

export interface CachetSettings {
  modelPath: string;
  /** Extra files or folders searched for GGUF models by "Cachet: Select Model". */
  modelSearchPaths: string[];
  backend: BackendChoice;
  contextLength: number;
  threads: number;
  completion: {
    enabled: boolean;
    disabledLanguages: string[];
    debounceMs: number;
    maxTokens: number;
    maxLines: number;
    contextTokens: number;
    /** Token budget of the whole repository context: open, recently edited and imported files, similar chunks (0: none). */
    openFilesContextTokens: number;
  };
  /** Chunk K/V reuse for repository context (a load setting: changing it reloads the model). */
  kvCache: { chunkReuse: ChunkReuseMode; chunkBlendRatio: number };
  server: { enabled: boolean; port: number };
  remote: { url: string; model: string };
}

export function readSettings(): CachetSettings {
  const c = vscode.workspace.getConfiguration('cachet');
  const num = (key: string, def: number, min: number, max: number) => {
    const v = c.get<number>(key, def);
    return typeof v === 'number' && Number.isFinite(v) ? Math.min(max, Math.max(min, Math.round(v))) : def;
  };
  const backend = c.get<string>('backend', 'auto');
  const chunkReuse = c.get<string>('kvCache.chunkReuse', 'off');
  const blendRatio = c.get<number>('kvCache.chunkBlendRatio', 0.15);
  return {
    modelPath: (c.get<string>('modelPath', '') ?? '').trim(),
    modelSearchPaths: (c.get<unknown>('modelSearchPaths', []) as unknown[] | undefined ?? []).filter((p): p is string => typeof p === 'string' && p.trim() !== '').map((p) => p.trim()),
    backend: (['auto', 'webgpu', 'onnx', 'reference'].includes(backend) ? backend : 'auto') as BackendChoice,
    contextLength: num('contextLength', 8192, 256, 131072),
    threads: num('threads', 0, 0, 256),
    completion: {
      enabled: c.get<boolean>('completion.enabled', true),
      disabledLanguages: c.get<string[]>('completion.disabledLanguages', []) ?? [],
      debounceMs: num('completion.debounceMs', 150, 0, 5000),
      maxTokens: num('completion.maxTokens', 128, 1, 4096),
      maxLines: num('completion.maxLines', 16, 1, 500),
      contextTokens: num('completion.contextTokens', 2048, 64, 131072),
      openFilesContextTokens: num('completion.openFilesContextTokens', 1024, 0, 131072),
    },
    kvCache: {
      chunkReuse: (['off', 'rotate', 'blend'].includes(chunkReuse) ? chunkReuse : 'off') as ChunkReuseMode,
      // Not rounded like the integer settings: a fraction in [0, 1].
      chunkBlendRatio: typeof blendRatio === 'number' && Number.isFinite(blendRatio) ? Math.min(1, Math.max(0, blendRatio)) : 0.15,
    },
    server: { enabled: c.get<boolean>('server.enabled', false), port: num('server.port', 8012, 1, 65535) },
    remote: { url: (c.get<string>('remote.url', '') ?? '').trim(), model: c.get<string>('remote.model', '') ?? '' },
  };
}

/** Settings whose change needs the engine restarted (model reloaded). */
export function engineSettingsKey(s: CachetSettings): string {
  // The blend ratio only matters (and only reloads) when blending is on.
  const chunks = s.kvCache.chunkReuse === 'blend' ? [s.kvCache.chunkReuse, s.kvCache.chunkBlendRatio] : [s.kvCache.chunkReuse];
  return JSON.stringify([s.modelPath, s.backend, s.contextLength, s.threads, chunks]);
}

/** Settings whose change restarts the local endpoint (`cachet serve` takes no chunk reuse options). */
export function serverSettingsKey(s: CachetSettings): string {
  return JSON.stringify([s.server, s.modelPath, s.backend, s.contextLength, s.threads]);
}
