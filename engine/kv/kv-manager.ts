// The KV cache facade, in the spirit of llama.cpp's llama-memory.h: sequences of cells over a
// paged block pool, a radix prefix cache shared by all requests, and llama.cpp's sequence edits
// (seq_rm, seq_cp, seq_add = RoPE shift, seq_keep). The runtime's loop for one request:
//
//   const a = await kv.acquire(promptTokens);          // cached prefix locked, slots for the rest
//   forward(tokens.slice(a.cachedLength), a.positions.slice(a.cachedLength), a.context)
//   for each decoded token: const s = await kv.append(a.seq, [tok]); forward(..., kv.context(a.seq))
//   kv.commit(a.seq); kv.release(a.seq);              // prefix stays in the tree for the next one
//
// Backends know nothing of any of this: they only see slot indices.

import { CachetError } from '../errors';
import { BlockPool } from './block-pool';
import { BlockTable } from './block-table';
import { HostTier } from './host-offload';
import { KvCounters, hitRate, type KvMetricsSnapshot } from './metrics';
import { RadixCache, type RadixNode } from './radix-cache';
import type { Backend } from '../backend/types';
import type { KvSlotBackend } from './types';

export interface KvManagerOptions {
  backend: KvSlotBackend;
  /** Slots the backend allocated (BackendOptions.kvSlots). */
  kvSlots: number;
  /** Tokens per block (default 16). */
  blockSize?: number;
  /** Use at most this many blocks (default: all that fit in kvSlots). */
  maxBlocks?: number;
  /** Keep finished prefixes in the radix cache (default true). */
  prefixCache?: boolean;
  /** Host memory for offloaded cold prefix blocks; 0 (default) drops them instead. */
  hostBudgetBytes?: number;
  /**
   * Bytes of K/V per token on the device, for metrics. Default: the backend's memory().kvBytes
   * divided by kvSlots when the backend reports it, else 0.
   */
  bytesPerSlot?: number;
}

export interface KvAcquisition {
  seq: number;
  /** Leading prompt tokens whose K/V is already in place (page-aligned, < tokens.length). */
  cachedLength: number;
  /** Slots of the whole prompt in order: pass as SequenceBatch.context. */
  context: Int32Array;
  /** RoPE positions of the whole prompt (0..n-1). */
  positions: Int32Array;
  /** Slots the uncached suffix writes to (= context.subarray(cachedLength)). */
  newSlots: Int32Array;
  /** Leading cached tokens that are exact; the rest of cachedLength came from approximate nodes. */
  exactLength: number;
}

export interface AcquireOptions {
  /** Also reuse approximate prefixes (K/V assembled from chunk caches). Default false. */
  approximate?: boolean;
  /** Count this lookup in the prefix hit rate (default true; chunk encoding's own lookups do not). */
  countLookup?: boolean;
}

export interface CommitOptions {
  /** Also cache the sequence's approximate cells, as approximate nodes. Default false. */
  approximate?: boolean;
}

/** Anything else that reports into snapshot() (the chunk cache). */
export interface KvStatsSource {
  stats(): { entries: number; diskEntries: number; diskBytes: number; diskEvictions: number };
}

/** Portable K/V of one sequence (see exportSequence). */
export interface KvSequenceState {
  tokens: Int32Array;
  positions: Int32Array;
  /** 1 where the cell's K/V is exact for its context (see BlockTable.exact). */
  exact: Uint8Array;
  /** backend.readSlots layout: [layer][cell][K|V][kvDim]. */
  kv: Float32Array;
}

interface Sequence {
  table: BlockTable;
  /** Radix node this sequence has locked (root when none). */
  node: RadixNode;
}

export class KvManager {
  readonly pool: BlockPool;
  readonly tree: RadixCache;
  readonly host: HostTier | undefined;
  readonly counters = new KvCounters();
  readonly backend: KvSlotBackend;
  readonly bytesPerSlot: number;
  chunkStats: KvStatsSource | undefined;
  private readonly prefixCache: boolean;
  private readonly seqs = new Map<number, Sequence>();
  private nextSeq = 0;

