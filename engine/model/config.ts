// ModelConfig from GGUF metadata, following llama.cpp's hparams loading (llama-model.cpp) for the
// architectures Cachet runs: llama (CodeLlama, DeepSeek-Coder 1.x), qwen2, starcoder2.

import { ModelNotSupportedError } from '../errors';
import type { GgufLike, GgufTensorLike } from './gguf-like';
import { layerTensorNames, lmHeadName, OUTPUT, OUTPUT_NORM, OUTPUT_NORM_BIAS, TOKEN_EMBD } from './tensor-names';
import type { Architecture, ModelConfig, RopeConfig } from './types';

export const SUPPORTED_ARCHITECTURES: readonly Architecture[] = ['llama', 'qwen2', 'starcoder2'];

interface ArchTraits {
  norm: 'rms' | 'layer';
  rope: 'normal' | 'neox';
  ffn: ModelConfig['ffn'];
  qkvBias: boolean;
  linearBias: boolean;
}

const TRAITS: Record<Architecture, ArchTraits> = {
  llama: { norm: 'rms', rope: 'normal', ffn: { type: 'gated', activation: 'silu' }, qkvBias: false, linearBias: false },
  qwen2: { norm: 'rms', rope: 'neox', ffn: { type: 'gated', activation: 'silu' }, qkvBias: true, linearBias: false },
  starcoder2: { norm: 'layer', rope: 'neox', ffn: { type: 'plain', activation: 'gelu' }, qkvBias: true, linearBias: true },
};

function fileName(gguf: GgufLike): string {
  return gguf.path ?? 'model.gguf';
}

function notSupported(gguf: GgufLike, problem: string, hint: string): ModelNotSupportedError {
  return new ModelNotSupportedError(`${fileName(gguf)}: ${problem}`, hint);
}

function num(gguf: GgufLike, key: string): number | undefined {
  const v = gguf.get(key);
  if (v === undefined) return undefined;
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  throw notSupported(gguf, `metadata ${key} is ${typeof v}, expected a number`, 'The GGUF file looks malformed; re-convert it with llama.cpp\'s convert_hf_to_gguf.py.');
}

function requireNum(gguf: GgufLike, key: string): number {
  const v = num(gguf, key);
  if (v === undefined) {
    throw notSupported(gguf, `missing metadata key ${key}`, 'Re-convert the model with a recent llama.cpp convert_hf_to_gguf.py, which writes this key.');
  }
  return v;
}

function tensorInfo(gguf: GgufLike, name: string): GgufTensorLike | undefined {
  return gguf.tensors.find((t) => t.name === name);
}

/** Reads the architecture's hyperparameters; throws ModelNotSupportedError naming what is wrong. */
export function configFromGguf(gguf: GgufLike): ModelConfig {
  const archValue = gguf.get('general.architecture');
  if (typeof archValue !== 'string') {
    throw notSupported(gguf, 'no general.architecture in metadata', 'This does not look like a llama.cpp model GGUF (a vocab-only or LoRA file?).');
  }
  if (!(SUPPORTED_ARCHITECTURES as readonly string[]).includes(archValue)) {
    throw notSupported(
      gguf,
      `architecture '${archValue}' is not supported`,
      `Cachet runs ${SUPPORTED_ARCHITECTURES.join(', ')} models (e.g. Qwen2.5-Coder, DeepSeek-Coder 1.x, CodeLlama, StarCoder2). Pick a GGUF of one of those.`,
    );
  }
  const arch = archValue as Architecture;
  const traits = TRAITS[arch];
  const k = (suffix: string) => `${arch}.${suffix}`;

  const nEmbd = requireNum(gguf, k('embedding_length'));
  const nLayers = requireNum(gguf, k('block_count'));
  const nFf = requireNum(gguf, k('feed_forward_length'));
  const nHeads = requireNum(gguf, k('attention.head_count'));
  const nKvHeads = num(gguf, k('attention.head_count_kv')) ?? nHeads;
  const contextLength = requireNum(gguf, k('context_length'));
  const headDim = num(gguf, k('attention.key_length')) ?? nEmbd / nHeads;
  const valueDim = num(gguf, k('attention.value_length')) ?? headDim;
  if (!Number.isInteger(headDim) || valueDim !== headDim) {
    throw notSupported(gguf, `head size ${headDim} (value ${valueDim}) is not supported`, 'Only models whose key and value head sizes are equal and divide the embedding evenly are supported.');
  }
  if (nKvHeads <= 0 || nHeads % nKvHeads !== 0) {
    throw notSupported(gguf, `${nHeads} attention heads is not a multiple of ${nKvHeads} KV heads`, 'The GGUF metadata looks inconsistent; re-convert the model.');
  }

  const epsKey = traits.norm === 'rms' ? k('attention.layer_norm_rms_epsilon') : k('attention.layer_norm_epsilon');
  const eps = requireNum(gguf, epsKey);

  const rope = ropeFromGguf(gguf, arch, traits.rope, headDim, contextLength);

  const embd = tensorInfo(gguf, TOKEN_EMBD);
  if (!embd) throw missingTensor(gguf, TOKEN_EMBD);
  const vocabSize = embd.dims[1] ?? 0;

  if (tensorInfo(gguf, 'rope_freqs.weight')) {
    throw notSupported(gguf, 'per-dimension RoPE frequency factors (rope_freqs.weight, Llama 3.1 style) are not supported', 'Use a CodeLlama, DeepSeek-Coder 1.x, Qwen2.5-Coder or StarCoder2 GGUF.');
  }

  const name = gguf.get('general.name');
  const config: ModelConfig = {
    arch,
    name: typeof name === 'string' ? name : fileName(gguf),
    nLayers,
    nEmbd,
    nHeads,
    nKvHeads,
    headDim,
    nFf,
    vocabSize,
    contextLength,
    norm: { type: traits.norm, eps },
    rope,
    ffn: { ...traits.ffn },
    // llama-arch files may carry optional q/k/v biases (llama.cpp loads them when present).
    qkvBias: traits.qkvBias || (arch === 'llama' && tensorInfo(gguf, 'blk.0.attn_q.bias') !== undefined),
    linearBias: traits.linearBias,
    tiedEmbeddings: tensorInfo(gguf, OUTPUT) === undefined,
  };
  checkTensors(gguf, config);
  return config;
}

