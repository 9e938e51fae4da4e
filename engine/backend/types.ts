// The one interface every compute backend implements (reference/, webgpu/, onnx/).
//
// The engine's KV manager (engine/kv) owns *which* slots a sequence uses; a backend owns the
// *storage* of those slots (host arrays, GPU buffers). A slot holds one token's K and V for every
// layer and KV head. Keys are stored after RoPE, so a cached chunk moved to another position is
// re-rotated with rotateKeys rather than recomputed.

import type { ModelConfig, ModelWeights } from '../model/types';

export interface BackendOptions {
  /** Total KV slots (tokens) the backend allocates storage for. */
  kvSlots: number;
  /** Report upload progress in [0, 1]. */
  onProgress?: (fraction: number, what: string) => void;
  /** Threads for CPU backends. */
  threads?: number;
  /**
   * GPU backends: accept a software adapter (lavapipe, SwiftShader). Default true; automatic
   * backend choice passes false, because on the CPU the onnx backend is much faster than a GPU
   * emulated on it.
   */
  allowSoftwareGpu?: boolean;
}

/** One sequence's step: n new tokens appended after the sequence's existing context. */
export interface SequenceBatch {
  /** New token ids, length n. */
  tokens: Int32Array;
  /** RoPE position of each new token, length n (usually nPast..nPast+n-1). */
  positions: Int32Array;
  /**
   * KV slots of the whole visible context in order, old tokens first, then the n new ones
   * (length nPast + n). New token i writes its K/V to context[nPast + i] and attends causally
   * to context[0 .. nPast + i].
   */
  context: Int32Array;
  /** Which rows of logits to return: only the last new token, or all n. */
  logits: 'last' | 'all' | 'none';
  /**
   * Scattered recompute (CacheBlend): the index in `context` of each new token, ascending, instead
   * of nPast..nPast+n-1. New token i writes its K/V to context[rows[i]] and attends to
   * context[0 .. rows[i]] inclusive; cells not listed keep their K/V. Only for backends whose
   * `supportsRows` is true (callers fall back to one forward per contiguous run otherwise).
   */
  rows?: Int32Array;
}

export interface ForwardResult {
  /** Row-major [rows, vocab] f32 logits (rows = 1 for 'last', n for 'all', 0 for 'none'). */
  logits: Float32Array;
}

export interface MemoryStats {
  weightsBytes: number;
  kvBytes: number;
  scratchBytes: number;
}

export interface Backend {
  readonly name: 'reference' | 'webgpu' | 'onnx' | string;
  readonly config: ModelConfig;
  /** True when forward() honours SequenceBatch.rows (scattered recompute in one call). */
  readonly supportsRows?: boolean;
  /** Run several sequences' batches (continuous batching); backends may run them one by one. */
  forward(batches: SequenceBatch[]): Promise<ForwardResult[]>;
  /** Copy K/V of slots src[i] -> dst[i] (copy-on-write of shared blocks). */
  copySlots(src: Int32Array, dst: Int32Array): Promise<void>;
  /** Add delta[i] to the RoPE position of the key in slots[i] (chunk reuse at a new position). */
  rotateKeys(slots: Int32Array, delta: Int32Array): Promise<void>;
  /** Read K/V of slots as f32 [layer][slot][K|V][kvHead*headDim], for disk caches and offload. */
  readSlots(slots: Int32Array): Promise<Float32Array>;
  /** Inverse of readSlots. */
  writeSlots(slots: Int32Array, data: Float32Array): Promise<void>;
  memory(): MemoryStats;
  dispose(): Promise<void>;
}

export type BackendFactory = (weights: ModelWeights, options: BackendOptions) => Promise<Backend>;
