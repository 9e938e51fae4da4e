// The WebGPU backend: weights uploaded once (one buffer per tensor), pipelines and bind groups
// built once, and each step (a decode token or a prefill chunk) encoded as one command buffer with
// one submit. Activations are f32; the KV cache is f16 (packed pairs) when the device has
// shader-f16, else f32. Follows the same graph as the reference backend (llama.cpp's llm_build_*).

import { BackendUnavailableError, CachetError, ModelNotSupportedError, OutOfMemoryError } from '../../errors';
import { layerTensorNames, lmHeadName, OUTPUT_NORM, OUTPUT_NORM_BIAS, TOKEN_EMBD } from '../../model/tensor-names';
import type { ModelConfig, ModelWeights, TensorView } from '../../model/types';
import { dequantize, f32ToF16 } from '../../quant';
import { bytesFor, GgmlType } from '../../quant/types';
import type { Backend, BackendOptions, ForwardResult, MemoryStats, SequenceBatch } from '../types';
import { bufferFrom, emptyBuffer, grid, readBuffer, uniformBytes, uniformFrom } from './buffers';
import { BufferUsage, createGpuDevice, MapMode, withErrorScope, type GpuContext } from './device';
import { loadKernelSources } from './kernel-sources';
import { decodeAttentionFits, KERNEL_WEIGHT_TYPES, Pipelines, type KernelFamily } from './pipelines';
import { checkRope, ropeTable } from './rope-table';

export interface WebGpuBackendOptions extends BackendOptions {
  /** Dawn instance flags (e.g. CACHET_DAWN_FLAGS); default enables f16 on NVIDIA. */
  dawnFlags?: string[];
  /** Store K/V as f16 (default: when the device has shader-f16). */
  kvF16?: boolean;
  /** Use subgroup operations when available (default true). */
  subgroups?: boolean;
  /** Tokens per prefill chunk (one submit each). Default 256. */
  maxBatchTokens?: number;
  /** Time every dispatch with timestamp queries, grouped by kernel family (benchmarks only). */
  profile?: boolean;
  /**
   * Use the fused/grouped kernels (fused q8r matvecs, grouped decode and block prefill attention,
   * rope_qkv). Default true; false runs only the generic kernels (a fallback if a driver misbehaves).
   */
  fusedKernels?: boolean;
  /** Logits per workgroup of the two-stage GPU argmax (default 1024; tests use small values). */
  argmaxPartLen?: number;
}

/** A weight matrix on the GPU: rows = output features, k = input features. */
interface GpuMatrix {
  buffer: GPUBuffer;
  wtype: string;
  rows: number;
  k: number;
  rowBytes: number;
  /** q8r: word offset of the f32 scales after the quants. */
  scaleOff: number;
  bias?: GPUBuffer;
}

interface LayerBuffers {
  attnNorm: GPUBuffer;
  attnNormBias?: GPUBuffer;
  q: GpuMatrix;
  k: GpuMatrix;
  v: GpuMatrix;
  o: GpuMatrix;
  ffnNorm: GPUBuffer;
  ffnNormBias?: GPUBuffer;
  gate?: GpuMatrix;
  up: GpuMatrix;
  down: GpuMatrix;
  kCache: GPUBuffer;
  vCache: GPUBuffer;
}

/** A prepared dispatch: pipeline + bind groups; the grid is computed per step. */
interface Op {
  family: string;
  pipeline: GPUComputePipeline;
  groups: GPUBindGroup[];
  /** Fused matvecs: output rows per workgroup (8, or 16 with two rows per subgroup). */
  rowsPerGroup?: number;
}

/** A matrix op in both shapes: matvec for one or two tokens, tiled matmul for more. */
interface MatOp {
  rows: number;
  matvec: Op;
  matmul: Op;
}

interface LayerOps {
  attnNorm: Op;
  q: MatOp;
  k: MatOp;
  v: MatOp;
  ropeQ: Op;
  storeKv: Op;
  /** ropeQ + storeKv in one dispatch. */
  ropeQkv: Op;
  attnPartial: Op;
  /** Flash decoding specialised for the head layout (attention-decode.wgsl): split + merge. */
  attnSplit?: Op;
  attnMerge?: Op;
  /** Query-block prefill attention with K/V tiles in shared memory (head_dim <= 128). */
  attnPrefill?: Op;
  attnCombine: Op;
  o: MatOp;
  ffnNorm: Op;
  gate?: MatOp;
  up: MatOp;
  act: Op;
  down: MatOp;
  /** Decode-time fused matvec ops (kernels/matvec-fused.wgsl). */
  fused?: { qkv: Op; o: Op; gateUp?: Op; down: Op; norm: boolean };
}

const MATVEC_MAX_TOKENS = 2;
/** Rows of logits one step can return; longer 'all' requests run in more steps. */
const MAX_LOGIT_ROWS = 32;
/** Partial-attention budget: splits x queries per head per step (flash decoding spreads a long
 * context over many workgroups; prefill has enough queries already). */
const SPLIT_BUDGET = 256;
/** attention-decode.wgsl: keys per split at most, and the workgroups a decode step aims for
 * (about two per SM on an H100, so even one KV head's short context fills the GPU). */
const DECODE_SPLIT_KEYS = 256;
const DECODE_TARGET_GROUPS = 256;
/** Logits per workgroup of the two-stage argmax (a row of more than this is split). */
const ARGMAX_PART_LEN = 1024;

export class WebGpuBackend implements Backend {
  readonly name = 'webgpu';
  readonly config: ModelConfig;
  readonly gpu: GpuContext;
  readonly kvF16: boolean;
  private readonly pipes: Pipelines;
  private readonly device: GPUDevice;
  private readonly kvSlots: number;
  private readonly maxTokens: number;
  private readonly layers: LayerBuffers[] = [];
  private readonly ops: LayerOps[] = [];
  private readonly allBuffers: GPUBuffer[] = [];
  private weightsBytes = 0;
  private kvBytes = 0;
  private scratchBytes = 0;
  private disposed = false;
  private profile: boolean;
  /** Use the fused q8r decode kernels where the model allows (off: the generic kernels only). */
  useFused = true;
  /** Host time spent encoding the last step's commands (the per-token CPU cost of WebGPU). */
  encodeMs = 0;
  /** Accumulated GPU time per kernel family in ns (profile mode). */
  readonly kernelTimes = new Map<string, { ns: number; count: number }>();

  // scratch
  private x!: GPUBuffer;
  private xn!: GPUBuffer;
  private qb!: GPUBuffer;
  private kb!: GPUBuffer;
  private vb!: GPUBuffer;
  private attn!: GPUBuffer;
  private ffA!: GPUBuffer;
  private ffB!: GPUBuffer;
  private partial!: GPUBuffer;
  private logits!: GPUBuffer;
  private logitsRead!: GPUBuffer;
  private argmaxOut!: GPUBuffer;
  private argmaxRead!: GPUBuffer;
  private argmaxPartial!: GPUBuffer;
  private ctxBuf!: GPUBuffer;
  private tokBuf!: GPUBuffer;
  private ropeCs!: GPUBuffer;
  private step!: GPUBuffer;
  private attnParams!: GPUBuffer;
  private headNormParams!: GPUBuffer;
  private headParamsLast!: GPUBuffer;
  private dummy!: GPUBuffer;
  /** Placeholder for unused read_write bindings (one buffer cannot be both read and written). */
  private dummyRw!: GPUBuffer;

