// Dashboard rows computed on the extension side (pure, unit-tested): the webview script only
// fills them in. Chunk-cache metrics exist only when the engine runs with chunkReuse on.

import type { ChunkMetrics } from '../engine/protocol';

export type DashboardRows = [label: string, value: string][];

const num = (x: number) => x.toLocaleString('en-US');
const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
const mib = (b: number) => `${(b / 1048576).toFixed(1)} MiB`;

/** Rows of the "Chunk cache" card; undefined hides the card (engine without chunk reuse). */
export function chunkCacheRows(c: ChunkMetrics | undefined): DashboardRows | undefined {
  if (!c || c.mode === 'off') return undefined;
  const lookups = c.hits + c.misses;
  return [
    ['mode', c.mode === 'blend' ? `blend, ${pct(c.blendRatio)} recomputed (approximate)` : `${c.mode} (approximate)`],
    ['chunks in memory', num(c.entries)],
    ['chunks on disk', `${num(c.diskEntries)} (${mib(c.diskBytes)})`],
    ['hits / misses', `${num(c.hits)} / ${num(c.misses)}`],
    ['hit rate', lookups ? pct(c.hits / lookups) : '–'],
    ['hits from disk', num(c.diskHits)],
    ['tokens placed', num(c.placedTokens)],
    // CacheBlend recomputes a share of the placed tokens; the rest kept their cached K/V.
    ['placed, recomputed', c.placedTokens ? `${num(c.recomputedTokens)} (${pct(c.recomputedTokens / c.placedTokens)})` : num(c.recomputedTokens)],
    ['approximate prefix hits', num(c.approxPrefixHits)],
    ['fallbacks to full prefill', num(c.fallbacks)],
  ];
}
