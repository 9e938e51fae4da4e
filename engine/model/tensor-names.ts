// GGUF tensor names (as llama.cpp's llm_tensor names) and which ones each architecture requires.

import type { ModelConfig } from './types';

export const TOKEN_EMBD = 'token_embd.weight';
export const OUTPUT_NORM = 'output_norm.weight';
export const OUTPUT_NORM_BIAS = 'output_norm.bias';
export const OUTPUT = 'output.weight';

export interface LayerTensorNames {
  attnNorm: string;
  attnNormBias?: string;
  q: string;
  k: string;
  v: string;
  o: string;
  qBias?: string;
  kBias?: string;
  vBias?: string;
  oBias?: string;
  ffnNorm: string;
  ffnNormBias?: string;
  /** Only for gated (SwiGLU) FFNs. */
  gate?: string;
  up: string;
  down: string;
  upBias?: string;
  downBias?: string;
}

/** Names of layer `i`'s tensors for this config; optional fields are set only when the arch has them. */
export function layerTensorNames(config: ModelConfig, i: number): LayerTensorNames {
  const p = `blk.${i}.`;
  const layerNorm = config.norm.type === 'layer';
  const names: LayerTensorNames = {
    attnNorm: `${p}attn_norm.weight`,
    q: `${p}attn_q.weight`,
    k: `${p}attn_k.weight`,
    v: `${p}attn_v.weight`,
    o: `${p}attn_output.weight`,
    ffnNorm: `${p}ffn_norm.weight`,
    up: `${p}ffn_up.weight`,
    down: `${p}ffn_down.weight`,
  };
  if (layerNorm) {
    names.attnNormBias = `${p}attn_norm.bias`;
    names.ffnNormBias = `${p}ffn_norm.bias`;
  }
  if (config.qkvBias || config.linearBias) {
    names.qBias = `${p}attn_q.bias`;
    names.kBias = `${p}attn_k.bias`;
    names.vBias = `${p}attn_v.bias`;
  }
  if (config.linearBias) {
    names.oBias = `${p}attn_output.bias`;
    names.upBias = `${p}ffn_up.bias`;
    names.downBias = `${p}ffn_down.bias`;
  }
  if (config.ffn.type === 'gated') names.gate = `${p}ffn_gate.weight`;
  return names;
}

/** Every tensor the forward pass reads, in file order (embeddings, layers, final norm, head). */
export function requiredTensorNames(config: ModelConfig): string[] {
  const out = [TOKEN_EMBD];
  for (let i = 0; i < config.nLayers; i++) {
    for (const name of Object.values(layerTensorNames(config, i))) if (name) out.push(name);
  }
  out.push(OUTPUT_NORM);
  if (config.norm.type === 'layer') out.push(OUTPUT_NORM_BIAS);
  if (!config.tiedEmbeddings) out.push(OUTPUT);
  return out;
}

/** The tensor the LM head multiplies by. */
export function lmHeadName(config: ModelConfig): string {
  return config.tiedEmbeddings ? TOKEN_EMBD : OUTPUT;
}
