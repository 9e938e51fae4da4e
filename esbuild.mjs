// Bundles the extension, the engine worker and the CLI. Native addons (webgpu, onnxruntime-node)
// and vscode stay external; WGSL sources are inlined as text so the bundle is self-contained.
import * as esbuild from 'esbuild';
import { existsSync } from 'node:fs';

const watch = process.argv.includes('--watch');
const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  sourcemap: true,
  external: ['vscode', 'webgpu', 'onnxruntime-node', 'node-llama-cpp'],
  loader: { '.wgsl': 'text' },
  logLevel: 'info',
};
const entries = [
  { in: 'src/extension.ts', out: 'dist/extension.js' },
  { in: 'engine/runtime/worker.ts', out: 'dist/worker.js' },
  { in: 'engine/cli/main.ts', out: 'dist/cli.js', banner: { js: '#!/usr/bin/env node' } },
].filter((e) => existsSync(e.in));

const contexts = await Promise.all(
  entries.map((e) => esbuild.context({ ...common, entryPoints: [e.in], outfile: e.out, banner: e.banner })),
);
if (watch) {
  await Promise.all(contexts.map((c) => c.watch()));
} else {
  await Promise.all(contexts.map((c) => c.rebuild()));
  await Promise.all(contexts.map((c) => c.dispose()));
}
