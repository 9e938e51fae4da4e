// Compiles kernels/*.wgsl into compute pipelines once per (entry point, variant) and builds bind
// groups. Shader variants are chosen by text: the weight format ($WTYPE), the workgroup size
// ($WG), subgroups and f16 KV (//#if SUBGROUPS, //#if KV_F16).

import { GgmlType } from '../../quant/types';
import { f16ToF32 } from '../../quant';
import { BackendUnavailableError } from '../../errors';
import type { GpuContext } from './device';
import { preprocess, type KernelFile, type KernelSources } from './kernel-sources';

/** Weight formats with a dequantizing kernel; others are converted at upload. */
export const KERNEL_WEIGHT_TYPES: Partial<Record<GgmlType, string>> = {
  [GgmlType.F32]: 'f32',
  [GgmlType.F16]: 'f16',
  [GgmlType.Q8_0]: 'q8_0', // the backend uploads Q8_0 as 'q8r' (see repackQ8_0); 'q8_0' reads file blocks
  [GgmlType.Q4_0]: 'q4_0',
  [GgmlType.Q4_K]: 'q4_k',
  [GgmlType.Q6_K]: 'q6_k',
};

// Which files each kernel family is assembled from, in order.
const FAMILY_FILES: Record<string, KernelFile[]> = {
  matmul: ['reduce', 'dequant', 'matmul'],
  norm: ['reduce', 'norm'],
  rope: ['kv-access', 'rope'],
  elementwise: ['elementwise'],
  attention: ['reduce', 'kv-access', 'attention'],
  argmax: ['argmax'],
  kv: ['kv-access', 'kv'],
  'matvec-fused': ['reduce', 'matvec-fused'],
  // specialised per head layout: wtype is "G,HD" (query heads per KV head, head dim)
  'attention-decode': ['reduce', 'kv-access', 'attention-decode'],
};

// Workgroup size ($WG) per family where it differs from the default.
const FAMILY_WG: Record<string, number> = { 'matvec-fused': 256, 'attention-decode': 128 };

/** Whether attention-decode.wgsl supports a head layout (G query heads per KV head, head dim). */
export function decodeAttentionFits(group: number, headDim: number): boolean {
  return group >= 1 && group <= 8 && headDim % 16 === 0 && headDim >= 16 && headDim <= 256;
}

export type KernelFamily = keyof typeof FAMILY_FILES;

export interface PipelineOptions {
  kvF16: boolean;
  subgroups: boolean;
}

export class Pipelines {
  private readonly cache = new Map<string, GPUComputePipeline>();
  readonly wg = 64;

  /** Repacks Q8_0 blocks into the 'q8r' layout: int8 quants first, then f32 scales. */
  static repackQ8_0(blocks: Uint8Array, rows: number, k: number): { data: Uint8Array; scaleWordOffset: number } {
    const nb = (rows * k) / 32;
    const qsBytes = rows * k;
    const out = new Uint8Array(Math.ceil((qsBytes + nb * 4) / 16) * 16);
    const scales = new Float32Array(out.buffer, qsBytes, nb);
    const dv = new DataView(blocks.buffer, blocks.byteOffset, blocks.byteLength);
    for (let b = 0; b < nb; b++) {
      scales[b] = f16ToF32(dv.getUint16(b * 34, true));
      out.set(blocks.subarray(b * 34 + 2, b * 34 + 34), b * 32);
    }
    return { data: out, scaleWordOffset: qsBytes / 4 };
  }

  constructor(
    readonly gpu: GpuContext,
    private readonly sources: KernelSources,
    readonly options: PipelineOptions,
  ) {}

  get device(): GPUDevice {
    return this.gpu.device;
  }

