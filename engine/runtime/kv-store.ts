// The runtime's view of KV memory: which slots a sequence owns and which prefixes can be reused.
//
// Kept deliberately tiny so engine/kv (paged blocks + radix tree) can sit behind it. The simple
// implementation here is llama.cpp's "slot reuse": a pool of free slot indices plus an LRU list of
// finished sequences; a new prompt takes over the longest matching finished sequence's slots.

import { OutOfMemoryError } from '../errors';

/** A reused prefix: `slots[i]` holds the KV of prompt token i, for i < length. */
export interface PrefixLease {
  length: number;
  slots: Int32Array;
  /** Implementation data (e.g. locked radix nodes); pass back to release(). */
  readonly handle: unknown;
}

export interface KvStats {
  total: number;
  /** Owned by running sequences. */
  used: number;
  /** Held only by the prefix cache (evictable). */
  cached: number;
  free: number;
  lookups: number;
  hits: number;
  evictions: number;
}

export interface KvStore {
  readonly totalSlots: number;
  /** Longest cached prefix of `tokens`, at most maxLength long. The caller owns the lease until release(). */
  matchPrefix(tokens: ArrayLike<number>, maxLength: number): PrefixLease;
  /** n fresh slots, evicting cached prefixes when needed. Throws OutOfMemoryError when impossible. */
  allocate(n: number): Int32Array;
  /** Return fresh slots never offered to the cache (e.g. rejected speculative drafts). */
  free(slots: ArrayLike<number>): void;
  /**
   * A sequence is done: tokens[i] has its KV in slots[i] (slots starts with lease.slots).
   * keep=true offers them to the prefix cache; otherwise every non-shared slot is freed.
   */
  release(lease: PrefixLease, tokens: ArrayLike<number>, slots: ArrayLike<number>, keep: boolean): void;
  /** Drop every cached prefix (running sequences keep theirs). */
  clear(): void;
  stats(): KvStats;
}

interface CachedSequence {
  tokens: Int32Array;
  slots: Int32Array;
  lastUse: number;
}

/** Free-list slot pool + LRU cache of finished sequences (exclusive reuse, no sharing). */
export class SimpleKvStore implements KvStore {
  readonly totalSlots: number;
  private freeList: number[];
  private cache: CachedSequence[] = [];
  private cachedCount = 0;
  private clock = 0;
  private lookups = 0;
  private hits = 0;
  private evictions = 0;
  private readonly isFree: Uint8Array;

  constructor(totalSlots: number) {
    this.totalSlots = totalSlots;
    // Pop from the end: hand out low slot numbers first (easier to read in logs).
    this.freeList = Array.from({ length: totalSlots }, (_, i) => totalSlots - 1 - i);
    this.isFree = new Uint8Array(totalSlots).fill(1);
  }

  matchPrefix(tokens: ArrayLike<number>, maxLength: number): PrefixLease {
    this.lookups++;
    let best = -1;
    let bestLen = 0;
    for (let c = 0; c < this.cache.length; c++) {
      const entry = this.cache[c];
      const limit = Math.min(entry.tokens.length, tokens.length, maxLength);
      let n = 0;
      while (n < limit && entry.tokens[n] === tokens[n]) n++;
      if (n > bestLen) { bestLen = n; best = c; }
    }
    if (best < 0) return { length: 0, slots: new Int32Array(0), handle: undefined };
    this.hits++;
    const [entry] = this.cache.splice(best, 1);
    this.cachedCount -= entry.slots.length;
    this.free(entry.slots.subarray(bestLen));
    return { length: bestLen, slots: entry.slots.slice(0, bestLen), handle: undefined };
  }

  allocate(n: number): Int32Array {
    while (this.freeList.length < n && this.cache.length > 0) this.evictOldest();
    if (this.freeList.length < n) {
      throw new OutOfMemoryError(
        `KV cache full: need ${n} slots, ${this.freeList.length} free of ${this.totalSlots}`,
        'Lower the context length or the number of concurrent requests, or raise the KV budget.',
      );
    }
    const out = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const s = this.freeList.pop()!;
      this.isFree[s] = 0;
      out[i] = s;
    }
    return out;
  }

  free(slots: ArrayLike<number>): void {
    for (let i = 0; i < slots.length; i++) {
      const s = slots[i];
      if (s < 0 || s >= this.totalSlots || this.isFree[s]) throw new Error(`KV slot ${s} freed twice or out of range`);
      this.isFree[s] = 1;
      this.freeList.push(s);
    }
  }

  release(_lease: PrefixLease, tokens: ArrayLike<number>, slots: ArrayLike<number>, keep: boolean): void {
    if (tokens.length < slots.length) throw new Error('release: fewer tokens than slots');
    if (!keep || slots.length === 0) { this.free(slots); return; }
    this.cache.push({ tokens: Int32Array.from(Array.prototype.slice.call(tokens, 0, slots.length)), slots: Int32Array.from(slots), lastUse: ++this.clock });
    this.cachedCount += slots.length;
  }

  clear(): void {
    while (this.cache.length > 0) this.evictOldest();
  }

  stats(): KvStats {
    const free = this.freeList.length;
    return {
      total: this.totalSlots,
      used: this.totalSlots - free - this.cachedCount,
      cached: this.cachedCount,
      free,
      lookups: this.lookups,
      hits: this.hits,
      evictions: this.evictions,
    };
  }

  private evictOldest(): void {
    let oldest = 0;
    for (let c = 1; c < this.cache.length; c++) if (this.cache[c].lastUse < this.cache[oldest].lastUse) oldest = c;
    const [entry] = this.cache.splice(oldest, 1);
    this.cachedCount -= entry.slots.length;
    this.evictions++;
    this.free(entry.slots);
  }
}
