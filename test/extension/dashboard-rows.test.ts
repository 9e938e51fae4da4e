// The dashboard's chunk cache card: the rows the extension computes from MetricsSnapshot.kv.chunks
// (src/dashboard-rows.ts), and media/dashboard.js rendering them, run in a vm against a minimal
// stand-in DOM (just what the script touches).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import type { ChunkMetrics, MetricsSnapshot } from '../../engine/protocol';
import { chunkCacheRows } from '../../src/dashboard-rows';

const chunks: ChunkMetrics = {
  mode: 'blend', blendRatio: 0.15, entries: 42, hits: 227, misses: 97, diskEntries: 120, diskHits: 11, diskBytes: 3 * 1048576,
  placedTokens: 20000, recomputedTokens: 3000, approxPrefixHits: 33, fallbacks: 2,
};

describe('chunkCacheRows', () => {
  it('is absent without chunk metrics or with chunk reuse off (the card stays hidden)', () => {
    expect(chunkCacheRows(undefined)).toBeUndefined();
    expect(chunkCacheRows({ ...chunks, mode: 'off' })).toBeUndefined();
  });

  it('shows mode, entries, hits/misses, placed vs recomputed tokens and fallbacks', () => {
    expect(Object.fromEntries(chunkCacheRows(chunks)!)).toEqual({
      'mode': 'blend, 15.0% recomputed (approximate)',
      'chunks in memory': '42',
      'chunks on disk': '120 (3.0 MiB)',
      'hits / misses': '227 / 97',
      'hit rate': '70.1%',
      'hits from disk': '11',
      'tokens placed': '20,000',
      'placed, recomputed': '3,000 (15.0%)',
      'approximate prefix hits': '33',
      'fallbacks to full prefill': '2',
    });
  });

  it('has no rates to show before the first lookup, and no blend ratio for rotate', () => {
    const rows = Object.fromEntries(chunkCacheRows({ ...chunks, mode: 'rotate', blendRatio: 0, hits: 0, misses: 0, placedTokens: 0, recomputedTokens: 0 })!);
    expect(rows['mode']).toBe('rotate (approximate)');
    expect(rows['hit rate']).toBe('–');
    expect(rows['placed, recomputed']).toBe('0');
  });
});

// ---- media/dashboard.js in a stand-in webview

class El {
  children: El[] = [];
  textContent = '';
  hidden = false;
  style: Record<string, string> = {};
  constructor(readonly tag: string) {}
  replaceChildren(...c: El[]) {
    this.children = c;
  }
  append(...c: El[]) {
    this.children.push(...c);
  }
  getContext() {
    const noop = () => undefined;
    return { clearRect: noop, beginPath: noop, moveTo: noop, lineTo: noop, stroke: noop, strokeStyle: '' };
  }
}

function webview() {
  const els = new Map<string, El>();
  for (const id of ['model', 'memory', 'kv', 'kv-bar', 'chunks', 'reuse', 'latency', 'requests', 'session', 'history', 'notes']) els.set(id, new El(id === 'history' ? 'canvas' : 'dl'));
  // As the HTML has it: hidden until chunk metrics arrive.
  els.set('chunks-card', Object.assign(new El('div'), { hidden: true }));
  let onMessage: ((e: { data: unknown }) => void) | undefined;
  const posted: unknown[] = [];
  runInNewContext(readFileSync(join(__dirname, '..', '..', 'media', 'dashboard.js'), 'utf8'), {
    acquireVsCodeApi: () => ({ postMessage: (m: unknown) => posted.push(m) }),
    document: { getElementById: (id: string) => els.get(id), createElement: (tag: string) => new El(tag) },
    window: { addEventListener: (type: string, f: typeof onMessage) => { if (type === 'message') onMessage = f; } },
  });
  const rows = (id: string) => {
    const c = els.get(id)!.children;
    const out: [string, string][] = [];
    for (let i = 0; i < c.length; i += 2) out.push([c[i].textContent, c[i + 1].textContent]);
    return out;
  };
  return { els, posted, rows, send: (data: unknown) => onMessage!({ data }) };
}

function snapshot(withChunks: ChunkMetrics | undefined): MetricsSnapshot {
  return {
    timeMs: 0, uptimeMs: 1000,
    model: { name: 'tiny', arch: 'llama', backend: 'onnx', contextLength: 1024 },
    requests: { active: 0, queued: 0, completed: 3, cancelled: 0, failed: 0, deadline: 0 },
    tokens: { prompt: 100, prefilled: 60, cached: 40, generated: 12 },
    kv: { slotsTotal: 1024, slotsUsed: 16, slotsCached: 8, hitRate: 0.5, evictions: 0, ...(withChunks ? { chunks: withChunks } : {}) },
    speculative: { drafted: 0, accepted: 0, acceptanceRate: 0 },
    latency: { ttftP50Ms: 20, ttftP99Ms: 40, lastTtftMs: 18, lastTokensPerSecond: 50 },
    memory: { weightsBytes: 1, kvBytes: 1, scratchBytes: 1, heapUsedBytes: 1, rssBytes: 1 },
    notes: [],
  };
}

describe('media/dashboard.js', () => {
  it('shows the chunk cache card beside the KV numbers when the metrics have kv.chunks', () => {
    const w = webview();
    expect(w.posted).toEqual([{ type: 'ready' }]);
    const snap = snapshot(chunks);
    // What Dashboard.post sends.
    w.send({ type: 'metrics', snapshot: snap, chunks: chunkCacheRows(snap.kv.chunks), session: {}, state: 'Engine ready.' });
    expect(w.els.get('chunks-card')!.hidden).toBe(false);
    expect(w.rows('chunks')).toEqual(chunkCacheRows(chunks));
    expect(w.rows('kv').map(([k]) => k)).toEqual(['slots used', 'held by prefix cache', 'evictions']);
  });

  it('hides the card again when the engine reloads without chunk reuse', () => {
    const w = webview();
    w.send({ type: 'metrics', snapshot: snapshot(chunks), chunks: chunkCacheRows(chunks), session: {} });
    const snap = snapshot(undefined);
    w.send({ type: 'metrics', snapshot: snap, chunks: chunkCacheRows(snap.kv.chunks), session: {} });
    expect(w.els.get('chunks-card')!.hidden).toBe(true);
    expect(w.rows('kv')).toHaveLength(3);
  });
});
