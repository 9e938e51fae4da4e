// Quality of chunk-cache reuse against a full recompute, on the reference backend with a small
// random-weight model (test/helpers/make-test-model). Shared by bench/kv-quality.ts (numbers) and
// test/kv/kv-quality.test.ts (exactness properties).
//
// A prompt is [P shared prefix][C1]...[Cn][Q query]. Each chunk Ci was encoded on its own after P
// (positions |P|..). Modes:
//   full          every token computed in place (the reference)
//   rotate        chunks re-rotated to their new positions, nothing recomputed
//   blend-r       rotate + CacheBlend recompute of r of the chunk tokens (check layer 1)
//   ape           chunks at their encoded positions (APE layout, T = s = 1)
// For each mode: next-token distributions at every query position (KL(full || mode), top-1
// agreement) and a greedy continuation (fraction of steps equal to full's).

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createReferenceBackend } from '../engine/backend/reference';
import type { Backend, BackendFactory } from '../engine/backend/types';
import { openGguf } from '../engine/gguf';
import { loadWeights } from '../engine/model';
import type { ModelWeights } from '../engine/model/types';
import { ChunkCache, createTruncatedProbe, type LayerProbe } from '../engine/kv/chunk-cache';
import { KvManager } from '../engine/kv/kv-manager';
import { Tokenizer } from '../engine/tokenizer';
import { makeTestModel, type TestModelOptions } from '../test/helpers/make-test-model';
import { uniformStream as seeded } from '../test/helpers/make-test-model';

export type QualityMode =
  | { kind: 'full' }
  | { kind: 'rotate' }
  | { kind: 'blend'; ratio: number }
  /** Control for CacheBlend's selection: recompute the same number of chunk tokens, picked at random. */
  | { kind: 'random'; ratio: number }
  | { kind: 'ape' };

export function modeName(m: QualityMode): string {
  if (m.kind === 'blend') return `blend-${Math.round(m.ratio * 100)}%`;
  if (m.kind === 'random') return `random-${Math.round(m.ratio * 100)}%`;
  return m.kind;
}

export interface QualityPrompt {
  prefix: number[];
  chunks: number[][];
  query: number[];
}

export interface ModeOutput {
  /** [query.length, vocab] logits at each query position. */
  logits: Float32Array[];
  greedy: number[];
  recomputed: number;
}

export interface Harness {
  weights: ModelWeights;
  factory: BackendFactory;
  threads: number | undefined;
  /** Present for a GGUF with a tokenizer (trained models). */
  tokenizer: Tokenizer | undefined;
  backend: Backend;
  kv: KvManager;
  chunks: ChunkCache;
  probe: LayerProbe & { dispose(): Promise<void> };
  vocab: number;
  dispose(): Promise<void>;
}

export const KV_SLOTS = 4096;

/**
 * A model (a makeTestModel spec, or { path } of a GGUF) on a backend (default: reference), with a
 * KvManager and a ChunkCache over it.
 */
export async function createHarness(
  model: TestModelOptions | { path: string },
  factory: BackendFactory = createReferenceBackend,
  threads?: number,
): Promise<Harness> {
  const path = 'path' in model && !('arch' in model) ? model.path : makeTestModel(model as TestModelOptions);
  const gguf = openGguf(path);
  const weights = loadWeights(gguf);
  let tokenizer: Tokenizer | undefined;
  try {
    tokenizer = 'arch' in model ? undefined : Tokenizer.fromGguf(gguf);
  } catch {
    tokenizer = undefined;
  }
  const backend = await factory(weights, { kvSlots: KV_SLOTS, threads });
  const kv = new KvManager({ backend, kvSlots: KV_SLOTS, blockSize: 16 });
  const chunks = new ChunkCache({ manager: kv, backend, model: path, tokenizer: tokenizer ? 'gguf' : 'bytes', memoryBudgetBytes: 1 << 28 });
  const probe = createTruncatedProbe((w, o) => factory(w, { ...o, threads }), weights, 1024);
  return {
    weights,
    factory,
    threads,
    tokenizer,
    backend,
    kv,
    chunks,
    probe,
    vocab: weights.config.vocabSize,
    async dispose() {
      await probe.dispose();
      await backend.dispose();
      gguf.close?.();
    },
  };
}