  // model-level ops
  private embed!: Op;
  private outNormAll!: Op;
  private outNormLast!: Op;
  private head!: MatOp;
  private headLast!: Op;
  private argmax!: Op;
  private argmaxPart!: Op;
  private argmaxFinal!: Op;
  private argmaxParts = 1;
  private readonly argmaxPartLen: number;
  private argmaxParams!: GPUBuffer;
  private headMatrix!: GpuMatrix;
  private headFused: Op | undefined;
  private headFusedParams!: GPUBuffer;
  private dummyRw2!: GPUBuffer;

  constructor(gpu: GpuContext, pipes: Pipelines, config: ModelConfig, options: WebGpuBackendOptions) {
    this.gpu = gpu;
    this.device = gpu.device;
    this.pipes = pipes;
    this.config = config;
    this.kvF16 = pipes.options.kvF16;
    this.kvSlots = options.kvSlots;
    this.maxTokens = Math.max(1, Math.floor(options.maxBatchTokens ?? 256));
    this.profile = !!options.profile && gpu.features.timestamps;
    this.useFused = options.fusedKernels ?? true;
    this.argmaxPartLen = Math.max(1, Math.floor(options.argmaxPartLen ?? ARGMAX_PART_LEN));
  }

  // ---------------------------------------------------------------- setup

  async init(weights: ModelWeights, options: WebGpuBackendOptions): Promise<void> {
    const c = this.config;
    if (!Number.isInteger(options.kvSlots) || options.kvSlots <= 0) {
      throw new CachetError(`kvSlots must be a positive integer, got ${options.kvSlots}`, 'Pass the number of KV slots (tokens) to allocate.');
    }
    checkRope(c.rope, c.headDim);
    if (c.nHeads % c.nKvHeads !== 0 || c.headDim > 256 || c.headDim % 2 !== 0 || c.nEmbd % 4 !== 0 || c.nFf % 4 !== 0) {
      throw new ModelNotSupportedError(`head layout ${c.nHeads}/${c.nKvHeads} heads of ${c.headDim} (embd ${c.nEmbd}, ff ${c.nFf}) is not supported by the WebGPU backend`, 'Use the CPU backend for this model.');
    }
    const progress = options.onProgress;
    const names = [TOKEN_EMBD, ...Array.from({ length: c.nLayers }, (_, i) => Object.values(layerTensorNames(c, i)) as string[]).flat(), OUTPUT_NORM, lmHeadName(c)];
    const total = names.length;
    let done = 0;
    const tick = (what: string) => progress?.(++done / total, what);

    await withErrorScope(this.device, 'uploading weights and allocating buffers', () => {
      const embd = this.matrix(weights.get(TOKEN_EMBD));
      tick(TOKEN_EMBD);
      const head = c.tiedEmbeddings ? embd : this.matrix(weights.get(lmHeadName(c)));
      tick(lmHeadName(c));
      for (let i = 0; i < c.nLayers; i++) {
        const n = layerTensorNames(c, i);
        const vec = (name: string | undefined) => (name ? this.vector(weights.get(name)) : undefined);
        const mat = (name: string, bias?: string) => {
          const m = this.matrix(weights.get(name));
          if (bias) m.bias = this.vector(weights.get(bias));
          tick(name);
          return m;
        };
        const kvBytes = this.kvSlots * c.nKvHeads * c.headDim * (this.kvF16 ? 2 : 4);
        this.checkBindingSize(kvBytes, 'the KV cache of one layer');
        const layer: LayerBuffers = {
          attnNorm: vec(n.attnNorm)!,
          attnNormBias: vec(n.attnNormBias),
          q: mat(n.q, n.qBias),
          k: mat(n.k, n.kBias),
          v: mat(n.v, n.vBias),
          o: mat(n.o, n.oBias),
          ffnNorm: vec(n.ffnNorm)!,
          ffnNormBias: vec(n.ffnNormBias),
          gate: n.gate ? mat(n.gate) : undefined,
          up: mat(n.up, n.upBias),
          down: mat(n.down, n.downBias),
          kCache: this.alloc(kvBytes, `blk.${i}.k_cache`),
          vCache: this.alloc(kvBytes, `blk.${i}.v_cache`),
        };
        this.kvBytes += 2 * kvBytes;
        this.layers.push(layer);
      }
      const outNorm = this.vector(weights.get(OUTPUT_NORM));
      const outNormBias = c.norm.type === 'layer' ? this.vector(weights.get(OUTPUT_NORM_BIAS)) : undefined;
      tick(OUTPUT_NORM);
      this.allocScratch();
      this.buildOps(embd, head, outNorm, outNormBias);
    });
    await this.pipes.checkCompiled();
    this.gpu.check();
  }

  private checkBindingSize(bytes: number, what: string): void {
    const max = this.gpu.limits.maxStorageBufferBindingSize;
    if (bytes > max) {
      throw new OutOfMemoryError(`${what} needs ${(bytes / 2 ** 20).toFixed(1)} MiB, over this GPU's ${(max / 2 ** 20).toFixed(0)} MiB per-buffer limit`, 'Use fewer KV slots or a smaller model, or choose the CPU backend.');
    }
  }

  private alloc(bytes: number, label: string): GPUBuffer {
    const b = emptyBuffer(this.device, bytes, label);
    this.allBuffers.push(b);
    return b;
  }

  private upload(data: ArrayBufferView, label: string): GPUBuffer {
    this.checkBindingSize(data.byteLength, label);
    let b: GPUBuffer;
    try {
      b = bufferFrom(this.device, data, label);
    } catch (cause) {
      // mappedAtCreation throws (RangeError) when the mapping cannot be allocated
      throw new OutOfMemoryError(`could not allocate ${(data.byteLength / 2 ** 20).toFixed(1)} MiB on the GPU for ${label}`, 'Use a smaller model or fewer KV slots, or choose the CPU backend.', { cause });
    }
    this.allBuffers.push(b);
    return b;
  }

  /** A 1-D tensor (norm weight, bias) as f32. */
  private vector(t: TensorView): GPUBuffer {
    const n = t.dims.reduce((a, b) => a * b, 1);
    const f = t.type === GgmlType.F32 ? new Float32Array(t.data.slice(0, n * 4).buffer) : dequantize(t.type, t.data, n);
    this.weightsBytes += f.byteLength;
    return this.upload(f, t.name);
  }

