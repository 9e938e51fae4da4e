// Will a model fit? Weights as stored + KV cache at the context + scratch, against free memory.

import type { FitReport, MemoryEstimate, ModelInfo } from './types';

export interface FitOptions {
  /** Context length to check (default: the model's, at most 8192). */
  context?: number;
  /** Bytes per K/V element: 2 for f16 (default), 4 for f32, ~1.06 for q8_0. */
  kvBytesPerElement?: number;
  /** Prompt tokens processed per forward pass (default 512). */
  batch?: number;
  /** Fraction of free memory the model may use (default 0.9). */
  headroom?: number;
}

const OVERHEAD = 64 * 1024 * 1024;
const ATTENTION_TILE = 1024;

export function formatBytes(n: number): string {
  if (n >= 1024 ** 3) return `${(n / 1024 ** 3).toFixed(1)} GiB`;
  if (n >= 1024 ** 2) return `${(n / 1024 ** 2).toFixed(0)} MiB`;
  return `${Math.ceil(n / 1024)} KiB`;
}

function shape(info: ModelInfo) {
  const { layers, embedding, heads } = info;
  if (!layers || !embedding || !heads) return undefined;
  const headDim = info.headDim ?? embedding / heads;
  const kvHeads = info.kvHeads ?? heads;
  return { layers, embedding, heads, headDim, kvDim: kvHeads * headDim, ff: info.feedForward ?? 4 * embedding, vocab: info.vocabSize ?? 32000 };
}

/** Memory for `info` at a context length; undefined when the header lacks the shape. */
export function estimateMemory(info: ModelInfo, o: FitOptions = {}): MemoryEstimate | undefined {
  const s = shape(info);
  if (!s) return undefined;
  const context = o.context ?? Math.min(info.contextLength ?? 4096, 8192);
  const kvb = o.kvBytesPerElement ?? 2;
  const batch = o.batch ?? 512;
  const kvPerToken = 2 * s.layers * s.kvDim * kvb;
  const kv = kvPerToken * context;
  // f32 activations of one chunk: residual, norm, attention out, q/k/v, gate/up/down; one attention
  // tile of scores per head; logits of the last row (x2 for sampling copies); fixed runtime overhead.
  const activations = batch * (3 * s.embedding + s.embedding + 2 * s.kvDim + 3 * s.ff) * 4;
  const scores = s.heads * batch * Math.min(context, ATTENTION_TILE) * 4;
  const scratch = activations + scores + 2 * s.vocab * 4 + OVERHEAD;
  return { context, weights: info.weightBytes, kv, scratch, total: info.weightBytes + kv + scratch, kvPerToken };
}

/** Checks `info` against `freeBytes` and suggests what to change when it does not fit. */
export function checkFit(info: ModelInfo, freeBytes: number, o: FitOptions = {}): FitReport | undefined {
  const est = estimateMemory(info, o);
  if (!est) return undefined;
  const budget = Math.floor(freeBytes * (o.headroom ?? 0.9));
  const verdict = est.total > budget ? 'too-big' : est.total > 0.75 * budget ? 'tight' : 'fits';
  const modelMax = Math.max(info.contextLength ?? est.context, est.context);
  const fitsAt = (ctx: number) => estimateMemory(info, { ...o, context: ctx })!.total <= budget;
  let lo = 0;
  let hi = Math.floor(modelMax / 256);
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (fitsAt(mid * 256)) lo = mid;
    else hi = mid - 1;
  }
  const maxContext = lo * 256;
  const suggestions: string[] = [];
  const free = formatBytes(budget);
  if (est.weights + estimateMemory(info, { ...o, context: 256 })!.scratch > budget) {
    const q4 = Math.round((info.parameters * 4.85) / 8);
    suggestions.push(
      `The weights alone need ${formatBytes(est.weights)} but about ${free} is available: choose a smaller quantization ` +
        `(Q4_K_M of this model is about ${formatBytes(q4)}) or a smaller model.`,
    );
  } else if (verdict === 'too-big') {
    suggestions.push(
      `At ${est.context} tokens the KV cache needs ${formatBytes(est.kv)} (${formatBytes(est.kvPerToken)} per token); ` +
        `reduce the context to ${maxContext} tokens or less to fit in about ${free}.`,
    );
    const kvb = o.kvBytesPerElement ?? 2;
    if (kvb > 1.0625) {
      const q8 = estimateMemory(info, { ...o, kvBytesPerElement: 1.0625 })!;
      if (q8.total <= budget) suggestions.push(`An 8-bit (q8_0) KV cache would fit all ${est.context} tokens (${formatBytes(q8.total)} in all).`);
    }
  } else if (verdict === 'tight') {
    suggestions.push(`Uses ${formatBytes(est.total)} of about ${free}: close other programs or lower the context (up to ${maxContext} tokens fit) for headroom.`);
  }
  return { verdict, estimate: est, budget, maxContext, suggestions };
}
