// `cachet demo`: the README's first command. Runs one FIM completion (twice: the second shows the
// prefix cache at work) and a short generation on the embedded default model, models/cachet-tiny*.gguf.

import type { Timings } from '../protocol';
import type { Engine } from './engine-link';
import { completeAtCursor } from './generate';
import { ms } from './output';

export const DEMO_PREFIX = 'def fibonacci(n):\n    """Return the n-th Fibonacci number."""\n    if n < 2:\n        return n\n    ';
export const DEMO_SUFFIX = '\n\n\nprint(fibonacci(10))\n';
export const DEMO_PROMPT = 'def is_prime(n):\n';

export interface DemoReport {
  model: string;
  backend: string;
  fim: { prefix: string; suffix: string; text: string; rawText: string; tokenIds: number[]; cold: Timings; warm: Timings } | { skipped: string };
  generation: { prompt: string; text: string; tokenIds: number[]; timings: Timings };
}

export async function runDemo(engine: Engine, out: (line: string) => void): Promise<DemoReport> {
  let fim: DemoReport['fim'];
  if (engine.info.fim) {
    const run = () => completeAtCursor(engine, { prefix: DEMO_PREFIX, suffix: DEMO_SUFFIX, filePath: 'fib.py', repoName: 'demo', n: 48, maxLines: 8 });
    const cold = await run();
    const warm = await run();
    fim = { prefix: DEMO_PREFIX, suffix: DEMO_SUFFIX, text: warm.text, rawText: warm.rawText, tokenIds: warm.result.tokenIds, cold: cold.result.timings, warm: warm.result.timings };
    out('--- fill-in-the-middle (fib.py, cursor after the base case) ---');
    out(DEMO_PREFIX + '\x1b[32m' + warm.text + '\x1b[0m' + DEMO_SUFFIX.trimEnd());
    const c = cold.result.timings;
    const w = warm.result.timings;
    out(`cold: ${c.promptTokens} prompt tokens computed in ${ms(c.ttftMs)} ms; ` +
      `warm: ${w.cachedTokens}/${w.promptTokens} reused from the prefix cache, first token in ${ms(w.ttftMs)} ms`);
  } else {
    fim = { skipped: 'this model has no FIM tokens' };
    out('--- fill-in-the-middle: skipped, the model has no FIM tokens ---');
  }
  const g = await engine.generate({ prompt: DEMO_PROMPT, maxTokens: 32 });
  out('--- generation ---');
  out(DEMO_PROMPT + '\x1b[32m' + g.text + '\x1b[0m');
  out(`${g.timings.generatedTokens} tokens at ${g.timings.tokensPerSecond.toFixed(1)} tok/s on ${engine.backendName}`);
  return { model: engine.info.path, backend: engine.backendName, fim, generation: { prompt: DEMO_PROMPT, text: g.text, tokenIds: g.tokenIds, timings: g.timings } };
}
