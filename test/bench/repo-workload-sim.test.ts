// The repository workload generator of bench/repo-workload.ts: deterministic, edits land where the
// events say, and prompt segment boundaries match the tokenizer.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openGguf } from '../../engine/gguf';
import { Tokenizer } from '../../engine/tokenizer';
import { buildPrompt, loadWorkspace, simulate } from '../../bench/repo-workload-sim';

const AJV = join('node_modules', 'ajv');
const VOCAB = '../shared/fixtures/vocab/ggml-vocab-deepseek-coder.gguf';
const haveAjv = existsSync(join(AJV, 'lib'));
const haveVocab = existsSync(VOCAB);

describe.skipIf(!haveAjv)('repo workload simulation', () => {
  if (!haveAjv) console.warn(`skipping: ${AJV}/lib not installed`);
  const ws = loadWorkspace(AJV, 'lib', 30);

  it('loads 30 TypeScript sources of an MIT package', () => {
    expect(ws.files.size).toBe(30);
    expect(ws.source.license).toBe('MIT');
    for (const p of ws.files.keys()) expect(p).toMatch(/^lib\/.*\.ts$/);
  });

  it('is deterministic in its seed and mixes the event kinds', () => {
    const a = simulate(ws, { requests: 50, seed: 6 });
    const b = simulate(ws, { requests: 50, seed: 6 });
    const c = simulate(ws, { requests: 50, seed: 7 });
    expect(a.map((r) => r.prefix + r.suffix)).toEqual(b.map((r) => r.prefix + r.suffix));
    expect(a.map((r) => r.event)).not.toEqual(c.map((r) => r.event));
    const kinds = new Set(a.map((r) => r.event.kind));
    for (const k of ['start', 'switch', 'type', 'edit-context']) expect(kinds).toContain(k);
  });

  it('typing grows the prefix and keeps the suffix; a context edit changes only the edited file', () => {
    const reqs = simulate(ws, { requests: 50, seed: 6 });
    for (let i = 1; i < reqs.length; i++) {
      const r = reqs[i]!;
      const prev = reqs[i - 1]!;
      if (r.event.kind === 'type' || (r.event.kind === 'edit-context' && r.path === prev.path)) {
        expect(r.path).toBe(prev.path);
        expect(r.suffix).toBe(prev.suffix);
        expect(r.prefix.length).toBeGreaterThan(prev.prefix.length);
      }
      if (r.event.edited) {
        const before = prev.candidates.find((c) => c.path === r.event.edited)?.text ?? ws.files.get(r.event.edited);
        const after = r.candidates.find((c) => c.path === r.event.edited)!.text;
        expect(after).not.toBe(before);
        expect(r.candidates.find((c) => c.path === r.event.edited)!.sources).toEqual(['recent-edit']);
      }
      expect(r.candidates.some((c) => c.path === r.path)).toBe(false);
      expect(r.candidates.length).toBe(29);
    }
  });

  it.skipIf(!haveVocab)('prompt segments are the tokens of their own text, context before the query', () => {
    const tok = Tokenizer.fromGguf(openGguf(VOCAB));
    const reqs = simulate(ws, { requests: 6, seed: 6 });
    const budget = { contextTokens: 1500, prefixTokens: 300, suffixTokens: 100, maxChunks: 8, chunkLines: 32 };
    for (const r of reqs) {
      const p = buildPrompt(tok, r, budget);
      expect(p.ids[0]).toBe(tok.bos);
      expect(p.ids[1]).toBe(tok.fim!.prefix);
      expect(p.head).toBe(2);
      expect(p.chunks.length).toBeGreaterThan(0);
      let at = p.head;
      for (const c of p.chunks) {
        expect(c.start).toBe(at);
        expect(p.ids.slice(c.start, c.end)).toEqual(tok.encode(c.text, { addSpecial: false, parseSpecial: false }));
        at = c.end;
      }
      expect(p.queryStart).toBe(at);
      expect(p.queryStart - p.head).toBeLessThanOrEqual(budget.contextTokens);
      expect(p.ids).toContain(tok.fim!.suffix);
      expect(p.ids).toContain(tok.fim!.middle);
    }
  });
});