function argmax(x: Float32Array): number {
  let b = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[b]) b = i;
  return b;
}

/** Full recompute on a fresh backend: every token at its place. */
export async function runFull(h: Harness, p: QualityPrompt, steps: number): Promise<ModeOutput> {
  const be = await h.factory(h.weights, { kvSlots: 1024, threads: h.threads });
  const all = [...p.prefix, ...p.chunks.flat(), ...p.query];
  const n = all.length;
  const nq = p.query.length;
  const idx = Int32Array.from({ length: n }, (_, i) => i);
  // Context without logits, then the query rows with logits (the LM head over every row is waste).
  await be.forward([{ tokens: Int32Array.from(all.slice(0, n - nq)), positions: idx.slice(0, n - nq), context: idx.slice(0, n - nq), logits: 'none' }]);
  const [r] = await be.forward([{ tokens: Int32Array.from(all.slice(n - nq)), positions: idx.slice(n - nq), context: idx, logits: 'all' }]);
  const V = h.vocab;
  const logits: Float32Array[] = [];
  for (let i = 0; i < nq; i++) logits.push(r.logits.slice(i * V, (i + 1) * V));
  const greedy: number[] = [];
  let last = logits[logits.length - 1];
  let len = n;
  for (let s = 0; s < steps; s++) {
    const t = argmax(last);
    greedy.push(t);
    if (s === steps - 1) break;
    const ctx = Int32Array.from({ length: len + 1 }, (_, i) => i);
    const [d] = await be.forward([{ tokens: Int32Array.from([t]), positions: Int32Array.from([len]), context: ctx, logits: 'last' }]);
    last = d.logits;
    len++;
  }
  await be.dispose();
  return { logits, greedy, recomputed: n };
}

/** The prompt assembled from cached chunks in the given mode, then a greedy continuation. */
export async function runReuse(h: Harness, p: QualityPrompt, mode: QualityMode, steps: number): Promise<ModeOutput> {
  const { kv, chunks, backend } = h;
  const entries = [];
  for (const [i, c] of p.chunks.entries()) {
    entries.push(await chunks.get(chunks.key(`chunk-${i}-${c.join(',')}`, 0, c.length, p.prefix), p.prefix, c));
  }
  const P = p.prefix;
  const a = await kv.acquire([...P, p.query[0]]);
  try {
    kv.seqRm(a.seq, P.length);
    if (a.cachedLength < P.length) {
      await backend.forward([
        { tokens: Int32Array.from(P.slice(a.cachedLength)), positions: kv.positions(a.seq).slice(a.cachedLength), context: kv.context(a.seq), logits: 'none' },
      ]);
    }
    const placement = await chunks.place(a.seq, entries, mode.kind === 'ape' ? 'ape' : 'rotate');
    let recomputed = 0;
    if (mode.kind === 'blend') recomputed = (await chunks.blend(a.seq, placement, { ratio: mode.ratio, probe: h.probe })).selected;
    if (mode.kind === 'random') {
      const cells = placement.chunks.flatMap((c) => Array.from(c.slots, (_, i) => c.cell + i));
      const rnd = seeded(cells.length * 7919 + p.query[0]);
      for (let i = cells.length - 1; i > 0; i--) {
        const j = Math.floor(rnd() * (i + 1));
        [cells[i], cells[j]] = [cells[j], cells[i]];
      }
      const pick = cells.slice(0, Math.floor(mode.ratio * cells.length)).sort((x, y) => x - y);
      await chunks.recompute(a.seq, pick);
      recomputed = pick.length;
    }
    const Q = p.query;
    let pos = placement.nextPosition;
    const qPos = Int32Array.from(Q, (_, i) => pos + i);
    await kv.append(a.seq, Q, qPos);
    const [r] = await backend.forward([{ tokens: Int32Array.from(Q), positions: qPos, context: kv.context(a.seq), logits: 'all' }]);
    pos += Q.length;
    const V = h.vocab;
    const logits: Float32Array[] = [];
    for (let i = 0; i < Q.length; i++) logits.push(r.logits.slice(i * V, (i + 1) * V));
    const greedy: number[] = [];
    let last = logits[logits.length - 1];
    for (let s = 0; s < steps; s++) {
      const t = argmax(last);
      greedy.push(t);
      if (s === steps - 1) break;
      await kv.append(a.seq, [t], [pos]);
      const [d] = await backend.forward([{ tokens: Int32Array.from([t]), positions: Int32Array.from([pos]), context: kv.context(a.seq), logits: 'last' }]);
      last = d.logits;
      pos++;
    }
    return { logits, greedy, recomputed };
  } finally {
    kv.release(a.seq);
  }
}

