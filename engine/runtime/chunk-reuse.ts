// Chunk reuse at admission: a prompt whose repository-context chunks are not in the radix cache
// takes each chunk's K/V from the ChunkCache (encoded once per content, after the prompt's head)
// and places it where the chunk lands now, with RoPE re-rotation ('rotate'), optionally repaired by
// CacheBlend's selective recompute ('blend'). Only what no cache holds is computed here: the gaps
// between chunks and the CacheBlend picks, in one scattered forward where the backend has rows.
// The query (the current file) is left to the scheduler's chunked prefill.
//
// Quality against a full recompute on the trained Cachet-Tiny: rotate alone changes outputs
// (bench/results/kv-quality-cpu.json: KL 0.040, top-1 0.875, greedy 16-token match 0.46;
// through this runtime on the repository workload, bench/results/repo-workload-cpu.json: top-1
// 0.94, 16-token greedy exact 0.74). CacheBlend 15% narrows it in the first (KL 0.025, greedy
// 0.71) but not in the second (top-1 0.92, greedy exact 0.76), and its probe costs 2/nLayers of a
// prefill. Neither is exact, so the default is 'off' (radix prefix cache only): a user opts in
// for the speed (2.7x lower TTFT p50 than cold on the CPU workload, rotate).
//
// The assembled sequence is committed to the radix tree as approximate nodes, so the next
// keystroke (same chunks, same prefix) reuses all of it; plain requests never see them.

import { CachetError, OutOfMemoryError } from '../errors';
import { ChunkCache, type ChunkEntry, type KvComputeBackend, type KvManager, type LayerProbe, type PlacedChunk, type Placement } from '../kv';
import type { ChunkReuseMode } from '../protocol';

export type { ChunkReuseMode };

/** A reusable repository-context chunk: prompt tokens [start, end). */
export interface ContextSpan {
  start: number;
  end: number;
}

export interface ChunkReuseOptions {
  mode: Exclude<ChunkReuseMode, 'off'>;
  /** CacheBlend: fraction of reused chunk tokens to recompute (default 0.15). */
  blendRatio?: number;
  /** CacheBlend: layer whose V deviation picks the tokens (default 1). */
  checkLayer?: number;
  /** Required for 'blend' with 0 < ratio < 1. */
  probe?: LayerProbe;
  /** Cells per scattered recompute forward (bounds scratch memory; default 512). */
  maxRows?: number;
  /** Heads longer than this are not used as the encoding prefix; chunks are encoded after the first token. */
  maxHeadTokens?: number;
  /**
   * CacheBlend: start the probe from the cached prefix's K/V instead of recomputing it (one
   * readSlots of that prefix). Default true; a GPU backend may prefer false (readback cost).
   */
  seedProbe?: boolean;
}

/** What one assembly did, for timings and metrics. */
export interface ChunkReuseReport {
  /** Chunks placed from the chunk cache (hits) and encoded for it (misses). */
  hits: number;
  misses: number;
  /** Chunk tokens whose K/V was placed rather than computed (recomputed ones included). */
  placedTokens: number;
  /** CacheBlend picks among the placed tokens. */
  recomputedTokens: number;
  /**
   * Of the cachedLength cells, those whose K/V existed before this request (radix hit, chunk
   * hits less CacheBlend picks there); the rest (gaps, picks, encodings of missed chunks) was
   * computed for it.
   */
  cachedTokens: number;
  /** Tokens run through the model here: gaps, picks and missed chunks' encodings. */
  computedTokens: number;
}

export interface ChunkAcquired {
  seq: number;
  /** Leading cells whose K/V is in place (radix hit, placed chunks, computed gaps). */
  cachedLength: number;
  context: Int32Array;
  /** The sequence holds approximate cells: commit it as approximate. */
  approximate: boolean;
  report: ChunkReuseReport;
}