  /** A 2-D weight in its own buffer; formats without a kernel are converted to f16 here. */
  private matrix(t: TensorView): GpuMatrix {
    const k = t.dims[0]!;
    const rows = t.dims[1] ?? 1;
    if (k % 4 !== 0) throw new ModelNotSupportedError(`${t.name}: rows of ${k} elements (not a multiple of 4)`, 'Use the CPU backend for this model.');
    let type = t.type;
    let data: Uint8Array = t.data.subarray(0, bytesFor(t.type, k * rows));
    if (type === GgmlType.Q8_0) {
      // aligned int8 words + f32 scales: 4-byte loads for the kernels instead of 2-byte pieces
      const r = Pipelines.repackQ8_0(data, rows, k);
      this.weightsBytes += r.data.byteLength;
      return { buffer: this.upload(r.data, t.name), wtype: 'q8r', rows, k, rowBytes: k, scaleOff: r.scaleWordOffset };
    }
    if (!(type in KERNEL_WEIGHT_TYPES)) {
      const f = dequantize(type, data, k * rows);
      const h = new Uint16Array(f.length);
      for (let i = 0; i < f.length; i++) h[i] = f32ToF16(f[i]!);
      data = new Uint8Array(h.buffer);
      type = GgmlType.F16;
    }
    this.weightsBytes += data.byteLength;
    return { buffer: this.upload(data, t.name), wtype: KERNEL_WEIGHT_TYPES[type]!, rows, k, rowBytes: bytesFor(type, k), scaleOff: 0 };
  }

  private allocScratch(): void {
    const c = this.config;
    const T = this.maxTokens;
    const f32 = 4;
    const qDim = c.nHeads * c.headDim;
    const kvDim = c.nKvHeads * c.headDim;
    const ffRows = T * c.nFf;
    const logitRows = Math.min(T, MAX_LOGIT_ROWS);
    const partialRows = Math.max(SPLIT_BUDGET, T);
    const sizes: [string, number][] = [];
    const mk = (name: string, bytes: number) => {
      sizes.push([name, bytes]);
      this.checkBindingSize(bytes, `scratch buffer ${name}`);
      return this.alloc(bytes, name);
    };
    this.x = mk('x', T * c.nEmbd * f32);
    this.xn = mk('xn', T * c.nEmbd * f32);
    this.qb = mk('q', T * qDim * f32);
    this.kb = mk('k', T * kvDim * f32);
    this.vb = mk('v', T * kvDim * f32);
    this.attn = mk('attn', T * qDim * f32);
    this.ffA = mk('ff_a', ffRows * f32);
    this.ffB = mk('ff_b', ffRows * f32);
    this.partial = mk('attn_partial', partialRows * c.nHeads * (c.headDim + 2) * f32);
    this.logits = mk('logits', logitRows * c.vocabSize * f32);
    this.logitsRead = this.device.createBuffer({ size: logitRows * c.vocabSize * f32, usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST, label: 'logits_read' });
    this.allBuffers.push(this.logitsRead);
    this.argmaxOut = mk('argmax', Math.max(16, logitRows * 4));
    this.argmaxRead = this.device.createBuffer({ size: Math.max(16, logitRows * 4), usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST, label: 'argmax_read' });
    this.allBuffers.push(this.argmaxRead);
    this.ctxBuf = mk('context', this.kvSlots * 4);
    this.tokBuf = mk('tokens', T * 4);
    this.ropeCs = mk('rope_cs', T * (c.rope.dim / 2) * 2 * f32);
    const U = BufferUsage.UNIFORM | BufferUsage.COPY_DST;
    this.step = emptyBuffer(this.device, 16, 'step', U);
    this.attnParams = emptyBuffer(this.device, 32, 'attn_params', U);
    this.headNormParams = emptyBuffer(this.device, 16, 'head_norm_params', U);
    this.headParamsLast = emptyBuffer(this.device, 32, 'head_params_last', U);
    this.argmaxParts = Math.min(256, Math.ceil(c.vocabSize / this.argmaxPartLen));
    this.argmaxParams = uniformFrom(this.device, [c.vocabSize, this.argmaxParts, 0, 0]);
    this.argmaxPartial = mk('argmax_partial', logitRows * this.argmaxParts * 8);
    this.dummy = mk('dummy', 16);
    this.dummyRw = mk('dummy_rw', 16);
    this.dummyRw2 = mk('dummy_rw2', 16);
    this.headFusedParams = emptyBuffer(this.device, 48, 'head_fused_params', BufferUsage.UNIFORM | BufferUsage.COPY_DST);
    this.allBuffers.push(this.headFusedParams);
    this.allBuffers.push(this.step, this.attnParams, this.headNormParams, this.headParamsLast, this.argmaxParams);
    this.scratchBytes = sizes.reduce((a, [, b]) => a + b, 0) + this.logitsRead.size;
  }

  private op(family: KernelFamily, entry: string, wtype: string, g0: Record<number, GPUBuffer>, g1?: Record<number, GPUBuffer>, label = entry): Op {
    const pipeline = this.pipes.get(family, entry, wtype);
    const groups = [this.pipes.bind(pipeline, 0, g0)];
    if (g1) groups.push(this.pipes.bind(pipeline, 1, g1));
    return { family: label, pipeline, groups };
  }

  /** y (+)= x W^T (+ b); flags: 1 bias, 2 accumulate. mFixed/xRow0 select rows of x. */
  private matOp(m: GpuMatrix, x: GPUBuffer, y: GPUBuffer, accumulate: boolean, label: string, params?: GPUBuffer): MatOp {
    const flags = (m.bias ? 1 : 0) | (accumulate ? 2 : 0);
    const p = params ?? uniformFrom(this.device, [m.rows, m.k, m.rowBytes, 0, flags, 0, m.scaleOff, 0]);
    if (!params) this.allBuffers.push(p);
    const g = { 0: m.buffer, 1: x, 2: y, 3: m.bias ?? this.dummy, 4: p, 5: this.step, 6: this.dummy };
    return { rows: m.rows, matvec: this.op('matmul', 'matvec', m.wtype, g, undefined, `matvec ${label}`), matmul: this.op('matmul', 'matmul', m.wtype, g, undefined, `matmul ${label}`) };
  }

  private normOp(x: GPUBuffer, y: GPUBuffer, w: GPUBuffer, b: GPUBuffer | undefined, params: GPUBuffer): Op {
    const entry = this.config.norm.type === 'rms' ? 'rms_norm' : 'layer_norm';
    return this.op('norm', entry, 'f32', { 0: x, 1: y, 2: w, 3: b ?? this.dummy, 4: params, 5: this.step });
  }

