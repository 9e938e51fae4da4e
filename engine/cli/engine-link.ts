// The CLI's view of the engine: load it with the command line's choices and turn its errors and
// warnings into CLI output. Everything that generates goes through engine/runtime's Engine.

import { existsSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { CachetError } from '../errors';
import type { BackendChoice } from '../protocol';
import { Engine, type EngineLoadOptions } from '../runtime';
import type { Io } from './output';

export { Engine };

export const BACKENDS: BackendChoice[] = ['auto', 'reference', 'webgpu', 'onnx'];

export function parseBackend(value: string | undefined): BackendChoice {
  const b = (value ?? 'auto') as BackendChoice;
  if (!BACKENDS.includes(b)) {
    throw new CachetError(`unknown backend '${value}'`, `Use one of: ${BACKENDS.join(', ')}.`);
  }
  return b;
}

export interface LoadChoices {
  modelPath: string;
  backend: BackendChoice;
  contextLength?: number;
  threads?: number;
  quiet?: boolean;
}

export async function loadEngine(choices: LoadChoices, io: Io): Promise<Engine> {
  if (!existsSync(choices.modelPath)) {
    throw new CachetError(`model file not found: ${choices.modelPath}`, 'Pass the path of a .gguf model with --model (see `cachet info FILE`).');
  }
  const options: EngineLoadOptions = {
    modelPath: choices.modelPath,
    backend: choices.backend,
    contextLength: choices.contextLength,
    threads: choices.threads,
    onWarning: (w) => {
      if (!choices.quiet) io.err(`warning: ${w.message}${w.hint ? `\n  hint: ${w.hint}` : ''}`);
    },
  };
  return Engine.load(options);
}

/**
 * The default model for `cachet demo`: models/cachet-tiny*.gguf next to the package (the bundle
 * lives in dist/, so ../models) or under the working directory.
 */
export function findDefaultModel(cwd: string, bundleDir: string | undefined): { found?: string; looked: string[] } {
  const dirs = [join(cwd, 'models')];
  if (bundleDir) dirs.push(resolve(dirname(bundleDir), 'models'), join(bundleDir, 'models'));
  const looked: string[] = [];
  for (const dir of [...new Set(dirs)]) {
    looked.push(join(dir, 'cachet-tiny*.gguf'));
    if (!existsSync(dir)) continue;
    const hits = readdirSync(dir).filter((f) => /^cachet-tiny.*\.gguf$/.test(f)).sort();
    if (hits.length) return { found: join(dir, hits[0]!), looked };
  }
  return { looked };
}
