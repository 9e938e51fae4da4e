// The runtime's view of KV memory: sequences of cells (token -> slot), prefix reuse, eviction.
//
// A tiny interface in the spirit of llama.cpp's llama-memory.h so the scheduler does not care
// which implementation sits behind it: `SimpleKvStore` (here: a free list of slots plus an LRU
// list of finished sequences, llama.cpp's "slot reuse") or engine/kv's KvManager (paged blocks
// and a radix prefix tree shared by all requests) through `KvManagerStore`.

import { OutOfMemoryError } from '../errors';
import type { KvManager } from '../kv';
import type { ChunkReuse, ChunkReuseReport, ContextSpan } from './chunk-reuse';

export interface KvAcquired {
  seq: number;
  /** Leading prompt tokens whose KV is already in place (always < tokens.length). */
  cachedLength: number;
  /** Slots of every prompt token, in order (cached ones first). */
  context: Int32Array;
  /** Chunk-cache work done while acquiring (stores with chunk reuse). */
  chunks?: ChunkReuseReport;
}

export interface KvStats {
  total: number;
  /** Held by running sequences (cache entries they lock included). */
  used: number;
  /** Held only by the prefix cache: reusable, evictable. */
  cached: number;
  free: number;
  lookups: number;
  hits: number;
  evictions: number;
  /** Sequences not yet released. */
  sequences: number;
}

export interface KvStore {
  readonly totalSlots: number;
  /**
   * Starts a sequence: longest cached prefix of tokens plus fresh slots for the rest. Throws
   * OutOfMemoryError. spans: repository-context chunks a store with chunk reuse may take from its
   * chunk cache (other stores ignore them).
   */
  acquire(tokens: ArrayLike<number>, spans?: ContextSpan[]): Promise<KvAcquired>;
  /** Slots for tokens appended at the end of seq. Throws OutOfMemoryError without side effects. */
  append(seq: number, tokens: ArrayLike<number>): Promise<Int32Array>;
  /** Drops seq's cells from index `length` on (uncomputed prompt tail, rejected drafts). */
  truncate(seq: number, length: number): void;
  /** Ends seq. keep: offer its cells (all computed) to the prefix cache. */
  release(seq: number, keep: boolean): void;
  /** Drops every cached prefix not in use. */
  clear(): void;
  stats(): KvStats;
}

interface SimpleSeq {
  tokens: number[];
  slots: number[];
}

interface CachedRun {
  tokens: number[];
  slots: number[];
  lastUse: number;
}

/** Free-list slot pool + LRU cache of finished sequences (a prefix is reused by one sequence at a time). */
export class SimpleKvStore implements KvStore {
  readonly totalSlots: number;
  private readonly freeList: number[];
  private readonly isFree: Uint8Array;
  private readonly seqs = new Map<number, SimpleSeq>();
  private cache: CachedRun[] = [];
  private cachedCount = 0;
  private nextSeq = 0;
  private clock = 0;
  private lookups = 0;
  private hits = 0;
  private evictions = 0;

  constructor(totalSlots: number) {
    this.totalSlots = totalSlots;
    // Pop from the end: low slot numbers first (easier to read in logs).
    this.freeList = Array.from({ length: totalSlots }, (_, i) => totalSlots - 1 - i);
    this.isFree = new Uint8Array(totalSlots).fill(1);
  }

  async acquire(tokens: ArrayLike<number>): Promise<KvAcquired> {
    this.lookups++;
    const limit = tokens.length - 1;
    let best = -1;
    let bestLen = 0;
    for (let c = 0; c < this.cache.length; c++) {
      const run = this.cache[c];
      const m = Math.min(run.tokens.length, limit);
      let n = 0;
      while (n < m && run.tokens[n] === tokens[n]) n++;
      if (n > bestLen) { bestLen = n; best = c; }
    }
    // Take the matched run out of the cache first so eviction cannot free it under us.
    let reused: number[] = [];
    let unusedTail: number[] = [];
    if (best >= 0) {
      const [run] = this.cache.splice(best, 1);
      this.cachedCount -= run.slots.length;
      reused = run.slots.slice(0, bestLen);
      unusedTail = run.slots.slice(bestLen);
    }
    this.freeSlots(unusedTail);
    let fresh: number[];
    try {
      fresh = this.take(tokens.length - bestLen);
    } catch (e) {
      this.freeSlots(reused);
      throw e;
    }
    if (bestLen > 0) this.hits++;
    const seq = this.nextSeq++;
    const slots = [...reused, ...fresh];
    this.seqs.set(seq, { tokens: Array.from(tokens), slots });
    return { seq, cachedLength: bestLen, context: Int32Array.from(slots) };
  }

