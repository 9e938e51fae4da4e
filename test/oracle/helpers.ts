// llama.cpp (node-llama-cpp, CPU) as an oracle, and the reference backend driven the same way, so
// tests compare logits and greedy continuations token by token.

import { createReferenceBackend } from '../../engine/backend/reference';
import type { ReferenceBackendOptions } from '../../engine/backend/reference';
import { openGguf } from '../../engine/gguf';
import { loadWeights } from '../../engine/model';

export interface Continuation {
  /** Logits after the prompt, then after each generated token but the last: [steps][vocab]. */
  logits: Float32Array[];
  /** Greedy tokens (argmax of each logits row). */
  tokens: number[];
}

export function argmax(x: Float32Array): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i]! > x[best]!) best = i;
  return best;
}

export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

// node-llama-cpp's types are loaded dynamically so the suite can skip when it is absent.
type NodeLlamaCpp = typeof import('node-llama-cpp');
type Llama = Awaited<ReturnType<NodeLlamaCpp['getLlama']>>;

let llamaPromise: Promise<Llama | undefined> | undefined;

/** The CPU llama.cpp binding, or undefined when node-llama-cpp is not installed in test/oracle. */
export function getOracle(): Promise<Llama | undefined> {
  llamaPromise ??= (async () => {
    let mod: NodeLlamaCpp;
    try {
      mod = await import('node-llama-cpp');
    } catch {
      return undefined;
    }
    return mod.getLlama({ gpu: false, build: 'never', logLevel: mod.LlamaLogLevel.error });
  })();
  return llamaPromise;
}

export interface OracleModel {
  /** Greedy continuation of `prompt` for `steps` tokens, with the logits at every step. */
  continue(prompt: number[], steps: number): Promise<Continuation>;
  dispose(): Promise<void>;
}

export async function openOracleModel(llama: Llama, path: string, contextSize = 512, threads = 2): Promise<OracleModel> {
  const model = await llama.loadModel({ modelPath: path, gpuLayers: 0, useMmap: false });
  const context = await model.createContext({
    contextSize,
    batchSize: contextSize,
    sequences: 1,
    threads,
    flashAttention: false,
    experimentalKvCacheKeyType: 'F32',
    experimentalKvCacheValueType: 'F32',
  });
  const sequence = context.getSequence();
  const gguf = openGguf(path);
  const vocab = (gguf.getArray('tokenizer.ggml.tokens') ?? []).length;
  gguf.close();
  const toArray = (m: Map<number, number> | undefined): Float32Array => {
    if (!m) throw new Error('llama.cpp returned no logits');
    if (m.size !== vocab) throw new Error(`llama.cpp returned ${m.size} logits, the vocabulary has ${vocab}`);
    const out = new Float32Array(vocab);
    for (const [tok, v] of m) out[tok] = v;
    return out;
  };
  return {
    async continue(prompt, steps) {
      await sequence.clearHistory();
      const logits: Float32Array[] = [];
      const tokens: number[] = [];
      type Item = Parameters<typeof sequence.controlledEvaluate>[0][number];
      const input: Item[] = prompt.map((t, i) => (i === prompt.length - 1 ? [t, { generateNext: { logits: true } }] : t) as Item);
      let out = await sequence.controlledEvaluate(input);
      for (let s = 0; s < steps; s++) {
        const row = toArray(out[out.length - 1]?.next.logits as Map<number, number> | undefined);
        logits.push(row);
        const next = argmax(row);
        tokens.push(next);
        if (s === steps - 1) break;
        out = await sequence.controlledEvaluate([[next, { generateNext: { logits: true } }] as Item]);
      }
      return { logits, tokens };
    },
    async dispose() {
      await context.dispose();
      await model.dispose();
    },
  };
}

export interface ReferenceModel {
  /**
   * The reference backend run like the oracle: prompt prefill, then one token per step. With
   * `forced`, step s feeds forced[s] instead of its own argmax (teacher forcing: both runs see the
   * same tokens, so every step's logits are comparable even where a near-tie flips the argmax).
   */
  continue(prompt: number[], steps: number, forced?: number[]): Promise<Continuation>;
  dispose(): Promise<void>;
}

export async function openReferenceModel(path: string, options: Partial<ReferenceBackendOptions> = {}, kvSlots = 512): Promise<ReferenceModel> {
  const gguf = openGguf(path);
  const backend = await createReferenceBackend(loadWeights(gguf), { kvSlots, ...options });
  return {
    async continue(prompt, steps, forced) {
      const logits: Float32Array[] = [];
      const tokens: number[] = [];
      let pending = prompt;
      let past = 0;
      for (let s = 0; s < steps; s++) {
        const n = pending.length;
        const positions = Int32Array.from({ length: n }, (_, i) => past + i);
        const context = Int32Array.from({ length: past + n }, (_, i) => i);
        const [res] = await backend.forward([{ tokens: Int32Array.from(pending), positions, context, logits: 'last' }]);
        const row = res!.logits;
        logits.push(row);
        const next = argmax(row);
        tokens.push(next);
        past += n;
        pending = [forced ? forced[s]! : next];
      }
      return { logits, tokens };
    },
    async dispose() {
      await backend.dispose();
      gguf.close();
    },
  };
}

/** One-off openReferenceModel(...).continue(...). */
export async function referenceContinue(
  path: string,
  prompt: number[],
  steps: number,
  options: Partial<ReferenceBackendOptions> = {},
  forced?: number[],
): Promise<Continuation> {
  const m = await openReferenceModel(path, options, prompt.length + steps);
  try {
    return await m.continue(prompt, steps, forced);
  } finally {
    await m.dispose();
  }
}