  /**
   * One fused-matvec dispatch over up to three q8r matrices (see kernels/matvec-fused.wgsl).
   * flags: 1 rms-norm x with normW, 2 swiglu, 4 accumulate into ys[0].
   */
  private fusedOp(mats: GpuMatrix[], x: GPUBuffer, normW: GPUBuffer | undefined, ys: GPUBuffer[], flags: number, label: string, params?: GPUBuffer): Op {
    const c = this.config;
    const swiglu = (flags & 2) !== 0;
    const bias = mats.map((m, i) => (m.bias ? 8 << i : 0)).reduce((a, b) => a | b, 0);
    const n = [0, 1, 2].map((i) => (mats[i] && !(swiglu && i === 1) ? mats[i]!.rows : 0));
    // q8r: one kernel reading 16 weights per load; other formats: per-matrix dequant functions
    const q8r = mats.every((m) => m.wtype === 'q8r');
    const q4k = !q8r && mats.every((m) => m.wtype === 'q4_k');
    const formats = q8r ? 'q8r' : q4k ? 'q4k' : [0, 1, 2].map((i) => (mats[i] ?? mats[0]!).wtype).join(',');
    // Stage x in workgroup memory for rows up to 4096 wide (16 KiB): measured on an H200,
    // staging the 8960-wide x of ffn_down (35 KiB per workgroup) cut occupancy and made it 1.6x
    // slower; for k <= 2048 (q/k/v, gate/up of a 1.5B model) it was 1.3x faster than re-reading
    // X and the norm weights per weight chunk.
    const k4 = mats[0]!.k / 4;
    const xs = k4 <= 1024 && 16 * k4 + 2560 <= this.gpu.limits.maxComputeWorkgroupStorageSize ? k4 : 0;
    // Row layout, measured on an H200 (1.5B shape): one subgroup per row leaves short matrices
    // with too few subgroups to fill the GPU, so q/k/v (2048 rows) use 2 and o/down (1536) 4
    // subgroups per row (split-K); tall ones (gate/up 8960, LM head) take two rows per subgroup
    // instead (q8r, and only when no row pair can straddle two matrices: n0, n1 even), which
    // made them 1.3x faster but the short ones 1.2x slower.
    const total = swiglu ? n[0]! : n[0]! + n[1]! + n[2]!;
    const ks = total >= 4096 ? 1 : total >= 2048 ? 2 : 4;
    const nr2 = ks === 1 && q8r && (n[1] === 0 || (n[0]! % 2 === 0 && (n[2] === 0 || n[1]! % 2 === 0)));
    const wtype = `${formats}|xs${xs}${nr2 ? '|nr2' : ''}${ks > 1 ? `|ks${ks}` : ''}`;
    const off = (m: GpuMatrix | undefined) => (m ? (q8r ? m.scaleOff : m.rowBytes) : 0);
    const p = params ?? uniformFrom(this.device, [n[0]!, n[1]!, n[2]!, mats[0]!.k, off(mats[0]), off(mats[1]), off(mats[2]), flags | bias, c.norm.eps, 0], [8]);
    if (!params) this.allBuffers.push(p);
    const w = (i: number) => mats[i]?.buffer ?? this.dummy;
    const y = (i: number) => ys[i] ?? (i === 1 ? this.dummyRw : this.dummyRw2);
    const op = this.op('matvec-fused', 'matvec_fused', wtype, {
      0: w(0), 1: w(1), 2: w(2), 3: x, 4: normW ?? this.dummy,
      5: ys[0]!, 6: y(1), 7: y(2),
      8: mats[0]?.bias ?? this.dummy, 9: mats[1]?.bias ?? this.dummy, 10: mats[2]?.bias ?? this.dummy, 11: p,
    }, undefined, `fused ${label}`);
    return { ...op, rowsPerGroup: nr2 ? 16 : 8 / ks };
  }

  private fusedLayerOps(L: LayerBuffers): LayerOps['fused'] {
    // The RMS norm folds into the matvec prologue; LayerNorm keeps its own dispatch.
    const norm = this.config.norm.type === 'rms';
    if (norm && !L.gate) return undefined; // the plain-MLP path would need the normed x
    const src = norm ? this.x : this.xn;
    const nf = norm ? 1 : 0;
    return {
      norm,
      qkv: this.fusedOp([L.q, L.k, L.v], src, norm ? L.attnNorm : undefined, [this.qb, this.kb, this.vb], nf, 'qkv'),
      o: this.fusedOp([L.o], this.attn, undefined, [this.x], 4, 'attn_out'),
      gateUp: L.gate ? this.fusedOp([L.gate, L.up], src, norm ? L.ffnNorm : undefined, [this.ffA], nf | 2, 'ffn_up') : undefined,
      down: this.fusedOp([L.down], this.ffA, undefined, [this.x], 4, 'ffn_down'),
    };
  }

