// Bundles an engine entry point for tests that spawn it (the worker, the CLI) with the settings
// esbuild.mjs ships: native addons and vscode external, WGSL inlined as text.

import * as esbuild from 'esbuild';
import { join } from 'node:path';

const ROOT = join(__dirname, '..', '..');

/** Bundles `entry` (relative to the repository root) to `outfile`; returns outfile. */
export async function bundleEntry(entry: string, outfile: string, banner?: string): Promise<string> {
  await esbuild.build({
    entryPoints: [join(ROOT, entry)],
    outfile,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    external: ['vscode', 'webgpu', 'onnxruntime-node', 'node-llama-cpp'],
    loader: { '.wgsl': 'text' },
    logLevel: 'error',
    ...(banner ? { banner: { js: banner } } : {}),
  });
  return outfile;
}
