// Deterministic stand-ins for a tokenizer and a backend, so scheduler behaviour is testable without
// a model. The fake backend keeps the token and position written to each KV slot and computes its
// "logits" from the visible context it reads back, so any KV bookkeeping error changes the output.

import type { Backend, ForwardResult, SequenceBatch } from '../../engine/backend/types';
import { KvManager } from '../../engine/kv';
import type { ModelConfig } from '../../engine/model/types';
import { KvManagerStore, SimpleKvStore, type KvStore } from '../../engine/runtime/kv-store';

export const FAKE_VOCAB = 40;
export const FAKE_EOG = 0;

/** Token i (1..39) is the character with code 0x40 + i ("A".."g"); 0 is end-of-generation. */
export const fakeTokenizer = {
  vocabSize: FAKE_VOCAB,
  isEog: (id: number) => id === FAKE_EOG,
  tokenText: (id: number) => (id === FAKE_EOG ? '' : String.fromCharCode(0x40 + id)),
  encode: (text: string) => Array.from(text, (c) => c.charCodeAt(0) - 0x40),
  decode: (ids: number[]) => ids.map((id) => fakeTokenizer.tokenText(id)).join(''),
  createStreamDecoder() {
    return { push: (id: number) => fakeTokenizer.tokenText(id), flush: () => '' };
  },
};

export const fakeConfig: ModelConfig = {
  arch: 'llama', name: 'fake', nLayers: 1, nEmbd: 8, nHeads: 1, nKvHeads: 1, headDim: 8, nFf: 8,
  vocabSize: FAKE_VOCAB, contextLength: 4096, norm: { type: 'rms', eps: 1e-5 },
  rope: { type: 'normal', dim: 8, freqBase: 10000, scaling: { type: 'none', factor: 1, originalContext: 4096 } },
  ffn: { type: 'gated', activation: 'silu' }, qkvBias: false, linearBias: false, tiedEmbeddings: true,
};

/**
 * The fake model's rule: the next token is last+1 (wrapping over 1..39, never EOG) unless the sum
 * of all visible tokens is divisible by 11, then it is (last*3) mod 39 + 1. `eogAfter` makes it
 * emit EOG once the context reaches that many tokens.
 */
export function fakeNext(context: number[], eogAfter = Infinity): number {
  if (context.length >= eogAfter) return FAKE_EOG;
  const last = context[context.length - 1];
  const sum = context.reduce((a, b) => a + b, 0);
  if (sum % 11 === 0) return ((last * 3) % 39) + 1;
  return (last % 39) + 1;
}

export interface ForwardCall {
  batches: { tokens: number[]; positions: number[]; nPast: number; logits: SequenceBatch['logits'] }[];
}

export class FakeBackend implements Backend {
  readonly name = 'fake';
  readonly config = fakeConfig;
  readonly calls: ForwardCall[] = [];
  /** Called inside forward() before it returns: lets a test act "while the step runs". */
  onForward?: (callIndex: number) => void | Promise<void>;
  /** Throw on this call index (simulates device loss). */
  failOnCall = -1;
  eogAfter = Infinity;
  private slotToken: Int32Array;
  private slotPos: Int32Array;

  constructor(readonly kvSlots: number) {
    this.slotToken = new Int32Array(kvSlots).fill(-1);
    this.slotPos = new Int32Array(kvSlots).fill(-1);
  }

  async forward(batches: SequenceBatch[]): Promise<ForwardResult[]> {
    const index = this.calls.length;
    this.calls.push({
      batches: batches.map((b) => ({
        tokens: Array.from(b.tokens), positions: Array.from(b.positions),
        nPast: b.context.length - b.tokens.length, logits: b.logits,
      })),
    });
    await this.onForward?.(index);
    if (index === this.failOnCall) throw new Error('device lost (simulated)');
    return batches.map((b) => this.run(b));
  }

  private run(b: SequenceBatch): ForwardResult {
    const n = b.tokens.length;
    const nPast = b.context.length - n;
    for (let i = 0; i < nPast; i++) {
      const s = b.context[i];
      if (this.slotToken[s] < 0 || this.slotPos[s] !== i) throw new Error(`fake backend: slot ${s} at position ${i} holds pos ${this.slotPos[s]}`);
    }
    const rows = b.logits === 'all' ? n : b.logits === 'last' ? 1 : 0;
    const logits = new Float32Array(rows * FAKE_VOCAB);
    for (let i = 0; i < n; i++) {
      const s = b.context[nPast + i];
      this.slotToken[s] = b.tokens[i];
      this.slotPos[s] = b.positions[i];
      const rowIndex = b.logits === 'all' ? i : b.logits === 'last' && i === n - 1 ? 0 : -1;
      if (rowIndex < 0) continue;
      const visible = Array.from(b.context.subarray(0, nPast + i + 1), (slot) => this.slotToken[slot]);
      const next = fakeNext(visible, this.eogAfter);
      for (let v = 0; v < FAKE_VOCAB; v++) logits[rowIndex * FAKE_VOCAB + v] = -Math.abs(v - next);
      logits[rowIndex * FAKE_VOCAB + next] = 1;
    }
    return { logits };
  }

  async copySlots(): Promise<void> {}
  async rotateKeys(): Promise<void> {}
  async readSlots(): Promise<Float32Array> { return new Float32Array(0); }
  async writeSlots(): Promise<void> {}
  memory() { return { weightsBytes: 0, kvBytes: this.kvSlots * 8, scratchBytes: 0 }; }
  async dispose(): Promise<void> {}
}

/** Greedy continuation the fake model produces for a prompt, computed directly. */
export function expectedContinuation(prompt: number[], maxTokens: number, eogAfter = Infinity): number[] {
  const ctx = prompt.slice();
  const out: number[] = [];
  for (let i = 0; i < maxTokens; i++) {
    const t = fakeNext(ctx, eogAfter);
    if (t === FAKE_EOG) break;
    out.push(t);
    ctx.push(t);
  }
  return out;
}

export function range(from: number, n: number): number[] {
  return Array.from({ length: n }, (_, i) => ((from + i - 1) % 39) + 1);
}

export type StoreKind = 'simple' | 'paged';
/** The paged store (engine/kv KvManager) caches whole blocks of this many tokens. */
export const PAGE = 16;

export function makeStore(kind: StoreKind, backend: FakeBackend, slots: number): KvStore {
  if (kind === 'simple') return new SimpleKvStore(slots);
  return new KvManagerStore(new KvManager({ backend, kvSlots: slots, blockSize: PAGE }));
}

