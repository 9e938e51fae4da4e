// Counters for the KV cache, and the one snapshot shape the runtime forwards to the dashboard.

export interface KvMetricsSnapshot {
  blockSize: number;
  blocksTotal: number;
  blocksUsed: number;
  blocksFree: number;
  /** Bytes of K/V per tier: device = used blocks, host = offloaded runs, disk = chunk store. */
  bytes: { device: number; host: number; disk: number };
  prefix: {
    lookups: number;
    /** Lookups that reused at least one block. */
    hits: number;
    /** Hits that went through approximate nodes (prefixes assembled from chunk caches). */
    approxHits: number;
    hitRate: number;
    cachedTokens: number;
    evictableTokens: number;
    protectedTokens: number;
  };
  tokens: {
    /** Prompt tokens served from the prefix cache, host tier or chunk caches. */
    reused: number;
    /** Prompt tokens the caller had to compute. */
    computed: number;
    /** Reused tokens that CacheBlend recomputed anyway. */
    recomputed: number;
  };
  chunks: {
    entries: number;
    hits: number;
    misses: number;
    diskEntries: number;
    diskHits: number;
    /** Chunk tokens whose K/V was placed from a chunk cache instead of computed. */
    placedTokens: number;
  };
  host: { entries: number; hits: number; offloadedBlocks: number; restoredBlocks: number };
  evictions: { deviceBlocks: number; hostEntries: number; diskEntries: number };
  sequences: number;
}

/** Plain mutable counters; KvManager and ChunkCache bump them, snapshot() reads them. */
export class KvCounters {
  prefixLookups = 0;
  prefixHits = 0;
  approxPrefixHits = 0;
  tokensReused = 0;
  tokensComputed = 0;
  tokensRecomputed = 0;
  chunkHits = 0;
  chunkMisses = 0;
  chunkTokensPlaced = 0;
  diskHits = 0;
  offloadedBlocks = 0;
  restoredBlocks = 0;
}

export function hitRate(hits: number, lookups: number): number {
  return lookups === 0 ? 0 : hits / lookups;
}