function logSoftmax(x: Float32Array): Float64Array {
  let m = -Infinity;
  for (const v of x) m = Math.max(m, v);
  let s = 0;
  for (const v of x) s += Math.exp(v - m);
  const lse = m + Math.log(s);
  return Float64Array.from(x, (v) => v - lse);
}

/** KL(p || q) in nats from two logit rows. */
export function klDivergence(pLogits: Float32Array, qLogits: Float32Array): number {
  const lp = logSoftmax(pLogits);
  const lq = logSoftmax(qLogits);
  let kl = 0;
  for (let i = 0; i < lp.length; i++) kl += Math.exp(lp[i]) * (lp[i] - lq[i]);
  return Math.max(0, kl);
}

export interface Comparison {
  kl: number;
  klMax: number;
  top1: number;
  greedyMatch: number;
  /** Steps before the first greedy divergence. */
  greedyPrefix: number;
}

export function compare(ref: ModeOutput, out: ModeOutput): Comparison {
  let kl = 0;
  let klMax = 0;
  let top1 = 0;
  for (let i = 0; i < ref.logits.length; i++) {
    const k = klDivergence(ref.logits[i], out.logits[i]);
    kl += k;
    klMax = Math.max(klMax, k);
    if (argmax(ref.logits[i]) === argmax(out.logits[i])) top1++;
  }
  let same = 0;
  let prefix = -1;
  for (let i = 0; i < ref.greedy.length; i++) {
    if (ref.greedy[i] === out.greedy[i]) same++;
    else if (prefix < 0) prefix = i;
  }
  return {
    kl: kl / ref.logits.length,
    klMax,
    top1: top1 / ref.logits.length,
    greedyMatch: same / ref.greedy.length,
    greedyPrefix: prefix < 0 ? ref.greedy.length : prefix,
  };
}


/**
 * Prompts from real source text for a model with a tokenizer: a BOS + header prefix, chunks cut
 * at line starts from different files, and a query from yet another file. Files are this
 * repository's own engine sources (written after the model was trained, so not in its data).
 */
export function makeCodePrompts(
  tok: Tokenizer,
  root: string,
  count: number,
  seed: number,
  shape: { chunks: number[]; query: number },
): QualityPrompt[] {
  const files: string[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const f = join(dir, e.name);
      if (e.isDirectory()) walk(f);
      else if (e.name.endsWith('.ts') && !e.name.includes('unicode-data')) files.push(f);
    }
  };
  walk(join(root, 'engine'));
  files.sort();
  const rnd = seeded(seed);
  const window = (n: number): number[] => {
    for (;;) {
      const text = readFileSync(files[Math.floor(rnd() * files.length)], 'utf8');
      const lines = text.split('\n');
      if (lines.length < 40) continue;
      const start = Math.floor(rnd() * (lines.length - 30));
      const ids = tok.encode(lines.slice(start).join('\n'));
      if (ids.length >= n) return ids.slice(0, n);
    }
  };
  const header = tok.encode('// cachet: repository context\n', { addSpecial: true });
  const out: QualityPrompt[] = [];
  for (let i = 0; i < count; i++) out.push({ prefix: header, chunks: shape.chunks.map(window), query: window(shape.query) });
  return out;
}

/** Deterministic prompts over the byte vocabulary (ids 0..255). */
export function makePrompts(count: number, seed: number, shape: { prefix: number; chunks: number[]; query: number }): QualityPrompt[] {
  const rnd = seeded(seed);
  const run = (n: number) => Array.from({ length: n }, () => 32 + Math.floor(rnd() * 95)); // printable ASCII bytes
  const out: QualityPrompt[] = [];
  for (let i = 0; i < count; i++) out.push({ prefix: run(shape.prefix), chunks: shape.chunks.map(run), query: run(shape.query) });
  return out;
}