  async append(seq: number, tokens: ArrayLike<number>): Promise<Int32Array> {
    const s = this.get(seq);
    const fresh = this.take(tokens.length);
    for (let i = 0; i < tokens.length; i++) s.tokens.push(tokens[i]);
    s.slots.push(...fresh);
    return Int32Array.from(fresh);
  }

  truncate(seq: number, length: number): void {
    const s = this.get(seq);
    if (length >= s.slots.length) return;
    this.freeSlots(s.slots.splice(length));
    s.tokens.length = length;
  }

  release(seq: number, keep: boolean): void {
    const s = this.get(seq);
    this.seqs.delete(seq);
    if (!keep || s.slots.length === 0) { this.freeSlots(s.slots); return; }
    this.cache.push({ tokens: s.tokens, slots: s.slots, lastUse: ++this.clock });
    this.cachedCount += s.slots.length;
  }

  clear(): void {
    while (this.cache.length > 0) this.evictOldest();
  }

  stats(): KvStats {
    const free = this.freeList.length;
    return {
      total: this.totalSlots, used: this.totalSlots - free - this.cachedCount, cached: this.cachedCount, free,
      lookups: this.lookups, hits: this.hits, evictions: this.evictions, sequences: this.seqs.size,
    };
  }

  private get(seq: number): SimpleSeq {
    const s = this.seqs.get(seq);
    if (!s) throw new Error(`KV sequence ${seq} does not exist`);
    return s;
  }

  private take(n: number): number[] {
    while (this.freeList.length < n && this.cache.length > 0) this.evictOldest();
    if (this.freeList.length < n) {
      throw new OutOfMemoryError(
        `KV cache full: need ${n} slots, ${this.freeList.length} free of ${this.totalSlots}`,
        'Lower the context length or the number of concurrent requests, or raise the KV budget.',
      );
    }
    const out = new Array<number>(n);
    for (let i = 0; i < n; i++) {
      const s = this.freeList.pop()!;
      this.isFree[s] = 0;
      out[i] = s;
    }
    return out;
  }

  private freeSlots(slots: number[]): void {
    for (const s of slots) {
      if (this.isFree[s]) throw new Error(`KV slot ${s} freed twice`);
      this.isFree[s] = 1;
      this.freeList.push(s);
    }
  }

  private evictOldest(): void {
    let oldest = 0;
    for (let c = 1; c < this.cache.length; c++) if (this.cache[c].lastUse < this.cache[oldest].lastUse) oldest = c;
    const [run] = this.cache.splice(oldest, 1);
    this.cachedCount -= run.slots.length;
    this.evictions++;
    this.freeSlots(run.slots);
  }
}

/**
 * engine/kv's KvManager (paged blocks, radix tree shared by concurrent requests) as a KvStore;
 * with a ChunkReuse, requests that name context spans take those chunks from the chunk cache.
 */
export class KvManagerStore implements KvStore {
  readonly totalSlots: number;
  /** Sequences holding approximate (chunk-assembled) cells: committed as approximate nodes. */
  private readonly approximate = new Set<number>();

  constructor(readonly manager: KvManager, readonly chunks?: ChunkReuse) {
    this.totalSlots = manager.pool.nBlocks * manager.blockSize;
  }

  async acquire(tokens: ArrayLike<number>, spans?: ContextSpan[]): Promise<KvAcquired> {
    if (this.chunks && spans && spans.length > 0) {
      const a = await this.chunks.acquire(tokens, spans);
      if (a.approximate) this.approximate.add(a.seq);
      return { seq: a.seq, cachedLength: a.cachedLength, context: a.context, chunks: a.report };
    }
    const a = await this.manager.acquire(tokens);
    return { seq: a.seq, cachedLength: a.cachedLength, context: a.context };
  }

  append(seq: number, tokens: ArrayLike<number>): Promise<Int32Array> {
    return this.manager.append(seq, tokens);
  }

  truncate(seq: number, length: number): void {
    if (length < this.manager.length(seq)) this.manager.seqRm(seq, length);
  }

  release(seq: number, keep: boolean): void {
    const approximate = this.approximate.delete(seq);
    if (keep) this.manager.commit(seq, undefined, { approximate });
    this.manager.release(seq);
  }

  clear(): void {
    this.manager.tree.clear();
  }

  stats(): KvStats {
    const s = this.manager.snapshot();
    const bs = s.blockSize;
    const cached = s.prefix.evictableTokens;
    return {
      total: s.blocksTotal * bs,
      used: s.blocksUsed * bs - cached,
      cached,
      free: s.blocksFree * bs,
      lookups: s.prefix.lookups,
      hits: s.prefix.hits,
      evictions: s.evictions.deviceBlocks,
      sequences: s.sequences,
    };
  }
}
