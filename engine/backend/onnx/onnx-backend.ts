// CPU backend on onnxruntime-node: every matmul (quantized ones through MatMulNBits) runs in ORT
// stage graphs built in memory from the GGUF weights. The KV cache stays engine-owned (host slot
// arrays, shared with the prefix and chunk caches): between stages JS applies RoPE, writes the new
// K/V to their slots, and one shared attention graph reads the context's slots (a view when they
// are contiguous). Measured choice: attention in JS loops was ~100x slower than ORT's sgemm at 4k.

import { cpus } from 'node:os';
import { BackendUnavailableError, CachetError } from '../../errors';
import { dequantizeRow } from '../../quant';
import { TOKEN_EMBD, lmHeadName } from '../../model/tensor-names';
import type { ModelConfig, ModelWeights, TensorView } from '../../model/types';
import { KvStore } from '../reference/kv-store';
import { Rope } from '../reference/rope';
import type { Backend, BackendOptions, ForwardResult, MemoryStats, SequenceBatch } from '../types';
import { buildAttentionGraph, causalMask, gatherSlots } from './attention-graph';
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
}

/** Threads that leave the editor a core: physical cores minus one, at least one. */
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
  private disposed = false;
  private readonly rope: Rope;
  private readonly embd: TensorView;

  private constructor(
    readonly config: ModelConfig,
    private readonly ort: Ort,
    private readonly stages: Session[],
    private readonly attention: Session,
    private readonly kv: KvStore,
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
    const sessionOptions = {
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
      executionMode: 'sequential',
      // Spinning worker threads collapse when another process wants the same cores (the editor,
      // a build): 2 spinning threads on a shared 2-core box decoded 17x slower than 1 thread.
      extra: { session: { intra_op: { allow_spinning: '0' } } },
    } as const;
    const sessions: Session[] = [];
    let bytes = 0;
    for (let i = 0; i < graphs.length; i++) {
      bytes += graphs[i]!.byteLength;
      sessions.push(await ort.InferenceSession.create(graphs[i]!, sessionOptions));
      options.onProgress?.((i + 1) / graphs.length, `graph ${i + 1}/${graphs.length}`);
    }
    const attention = await ort.InferenceSession.create(buildAttentionGraph(c), sessionOptions);
    const kv = new KvStore(c.nLayers, options.kvSlots, c.nKvHeads * c.headDim);
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

  private async forwardOne(b: SequenceBatch): Promise<ForwardResult> {
    const c = this.config;
    const n = b.tokens.length;
    const nPast = b.context.length - n;
    if (b.positions.length !== n || nPast < 0) {
      throw new CachetError(`forward: ${n} tokens, ${b.positions.length} positions, ${b.context.length} context slots`, 'context lists old slots then one slot per new token; one position per token.');
    }
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
    const ctx = b.context.length;
    const mask = this.tensor(causalMask(n, ctx), n, ctx);
    for (let l = 0; l <= c.nLayers; l++) {
      const feeds: Record<string, import('onnxruntime-node').Tensor> = { x: this.tensor(x, n, E) };
      if (l > 0) feeds.attn = this.tensor(attn, n, qDim);
      const out = await this.stages[l]!.run(feeds);
      if (l > 0) x = out.x_out!.data as Float32Array;
      if (l === c.nLayers) break;
      const q = out.q!.data as Float32Array;
      const k = out.k!.data as Float32Array;
      const v = out.v!.data as Float32Array;
      const K = this.kv.k[l]!;
      const V = this.kv.v[l]!;
      for (let t = 0; t < n; t++) {
        this.rope.apply(q, t * qDim, c.nHeads, b.positions[t]!);
        this.rope.apply(k, t * kvDim, c.nKvHeads, b.positions[t]!);
        const slot = b.context[nPast + t]!;
        K.set(k.subarray(t * kvDim, (t + 1) * kvDim), slot * kvDim);
        V.set(v.subarray(t * kvDim, (t + 1) * kvDim), slot * kvDim);
      }
      const a = await this.attention.run({
        q: this.tensor(q, n, qDim),
        k: this.tensor(gatherSlots(K, b.context, kvDim), ctx, kvDim),
        v: this.tensor(gatherSlots(V, b.context, kvDim), ctx, kvDim),
        mask,
      });
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
    this.kv.rotateKeys(this.rope, this.config.nKvHeads, slots, delta);
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
    await Promise.all([...this.stages, this.attention].map((s) => s.release()));
  }

  private checkAlive(): void {
    if (this.disposed) throw new CachetError('the onnx backend was disposed', 'Create a new backend after dispose().');
  }
}

export async function createOnnxBackend(weights: ModelWeights, options: OnnxBackendOptions): Promise<OnnxBackend> {
  return OnnxBackend.create(weights, options);
}
