// WGSL sources for the kernels in kernels/*.wgsl. Bundles (esbuild, loader '.wgsl': 'text') inline
// them through kernels/bundled.ts; under vitest that import cannot be parsed, so the files are read
// from disk instead. Both paths are lazy so importing the backend registry never touches WGSL.

export const KERNEL_FILES = ['reduce', 'dequant', 'kv-access', 'matmul', 'norm', 'rope', 'elementwise', 'attention', 'argmax', 'kv', 'matvec-fused', 'attention-decode'] as const;
export type KernelFile = (typeof KERNEL_FILES)[number];
export type KernelSources = Record<KernelFile, string>;

let cached: Promise<KernelSources> | undefined;

export function loadKernelSources(): Promise<KernelSources> {
  cached ??= (async () => {
    try {
      const mod = (await import('../../../kernels/bundled')) as { KERNEL_SOURCES: KernelSources };
      return mod.KERNEL_SOURCES;
    } catch {
      const { readFileSync } = await import('node:fs');
      const { join } = await import('node:path');
      // vitest defines __dirname per module; without it, assume the repository root as cwd
      const dir = typeof __dirname === 'string' ? join(__dirname, '..', '..', '..', 'kernels') : join(process.cwd(), 'kernels');
      const out = {} as KernelSources;
      for (const f of KERNEL_FILES) out[f] = readFileSync(join(dir, `${f}.wgsl`), 'utf8');
      return out;
    }
  })();
  return cached;
}

/**
 * A tiny preprocessor: lines `//#if NAME`, `//#else`, `//#endif` keep or drop the lines between
 * them depending on defines[NAME]; `$NAME` tokens are replaced by String(defines[NAME]).
 */
export function preprocess(src: string, defines: Record<string, boolean | number | string>): string {
  const out: string[] = [];
  const stack: { active: boolean; parentActive: boolean }[] = [];
  let active = true;
  for (const line of src.split('\n')) {
    const t = line.trim();
    const m = /^\/\/#if\s+(!?)(\w+)$/.exec(t);
    if (m) {
      const v = Boolean(defines[m[2]]) !== (m[1] === '!');
      stack.push({ active, parentActive: active });
      active = active && v;
      continue;
    }
    if (t === '//#else') {
      const top = stack[stack.length - 1];
      if (!top) throw new Error('preprocess: //#else without //#if');
      active = top.parentActive && !active;
      continue;
    }
    if (t === '//#endif') {
      const top = stack.pop();
      if (!top) throw new Error('preprocess: //#endif without //#if');
      active = top.active;
      continue;
    }
    if (active) out.push(line.replace(/\$([A-Z_][A-Z0-9_]*)/g, (all, name: string) => (name in defines ? String(defines[name]) : all)));
  }
  if (stack.length) throw new Error('preprocess: unterminated //#if');
  return out.join('\n');
}
