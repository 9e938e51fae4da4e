// Completions from a remote OpenAI-compatible endpoint (`cachet.remote.url`), e.g. another
// machine running `cachet serve` or llama.cpp's server: POST /v1/completions with prompt=prefix
// and suffix (the OpenAI FIM shape), streamed as server-sent events, aborted on cancel.

import type { FimInput } from '../engine/protocol';
import type { CompletionBackend } from './completion/session';

export class RemoteBackend implements CompletionBackend {
  constructor(
    private url: string,
    private model: string,
  ) {}

  start(input: FimInput, opts: { maxTokens: number; stop?: string[] }, sink: Parameters<CompletionBackend['start']>[2]): { cancel(): void } {
    const abort = new AbortController();
    const endpoint = this.url.replace(/\/+$/, '') + (/\/v1$/.test(this.url.replace(/\/+$/, '')) ? '/completions' : '/v1/completions');
    void (async () => {
      try {
        const res = await fetch(endpoint, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({
            model: this.model || undefined,
            prompt: input.prefix,
            suffix: input.suffix,
            max_tokens: opts.maxTokens,
            stop: opts.stop,
            temperature: 0,
            stream: true,
          }),
          signal: abort.signal,
        });
        if (!res.ok || !res.body) throw new Error(`${endpoint}: HTTP ${res.status} ${await res.text().catch(() => '')}`.trim());
        const decoder = new TextDecoder();
        let buf = '';
        let reason: 'stop' | 'length' = 'stop';
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          buf += decoder.decode(chunk, { stream: true });
          let nl;
          while ((nl = buf.indexOf('\n')) !== -1) {
            const line = buf.slice(0, nl).trim();
            buf = buf.slice(nl + 1);
            if (!line.startsWith('data:')) continue;
            const data = line.slice(5).trim();
            if (data === '[DONE]') continue;
            const j = JSON.parse(data) as { choices?: { text?: string; finish_reason?: string | null }[] };
            const c = j.choices?.[0];
            if (c?.text) sink.onText(c.text);
            if (c?.finish_reason === 'length') reason = 'length';
          }
        }
        sink.onDone(reason);
      } catch (err) {
        if (abort.signal.aborted) sink.onDone('cancelled');
        else sink.onError(err instanceof Error ? err : new Error(String(err)));
      }
    })();
    return { cancel: () => abort.abort() };
  }
}
