// Prometheus text exposition (version 0.0.4) of the engine's metrics and the server's counters.

import type { MetricsSnapshot } from '../protocol';

export interface ServerCounters {
  /** "route status" -> count */
  requests: Map<string, number>;
  cancelled: number;
}

function line(out: string[], name: string, help: string, type: 'gauge' | 'counter', value: number, labels?: Record<string, string>): void {
  if (!out.some((l) => l === `# TYPE ${name} ${type}`)) {
    out.push(`# HELP ${name} ${help}`);
    out.push(`# TYPE ${name} ${type}`);
  }
  const l = labels ? '{' + Object.entries(labels).map(([k, v]) => `${k}="${v.replace(/["\\\n]/g, (c) => (c === '\n' ? '\\n' : '\\' + c))}"`).join(',') + '}' : '';
  out.push(`${name}${l} ${Number.isFinite(value) ? value : 0}`);
}

export function prometheusText(counters: ServerCounters, snap: MetricsSnapshot | undefined): string {
  const out: string[] = [];
  for (const [key, n] of [...counters.requests].sort()) {
    const [route, status] = key.split(' ');
    line(out, 'cachet_http_requests_total', 'HTTP requests by route and status.', 'counter', n, { route: route!, status: status! });
  }
  line(out, 'cachet_http_cancelled_total', 'Requests whose client disconnected before the end.', 'counter', counters.cancelled);
  if (snap) {
    line(out, 'cachet_uptime_seconds', 'Engine uptime.', 'gauge', snap.uptimeMs / 1000);
    for (const [k, v] of Object.entries(snap.requests)) line(out, 'cachet_requests', 'Engine requests by state.', 'gauge', v, { state: k });
    for (const [k, v] of Object.entries(snap.tokens)) line(out, 'cachet_tokens_total', 'Tokens by kind (prompt, prefilled, cached, generated).', 'counter', v, { kind: k });
    line(out, 'cachet_kv_slots', 'KV slots by state.', 'gauge', snap.kv.slotsTotal, { state: 'total' });
    line(out, 'cachet_kv_slots', 'KV slots by state.', 'gauge', snap.kv.slotsUsed, { state: 'used' });
    line(out, 'cachet_kv_slots', 'KV slots by state.', 'gauge', snap.kv.slotsCached, { state: 'cached' });
    line(out, 'cachet_prefix_cache_hit_rate', 'Prefix cache lookups that reused at least one token.', 'gauge', snap.kv.hitRate);
    line(out, 'cachet_kv_evictions_total', 'KV blocks evicted.', 'counter', snap.kv.evictions);
    line(out, 'cachet_speculative_tokens_total', 'Speculative draft tokens.', 'counter', snap.speculative.drafted, { kind: 'drafted' });
    line(out, 'cachet_speculative_tokens_total', 'Speculative draft tokens.', 'counter', snap.speculative.accepted, { kind: 'accepted' });
    line(out, 'cachet_ttft_ms', 'Time to first token.', 'gauge', snap.latency.ttftP50Ms, { quantile: '0.5' });
    line(out, 'cachet_ttft_ms', 'Time to first token.', 'gauge', snap.latency.ttftP99Ms, { quantile: '0.99' });
    line(out, 'cachet_decode_tokens_per_second', 'Decode speed of the last request.', 'gauge', snap.latency.lastTokensPerSecond);
    for (const [k, v] of Object.entries(snap.memory)) line(out, 'cachet_memory_bytes', 'Memory by kind.', 'gauge', v, { kind: k });
  }
  return out.join('\n') + '\n';
}
