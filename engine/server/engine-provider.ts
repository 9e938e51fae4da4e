// The local Engine as a CompletionProvider: /v1/completions with `suffix` becomes an Engine FIM
// request (prompt assembled for the model family by engine/context), without it a plain prompt.

import { splitTypedIndent } from '../context';
import { CancelledError } from '../errors';
import type { FinishReason, GenerationOptions, MetricsSnapshot, SamplingParams } from '../protocol';
import type { ChatParams, CompletionOutput, CompletionParams, CompletionProvider, ProviderModel, SamplingOptions } from './provider';

/** The slice of engine/runtime's Engine this adapter uses (kept structural: server tests use fakes). */
export interface LocalEngine {
  readonly info: { name: string; path: string; contextLength: number };
  generate(req: GenerationOptions & { prompt: string }, onToken?: (c: { text: string }) => void, signal?: AbortSignal): Promise<EngineResult>;
  complete(req: GenerationOptions & { fim: { prefix: string; suffix: string } }, onToken?: (c: { text: string }) => void, signal?: AbortSignal): Promise<EngineResult>;
  chat(req: GenerationOptions & { messages: { role: 'system' | 'user' | 'assistant'; content: string }[] }, onToken?: (c: { text: string }) => void, signal?: AbortSignal): Promise<EngineResult>;
  metrics(): MetricsSnapshot;
}

interface EngineResult {
  text: string;
  finishReason: FinishReason;
  timings: { promptTokens: number; generatedTokens: number; cachedTokens: number; totalMs: number };
}

export class EngineProvider implements CompletionProvider {
  readonly name = 'local engine';
  private readonly inflight = new Set<AbortController>();

  constructor(private readonly engine: LocalEngine, private readonly modelId = engine.info.name) {}

  async models(): Promise<ProviderModel[]> {
    return [{ id: this.modelId, contextLength: this.engine.info.contextLength, ownedBy: 'cachet' }];
  }

  complete(params: CompletionParams): Promise<CompletionOutput> {
    if (params.suffix === undefined) {
      return this.run(params, (opts, onToken, signal) => this.engine.generate({ ...opts, prompt: params.prompt }, onToken, signal));
    }
    // Indentation typed on an empty line is left out of the prompt (a line-aligned hole, as FIM
    // training uses) and stripped again from the start of the output.
    const { prefix, indent } = splitTypedIndent(params.prompt);
    const strip = new LeadingStrip(indent);
    const onText = params.onText;
    return this.run(
      { ...params, onText: onText ? (d) => { const t = strip.push(d); if (t) onText(t); } : undefined },
      (opts, onToken, signal) => this.engine.complete({ ...opts, fim: { prefix, suffix: params.suffix! } }, onToken, signal),
    ).then((out) => ({ ...out, text: new LeadingStrip(indent).push(out.text) }));
  }

  chat(params: ChatParams): Promise<CompletionOutput> {
    return this.run(params, (opts, onToken, signal) => this.engine.chat({ ...opts, messages: params.messages }, onToken, signal));
  }

  cancelAll(): void {
    for (const ac of this.inflight) ac.abort();
  }

  metrics(): MetricsSnapshot {
    return this.engine.metrics();
  }

  private async run(
    params: SamplingOptions & { signal?: AbortSignal; onText?: (d: string) => void },
    call: (opts: GenerationOptions, onToken: ((c: { text: string }) => void) | undefined, signal: AbortSignal) => Promise<EngineResult>,
  ): Promise<CompletionOutput> {
    const ac = new AbortController();
    const onAbort = () => ac.abort();
    if (params.signal?.aborted) throw new CancelledError();
    params.signal?.addEventListener('abort', onAbort, { once: true });
    this.inflight.add(ac);
    try {
      const sampling: SamplingParams = {};
      if (params.temperature !== undefined) sampling.temperature = params.temperature;
      if (params.topP !== undefined) sampling.topP = params.topP;
      if (params.topK !== undefined) sampling.topK = params.topK;
      if (params.seed !== undefined) sampling.seed = params.seed;
      const onText = params.onText;
      const r = await call(
        { maxTokens: params.maxTokens, sampling, stop: params.stop },
        onText ? (c) => c.text && onText(c.text) : undefined,
        ac.signal,
      );
      if (r.finishReason === 'cancelled') throw new CancelledError();
      if (r.finishReason === 'error') throw new Error('generation failed');
      return {
        text: r.text,
        finishReason: r.finishReason === 'length' ? 'length' : 'stop',
        promptTokens: r.timings.promptTokens,
        completionTokens: r.timings.generatedTokens,
        cachedTokens: r.timings.cachedTokens,
        totalMs: r.timings.totalMs,
      };
    } finally {
      params.signal?.removeEventListener('abort', onAbort);
      this.inflight.delete(ac);
    }
  }
}

/** Removes as much of `lead` as a stream starts with, then passes everything through. */
export class LeadingStrip {
  private matched = 0;
  private done: boolean;

  constructor(private readonly lead: string) {
    this.done = lead === '';
  }

  push(text: string): string {
    if (this.done) return text;
    let i = 0;
    while (i < text.length && this.matched < this.lead.length && text[i] === this.lead[this.matched]) {
      i++;
      this.matched++;
    }
    if (i < text.length || this.matched === this.lead.length) this.done = true;
    return text.slice(i);
  }
}