  private buildOps(embd: GpuMatrix, head: GpuMatrix, outNorm: GPUBuffer, outNormBias: GPUBuffer | undefined): void {
    const c = this.config;
    const d = this.device;
    const normParams = uniformFrom(d, [c.nEmbd, c.norm.eps, 0, 0], [1]);
    const neox = c.rope.type === 'neox' ? 1 : 0;
    const ropeQParams = uniformFrom(d, [c.nHeads, c.headDim, c.rope.dim, neox, 0]);
    const ropeKParams = uniformFrom(d, [c.nKvHeads, c.headDim, c.rope.dim, neox, 0]);
    const ropeQkvParams = uniformFrom(d, [c.nHeads, c.headDim, c.rope.dim, neox, c.nKvHeads]);
    this.allBuffers.push(ropeQkvParams);
    const ffParams = uniformFrom(d, [c.nFf, 0, 0, 0]);
    this.allBuffers.push(normParams, ropeQParams, ropeKParams, ffParams);
    const embParams = uniformFrom(d, [embd.rows, embd.k, embd.rowBytes, 0, 0, 0, embd.scaleOff, 0]);
    this.allBuffers.push(embParams);
    this.embed = this.op('matmul', 'get_rows', embd.wtype, { 0: embd.buffer, 1: this.dummy, 2: this.x, 3: this.dummy, 4: embParams, 5: this.step, 6: this.tokBuf });

    const group = c.nHeads / c.nKvHeads;
    const splitLayout = decodeAttentionFits(group, c.headDim) ? `${group},${c.headDim}` : undefined;
    for (const L of this.layers) {
      const kv = { 0: L.kCache, 1: L.vCache };
      const ropeCommon = { 1: this.ropeCs, 3: this.step };
      const attnG = { 0: this.qb, 1: this.ctxBuf, 2: this.partial, 3: this.attnParams, 4: this.step, 5: this.attn };
      const gated = !!L.gate;
      this.ops.push({
        attnNorm: this.normOp(this.x, this.xn, L.attnNorm, L.attnNormBias, normParams),
        q: this.matOp(L.q, this.xn, this.qb, false, 'qkv'),
        k: this.matOp(L.k, this.xn, this.kb, false, 'qkv'),
        v: this.matOp(L.v, this.xn, this.vb, false, 'qkv'),
        ropeQ: this.op('rope', 'rope_q', 'f32', { ...ropeCommon, 0: this.qb, 2: ropeQParams, 4: this.dummy, 5: this.dummy, 6: this.ctxBuf }, kv),
        storeKv: this.op('rope', 'rope_store_kv', 'f32', { ...ropeCommon, 0: this.dummyRw, 2: ropeKParams, 4: this.kb, 5: this.vb, 6: this.ctxBuf }, kv),
        ropeQkv: this.op('rope', 'rope_qkv', 'f32', { ...ropeCommon, 0: this.qb, 2: ropeQkvParams, 4: this.kb, 5: this.vb, 6: this.ctxBuf }, kv),
        attnPartial: this.op('attention', 'attn_partial', 'f32', attnG, kv),
        attnSplit: splitLayout ? this.op('attention-decode', 'attn_split', splitLayout, attnG, kv) : undefined,
        attnMerge: splitLayout ? this.op('attention-decode', 'attn_merge', splitLayout, attnG, kv) : undefined,
        // register-tiled prefill where the head dim allows (multiple of 32), else one dot at a time
        attnPrefill: c.headDim <= 128 && c.headDim % 32 === 0
          ? this.op('attention', 'attn_prefill_tiled', 'f32', attnG, kv, 'attn_prefill')
          : c.headDim <= 128 && c.headDim % 4 === 0 ? this.op('attention', 'attn_prefill', 'f32', attnG, kv) : undefined,
        attnCombine: this.op('attention', 'attn_combine', 'f32', attnG, kv),
        o: this.matOp(L.o, this.attn, this.x, true, 'attn_out'),
        ffnNorm: this.normOp(this.x, this.xn, L.ffnNorm, L.ffnNormBias, normParams),
        gate: gated ? this.matOp(L.gate!, this.xn, this.ffA, false, 'ffn_up') : undefined,
        up: this.matOp(L.up, this.xn, gated ? this.ffB : this.ffA, false, 'ffn_up'),
        act: this.op('elementwise', gated ? 'swiglu' : 'gelu', 'f32', { 0: this.ffA, 1: this.ffB, 2: ffParams, 3: this.step }),
        down: this.matOp(L.down, this.ffA, this.x, true, 'ffn_down'),
        fused: this.fusedLayerOps(L),
      });
    }
    // Final norm over all rows (logits 'all') or only the last row (x_row0 = n - 1, m_fixed = 1).
    this.outNormAll = this.normOp(this.x, this.xn, outNorm, outNormBias, normParams);
    this.outNormLast = this.normOp(this.x, this.xn, outNorm, outNormBias, this.headNormParams);
    this.headMatrix = head;
    this.head = this.matOp(head, this.xn, this.logits, false, 'lm_head');
    this.headLast = this.matOp(head, this.xn, this.logits, false, 'lm_head', this.headParamsLast).matvec;
    if (c.norm.type === 'rms') {
      // final norm + LM head on row x_row0 in one dispatch; x_row0 is written per step
      this.headFused = this.fusedOp([head], this.x, outNorm, [this.logits], 1, 'lm_head', this.headFusedParams);
    }
    const argG = { 0: this.logits, 1: this.argmaxOut, 2: this.argmaxParams, 3: this.argmaxPartial };
    this.argmax = this.op('argmax', 'argmax', 'f32', argG);
    this.argmaxPart = this.op('argmax', 'argmax_part', 'f32', argG, undefined, 'argmax');
    this.argmaxFinal = this.op('argmax', 'argmax_final', 'f32', argG, undefined, 'argmax');
  }

  // ---------------------------------------------------------------- encoding

  private enc!: GPUCommandEncoder;
  private pass: GPUComputePassEncoder | undefined;
  private querySet: GPUQuerySet | undefined;
  private queryFamilies: string[] = [];
  private profileWholeStep = false;
  /** The next decode step, encoded ahead (see forwardOne). */
  private prepared: { key: string; commands: GPUCommandBuffer } | undefined;
  /** Encode the next decode step while the current one runs (default true). */
  encodeAhead = true;

  private begin(): void {
    this.enc = this.device.createCommandEncoder();
    this.queryFamilies = [];
    if (this.profile && this.profileWholeStep) {
      // one pass as in normal runs, timestamps at its start and end: the step's GPU time
      this.querySet ??= this.device.createQuerySet({ type: 'timestamp', count: 4096 });
      this.pass = this.enc.beginComputePass({ timestampWrites: { querySet: this.querySet, beginningOfPassWriteIndex: 0, endOfPassWriteIndex: 1 } });
      this.queryFamilies.push('step');
      return;
    }
    this.pass = this.profile ? undefined : this.enc.beginComputePass();
  }

  private dispatch(op: Op, x: number, y = 1, z = 1): void {
    let pass = this.pass;
    if (this.profile && !this.profileWholeStep) {
      const i = this.queryFamilies.length;
      this.querySet ??= this.device.createQuerySet({ type: 'timestamp', count: 4096 });
      if (2 * i + 2 > 4096) throw new CachetError('too many dispatches to profile in one step', 'Profile a smaller step.');
      pass = this.enc.beginComputePass({ timestampWrites: { querySet: this.querySet, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 } });
      this.queryFamilies.push(op.family);
    }
    pass!.setPipeline(op.pipeline);
    op.groups.forEach((g, i) => pass!.setBindGroup(i, g));
    pass!.dispatchWorkgroups(x, y, z);
    if (this.profile && !this.profileWholeStep) pass!.end();
  }

  private mat(op: MatOp, n: number): void {
    if (n <= MATVEC_MAX_TOKENS) {
      const [gx, gy] = grid(op.rows);
      this.dispatch(op.matvec, gx, gy, n);
    } else {
      this.dispatch(op.matmul, Math.ceil(op.rows / 64), Math.ceil(n / 64));
    }
  }

  /** Identity of an encoded step: a prepared command buffer is reused only for the same one. */
  private stepKey(m: number, nPast: number, rows: number, allRows: boolean, greedy: boolean): string {
    return `${m}/${nPast}/${rows}/${allRows}/${greedy}/${this.useFused}`;
  }

  /** Ends the pass and the encoder (no profiling) and returns the command buffer. */
  private endEncoding(copies: (enc: GPUCommandEncoder) => void): GPUCommandBuffer {
    this.pass?.end();
    this.pass = undefined;
    copies(this.enc);
    return this.enc.finish();
  }

  private async finish(copies: (enc: GPUCommandEncoder) => void): Promise<void> {
    this.prepared = undefined; // other work (KV maintenance) may have rewritten shared uniforms
    this.pass?.end();
    this.pass = undefined;
    let resolve: GPUBuffer | undefined;
    let readTimes: GPUBuffer | undefined;
    const nq = this.queryFamilies.length * 2;
    if (this.profile && nq > 0) {
      resolve = this.device.createBuffer({ size: nq * 8, usage: BufferUsage.QUERY_RESOLVE | BufferUsage.COPY_SRC });
      readTimes = this.device.createBuffer({ size: nq * 8, usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST });
      this.enc.resolveQuerySet(this.querySet!, 0, nq, resolve, 0);
      this.enc.copyBufferToBuffer(resolve, 0, readTimes, 0, nq * 8);
    }
    copies(this.enc);
    this.device.queue.submit([this.enc.finish()]);
    if (readTimes) {
      await readTimes.mapAsync(MapMode.READ);
      const t = new BigUint64Array(readTimes.getMappedRange());
      this.queryFamilies.forEach((f, i) => {
        const e = this.kernelTimes.get(f) ?? { ns: 0, count: 0 };
        e.ns += Number(t[2 * i + 1]! - t[2 * i]!);
        e.count++;
        this.kernelTimes.set(f, e);
      });
      readTimes.unmap();
      readTimes.destroy();
      resolve!.destroy();
    }
  }