  constructor(options: KvManagerOptions) {
    const blockSize = options.blockSize ?? 16;
    const fit = Math.floor(options.kvSlots / blockSize);
    const nBlocks = Math.min(fit, options.maxBlocks ?? fit);
    if (nBlocks < 1) {
      throw new CachetError(
        `KV budget too small: ${options.kvSlots} slots hold no block of ${blockSize} tokens`,
        'Raise kvSlots (context size) or lower the KV block size.',
      );
    }
    this.backend = options.backend;
    this.pool = new BlockPool({ blockSize, nBlocks });
    this.tree = new RadixCache(this.pool);
    this.pool.evictor = (n) => this.tree.evict(n);
    this.prefixCache = options.prefixCache ?? true;
    this.host = options.hostBudgetBytes ? new HostTier(options.hostBudgetBytes) : undefined;
    const mem = (options.backend as Partial<Backend>).memory?.();
    this.bytesPerSlot = options.bytesPerSlot ?? (mem ? mem.kvBytes / options.kvSlots : 0);
  }

  get blockSize(): number {
    return this.pool.blockSize;
  }

  /**
   * Starts a sequence for a prompt: reuses the longest cached prefix (locked until release) and
   * allocates slots for the rest. At least the last prompt token is always left to compute, so
   * the caller gets logits. Throws OutOfMemoryError (after evicting what it can) when it does not fit.
   */
  async acquire(tokens: ArrayLike<number>, options: AcquireOptions = {}): Promise<KvAcquisition> {
    const n = tokens.length;
    if (n === 0) throw new CachetError('acquire: empty prompt', 'Pass at least one token.');
    const limit = n - 1;
    const approximate = options.approximate ?? false;
    const countLookup = options.countLookup ?? true;
    if (countLookup) this.counters.prefixLookups++;
    let match = this.prefixCache ? this.tree.matchPrefix(tokens, limit, approximate) : { length: 0, blocks: [], node: this.tree.root, exactLength: 0 };
    this.tree.incLock(match.node);
    let node = match.node;
    try {
      // Host runs continue exact prefixes only (approximate leaves are never offloaded).
      if (this.host && this.prefixCache && match.exactLength === match.length) {
        for (;;) {
          const restored = await this.restoreFromHost(tokens, match.length, limit);
          if (!restored) break;
          match = this.tree.matchPrefix(tokens, limit, approximate);
          this.tree.incLock(match.node);
          this.tree.decLock(node);
          node = match.node;
        }
      }
      const table = new BlockTable(this.pool);
      const cached = match.length;
      table.adoptBlocks(match.blocks, slice(tokens, 0, cached));
      for (let i = match.exactLength; i < cached; i++) table.setExact(i, false);
      const rest = slice(tokens, cached, n);
      await this.ensureFree(Math.ceil(rest.length / this.blockSize) + 1);
      try {
        await table.append(this.backend, rest);
      } catch (e) {
        table.clear();
        throw e;
      }
      const seq = this.nextSeq++;
      this.seqs.set(seq, { table, node });
      if (cached > 0 && countLookup) this.counters.prefixHits++;
      if (cached > match.exactLength) this.counters.approxPrefixHits++;
      this.counters.tokensReused += cached;
      this.counters.tokensComputed += n - cached;
      const context = table.context();
      return {
        seq,
        cachedLength: cached,
        context,
        positions: new Int32Array(table.positions),
        newSlots: context.subarray(cached),
        exactLength: match.exactLength,
      };
    } catch (e) {
      this.tree.decLock(node);
      throw e;
    }
  }

  /** An empty sequence (for chunk encoding or manual layouts). */
  create(): number {
    const seq = this.nextSeq++;
    this.seqs.set(seq, { table: new BlockTable(this.pool), node: this.tree.root });
    return seq;
  }

  /**
   * Slots for new tokens at the end of seq (decode steps, or placed chunks). Positions default to
   * last position + 1 onward. The new slots are the last tokens.length entries of context(seq).
   * exact = false marks K/V that will not be computed in place (reused chunks): such cells, and
   * every cell after them, are never committed to the prefix cache.
   */
  async append(seq: number, tokens: ArrayLike<number>, positions?: ArrayLike<number>, exact = true): Promise<Int32Array> {
    const s = this.get(seq);
    await this.ensureFree(Math.ceil(tokens.length / this.blockSize) + 1);
    return s.table.append(this.backend, tokens, positions, exact);
  }