export class ChunkReuse {
  readonly mode: Exclude<ChunkReuseMode, 'off'>;
  readonly blendRatio: number;
  private readonly maxRows: number;
  private readonly maxHeadTokens: number;
  /** Assemblies that failed (not for memory) and fell back to a plain acquire; the last reason. */
  fallbacks = 0;
  lastError: string | undefined;

  constructor(
    readonly manager: KvManager,
    readonly backend: KvComputeBackend,
    readonly cache: ChunkCache,
    private readonly options: ChunkReuseOptions,
  ) {
    this.mode = options.mode;
    this.blendRatio = options.mode === 'blend' ? options.blendRatio ?? 0.15 : 0;
    if (!(this.blendRatio >= 0 && this.blendRatio <= 1)) {
      throw new CachetError(`chunk blend ratio ${options.blendRatio} outside [0, 1]`, 'Use a recompute ratio between 0 and 1 (0.15 is typical).');
    }
    if (this.blendRatio > 0 && this.blendRatio < 1 && !options.probe) {
      throw new CachetError('chunk reuse mode "blend" needs a layer probe', 'Pass a probe (createTruncatedProbe), or use ratio 1 or mode "rotate".');
    }
    this.maxRows = Math.max(1, options.maxRows ?? 512);
    this.maxHeadTokens = options.maxHeadTokens ?? 256;
  }

  /**
   * Starts a sequence for tokens: the longest cached prefix (approximate nodes included), then the
   * chunks of `spans` that lie past it from the chunk cache. Throws OutOfMemoryError (nothing held).
   */
  async acquire(tokens: ArrayLike<number>, spans: ContextSpan[]): Promise<ChunkAcquired> {
    const clean = usableSpans(spans, tokens.length);
    if (clean.length === 0) return this.plain(tokens, false);
    try {
      return await this.assemble(tokens, clean);
    } catch (err) {
      if (err instanceof OutOfMemoryError) throw err;
      // Anything else (a backend failure, a bug): count it and serve the request exactly.
      this.fallbacks++;
      this.lastError = (err as Error)?.message ?? String(err);
      return this.plain(tokens, false);
    }
  }

