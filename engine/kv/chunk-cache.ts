// Chunk caches: a file chunk is encoded once into its own K/V (after a shared prefix P, so its
// tokens sit at positions |P|..|P|+n-1) and reused in later prompts wherever it lands.
//
// Placement modes (see /work/shared/docs/kv-techniques.md §4–§6):
//   'rotate'  plain re-rotation (LMCache / llama.cpp --cache-reuse): keys are rotated by
//             Δ = newStart − basePosition with backend.rotateKeys; V is unchanged.
//   'ape'     parallel encoding (APE): every chunk keeps its encoded positions |P|.., so the
//             chunks overlap in position; the query starts after the longest chunk. The APE
//             attention temperature/scale (T, s) needs a backend attention hook that the Backend
//             interface does not have, so this is APE's layout with T = s = 1.
// After 'rotate' placement, blend() applies CacheBlend's selective recompute: it compares the
// reused V with fresh V at an early check layer, picks the ~15% of chunk tokens that deviate most
// and recomputes them (their fresh K/V at every layer are scattered into their slots).
//
// Fresh check-layer K/V come from a LayerProbe. The Backend interface has no "run layers 0..l"
// entry point, so createTruncatedProbe() builds a second backend over the first l+1 layers of the
// same weights and runs the whole prompt through it — the same work CacheBlend does (layer 0 and
// the check layer for every token). The selected tokens are then recomputed in one scattered
// forward (SequenceBatch.rows) where the backend supports it, else one forward per contiguous run.

import { createHash } from 'node:crypto';
import type { BackendFactory } from '../backend/types';
import type { ModelWeights } from '../model/types';
import { CachetError } from '../errors';
import { ChunkStore, chunkKeyId, entryBytes, type ChunkEntry, type ChunkKey } from './chunk-store';
import type { KvManager, KvStatsSource } from './kv-manager';
import type { KvComputeBackend } from './types';

export type PlaceMode = 'rotate' | 'ape';

/**
 * Fresh K/V at `layer` for every token of a prompt computed from scratch (causal, in order),
 * as f32 [token][K|V][kvDim]. seed: K/V of layers 0..layer for the first seed.length tokens
 * (readSlots layout [layer][token][K|V][kvDim]) that the probe may take instead of computing them.
 */
export type LayerProbe = (tokens: Int32Array, positions: Int32Array, layer: number, seed?: ProbeSeed) => Promise<Float32Array>;

export interface ProbeSeed {
  length: number;
  kv: Float32Array;
}

export interface ChunkCacheOptions {
  manager: KvManager;
  backend: KvComputeBackend;
  /** Model identity for keys (e.g. `${arch}:${name}:${fileSize}`). */
  model: string;
  /** Tokenizer identity for keys. */
  tokenizer: string;
  /** Host memory for chunk entries (LRU). */
  memoryBudgetBytes: number;
  store?: ChunkStore;
}

export interface PlacedChunk {
  entry: ChunkEntry;
  /** Index of the chunk's first cell in the sequence's context. */
  cell: number;
  slots: Int32Array;
  positions: Int32Array;
}

export interface Placement {
  chunks: PlacedChunk[];
  /** Position for the next token (suffix/query). */
  nextPosition: number;
}

export interface BlendOptions {
  /** Fraction of reused chunk tokens to recompute (CacheBlend r; default 0.15). */
  ratio?: number;
  /** Layer whose V deviation picks the tokens (default 1; layer 0 is exact after re-rotation). */
  checkLayer?: number;
  /** Required when 0 < ratio < 1. */
  probe?: LayerProbe;
  /**
   * The first seedLength cells hold the K/V this sequence attends to (a cached prefix): the probe
   * starts from them instead of recomputing them, and measures deviation against that context.
   * Costs a readSlots of those cells (all layers): worth it on CPU backends, not across a GPU bus.
   */
  seedLength?: number;
}

