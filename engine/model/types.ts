// Architecture-independent description of a decoder-only transformer, read from GGUF metadata.
// Every backend executes the same recipe from this config and these weights.

import type { GgmlType } from '../quant/types';

export type Architecture = 'llama' | 'qwen2' | 'starcoder2';

export interface RopeConfig {
  /** 'normal' rotates adjacent pairs (llama); 'neox' rotates halves (qwen2, starcoder2). */
  type: 'normal' | 'neox';
  /** Dimensions rotated per head (usually headDim). */
  dim: number;
  freqBase: number;
  /** Linear scaling divides positions by factor; 'none' means factor 1. */
  scaling: { type: 'none' | 'linear' | 'yarn'; factor: number; originalContext: number };
}

export interface ModelConfig {
  arch: Architecture;
  name: string;
  nLayers: number;
  nEmbd: number;
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  nFf: number;
  vocabSize: number;
  contextLength: number;
  norm: { type: 'rms' | 'layer'; eps: number };
  rope: RopeConfig;
  /** SwiGLU (gate, up, down) or plain MLP (up, act, down). */
  ffn: { type: 'gated' | 'plain'; activation: 'silu' | 'gelu' };
  /** Biases present on q/k/v (qwen2) or on every linear (starcoder2). */
  qkvBias: boolean;
  linearBias: boolean;
  /** output.weight absent: the LM head reuses token_embd.weight. */
  tiedEmbeddings: boolean;
}

/** A tensor as stored in the file: ggml dims order (ne[0] = innermost, i.e. a row's length). */
export interface TensorView {
  name: string;
  type: GgmlType;
  dims: number[];
  /** Raw bytes in the tensor's own format (quantized blocks as in the file). */
  data: Uint8Array;
}

export interface ModelWeights {
  config: ModelConfig;
  has(name: string): boolean;
  /** Reads the tensor's bytes on demand (files can be larger than the JS heap). */
  get(name: string): TensorView;
  names(): string[];
}