  /** The WGSL text of a family variant (exposed for tests and debugging). */
  source(family: KernelFamily, wtype = 'f32'): string {
    const defines: Record<string, string | number | boolean> = { WG: FAMILY_WG[family] ?? this.wg, WTYPE: wtype, SUBGROUPS: this.options.subgroups, KV_F16: this.options.kvF16 };
    let body = FAMILY_FILES[family]!.map((f) => this.sources[f]).join('\n');
    if (family === 'matvec-fused') body = expandEachBuffer(body);
    if (family === 'matvec-fused') {
      // 'FORMATS|xsN[|nr2|ksK]': x staged in N vec4 of workgroup memory (0: read from X),
      // nr2 = two rows per subgroup (q8r only), ksK = K subgroups per row
      const [formats, stage, ...rest] = wtype.split('|') as [string, string | undefined, ...string[]];
      const xs4 = Number(stage?.replace('xs', '') ?? 0);
      defines.NR2 = rest.includes('nr2');
      defines.KS = Number(rest.find((r) => r.startsWith('ks'))?.slice(2) ?? 1);
      defines.XS = xs4 > 0;
      defines.XS4 = Math.max(1, xs4);
      wtype = formats;
      // 'q8r', 'q4k' (every matrix Q4_K, read in place), or 'a,b,c': each buffer's format
      defines.Q8R = wtype === 'q8r';
      defines.Q4K = wtype === 'q4k';
      defines.VEC4W = defines.Q8R || defines.Q4K;
      if (!defines.VEC4W) {
        const types = wtype.split(',');
        const copies = [0, 1, 2].map((i) => {
          defines[`W4FN${i}`] = `w4_${types[i] ?? types[0]}_${i}`;
          return dequantFor(this.sources.dequant, `W${i}`, `_${i}`);
        });
        body = copies.join('\n') + '\n' + body;
      }
    }
    if (family === 'attention-decode') {
      const [g, hd] = wtype.split(',').map(Number) as [number, number];
      Object.assign(defines, { G: g, HD: hd, GHD: g * hd, GKMAX: g * 256, GSTAT: g * 128, GVS: g * 128, GWPL2: (g * hd) / 8 });
    }
    const header = this.options.subgroups ? 'enable subgroups;\n' : '';
    return header + preprocess(body, defines);
  }

  get(family: KernelFamily, entry: string, wtype = 'f32'): GPUComputePipeline {
    const key = `${family}/${entry}/${wtype}`;
    let p = this.cache.get(key);
    if (p) return p;
    const device = this.device;
    const code = this.source(family, wtype);
    device.pushErrorScope('validation');
    const module = device.createShaderModule({ code, label: key });
    p = device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: entry }, label: key });
    // Validation errors are reported asynchronously; checkCompiled() awaits them once after setup.
    this.pending.push(device.popErrorScope().then((e) => (e ? `${key}: ${e.message}` : undefined)));
    this.cache.set(key, p);
    return p;
  }

  private pending: Promise<string | undefined>[] = [];

  /** Throws if any pipeline created so far failed to compile. */
  async checkCompiled(): Promise<void> {
    const errors = (await Promise.all(this.pending.splice(0))).filter((e): e is string => !!e);
    if (errors.length) {
      throw new BackendUnavailableError(`WGSL pipeline creation failed: ${errors.join('\n')}`, "This is a bug in Cachet's WebGPU kernels; choose the CPU backend and report it.");
    }
  }

  /** Bind group for `group` of a pipeline; entries[i] is binding i's buffer (skips undefined). */
  bind(pipeline: GPUComputePipeline, group: number, entries: Record<number, GPUBuffer | GPUBufferBinding>): GPUBindGroup {
    return this.device.createBindGroup({
      layout: pipeline.getBindGroupLayout(group),
      entries: Object.entries(entries).map(([b, r]) => ({
        binding: Number(b),
        resource: typeof (r as GPUBuffer).mapAsync === 'function' ? { buffer: r as GPUBuffer } : (r as GPUBufferBinding),
      })),
    });
  }
}

/**
 * Blocks between `//#each-buffer` and `//#end-each-buffer` are written for weight buffer W0; WGSL
 * cannot pass a storage buffer to a function, so each block is repeated for W1 and W2 with the
 * buffer, its row offset (so0) and the function names renumbered.
 */
export function expandEachBuffer(src: string): string {
  return src.replace(/\/\/#each-buffer\n([\s\S]*?)\/\/#end-each-buffer\n/g, (_, block: string) =>
    [0, 1, 2].map((i) => block.replace(/\b(W|so|dot_w|dot2_w)0\b/g, `$1${i}`).replace(/\$W4FN0\b/g, `$W4FN${i}`)).join(''));
}

/** dequant.wgsl rewritten for buffer `buffer`: every function renamed with `suffix`. */
function dequantFor(src: string, buffer: string, suffix: string): string {
  const names = [...src.matchAll(/\bfn\s+(\w+)\s*\(/g)].map((m) => m[1]!);
  let out = src.replace(/\bW\[/g, `${buffer}[`);
  for (const n of names) out = out.replace(new RegExp(`\\b${n}\\(`, 'g'), `${n}${suffix}(`);
  return out;
}