  private async assemble(tokens: ArrayLike<number>, clean: ContextSpan[]): Promise<ChunkAcquired> {
    const n = tokens.length;
    const report = emptyReport();
    // Chunks are encoded after the prompt's head (BOS, repo name...), so the first one is exact
    // where it lands; a long head (e.g. an SPM suffix) would key every chunk to it: use BOS only.
    const headLength = clean[0].start <= this.maxHeadTokens ? clean[0].start : Math.min(1, clean[0].start);
    const head = slice(tokens, 0, headLength);

    // Chunks the radix cache does not already cover. Encoding one on a miss also caches
    // [head][chunk] as an exact prefix, which the acquire below then picks up.
    const peek = this.manager.tree.matchPrefix(tokens, n - 1, true).length;
    const entries = new Map<ContextSpan, ChunkEntry>();
    const hit = new Set<ContextSpan>();
    for (const s of clean) {
      if (s.start < peek) continue;
      const chunk = slice(tokens, s.start, s.end);
      const before = this.manager.counters.chunkHits;
      entries.set(s, await this.cache.get(this.cache.keyForTokens(chunk, head), head, chunk));
      if (this.manager.counters.chunkHits > before) hit.add(s);
      else {
        report.misses++;
        report.computedTokens += chunk.length;
      }
    }

    const a = await this.manager.acquire(tokens, { approximate: true });
    const L = a.cachedLength;
    // Radix tokens that were there before this request (the rest came from encoding missed chunks).
    report.cachedTokens = Math.min(L, peek);
    const todo = clean.filter((s) => s.start >= L && entries.has(s));
    if (todo.length === 0) {
      report.cachedTokens = L; // nothing placed: whatever the radix holds counts as cached
      return { seq: a.seq, cachedLength: L, context: a.context, approximate: a.exactLength < L, report };
    }
    const kv = this.manager;
    try {
      kv.seqRm(a.seq, L);
      const gaps: number[] = [];
      const placed: PlacedChunk[] = [];
      let cursor = L;
      for (const s of todo) {
        if (s.start > cursor) {
          const first = kv.length(a.seq);
          await kv.append(a.seq, slice(tokens, cursor, s.start));
          for (let c = first; c < kv.length(a.seq); c++) gaps.push(c);
        }
        const p = await this.cache.place(a.seq, [entries.get(s)!], 'rotate');
        placed.push(...p.chunks);
        report.placedTokens += s.end - s.start;
        if (hit.has(s)) {
          report.hits++;
          report.cachedTokens += s.end - s.start;
        }
        cursor = s.end;
      }
      const placement: Placement = { chunks: placed, nextPosition: cursor };
      let picks: number[] = [];
      if (this.blendRatio > 0) {
        const seedLength = this.options.seedProbe ?? true ? L : 0;
        picks = (await this.cache.select(a.seq, placement, { ratio: this.blendRatio, probe: this.options.probe, checkLayer: this.options.checkLayer, seedLength })).cells;
      }
      const compute = mergeSorted(gaps, picks);
      for (let i = 0; i < compute.length; i += this.maxRows) await this.cache.recompute(a.seq, compute.slice(i, i + this.maxRows));
      this.cache.countRecomputed(picks.length);
      report.recomputedTokens = picks.length;
      report.computedTokens += gaps.length + picks.length;
      const hitCells = new Set<number>();
      placed.forEach((c, k) => {
        if (hit.has(todo[k])) for (let i = 0; i < c.slots.length; i++) hitCells.add(c.cell + i);
      });
      report.cachedTokens -= picks.filter((c) => hitCells.has(c)).length;
      // acquire() counted every uncached prompt token as computed; placed ones were not.
      kv.counters.tokensComputed -= report.placedTokens;
      await kv.append(a.seq, slice(tokens, cursor, n));
      const positions = kv.positions(a.seq);
      for (let i = 0; i < n; i++) {
        if (positions[i] !== i) throw new CachetError(`chunk reuse laid cell ${i} at position ${positions[i]}`, 'Internal: rotate placement must keep positions contiguous.');
      }
      return { seq: a.seq, cachedLength: cursor, context: kv.context(a.seq), approximate: true, report };
    } catch (err) {
      kv.release(a.seq);
      throw err;
    }
  }

  private async plain(tokens: ArrayLike<number>, approximate: boolean): Promise<ChunkAcquired> {
    const a = await this.manager.acquire(tokens, { approximate });
    return { seq: a.seq, cachedLength: a.cachedLength, context: a.context, approximate: a.exactLength < a.cachedLength, report: { ...emptyReport(), cachedTokens: a.cachedLength } };
  }
}

function emptyReport(): ChunkReuseReport {
  return { hits: 0, misses: 0, placedTokens: 0, recomputedTokens: 0, cachedTokens: 0, computedTokens: 0 };
}

/** Spans sorted, inside the prompt, non-empty, non-overlapping, and ending before the last token. */
function usableSpans(spans: ContextSpan[], n: number): ContextSpan[] {
  const out: ContextSpan[] = [];
  let end = 0;
  for (const s of [...spans].sort((a, b) => a.start - b.start)) {
    if (!Number.isInteger(s.start) || !Number.isInteger(s.end) || s.start < end || s.end <= s.start || s.end > n - 1) continue;
    out.push(s);
    end = s.end;
  }
  return out;
}

function mergeSorted(a: number[], b: number[]): number[] {
  return [...new Set([...a, ...b])].sort((x, y) => x - y);
}

function slice(a: ArrayLike<number>, from: number, to: number): number[] {
  const out = new Array<number>(Math.max(0, to - from));
  for (let i = from; i < to; i++) out[i - from] = a[i];
  return out;
}