export interface BlendResult {
  selected: number;
  /** Cells (context indices) that were recomputed, ascending. */
  cells: number[];
  /** Per-chunk-token squared V deviation at the check layer (empty when ratio is 0 or 1). */
  deviation: Float32Array;
}

export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Hash of a token prefix, for ChunkKey.prefixHash. */
export function prefixHash(tokens: ArrayLike<number>): string {
  return tokens.length === 0 ? '' : sha256Hex(new Uint8Array(Int32Array.from(tokens).buffer));
}

export class ChunkCache implements KvStatsSource {
  private readonly manager: KvManager;
  private readonly backend: KvComputeBackend;
  private readonly store: ChunkStore | undefined;
  private readonly memory = new Map<string, ChunkEntry>(); // insertion order = LRU order
  private memoryBytes = 0;
  readonly model: string;
  readonly tokenizer: string;
  readonly memoryBudgetBytes: number;

  constructor(o: ChunkCacheOptions) {
    this.manager = o.manager;
    this.backend = o.backend;
    this.store = o.store;
    this.model = o.model;
    this.tokenizer = o.tokenizer;
    this.memoryBudgetBytes = o.memoryBudgetBytes;
    o.manager.chunkStats = this;
  }

  key(text: string, start: number, end: number, prefix: ArrayLike<number>): ChunkKey {
    return { model: this.model, tokenizer: this.tokenizer, contentHash: sha256Hex(text), start, end, prefixHash: prefixHash(prefix) };
  }

  /** Key of a chunk known only by its token ids (the runtime's case: spans of a tokenized prompt). */
  keyForTokens(chunk: ArrayLike<number>, prefix: ArrayLike<number>): ChunkKey {
    const content = sha256Hex(new Uint8Array(Int32Array.from(chunk).buffer));
    return { model: this.model, tokenizer: this.tokenizer, contentHash: content, start: 0, end: chunk.length, prefixHash: prefixHash(prefix) };
  }

  /** Cached entry (memory, then disk) or undefined. */
  lookup(key: ChunkKey): ChunkEntry | undefined {
    const id = chunkKeyId(key);
    const hit = this.memory.get(id);
    if (hit) {
      this.memory.delete(id);
      this.memory.set(id, hit);
      return hit;
    }
    const fromDisk = this.store?.get(key);
    if (fromDisk) {
      this.manager.counters.diskHits++;
      this.remember(id, fromDisk);
    }
    return fromDisk;
  }

  /**
   * The chunk's K/V encoded after `prefix` (positions |prefix|..). Computes it on a miss (the prefix
   * itself comes from the radix cache when it is there) and stores it in memory and on disk.
   */
  async get(key: ChunkKey, prefix: ArrayLike<number>, chunk: ArrayLike<number>): Promise<ChunkEntry> {
    const cached = this.lookup(key);
    // Same key but other tokens means a stale key (e.g. a tokenizer change the key missed):
    // treat it as a miss and overwrite it.
    if (cached && sameTokens(cached.tokens, chunk)) {
      this.manager.counters.chunkHits++;
      return cached;
    }
    this.manager.counters.chunkMisses++;
    const entry = await this.encode(key, prefix, chunk);
    this.remember(chunkKeyId(key), entry);
    this.store?.put(entry);
    return entry;
  }

  /** Encodes a chunk after prefix without consulting the cache. */
  async encode(key: ChunkKey, prefix: ArrayLike<number>, chunk: ArrayLike<number>): Promise<ChunkEntry> {
    if (chunk.length === 0) throw new CachetError('cannot encode an empty chunk', 'Skip empty chunks.');
    const all = [...Array.from(prefix), ...Array.from(chunk)];
    const kv = this.manager;
    const a = await kv.acquire(all, { countLookup: false });
    try {
      await this.backend.forward([
        {
          tokens: Int32Array.from(all.slice(a.cachedLength)),
          positions: a.positions.slice(a.cachedLength),
          context: a.context,
          logits: 'none',
        },
      ]);
      const slots = a.context.slice(prefix.length);
      const data = await this.backend.readSlots(slots);
      kv.commit(a.seq);
      const cfg = this.backend.config;
      return {
        key,
        tokens: Int32Array.from(chunk),
        basePosition: prefix.length,
        layers: cfg.nLayers,
        kvDim: cfg.nKvHeads * cfg.headDim,
        kv: data,
      };
    } finally {
      kv.release(a.seq);
    }
  }

