// One line per discovered model, for pickers, logs and `--json`-less CLI output.

import { formatBytes } from './fit';
import type { DiscoveredModelWithFit } from './types';

/** 'tiny-coder:latest (ollama): llama 35M Q8_0, context 4096, FIM; fits (120 MiB of 7.2 GiB)'. */
export function summarizeModel(m: DiscoveredModelWithFit): string {
  const head = `${m.displayName} (${m.source})`;
  const i = m.info;
  const what = i ? `${i.arch} ${i.sizeLabel} ${i.quantization}${i.contextLength ? `, context ${i.contextLength}` : ''}${i.fim ? ', FIM' : ', no FIM'}` : undefined;
  if (!m.loadable) return `${head}: cannot load — ${m.problem?.kind ?? 'unknown'}${what ? ` (${what})` : ''}: ${m.problem?.hint ?? ''}`.trimEnd();
  const fit = m.fit
    ? m.fit.verdict === 'too-big'
      ? `; too big (${formatBytes(m.fit.estimate.total)} > ${formatBytes(m.fit.budget)})${m.fit.suggestions[0] ? `: ${m.fit.suggestions[0]}` : ''}`
      : `; ${m.fit.verdict} (${formatBytes(m.fit.estimate.total)} of ${formatBytes(m.fit.budget)} at ${m.fit.estimate.context} tokens)`
    : '';
  return `${head}: ${what}${fit}${m.notes?.length ? ` [${m.notes.join('; ')}]` : ''}`;
}