  /**
   * Puts seq's finished prefix (its leading whole blocks laid out at positions 0..) into the radix
   * cache and moves seq's lock onto it. If tokens is given it must match what seq holds. Returns
   * the number of tokens newly cached. approximate: cells assembled from chunk caches go in too,
   * as approximate nodes that only acquire({ approximate: true }) reuses.
   */
  commit(seq: number, tokens?: ArrayLike<number>, options: CommitOptions = {}): number {
    const s = this.get(seq);
    if (!this.prefixCache) return 0;
    const t = s.table;
    if (tokens) {
      const m = Math.min(tokens.length, t.length);
      for (let i = 0; i < m; i++) {
        if (t.tokens[i] !== tokens[i]) {
          throw new CachetError(
            `commit: token ${i} is ${tokens[i]} but sequence ${seq} holds ${t.tokens[i]}`,
            'Commit the tokens the sequence was computed with.',
          );
        }
      }
    }
    const approximate = options.approximate ?? false;
    let blocks = t.cleanPrefixBlocks(!approximate);
    if (tokens) blocks = blocks.slice(0, Math.floor(tokens.length / this.blockSize));
    const len = blocks.length * this.blockSize;
    if (len === 0) return 0;
    const keyTokens = t.tokens.slice(0, len);
    const before = this.tree.insert(keyTokens, blocks, approximate ? t.exactLength() : Infinity);
    const m = this.tree.matchPrefix(keyTokens, len, approximate);
    this.tree.incLock(m.node);
    this.tree.decLock(s.node);
    s.node = m.node;
    return len - before;
  }

  /** Ends seq: drops its block references and its lock (cached prefixes stay in the tree). */
  release(seq: number): void {
    const s = this.get(seq);
    s.table.clear();
    this.tree.decLock(s.node);
    this.seqs.delete(seq);
  }

  /** Removes seq's cells with position in [p0, p1) (p1 < 0: to the end) — llama.cpp seq_rm. */
  seqRm(seq: number, p0: number, p1 = -1): number {
    return this.get(seq).table.remove(p0, p1);
  }

  /**
   * A new sequence sharing src's cells in [p0, p1) (copy-on-write on later writes) — seq_cp.
   * The new sequence holds its own lock on src's cached prefix.
   */
  seqCp(src: number, p0 = 0, p1 = -1): number {
    const s = this.get(src);
    const seq = this.nextSeq++;
    this.tree.incLock(s.node);
    this.seqs.set(seq, { table: s.table.fork(p0, p1), node: s.node });
    return seq;
  }

  /** Adds delta to positions in [p0, p1) and re-rotates their keys (RoPE shift) — seq_add. */
  async seqAdd(seq: number, p0: number, p1: number, delta: number): Promise<number> {
    const s = this.get(seq);
    await this.ensureFree(4);
    return s.table.shift(this.backend, p0, p1, delta);
  }

  /**
   * llama.cpp's --cache-reuse for a sequence that holds an earlier prompt: keeps the longest common
   * prefix, then walks the old cells and keeps every run of at least minRun tokens that continues
   * the new prompt, shifting it (RoPE re-rotation) to where it lands; everything else is dropped.
   * Returns n, the number of leading prompt tokens now in place; prefill prompt[n..] after
   * context(seq). Shifted runs are approximate (they attended to dropped tokens) and are not
   * committed to the prefix cache.
   */
  async reuseShifted(seq: number, prompt: ArrayLike<number>, minRun: number): Promise<number> {
    const t = this.get(seq).table;
    for (let i = 0; i < t.length; i++) {
      if (t.positions[i] !== i) {
        throw new CachetError('reuseShifted: the sequence is not laid out at positions 0..n-1', 'Use it on a sequence holding one plain prompt.');
      }
    }
    const cache = t.tokens;
    const limit = prompt.length - 1; // leave at least one token to compute
    let nPast = 0;
    while (nPast < cache.length && nPast < limit && cache[nPast] === prompt[nPast]) nPast++;
    const keep: number[] = [];
    const positions: number[] = [];
    for (let i = 0; i < nPast; i++) {
      keep.push(i);
      positions.push(i);
    }
    let headC = nPast;
    let headP = nPast;
    if (minRun > 0) {
      while (headC < cache.length && headP < limit) {
        let n = 0;
        while (headC + n < cache.length && headP + n < limit && cache[headC + n] === prompt[headP + n]) n++;
        if (n >= minRun) {
          for (let k = 0; k < n; k++) {
            keep.push(headC + k);
            positions.push(headP + k);
          }
          headC += n;
          headP += n;
        } else headC++;
      }
    }
    await this.ensureFree(Math.ceil(keep.length / this.blockSize) + 1);
    await t.retain(this.backend, keep, positions);
    this.counters.tokensReused += headP;
    return headP;
  }

