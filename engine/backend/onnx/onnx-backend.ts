// CPU backend on onnxruntime-node: every matmul (quantized ones through MatMulNBits) runs in ORT
// stage graphs built in memory from the GGUF weights. The KV cache stays engine-owned (host slot
// arrays, shared with the prefix and chunk caches): between stages JS applies RoPE, writes the new
// K/V to their slots (head-major, f16 by default: head-kv-store.ts), and one shared attention graph
// reads the context's slots per KV head (views when they are contiguous). Measured choice: attention
// in JS loops was ~100x slower than ORT's sgemm at 4k.

import { cpus } from 'node:os';
import { BackendUnavailableError, CachetError } from '../../errors';
import { dequantizeRow } from '../../quant';
import { TOKEN_EMBD, lmHeadName } from '../../model/tensor-names';
import type { ModelConfig, ModelWeights, TensorView } from '../../model/types';
import { Rope } from '../reference/rope';
import type { Backend, BackendOptions, ForwardResult, MemoryStats, SequenceBatch } from '../types';
import { attentionMask, buildAttentionGraph } from './attention-graph';
import { HeadKvStore, type KvArray, type KvType } from './head-kv-store';
import { buildStageGraphs } from './stage-graphs';

type Ort = typeof import('onnxruntime-node');
type Session = import('onnxruntime-node').InferenceSession;

export interface OnnxBackendOptions extends BackendOptions {
  /**
   * MatMulNBits accuracy level. 4 (default) multiplies int8-quantized activation blocks with the
   * int8/int4 weights, as llama.cpp does for these formats (q8_0 activations): logits within ~2e-2
   * of f32 math, greedy tokens the same in our tests. 0 computes in f32 on the dequantized weights
   * (exact) but ORT has no fast 8-bit kernel for it: Cachet-Tiny Q8_0 decoded 30x slower here
   * (133 vs 4.4 ms/token, bench/tmp probe, 2-core host).
   */
  accuracyLevel?: number;
  /** Dequantize Q8_0/Q4_0 to f32 MatMul instead of MatMulNBits (to measure the difference). */
  forceF32?: boolean;
  /**
   * KV cache storage. 'f16' (default, as llama.cpp's default cache) halves the bytes attention
   * reads per token, which is what decode at long context is bound by; logits move by ~1e-3 of
   * their range. 'f32' stores K/V exactly (readSlots returns what writeSlots got).
   */
  kvType?: KvType;
}

/** Threads that leave the editor a core: physical cores minus one, at least one. */
/** Session options for every graph of the backend (and benchmarks of them) with `threads` intra-op threads. */
export function ortSessionOptions(threads: number) {
  return {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    // Spinning worker threads collapse when another process wants the same cores (the editor,
    // a build): 2 spinning threads on a shared 2-core box decoded 17x slower than 1 thread.
    extra: { session: { intra_op: { allow_spinning: '0' } } },
  } as const;
}

export function defaultThreads(): number {
  return Math.max(1, cpus().length - 1);
}

async function loadOrt(): Promise<Ort> {
  try {
    return await import('onnxruntime-node');
  } catch (e) {
    throw new BackendUnavailableError(
      `onnxruntime-node could not be loaded (${(e as Error).message})`,
      'The CPU backend needs onnxruntime-node for this platform; reinstall the extension, or set cachet.backend to "reference".',
      { cause: e },
    );
  }
}

export class OnnxBackend implements Backend {
  readonly name = 'onnx';
  readonly supportsRows = true;
  private disposed = false;
  private readonly rope: Rope;
  private readonly embd: TensorView;

  private constructor(
    readonly config: ModelConfig,
    private readonly ort: Ort,
    private readonly stages: Session[],
    /** [unmasked (every query sees the whole context), masked] */
    private readonly attention: [Session, Session],
    private readonly kv: HeadKvStore,
    weights: ModelWeights,
    private readonly weightsBytes: number,
  ) {
    this.rope = new Rope(config.rope, config.headDim);
    this.embd = weights.get(config.tiedEmbeddings ? lmHeadName(config) : TOKEN_EMBD);
  }