  /**
   * Appends the chunks to seq (after its current cells) and writes their cached K/V.
   * 'rotate': chunk i starts right after the previous one and its keys are rotated by
   * Δ = start − basePosition. 'ape': each chunk keeps its encoded positions.
   */
  async place(seq: number, entries: ChunkEntry[], mode: PlaceMode): Promise<Placement> {
    const kv = this.manager;
    const chunks: PlacedChunk[] = [];
    const posNow = kv.positions(seq);
    let next = posNow.length ? posNow[posNow.length - 1] + 1 : 0;
    let apeEnd = next;
    for (const e of entries) {
      const n = e.tokens.length;
      const start = mode === 'rotate' ? next : e.basePosition;
      const positions = Int32Array.from({ length: n }, (_, i) => start + i);
      const cell = kv.length(seq);
      const slots = await kv.append(seq, e.tokens, positions, false);
      await this.backend.writeSlots(slots, e.kv);
      const delta = start - e.basePosition;
      if (delta !== 0) await this.backend.rotateKeys(slots, new Int32Array(n).fill(delta));
      chunks.push({ entry: e, cell, slots, positions });
      next = start + n;
      apeEnd = Math.max(apeEnd, start + n);
      kv.counters.tokensReused += n;
      kv.counters.chunkTokensPlaced += n;
    }
    return { chunks, nextPosition: mode === 'rotate' ? next : apeEnd };
  }

  /**
   * CacheBlend selective recompute over placed chunks. ratio 0: nothing; ratio 1: every chunk
   * token (exact: equals encoding the chunks in place); otherwise the ⌊ratio·N⌋ chunk tokens
   * whose check-layer V deviates most from a fresh computation.
   */
  async blend(seq: number, placement: Placement, o: BlendOptions = {}): Promise<BlendResult> {
    const r = await this.select(seq, placement, o);
    await this.recompute(seq, r.cells);
    this.countRecomputed(r.cells.length);
    return r;
  }

  /** CacheBlend's choice of cells to recompute (see blend), without recomputing them. */
  async select(seq: number, placement: Placement, o: BlendOptions = {}): Promise<BlendResult> {
    const ratio = o.ratio ?? 0.15;
    const checkLayer = o.checkLayer ?? 1;
    if (ratio < 0 || ratio > 1) throw new CachetError(`CacheBlend ratio ${ratio} outside [0, 1]`, 'Use a recompute ratio between 0 and 1 (0.15 is typical).');
    const kv = this.manager;
    const chunkCells: number[] = [];
    for (const c of placement.chunks) for (let i = 0; i < c.slots.length; i++) chunkCells.push(c.cell + i);
    const N = chunkCells.length;
    const k = Math.floor(ratio * N + 1e-9);
    let deviation = new Float32Array(0);
    let cells: number[];
    if (k === 0) cells = [];
    else if (k >= N) cells = chunkCells;
    else {
      if (!o.probe) throw new CachetError('CacheBlend needs a layer probe for partial recompute', 'Pass probe (createTruncatedProbe) or use ratio 0 or 1.');
      if (checkLayer < 0 || checkLayer >= this.backend.config.nLayers) throw new CachetError(`CacheBlend check layer ${checkLayer} out of range`, 'Use layer 1 (the default).');
      const tokens = kv.tokens(seq);
      const positions = kv.positions(seq);
      const ctx = kv.context(seq);
      const seedLength = Math.max(0, Math.min(o.seedLength ?? 0, chunkCells[0]));
      let seed: ProbeSeed | undefined;
      if (seedLength > 0) {
        const D = this.backend.config.nKvHeads * this.backend.config.headDim;
        const all = await this.backend.readSlots(ctx.slice(0, seedLength));
        seed = { length: seedLength, kv: all.subarray(0, (checkLayer + 1) * seedLength * 2 * D) };
      }
      const fresh = await o.probe(tokens, positions, checkLayer, seed);
      const slots = Int32Array.from(chunkCells, (c) => ctx[c]);
      const old = await this.backend.readSlots(slots);
      const D = this.backend.config.nKvHeads * this.backend.config.headDim;
      const base = checkLayer * N * 2 * D; // readSlots: [layer][slot][K|V][D]
      deviation = new Float32Array(N);
      for (let t = 0; t < N; t++) {
        const fo = chunkCells[t] * 2 * D + D;
        const oo = base + t * 2 * D + D;
        let s = 0;
        for (let d = 0; d < D; d++) {
          const diff = fresh[fo + d] - old[oo + d];
          s += diff * diff;
        }
        deviation[t] = s;
      }
      const order = Array.from({ length: N }, (_, i) => i).sort((a, b) => deviation[b] - deviation[a] || a - b);
      cells = order.slice(0, k).map((i) => chunkCells[i]).sort((a, b) => a - b);
    }
    return { selected: cells.length, cells, deviation };
  }