  /** Releases every sequence but seq — seq_keep. */
  keep(seq: number): void {
    this.get(seq);
    for (const id of [...this.seqs.keys()]) if (id !== seq) this.release(id);
  }

  context(seq: number): Int32Array {
    return this.get(seq).table.context();
  }

  positions(seq: number): Int32Array {
    return new Int32Array(this.get(seq).table.positions);
  }

  tokens(seq: number): Int32Array {
    return new Int32Array(this.get(seq).table.tokens);
  }

  length(seq: number): number {
    return this.get(seq).table.length;
  }

  /** The sequence's block table (read it; edit through this manager). */
  table(seq: number): BlockTable {
    return this.get(seq).table;
  }

  get sequences(): number {
    return this.seqs.size;
  }

  /**
   * Moves up to `blocks` cold (unlocked, least recently used) prefix blocks to the host tier.
   * Returns the device blocks freed. Without a host tier this is plain eviction.
   */
  async offloadCold(blocks: number): Promise<number> {
    if (!this.host) return this.tree.evict(blocks);
    let freed = 0;
    for (const leaf of this.tree.coldLeaves()) {
      if (freed >= blocks) break;
      const leafBlocks = leaf.blocks;
      const data = await this.backend.readSlots(blockSlots(leafBlocks, this.blockSize));
      // Another request may have locked, split (new blocks array) or evicted it while we read.
      if (!leaf.parent || !leaf.isLeaf || leaf.lockRef !== 0 || leaf.blocks !== leafBlocks) continue;
      // The host tier restores runs as exact: approximate ones are dropped, not offloaded.
      if (leaf.approx) {
        freed += this.tree.removeLeaf(leaf);
        continue;
      }
      const prefix = this.tree.pathTokens(leaf.parent);
      if (this.host.put(prefix, leaf.key, data)) this.counters.offloadedBlocks += leaf.blocks.length;
      freed += this.tree.removeLeaf(leaf);
    }
    return freed;
  }

  /**
   * A sequence's cells and their K/V on the host (llama.cpp state_seq_get_data): for saving a
   * session or moving it to another KvManager with the same model.
   */
  async exportSequence(seq: number): Promise<KvSequenceState> {
    const t = this.get(seq).table;
    return {
      tokens: new Int32Array(t.tokens),
      positions: new Int32Array(t.positions),
      exact: Uint8Array.from(t.exact, (e) => (e ? 1 : 0)),
      kv: await this.backend.readSlots(t.context()),
    };
  }

  /** A new sequence holding exported cells (state_seq_set_data); its exact prefix can be committed. */
  async importSequence(state: KvSequenceState): Promise<number> {
    const n = state.tokens.length;
    if (state.positions.length !== n || state.exact.length !== n || (n > 0 && state.kv.length % n !== 0)) {
      throw new CachetError('importSequence: inconsistent state (tokens, positions, exact and kv lengths differ)', 'Pass a state produced by exportSequence for the same model.');
    }
    const seq = this.create();
    try {
      const t = this.get(seq).table;
      let i = 0;
      while (i < n) {
        // Runs of equal exactness keep the "approximate taints what follows" rule intact.
        let j = i;
        while (j < n && state.exact[j] === state.exact[i]) j++;
        await this.ensureFree(Math.ceil((j - i) / this.blockSize) + 1);
        await t.append(this.backend, state.tokens.subarray(i, j), state.positions.subarray(i, j), state.exact[i] === 1);
        i = j;
      }
      await this.backend.writeSlots(t.context(), state.kv);
    } catch (e) {
      this.release(seq);
      throw e;
    }
    return seq;
  }