  static async create(weights: ModelWeights, options: OnnxBackendOptions): Promise<OnnxBackend> {
    const ort = await loadOrt();
    const c = weights.config;
    if (!Number.isInteger(options.kvSlots) || options.kvSlots <= 0) {
      throw new CachetError(`kvSlots must be a positive integer, got ${options.kvSlots}`, 'Pass the number of KV slots (tokens) to allocate.');
    }
    const graphs = buildStageGraphs(weights, { accuracyLevel: options.accuracyLevel ?? 4, forceF32: options.forceF32 });
    const threads = options.threads ?? defaultThreads();
    const sessionOptions = ortSessionOptions(threads);
    const sessions: Session[] = [];
    let bytes = 0;
    for (let i = 0; i < graphs.length; i++) {
      bytes += graphs[i]!.byteLength;
      sessions.push(await ort.InferenceSession.create(graphs[i]!, sessionOptions));
      options.onProgress?.((i + 1) / graphs.length, `graph ${i + 1}/${graphs.length}`);
    }
    const kvType = options.kvType ?? 'f16';
    if (kvType !== 'f16' && kvType !== 'f32') throw new CachetError(`kvType must be 'f16' or 'f32', got ${String(kvType)}`, 'Leave kvType unset for f16, or pass \'f32\' for an exact cache.');
    // The unmasked graph serves single-token steps, whose small MatMuls do not gain from a second
    // thread (waking it costs more): bench/cpu-attention.ts, 24 layers, f16 KV, 1 vs 2 threads:
    // 2.3-2.9 vs 3.2-4.7 ms at 512 context, 11.2-12.3 vs 11.7-12.8 ms at 4k. Prefill chunks keep
    // every thread (a 512-token chunk at 4k: 1.4 s with 2 threads, 2.5 s with 1).
    const attention: [Session, Session] = [
      await ort.InferenceSession.create(buildAttentionGraph(c, { kvType, masked: false }), { ...sessionOptions, intraOpNumThreads: 1 }),
      await ort.InferenceSession.create(buildAttentionGraph(c, { kvType, masked: true }), sessionOptions),
    ];
    const kv = new HeadKvStore(c.nLayers, options.kvSlots, c.nKvHeads, c.headDim, kvType);
    return new OnnxBackend(c, ort, sessions, attention, kv, weights, bytes);
  }

  async forward(batches: SequenceBatch[]): Promise<ForwardResult[]> {
    this.checkAlive();
    const results: ForwardResult[] = [];
    for (const b of batches) results.push(await this.forwardOne(b));
    return results;
  }

  private tensor(data: Float32Array, rows: number, cols: number) {
    return new this.ort.Tensor('float32', data, [rows, cols]);
  }

  private kvTensor(data: KvArray, ctx: number) {
    const dims = [1, ctx, this.config.headDim];
    return data instanceof Float32Array ? new this.ort.Tensor('float32', data, dims) : new this.ort.Tensor('float16', data, dims);
  }

  /** Context index of each new token: nPast + t, or rows[t] for a scattered recompute. */
  private cellsOf(b: SequenceBatch): Int32Array {
    const n = b.tokens.length;
    const nPast = b.context.length - n;
    if (!b.rows) {
      if (nPast < 0) throw new CachetError(`forward: context has ${b.context.length} slots for ${n} new tokens`, 'context lists old slots then one slot per new token.');
      return Int32Array.from({ length: n }, (_, t) => nPast + t);
    }
    if (b.rows.length !== n) throw new CachetError(`forward: ${n} tokens but ${b.rows.length} rows`, 'Pass one context index per new token in rows.');
    for (let t = 0; t < n; t++) {
      const r = b.rows[t]!;
      if (!Number.isInteger(r) || r < 0 || r >= b.context.length || (t > 0 && r <= b.rows[t - 1]!)) {
        throw new CachetError(`forward: rows[${t}] = ${r} is not an ascending index into the ${b.context.length}-slot context`, 'rows must list distinct context indices in ascending order.');
      }
    }
    return b.rows;
  }