  /** Accounting for n reused chunk tokens that were recomputed after all. */
  countRecomputed(n: number): void {
    const c = this.manager.counters;
    c.tokensRecomputed += n;
    c.tokensReused -= n;
    c.tokensComputed += n;
  }

  /**
   * Recomputes the given cells (ascending) in place, each attending to every cell before it: one
   * scattered forward (SequenceBatch.rows) when the backend supports it, else one per contiguous run.
   */
  async recompute(seq: number, cells: number[]): Promise<void> {
    if (cells.length === 0) return;
    for (let i = 1; i < cells.length; i++) {
      if (cells[i] <= cells[i - 1]) throw new CachetError('recompute: cells must be ascending and distinct', 'Sort the cells and drop duplicates.');
    }
    const kv = this.manager;
    // Cells are rewritten in place: make sure no one else shares their blocks.
    const ctx = kv.context(seq);
    const tokens = kv.tokens(seq);
    const positions = kv.positions(seq);
    for (const c of cells) {
      if (kv.pool.refCount(kv.pool.blockOf(ctx[c])) > 1) {
        throw new CachetError('recompute: a chunk cell sits in a shared block', 'Place chunks into a sequence before forking it.');
      }
    }
    if (this.backend.supportsRows) {
      const rows = Int32Array.from(cells);
      await this.backend.forward([
        { tokens: rows.map((c) => tokens[c]), positions: rows.map((c) => positions[c]), context: ctx.slice(0, cells[cells.length - 1] + 1), logits: 'none', rows },
      ]);
    } else await this.recomputeRuns(ctx, tokens, positions, cells);
    // A recomputed cell is exact when everything before it is (e.g. ratio 1 over a clean prefix).
    const table = kv.table(seq);
    const chosen = new Set(cells);
    for (let c = 0; c < table.length; c++) {
      if (chosen.has(c)) table.setExact(c, true);
      else if (!table.exact[c]) break;
    }
  }

  private async recomputeRuns(ctx: Int32Array, tokens: Int32Array, positions: Int32Array, cells: number[]): Promise<void> {
    let i = 0;
    while (i < cells.length) {
      let j = i;
      while (j + 1 < cells.length && cells[j + 1] === cells[j] + 1) j++;
      const from = cells[i];
      const to = cells[j] + 1;
      await this.backend.forward([
        { tokens: tokens.slice(from, to), positions: positions.slice(from, to), context: ctx.slice(0, to), logits: 'none' },
      ]);
      i = j + 1;
    }
  }

