// engine/kv: the KV cache manager. Public surface:
//
//   KvManager      acquire(tokens) -> { seq, cachedLength, context, positions, newSlots }
//                  append(seq, tokens, positions?) -> new slots (decode / placed chunks)
//                  commit(seq, tokens?)  put the finished prefix in the radix cache
//                  release(seq); seqRm / seqCp / seqAdd (RoPE shift) / keep  (llama.cpp semantics)
//                  context(seq), positions(seq), snapshot(), checkInvariants()
//                  exportSequence(seq) / importSequence(state)  K/V of one sequence via the host
//                  reuseShifted(seq, prompt, minRun)  llama.cpp --cache-reuse (keep + shift runs)
//   BlockPool, BlockTable   paged blocks (slot = block*blockSize + offset), ref counts, copy-on-write
//   RadixCache     SGLang-style prefix tree over token ids, page-aligned, lock refs, LRU eviction;
//                  approximate nodes hold prefixes assembled from chunk caches (acquire/commit
//                  with { approximate: true } use them; plain lookups stop there)
//   HostTier       cold prefix blocks offloaded to host memory
//   ChunkCache     per-file chunk K/V encoded once after a shared prefix; place() re-rotates it to
//                  a new position ('rotate') or keeps encoded positions ('ape'); blend() is
//                  CacheBlend selective recompute (LayerProbe / createTruncatedProbe)
//   ChunkStore     disk tier for chunk K/V: versioned, sha256-checked, atomic writes, LRU budget
//
// Prompt [P][chunk A][chunk B][query] with A and B from the chunk cache (runtime side):
//   const a = await kv.acquire([...P, q0]); kv.seqRm(a.seq, P.length);      // P cells (maybe cached)
//   forward(P.slice(a.cachedLength) ...)                                     // if not all cached
//   const placed = await chunks.place(a.seq, [await chunks.get(keyA, P, A), ...], 'rotate');
//   await chunks.blend(a.seq, placed, { ratio: 0.15, probe });               // optional CacheBlend
//   const qPos = positions from placed.nextPosition; await kv.append(a.seq, query, qPos); forward(...)
// bench/kv-quality-harness.ts runReuse() is a complete, tested instance of this flow, and
// engine/runtime/chunk-reuse.ts the runtime's (chunk spans of FIM prompts, gaps and CacheBlend
// picks recomputed in one SequenceBatch.rows forward).
//
// Backends only see slot indices; this folder never runs a model except where a caller passes a
// compute backend (chunk encoding, selective recompute).

export { BlockPool, type BlockPoolOptions, type Evictor } from './block-pool';
export { BlockTable } from './block-table';
export { RadixCache, RadixNode, type PrefixMatch } from './radix-cache';
export { HostTier, hashTokens } from './host-offload';
export { KvManager, blockSlots, type AcquireOptions, type CommitOptions, type KvAcquisition, type KvManagerOptions, type KvSequenceState, type KvStatsSource } from './kv-manager';
export {
  ChunkCache,
  createTruncatedProbe,
  truncateWeights,
  prefixHash,
  sha256Hex,
  type BlendOptions,
  type BlendResult,
  type ChunkCacheOptions,
  type LayerProbe,
  type ProbeSeed,
  type PlaceMode,
  type PlacedChunk,
  type Placement,
} from './chunk-cache';
export { ChunkStore, chunkKeyId, CHUNK_FILE_VERSION, type ChunkEntry, type ChunkKey, type ChunkStoreOptions } from './chunk-store';
export { KvCounters, type KvMetricsSnapshot } from './metrics';
export type { KvSlotBackend, KvComputeBackend } from './types';