  // ---------------------------------------------------------------- forward

  private queue: Promise<unknown> = Promise.resolve();

  /** Runs GPU work one call at a time: every call shares the scratch buffers and the encoder. */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  forward(batches: SequenceBatch[]): Promise<ForwardResult[]> {
    return this.exclusive(async () => {
      const out: ForwardResult[] = [];
      for (const b of batches) out.push({ logits: (await this.forwardOne(b, false)) as Float32Array });
      return out;
    });
  }

  /**
   * Like forward, but returns the greedy (argmax) token of each logits row computed on the GPU,
   * reading back 4 bytes per row instead of the logits.
   */
  forwardGreedy(batch: SequenceBatch): Promise<Int32Array> {
    return this.exclusive(async () => (await this.forwardOne(batch, true)) as Int32Array);
  }

  private checkBatch(b: SequenceBatch): number {
    this.checkAlive();
    const n = b.tokens.length;
    if (b.positions.length !== n) throw new CachetError(`forward: ${n} tokens but ${b.positions.length} positions`, 'Pass one RoPE position per new token.');
    const nPast = b.context.length - n;
    if (nPast < 0) throw new CachetError(`forward: context has ${b.context.length} slots for ${n} new tokens`, "context must list the old tokens' slots followed by one slot per new token.");
    if (b.context.length > this.kvSlots) throw new CachetError(`forward: context of ${b.context.length} slots exceeds the ${this.kvSlots} allocated`, 'Allocate more KV slots or shorten the context.');
    this.checkSlots(b.context, 'forward');
    for (const t of b.tokens) {
      if (!Number.isInteger(t) || t < 0 || t >= this.config.vocabSize) {
        throw new CachetError(`forward: token id ${t} is outside the vocabulary (0..${this.config.vocabSize - 1})`, "Tokenize with the model's own tokenizer.");
      }
    }
    return nPast;
  }

  private checkSlots(slots: Int32Array, what: string): void {
    for (const s of slots) {
      if (!Number.isInteger(s) || s < 0 || s >= this.kvSlots) throw new CachetError(`${what}: KV slot ${s} is outside 0..${this.kvSlots - 1}`, 'Use slots handed out by the KV manager.');
    }
  }

  private checkAlive(): void {
    if (this.disposed) throw new CachetError('the WebGPU backend was disposed', 'Create a new backend after dispose().');
    this.gpu.check();
  }

  private async forwardOne(b: SequenceBatch, greedy: boolean): Promise<Float32Array | Int32Array> {
    const c = this.config;
    const nPast0 = this.checkBatch(b);
    const n = b.tokens.length;
    const wantAll = b.logits === 'all';
    const rowsOut = b.logits === 'none' ? 0 : wantAll ? n : 1;
    const logits = greedy ? new Int32Array(rowsOut) : new Float32Array(rowsOut * c.vocabSize);
    if (n === 0) return logits;
    const q = this.device.queue;
    q.writeBuffer(this.ctxBuf, 0, b.context);
    const chunk = wantAll ? Math.min(this.maxTokens, MAX_LOGIT_ROWS) : this.maxTokens;
    for (let s = 0; s < n; s += chunk) {
      const m = Math.min(chunk, n - s);
      const nPast = nPast0 + s;
      const last = s + m === n;
      const rows = wantAll ? m : last && rowsOut ? 1 : 0;
      q.writeBuffer(this.tokBuf, 0, b.tokens.subarray(s, s + m));
      q.writeBuffer(this.ropeCs, 0, ropeTable(c.rope, b.positions.subarray(s, s + m)));
      q.writeBuffer(this.step, 0, new Uint32Array([m, nPast, nPast + m, 0]));
      const readBytes = greedy ? rows * 4 : rows * c.vocabSize * 4;
      const copies = (enc: GPUCommandEncoder) => {
        if (rows) enc.copyBufferToBuffer(greedy ? this.argmaxOut : this.logits, 0, greedy ? this.argmaxRead : this.logitsRead, 0, readBytes);
      };
      const key = this.stepKey(m, nPast, rows, wantAll, greedy);
      const ahead = !this.profile && this.prepared?.key === key ? this.prepared : undefined;
      this.prepared = undefined;
      if (ahead) {
        // encoded while the previous step ran: only the data written above differs
        this.device.queue.submit([ahead.commands]);
      } else {
        const t0 = performance.now();
        this.encodeStep(m, nPast, rows, wantAll, greedy);
        this.encodeMs = performance.now() - t0;
        await this.finish(copies);
      }
      // A decode step is usually followed by the next position's: encode it now, while the GPU
      // runs this one, so the host's ~1 ms of encoding overlaps GPU time instead of adding to it.
      if (this.encodeAhead && n === 1 && !this.profile && nPast + 2 <= this.kvSlots) {
        const t0 = performance.now();
        this.encodeStep(1, nPast + 1, rows, wantAll, greedy);
        this.prepared = { key: this.stepKey(1, nPast + 1, rows, wantAll, greedy), commands: this.endEncoding(copies) };
        this.encodeMs = performance.now() - t0; // overlapped with the GPU's work on this step
      }
      if (rows) {
        const rb = greedy ? this.argmaxRead : this.logitsRead;
        await rb.mapAsync(MapMode.READ, 0, readBytes);
        const data = rb.getMappedRange(0, readBytes);
        if (greedy) (logits as Int32Array).set(new Int32Array(data), wantAll ? s : 0);
        else (logits as Float32Array).set(new Float32Array(data), (wantAll ? s : 0) * c.vocabSize);
        rb.unmap();
      }
      this.gpu.check();
    }
    return logits;
  }

  /**
   * Split of an nCtx-key context for attention-decode.wgsl: enough splits for about
   * DECODE_TARGET_GROUPS workgroups, 32..DECODE_SPLIT_KEYS keys each (a multiple of 32), and no
   * more splits x queries than the partials buffer holds; undefined when the context is too long.
   */
  private decodeSplits(nCtx: number, m: number): { keys: number; splits: number } | undefined {
    const want = Math.max(1, Math.ceil(DECODE_TARGET_GROUPS / (this.config.nKvHeads * m)));
    const keys = Math.min(DECODE_SPLIT_KEYS, Math.max(32, 32 * Math.ceil(nCtx / (32 * want))));
    const splits = Math.ceil(nCtx / keys);
    return splits * m <= SPLIT_BUDGET ? { keys, splits } : undefined;
  }