  snapshot(): KvMetricsSnapshot {
    const c = this.counters;
    const chunk = this.chunkStats?.stats() ?? { entries: 0, diskEntries: 0, diskBytes: 0, diskEvictions: 0 };
    return {
      blockSize: this.blockSize,
      blocksTotal: this.pool.nBlocks,
      blocksUsed: this.pool.used,
      blocksFree: this.pool.free,
      bytes: {
        device: this.pool.used * this.blockSize * this.bytesPerSlot,
        host: this.host?.bytes ?? 0,
        disk: chunk.diskBytes,
      },
      prefix: {
        lookups: c.prefixLookups,
        hits: c.prefixHits,
        approxHits: c.approxPrefixHits,
        hitRate: hitRate(c.prefixHits, c.prefixLookups),
        cachedTokens: this.tree.totalSize,
        evictableTokens: this.tree.evictableSize,
        protectedTokens: this.tree.protectedSize,
      },
      tokens: { reused: c.tokensReused, computed: c.tokensComputed, recomputed: c.tokensRecomputed },
      chunks: { entries: chunk.entries, hits: c.chunkHits, misses: c.chunkMisses, diskEntries: chunk.diskEntries, diskHits: c.diskHits, placedTokens: c.chunkTokensPlaced },
      host: { entries: this.host?.size ?? 0, hits: this.host?.hits ?? 0, offloadedBlocks: c.offloadedBlocks, restoredBlocks: c.restoredBlocks },
      evictions: { deviceBlocks: this.pool.evictions, hostEntries: this.host?.evictions ?? 0, diskEntries: chunk.diskEvictions },
      sequences: this.seqs.size,
    };
  }

  /**
   * Throws if any block's reference count differs from (tree nodes + sequences holding it), or the
   * pool, tree or a table is inconsistent. For tests and debugging.
   */
  checkInvariants(): void {
    this.pool.checkInvariants();
    this.tree.checkInvariants();
    const expect = new Int32Array(this.pool.nBlocks);
    for (const b of this.tree.heldBlocks()) expect[b]++;
    for (const [id, s] of this.seqs) {
      for (const b of s.table.blocks()) expect[b]++;
      const seen = new Set<number>();
      for (const slot of s.table.slots) {
        if (seen.has(slot)) throw new Error(`sequence ${id} uses slot ${slot} twice`);
        seen.add(slot);
        if (!s.table.blocks().includes(this.pool.blockOf(slot))) throw new Error(`sequence ${id} uses slot ${slot} without holding its block`);
      }
    }
    for (let b = 0; b < this.pool.nBlocks; b++) {
      if (this.pool.refCount(b) !== expect[b]) throw new Error(`block ${b}: ref ${this.pool.refCount(b)} but ${expect[b]} holders`);
    }
  }

  private get(seq: number): Sequence {
    const s = this.seqs.get(seq);
    if (!s) throw new CachetError(`KV sequence ${seq} does not exist`, 'It was released or never acquired; acquire a new one.');
    return s;
  }

  /** Before a sync allocation: offload cold blocks to host if that is what makes room. */
  private async ensureFree(blocks: number): Promise<void> {
    if (this.host && this.pool.free < blocks) await this.offloadCold(blocks - this.pool.free);
  }

  /** Moves one host run that continues tokens[0, pos) back to the device. */
  private async restoreFromHost(tokens: ArrayLike<number>, pos: number, limit: number): Promise<boolean> {
    const entry = this.host!.take(tokens, pos, limit);
    if (!entry) return false;
    const nBlocks = entry.key.length / this.blockSize;
    let blocks: number[];
    try {
      blocks = this.pool.allocate(nBlocks);
    } catch {
      this.host!.put(entry.prefix, entry.key, entry.data); // no room: keep it, compute those tokens
      return false;
    }
    await this.backend.writeSlots(blockSlots(blocks, this.blockSize), entry.data);
    const prefix = this.tree.matchPrefix(tokens, pos);
    if (prefix.length !== pos) {
      // The path was evicted meanwhile; give up on this run.
      for (const b of blocks) this.pool.decRef(b);
      return false;
    }
    this.tree.insert(slice(tokens, 0, pos + entry.key.length), [...prefix.blocks, ...blocks]);
    for (const b of blocks) this.pool.decRef(b); // the tree holds them now
    this.counters.restoredBlocks += nBlocks;
    return true;
  }
}

export function blockSlots(blocks: number[], blockSize: number): Int32Array {
  const out = new Int32Array(blocks.length * blockSize);
  for (let j = 0; j < blocks.length; j++) for (let k = 0; k < blockSize; k++) out[j * blockSize + k] = blocks[j] * blockSize + k;
  return out;
}

function slice(a: ArrayLike<number>, from: number, to: number): number[] {
  const out = new Array<number>(Math.max(0, to - from));
  for (let i = from; i < to; i++) out[i - from] = a[i];
  return out;
}
