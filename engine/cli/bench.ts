// `cachet bench`: a standard prefill/decode timing on one model (the fuller suites live in bench/).
// Prints a table, or JSON with --json. Timings come from the engine's own per-request timings.

import type { Engine } from './engine-link';
import { ms } from './output';

export interface BenchRow {
  promptTokens: number;
  run: 'cold' | 'warm';
  cachedTokens: number;
  prefillMs: number;
  prefillTokensPerSecond: number;
  decodeTokens: number;
  decodeTokensPerSecond: number;
  totalMs: number;
}

export interface BenchReport {
  model: string;
  backend: string;
  arch: string;
  weightType: string;
  node: string;
  rows: BenchRow[];
}

/** A code-like text long enough for any prompt length here (tokenized, then cut to length). */
function benchText(): string {
  const lines: string[] = [];
  for (let i = 0; i < 4000; i++) lines.push(`function step${i}(state, input) {\n  const next = state.value * ${i % 97} + input.length;\n  return { value: next, count: state.count + 1 };\n}\n`);
  return lines.join('\n');
}

export async function runBench(engine: Engine, opts: { promptTokens: number[]; decodeTokens: number }): Promise<BenchReport> {
  const all = engine.tokenizer.encode(benchText(), { addSpecial: false, parseSpecial: false });
  const rows: BenchRow[] = [];
  for (const n of opts.promptTokens) {
    const limit = Math.min(n, engine.info.contextLength - opts.decodeTokens - 1, all.length);
    const prompt = all.slice(all.length - limit); // a different slice per length: no cross-length reuse
    for (const run of ['cold', 'warm'] as const) {
      const r = await engine.generate({ prompt: { kind: 'tokens', tokenIds: prompt }, maxTokens: opts.decodeTokens, priority: 'interactive' });
      const t = r.timings;
      rows.push({
        promptTokens: t.promptTokens,
        run,
        cachedTokens: t.cachedTokens,
        prefillMs: t.ttftMs,
        prefillTokensPerSecond: t.ttftMs > 0 ? (1000 * t.prefillTokens) / t.ttftMs : 0,
        decodeTokens: t.generatedTokens,
        decodeTokensPerSecond: t.tokensPerSecond,
        totalMs: t.totalMs,
      });
    }
  }
  return { model: engine.info.path, backend: engine.backendName, arch: engine.info.arch, weightType: engine.info.weightType, node: process.version, rows };
}

export function formatBench(r: BenchReport): string {
  const head = `model ${r.model} (${r.arch}, ${r.weightType}) on ${r.backend}, node ${r.node}`;
  const cols = ['prompt', 'run', 'cached', 'prefill ms', 'prefill tok/s', 'decode tok', 'decode tok/s', 'total ms'];
  const body = r.rows.map((x) => [String(x.promptTokens), x.run, String(x.cachedTokens), ms(x.prefillMs), x.prefillTokensPerSecond.toFixed(1), String(x.decodeTokens), x.decodeTokensPerSecond.toFixed(1), ms(x.totalMs)]);
  const widths = cols.map((c, i) => Math.max(c.length, ...body.map((b) => b[i]!.length)));
  const fmt = (cells: string[]) => cells.map((c, i) => c.padStart(widths[i]!)).join('  ');
  return [head, fmt(cols), ...body.map(fmt)].join('\n');
}