  /** Encodes one step of m tokens: all layers, then the LM head for `rows` rows. */
  private encodeStep(m: number, nPast: number, rows: number, allRows: boolean, greedy: boolean): void {
    const c = this.config;
    const nCtx = nPast + m;
    // Split-K: with few queries, spread the context over more workgroups. The specialised decode
    // kernel takes at most DECODE_SPLIT_KEYS keys per split and aims at DECODE_TARGET_GROUPS
    // workgroups; the partials buffer holds SPLIT_BUDGET splits x queries.
    const split = this.useFused && m <= MATVEC_MAX_TOKENS && this.ops[0]?.attnSplit ? this.decodeSplits(nCtx, m) : undefined;
    const targetSplits = Math.max(1, Math.floor(SPLIT_BUDGET / m));
    const keysPerSplit = split?.keys ?? 32 * Math.ceil(nCtx / (32 * targetSplits));
    const splits = split?.splits ?? Math.ceil(nCtx / keysPerSplit);
    this.device.queue.writeBuffer(this.attnParams, 0, uniformBytes([c.nHeads, c.nKvHeads, c.headDim, keysPerSplit, splits, 1 / Math.sqrt(c.headDim), 0, 0], [5]));
    const ropeGroups = (heads: number) => Math.ceil((m * heads * c.headDim) / 2 / 64);
    const ffGroups = grid(Math.ceil((m * c.nFf) / 256));

    this.begin();
    this.dispatch(this.embed, m);
    const fusedStep = m <= MATVEC_MAX_TOKENS && this.useFused;
    const fusedGrid = (rows: number, op: Op) => grid(Math.ceil(rows / (op.rowsPerGroup ?? 8)));
    const qkvRows = c.nHeads * c.headDim + 2 * c.nKvHeads * c.headDim;
    for (const L of this.ops) {
      const F = fusedStep ? L.fused : undefined;
      if (F) {
        if (!F.norm) this.dispatch(L.attnNorm, m);
        const [gx, gy] = fusedGrid(qkvRows, F.qkv);
        this.dispatch(F.qkv, gx, gy, m);
      } else {
        this.dispatch(L.attnNorm, m);
        this.mat(L.q, m);
        this.mat(L.k, m);
        this.mat(L.v, m);
      }
      if (this.useFused) {
        this.dispatch(L.ropeQkv, ropeGroups(c.nHeads) + ropeGroups(c.nKvHeads));
      } else {
        this.dispatch(L.ropeQ, ropeGroups(c.nHeads));
        this.dispatch(L.storeKv, ropeGroups(c.nKvHeads));
      }
      if (L.attnPrefill && m > MATVEC_MAX_TOKENS && this.useFused) {
        this.dispatch(L.attnPrefill, Math.ceil(m / 16), c.nHeads);
      } else {
        if (split) {
          this.dispatch(L.attnSplit!, splits, c.nKvHeads, m);
          this.dispatch(L.attnMerge!, c.nHeads, m);
        } else {
          this.dispatch(L.attnPartial, splits, c.nHeads, m);
          this.dispatch(L.attnCombine, c.nHeads, m);
        }
      }
      if (F) {
        const [ox, oy] = fusedGrid(c.nEmbd, F.o);
        this.dispatch(F.o, ox, oy, m);
        if (!F.norm) this.dispatch(L.ffnNorm, m);
        if (F.gateUp) {
          const [fx, fy] = fusedGrid(c.nFf, F.gateUp);
          this.dispatch(F.gateUp, fx, fy, m);
        } else {
          this.mat(L.up, m);
          this.dispatch(L.act, ffGroups[0], ffGroups[1]);
        }
        const [dx, dy] = fusedGrid(c.nEmbd, F.down);
        this.dispatch(F.down, dx, dy, m);
        continue;
      }
      this.mat(L.o, m);
      this.dispatch(L.ffnNorm, m);
      if (L.gate) this.mat(L.gate, m);
      this.mat(L.up, m);
      this.dispatch(L.act, ffGroups[0], ffGroups[1]);
      this.mat(L.down, m);
    }
    if (rows === 0) return;
    if (allRows) {
      this.dispatch(this.outNormAll, m);
      this.mat(this.head, m);
    } else if (this.headFused && this.useFused) {
      const h = this.headMatrix;
      this.device.queue.writeBuffer(this.headFusedParams, 0, uniformBytes([h.rows, 0, 0, h.k, h.wtype === 'q8r' ? h.scaleOff : h.rowBytes, 0, 0, 1, c.norm.eps, m - 1], [8]));
      const [gx, gy] = fusedGrid(h.rows, this.headFused);
      this.dispatch(this.headFused, gx, gy, 1);
    } else {
      this.device.queue.writeBuffer(this.headNormParams, 0, uniformBytes([c.nEmbd, c.norm.eps, 1, m - 1], [1]));
      const h = this.headMatrix;
      this.device.queue.writeBuffer(this.headParamsLast, 0, uniformBytes([h.rows, h.k, h.rowBytes, 1, 0, 0, h.scaleOff, 0]));
      this.dispatch(this.outNormLast, 1);
      const [gx, gy] = grid(h.rows);
      this.dispatch(this.headLast, gx, gy, 1);
    }
    if (greedy && this.useFused && this.argmaxParts > 1) {
      this.dispatch(this.argmaxPart, this.argmaxParts, rows);
      this.dispatch(this.argmaxFinal, rows);
    } else if (greedy) this.dispatch(this.argmax, rows);
  }

  // ---------------------------------------------------------------- KV maintenance

  private kvOp(entry: string, layer: number, g0: Record<number, GPUBuffer>): Op {
    const L = this.layers[layer]!;
    return this.op('kv', entry, 'f32', g0, { 0: L.kCache, 1: L.vCache });
  }

  private get kvRow(): number {
    return this.config.nKvHeads * this.config.headDim;
  }

  copySlots(src: Int32Array, dst: Int32Array): Promise<void> {
    return this.exclusive(() => this.copySlotsNow(src, dst));
  }

  private async copySlotsNow(src: Int32Array, dst: Int32Array): Promise<void> {
    this.checkAlive();
    if (src.length !== dst.length) throw new CachetError(`copySlots: ${src.length} sources but ${dst.length} destinations`, 'Pass one destination per source slot.');
    this.checkSlots(src, 'copySlots');
    this.checkSlots(dst, 'copySlots');
    if (!src.length) return;
    const temp = [bufferFrom(this.device, src), bufferFrom(this.device, dst), uniformFrom(this.device, [src.length, this.kvRow, 0, 0])];
    this.begin();
    const [gx, gy] = grid(Math.ceil((src.length * this.kvRow) / 2 / 64));
    for (let l = 0; l < this.config.nLayers; l++) this.dispatch(this.kvOp('copy_slots', l, { 0: temp[0]!, 1: temp[1]!, 2: this.dummyRw, 3: temp[2]! }), gx, gy);
    await this.finish(() => {});
    await this.device.queue.onSubmittedWorkDone();
    temp.forEach((t) => t.destroy());
  }

  rotateKeys(slots: Int32Array, delta: Int32Array): Promise<void> {
    return this.exclusive(() => this.rotateKeysNow(slots, delta));
  }