function ropeFromGguf(gguf: GgufLike, arch: Architecture, type: 'normal' | 'neox', headDim: number, contextLength: number): RopeConfig {
  const k = (suffix: string) => `${arch}.${suffix}`;
  const dim = num(gguf, k('rope.dimension_count')) ?? headDim;
  const freqBase = num(gguf, k('rope.freq_base')) ?? 10000;
  let scalingType = gguf.get(k('rope.scaling.type'));
  let factor = num(gguf, k('rope.scaling.factor'));
  const legacyLinear = num(gguf, k('rope.scale_linear'));
  if (scalingType === undefined && legacyLinear !== undefined && legacyLinear !== 1) scalingType = 'linear';
  if (factor === undefined) factor = legacyLinear;
  if (scalingType === undefined) scalingType = 'none';
  if (scalingType !== 'none' && scalingType !== 'linear' && scalingType !== 'yarn') {
    throw notSupported(gguf, `RoPE scaling type '${String(scalingType)}' is not supported`, 'Supported RoPE scaling: none, linear (and yarn where a backend implements it).');
  }
  if (factor === undefined || factor === 0) factor = 1;
  const originalContext = num(gguf, k('rope.scaling.original_context_length')) ?? contextLength;
  if (dim > headDim || dim % 2 !== 0) {
    throw notSupported(gguf, `rope.dimension_count ${dim} does not fit head size ${headDim}`, 'The GGUF metadata looks inconsistent; re-convert the model.');
  }
  return {
    type,
    dim,
    freqBase,
    // llama.cpp applies the factor whatever the type says (freq_scale = 1 / factor).
    scaling: { type: scalingType === 'none' && factor !== 1 ? 'linear' : scalingType, factor, originalContext },
  };
}

function missingTensor(gguf: GgufLike, name: string): ModelNotSupportedError {
  return notSupported(gguf, `missing tensor ${name}`, 'The file is incomplete or was converted for a different architecture; re-download or re-convert it.');
}

/** Every tensor the forward pass needs exists with the shape the config implies. */
function checkTensors(gguf: GgufLike, c: ModelConfig): void {
  const qDim = c.nHeads * c.headDim;
  const kvDim = c.nKvHeads * c.headDim;
  const expect = new Map<string, number[]>();
  expect.set(TOKEN_EMBD, [c.nEmbd, c.vocabSize]);
  for (let i = 0; i < c.nLayers; i++) {
    const n = layerTensorNames(c, i);
    expect.set(n.attnNorm, [c.nEmbd]);
    if (n.attnNormBias) expect.set(n.attnNormBias, [c.nEmbd]);
    expect.set(n.q, [c.nEmbd, qDim]);
    expect.set(n.k, [c.nEmbd, kvDim]);
    expect.set(n.v, [c.nEmbd, kvDim]);
    expect.set(n.o, [qDim, c.nEmbd]);
    if (n.qBias) expect.set(n.qBias, [qDim]);
    if (n.kBias) expect.set(n.kBias, [kvDim]);
    if (n.vBias) expect.set(n.vBias, [kvDim]);
    if (n.oBias) expect.set(n.oBias, [c.nEmbd]);
    expect.set(n.ffnNorm, [c.nEmbd]);
    if (n.ffnNormBias) expect.set(n.ffnNormBias, [c.nEmbd]);
    if (n.gate) expect.set(n.gate, [c.nEmbd, c.nFf]);
    expect.set(n.up, [c.nEmbd, c.nFf]);
    expect.set(n.down, [c.nFf, c.nEmbd]);
    if (n.upBias) expect.set(n.upBias, [c.nFf]);
    if (n.downBias) expect.set(n.downBias, [c.nEmbd]);
  }
  expect.set(OUTPUT_NORM, [c.nEmbd]);
  if (c.norm.type === 'layer') expect.set(OUTPUT_NORM_BIAS, [c.nEmbd]);
  if (!c.tiedEmbeddings) expect.set(lmHeadName(c), [c.nEmbd, c.vocabSize]);

  for (const [name, dims] of expect) {
    const t = tensorInfo(gguf, name);
    if (!t) throw missingTensor(gguf, name);
    // ggml pads trailing dims with 1; compare the meaningful ones.
    const got = t.dims.slice();
    while (got.length > dims.length && got[got.length - 1] === 1) got.pop();
    if (got.length !== dims.length || got.some((d, j) => d !== dims[j])) {
      throw notSupported(gguf, `tensor ${name} has shape [${t.dims.join(', ')}], expected [${dims.join(', ')}]`, 'The tensor shapes disagree with the metadata; the file is corrupt or converted for a different architecture.');
    }
  }
}