  private async forwardOne(b: SequenceBatch): Promise<ForwardResult> {
    const c = this.config;
    const n = b.tokens.length;
    if (b.positions.length !== n) {
      throw new CachetError(`forward: ${n} tokens but ${b.positions.length} positions`, 'Pass one RoPE position per new token.');
    }
    const cells = this.cellsOf(b);
    this.kv.checkSlots(b.context, 'forward');
    if (n === 0) return { logits: new Float32Array(0) };
    const E = c.nEmbd;
    const qDim = c.nHeads * c.headDim;
    const kvDim = c.nKvHeads * c.headDim;
    let x: Float32Array = new Float32Array(n * E);
    for (let t = 0; t < n; t++) {
      const id = b.tokens[t]!;
      if (!Number.isInteger(id) || id < 0 || id >= c.vocabSize) {
        throw new CachetError(`forward: token id ${id} is outside the vocabulary (0..${c.vocabSize - 1})`, 'Tokenize with the model\'s own tokenizer.');
      }
      dequantizeRow(this.embd.type, this.embd.data, id, E, x, t * E);
    }
    let attn: Float32Array = new Float32Array(0);
    // Columns past the last new token's cell are hidden from every query: leave them out. The mask
    // is needed only when some query sees less than that (n > 1).
    const ctx = cells[n - 1]! + 1;
    const context = b.context.subarray(0, ctx);
    const visible = Array.from(cells, (cell) => cell + 1);
    const masked = visible.some((v) => v < ctx);
    const mask = masked ? this.tensor(attentionMask(visible, ctx), n, ctx) : undefined;
    const attention = this.attention[masked ? 1 : 0];
    for (let l = 0; l <= c.nLayers; l++) {
      const stageFeeds: Record<string, import('onnxruntime-node').Tensor> = { x: this.tensor(x, n, E) };
      if (l > 0) stageFeeds.attn = this.tensor(attn, n, qDim);
      const out = await this.stages[l]!.run(stageFeeds);
      if (l > 0) x = out.x_out!.data as Float32Array;
      if (l === c.nLayers) break;
      const q = out.q!.data as Float32Array;
      const k = out.k!.data as Float32Array;
      const v = out.v!.data as Float32Array;
      for (let t = 0; t < n; t++) {
        this.rope.apply(q, t * qDim, c.nHeads, b.positions[t]!);
        this.rope.apply(k, t * kvDim, c.nKvHeads, b.positions[t]!);
        this.kv.put(l, k, v, t, b.context[cells[t]!]!);
      }
      const feeds: Record<string, import('onnxruntime-node').Tensor> = { q: this.tensor(q, n, qDim) };
      if (mask) feeds.mask = mask;
      for (let h = 0; h < c.nKvHeads; h++) {
        feeds[`k${h}`] = this.kvTensor(this.kv.gather(this.kv.k[l]![h]!, context), ctx);
        feeds[`v${h}`] = this.kvTensor(this.kv.gather(this.kv.v[l]![h]!, context), ctx);
      }
      const a = await attention.run(feeds);
      attn = a.out!.data as Float32Array;
    }
    if (b.logits === 'none') return { logits: new Float32Array(0) };
    const first = b.logits === 'last' ? n - 1 : 0;
    const rows = n - first;
    const head = await this.stages[c.nLayers + 1]!.run({ x: this.tensor(x.subarray(first * E), rows, E) });
    return { logits: new Float32Array(head.logits!.data as Float32Array) };
  }

  async copySlots(src: Int32Array, dst: Int32Array): Promise<void> {
    this.checkAlive();
    this.kv.copy(src, dst);
  }

  async rotateKeys(slots: Int32Array, delta: Int32Array): Promise<void> {
    this.checkAlive();
    this.kv.rotateKeys(this.rope, slots, delta);
  }

  async readSlots(slots: Int32Array): Promise<Float32Array> {
    this.checkAlive();
    return this.kv.read(slots);
  }

  async writeSlots(slots: Int32Array, data: Float32Array): Promise<void> {
    this.checkAlive();
    this.kv.write(slots, data);
  }

  memory(): MemoryStats {
    return { weightsBytes: this.weightsBytes, kvBytes: this.kv.bytes, scratchBytes: 0 };
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await Promise.all([...this.stages, ...this.attention].map((s) => s.release()));
  }

  private checkAlive(): void {
    if (this.disposed) throw new CachetError('the onnx backend was disposed', 'Create a new backend after dispose().');
  }
}

export async function createOnnxBackend(weights: ModelWeights, options: OnnxBackendOptions): Promise<OnnxBackend> {
  return OnnxBackend.create(weights, options);
}
