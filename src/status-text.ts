// What the status bar says, as a pure function of the extension's state (unit-tested).

export interface StatusInput {
  engine: 'stopped' | 'starting' | 'loading' | 'ready' | 'error' | 'remote';
  enabled: boolean;
  /** Loading progress in [0, 1]. */
  progress?: number;
  /** Short-lived activity shown over the engine state. */
  activity?: 'thinking' | 'cache-hit' | { tokensPerSecond: number; cachedTokens?: number; promptTokens?: number };
  modelName?: string;
  backend?: string;
  errorMessage?: string;
}

export interface StatusView {
  text: string;
  tooltip: string;
  error: boolean;
}

export function statusText(s: StatusInput): StatusView {
  const model = s.modelName ? `${s.modelName}${s.backend ? ` on ${s.backend}` : ''}` : 'no model loaded';
  const click = s.enabled ? 'Click to turn completions off.' : 'Click to turn completions on.';
  if (!s.enabled) return { text: '$(circle-slash) Cachet: off', tooltip: `Cachet completions are off. ${click}`, error: false };
  if (s.engine === 'error') {
    return { text: '$(error) Cachet: error', tooltip: `Cachet: ${s.errorMessage ?? 'engine error'}. ${click}`, error: true };
  }
  if (s.engine === 'starting') return { text: '$(loading~spin) Cachet: starting', tooltip: `Starting the engine. ${click}`, error: false };
  if (s.engine === 'loading') {
    const pct = Math.round(Math.min(1, Math.max(0, s.progress ?? 0)) * 100);
    return { text: `$(loading~spin) Cachet: loading ${pct}%`, tooltip: `Loading the model (${pct}%). ${click}`, error: false };
  }
  const a = s.activity;
  if (a === 'thinking') return { text: '$(sync~spin) Cachet: thinking', tooltip: `Generating with ${model}. ${click}`, error: false };
  if (a === 'cache-hit') return { text: '$(zap) Cachet: cache hit', tooltip: `Served from the completion cache. ${click}`, error: false };
  if (a && typeof a === 'object') {
    const tps = a.tokensPerSecond >= 10 ? Math.round(a.tokensPerSecond).toString() : a.tokensPerSecond.toFixed(1);
    const reuse = a.promptTokens ? `, ${a.cachedTokens ?? 0}/${a.promptTokens} prompt tokens reused` : '';
    return { text: `$(check) Cachet: ${tps} tok/s`, tooltip: `Last completion: ${tps} tokens/s${reuse} (${model}). ${click}`, error: false };
  }
  if (s.engine === 'remote') return { text: '$(cloud) Cachet: remote', tooltip: `Completions from the remote endpoint. ${click}`, error: false };
  return {
    text: s.engine === 'ready' ? '$(check) Cachet: idle' : '$(circle-outline) Cachet: idle',
    tooltip: `Cachet: ${model}. ${click}`,
    error: false,
  };
}