  private async rotateKeysNow(slots: Int32Array, delta: Int32Array): Promise<void> {
    this.checkAlive();
    const c = this.config;
    if (slots.length !== delta.length) throw new CachetError(`rotateKeys: ${slots.length} slots but ${delta.length} deltas`, 'Pass one delta per slot.');
    this.checkSlots(slots, 'rotateKeys');
    if (!slots.length) return;
    const neox = c.rope.type === 'neox' ? 1 : 0;
    const temp = [bufferFrom(this.device, slots), bufferFrom(this.device, ropeTable(c.rope, delta)), uniformFrom(this.device, [c.nKvHeads, c.headDim, c.rope.dim, neox, slots.length])];
    this.begin();
    const groups = Math.ceil((slots.length * c.nKvHeads * (c.rope.dim / 4)) / 64);
    for (let l = 0; l < c.nLayers; l++) {
      const L = this.layers[l]!;
      const op = this.op('rope', 'rope_shift', 'f32', { 0: this.dummyRw, 1: temp[1]!, 2: temp[2]!, 3: this.step, 4: this.dummy, 5: this.dummy, 6: temp[0]! }, { 0: L.kCache, 1: L.vCache });
      this.dispatch(op, groups);
    }
    await this.finish(() => {});
    await this.device.queue.onSubmittedWorkDone();
    temp.forEach((t) => t.destroy());
  }

  /** Slots per readSlots/writeSlots round, so one round's f32 image stays small. */
  private slotsPerRound(): number {
    const bytesPerSlot = this.config.nLayers * 2 * this.kvRow * 4;
    return Math.max(1, Math.floor(Math.min(64 * 2 ** 20, this.gpu.limits.maxStorageBufferBindingSize) / bytesPerSlot));
  }

  readSlots(slots: Int32Array): Promise<Float32Array> {
    return this.exclusive(() => this.readSlotsNow(slots));
  }

  private async readSlotsNow(slots: Int32Array): Promise<Float32Array> {
    this.checkAlive();
    this.checkSlots(slots, 'readSlots');
    const nL = this.config.nLayers;
    const row2 = 2 * this.kvRow;
    const out = new Float32Array(nL * slots.length * row2);
    const per = this.slotsPerRound();
    for (let s0 = 0; s0 < slots.length; s0 += per) {
      const part = slots.subarray(s0, s0 + per);
      const cnt = part.length;
      const img = emptyBuffer(this.device, nL * cnt * row2 * 4);
      const idx = bufferFrom(this.device, part);
      const params = Array.from({ length: nL }, (_, l) => uniformFrom(this.device, [cnt, this.kvRow, l * cnt * row2, 0]));
      this.begin();
      const [gx, gy] = grid(Math.ceil((cnt * this.kvRow) / 2 / 64));
      for (let l = 0; l < nL; l++) this.dispatch(this.kvOp('gather_slots', l, { 0: idx, 1: idx, 2: img, 3: params[l]! }), gx, gy);
      await this.finish(() => {});
      const data = new Float32Array(await readBuffer(this.device, img, nL * cnt * row2 * 4));
      for (let l = 0; l < nL; l++) out.set(data.subarray(l * cnt * row2, (l + 1) * cnt * row2), (l * slots.length + s0) * row2);
      [img, idx, ...params].forEach((b) => b.destroy());
    }
    return out;
  }

  writeSlots(slots: Int32Array, data: Float32Array): Promise<void> {
    return this.exclusive(() => this.writeSlotsNow(slots, data));
  }

  private async writeSlotsNow(slots: Int32Array, data: Float32Array): Promise<void> {
    this.checkAlive();
    this.checkSlots(slots, 'writeSlots');
    const nL = this.config.nLayers;
    const row2 = 2 * this.kvRow;
    if (data.length !== nL * slots.length * row2) {
      throw new CachetError(`writeSlots: ${data.length} floats for ${slots.length} slots (expected ${nL * slots.length * row2})`, 'Pass data laid out as readSlots returns it.');
    }
    const per = this.slotsPerRound();
    for (let s0 = 0; s0 < slots.length; s0 += per) {
      const part = slots.subarray(s0, s0 + per);
      const cnt = part.length;
      const img = new Float32Array(nL * cnt * row2);
      for (let l = 0; l < nL; l++) img.set(data.subarray((l * slots.length + s0) * row2, (l * slots.length + s0 + cnt) * row2), l * cnt * row2);
      const imgBuf = bufferFrom(this.device, img);
      const idx = bufferFrom(this.device, part);
      const params = Array.from({ length: nL }, (_, l) => uniformFrom(this.device, [cnt, this.kvRow, l * cnt * row2, 0]));
      this.begin();
      const [gx, gy] = grid(Math.ceil((cnt * this.kvRow) / 2 / 64));
      for (let l = 0; l < nL; l++) this.dispatch(this.kvOp('scatter_slots', l, { 0: idx, 1: idx, 2: imgBuf, 3: params[l]! }), gx, gy);
      await this.finish(() => {});
      await this.device.queue.onSubmittedWorkDone();
      [imgBuf, idx, ...params].forEach((b) => b.destroy());
    }
  }

  /** Time each dispatch from now on (needs timestamp-query); returns whether profiling is on. */
  /**
   * Timestamp profiling: true times every dispatch in its own pass (per-family times, each
   * inflated by a pass's fixed cost); 'step' times each submitted step's single pass as a whole
   * (family 'step' in kernelTimes).
   */
  setProfiling(on: boolean | 'step'): boolean {
    this.prepared = undefined;
    this.profileWholeStep = on === 'step';
    this.profile = !!on && this.gpu.features.timestamps;
    return this.profile;
  }

  memory(): MemoryStats {
    return { weightsBytes: this.weightsBytes, kvBytes: this.kvBytes, scratchBytes: this.scratchBytes };
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await this.queue; // let work already queued finish before its buffers go
    for (const b of this.allBuffers) b.destroy();
    this.querySet?.destroy();
    this.gpu.destroy();
  }
}

/** BackendFactory for the WebGPU backend; throws BackendUnavailableError when there is no GPU. */
export async function createWebGpuBackend(weights: ModelWeights, options: WebGpuBackendOptions): Promise<WebGpuBackend> {
  const gpu = await createGpuDevice({ dawnFlags: options.dawnFlags, allowSubgroups: options.subgroups, timestamps: true });
  if (gpu.software && options.allowSoftwareGpu === false) {
    gpu.destroy();
    throw new BackendUnavailableError(
      `the only WebGPU adapter is a software renderer (${gpu.adapterName})`,
      'A GPU emulated on the CPU is slower than the CPU backend; set cachet.backend to "webgpu" to use it anyway.',
    );
  }
  try {
    const sources = await loadKernelSources();
    const kvF16 = options.kvF16 ?? gpu.features.f16;
    const pipes = new Pipelines(gpu, sources, { kvF16, subgroups: gpu.features.subgroups });
    const backend = new WebGpuBackend(gpu, pipes, weights.config, options);
    await backend.init(weights, options);
    return backend;
  } catch (e) {
    gpu.destroy();
    throw e;
  }
}