  /** Drops the memory tier (the disk store stays). */
  clearMemory(): void {
    this.memory.clear();
    this.memoryBytes = 0;
  }

  stats(): { entries: number; diskEntries: number; diskBytes: number; diskEvictions: number } {
    const disk = this.store?.usage() ?? { entries: 0, bytes: 0 };
    return { entries: this.memory.size, diskEntries: disk.entries, diskBytes: disk.bytes, diskEvictions: this.store?.evictions ?? 0 };
  }

  private remember(id: string, e: ChunkEntry): void {
    const old = this.memory.get(id);
    if (old) {
      this.memoryBytes -= entryBytes(old);
      this.memory.delete(id);
    }
    if (entryBytes(e) > this.memoryBudgetBytes) return;
    this.memory.set(id, e);
    this.memoryBytes += entryBytes(e);
    for (const [k, v] of this.memory) {
      if (this.memoryBytes <= this.memoryBudgetBytes) break;
      this.memory.delete(k);
      this.memoryBytes -= entryBytes(v);
    }
  }
}

/**
 * A LayerProbe that runs the first layer+1 layers of the same weights on a second backend (built
 * with the given factory). Costs (layer+1)/nLayers of a full prefill of the prompt.
 */
export function createTruncatedProbe(factory: BackendFactory, weights: ModelWeights, maxTokens: number): LayerProbe & { dispose(): Promise<void> } {
  const backends = new Map<number, Promise<Awaited<ReturnType<BackendFactory>>>>();
  const probe = async (tokens: Int32Array, positions: Int32Array, layer: number, seed?: ProbeSeed): Promise<Float32Array> => {
    if (tokens.length > maxTokens) throw new CachetError(`probe: ${tokens.length} tokens exceed its ${maxTokens} slots`, 'Create the probe with more slots.');
    let b = backends.get(layer);
    if (!b) {
      b = factory(truncateWeights(weights, layer + 1), { kvSlots: maxTokens });
      backends.set(layer, b);
    }
    const be = await b;
    const n = tokens.length;
    const slots = Int32Array.from({ length: n }, (_, i) => i);
    const from = seed ? Math.min(seed.length, n - 1) : 0;
    if (from > 0) await be.writeSlots(slots.subarray(0, from), seed!.length === from ? seed!.kv : sliceLayers(seed!.kv, layer + 1, seed!.length, from, be.config.nKvHeads * be.config.headDim));
    await be.forward([{ tokens: tokens.subarray(from), positions: positions.subarray(from), context: slots, logits: 'none' }]);
    const all = await be.readSlots(slots); // [layer][slot][K|V][D]
    const D = be.config.nKvHeads * be.config.headDim;
    return all.slice(layer * n * 2 * D, (layer + 1) * n * 2 * D);
  };
  return Object.assign(probe, {
    async dispose() {
      for (const b of backends.values()) await (await b).dispose();
      backends.clear();
    },
  });
}

/** The first `count` of `length` tokens of each layer of a [layer][token][K|V][D] array. */
function sliceLayers(kv: Float32Array, layers: number, length: number, count: number, D: number): Float32Array {
  const out = new Float32Array(layers * count * 2 * D);
  for (let l = 0; l < layers; l++) out.set(kv.subarray(l * length * 2 * D, (l * length + count) * 2 * D), l * count * 2 * D);
  return out;
}

/** The same weights seen as a model with only the first nLayers layers. */
export function truncateWeights(w: ModelWeights, nLayers: number): ModelWeights {
  const keep = (name: string) => {
    const m = /^blk\.(\d+)\./.exec(name);
    return !m || Number(m[1]) < nLayers;
  };
  return {
    config: { ...w.config, nLayers },
    has: (name) => keep(name) && w.has(name),
    get: (name) => {
      if (!keep(name)) throw new CachetError(`tensor ${name} is beyond the truncated model`, 'Internal: the probe only has the first layers.');
      return w.get(name);
    },
    names: () => w.names().filter(keep),
  };
}

function sameTokens(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
