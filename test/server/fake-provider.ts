// A deterministic CompletionProvider for server tests: it answers with a fixed transformation of
// the input so the tests can check that requests reach it intact, and it can stream slowly until
// cancelled to test disconnects.
import { CancelledError } from '../../engine/errors';
import type { ChatParams, CompletionOutput, CompletionParams, CompletionProvider } from '../../engine/server';

export class FakeProvider implements CompletionProvider {
  readonly name = 'fake';
  calls: { kind: 'complete' | 'chat'; params: CompletionParams | ChatParams }[] = [];
  cancelledCount = 0;
  /** When set, streams this many pieces, one per `stepMs`. */
  slowPieces = 0;
  stepMs = 5;

  async models() {
    return [{ id: 'fake-model', contextLength: 4096 }];
  }

  /** Completion text: "<prompt upper-cased>|<suffix reversed>", capped at maxTokens characters. */
  async complete(params: CompletionParams): Promise<CompletionOutput> {
    this.calls.push({ kind: 'complete', params });
    const full = params.prompt.toUpperCase() + (params.suffix !== undefined ? '|' + [...params.suffix].reverse().join('') : '');
    return this.emit(full, params);
  }

  /** Chat text: "echo: <last user message>". */
  async chat(params: ChatParams): Promise<CompletionOutput> {
    this.calls.push({ kind: 'chat', params });
    const last = [...params.messages].reverse().find((m) => m.role === 'user')?.content ?? '';
    return this.emit('echo: ' + last, params);
  }

  cancelAll(): void {}

  metrics() {
    return {
      timeMs: 0, uptimeMs: 1500,
      requests: { active: 0, queued: 0, completed: this.calls.length, cancelled: this.cancelledCount, failed: 0, deadline: 0 },
      tokens: { prompt: 10, prefilled: 4, cached: 6, generated: 7 },
      kv: { slotsTotal: 1024, slotsUsed: 16, slotsCached: 8, hitRate: 0.5, evictions: 0 },
      speculative: { drafted: 0, accepted: 0, acceptanceRate: 0 },
      latency: { ttftP50Ms: 12, ttftP99Ms: 30, lastTtftMs: 12, lastTokensPerSecond: 40 },
      memory: { weightsBytes: 1, kvBytes: 2, scratchBytes: 3, heapUsedBytes: 4, rssBytes: 5 },
      notes: [],
    };
  }

  private async emit(full: string, params: CompletionParams | ChatParams): Promise<CompletionOutput> {
    const max = params.maxTokens ?? Infinity;
    let text = full.slice(0, max);
    const finishReason = full.length > max ? 'length' : 'stop';
    for (const s of params.stop ?? []) {
      const at = text.indexOf(s);
      if (at >= 0) text = text.slice(0, at);
    }
    if (this.slowPieces > 0) {
      for (let i = 0; i < this.slowPieces; i++) {
        if (params.signal?.aborted) {
          this.cancelledCount++;
          throw new CancelledError();
        }
        params.onText?.(`p${i} `);
        await new Promise((r) => setTimeout(r, this.stepMs));
      }
      return { text: '', finishReason: 'length', promptTokens: 1, completionTokens: this.slowPieces };
    }
    if (params.onText) for (const ch of text.match(/.{1,3}/gs) ?? []) params.onText(ch);
    return { text, finishReason, promptTokens: full.length, completionTokens: text.length, cachedTokens: 2 };
  }
}
