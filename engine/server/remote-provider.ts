// A CompletionProvider backed by a remote OpenAI-compatible server (vLLM, SGLang, llama.cpp
// server, Ollama, LM Studio). FIM goes through /v1/completions with `suffix` (servers that render
// FIM themselves), or, with fim.mode 'prompt', as a plain prompt Cachet formats for the model family.
// Errors become CachetErrors with a hint that names the URL and what to check.

import { buildFimPrompt, FIM_FORMATS, promptText, type FimFamily } from '../context';
import { CachetError, CancelledError } from '../errors';
import type { ChatParams, CompletionOutput, CompletionParams, CompletionProvider, ProviderModel, SamplingOptions } from './provider';
import { SseParser } from './sse';

export class RemoteServerError extends CachetError {
  readonly status: number | undefined;
  constructor(message: string, hint: string, status?: number, options?: { cause?: unknown }) {
    super(message, hint, options);
    this.status = status;
  }
}

export interface RemoteProviderOptions {
  /** Base URL, with or without the trailing /v1 (http://127.0.0.1:8080 or http://host:8000/v1). */
  baseUrl: string;
  apiKey?: string;
  /** Model name sent with each request; default: the first one /v1/models lists. */
  model?: string;
  /** Per-request time limit (ms); default 60 s. */
  timeoutMs?: number;
  /** Injected for tests; default globalThis.fetch. */
  fetch?: typeof fetch;
  /**
   * How FIM requests are sent. 'suffix' (default): prompt + suffix fields, the server applies the
   * model's FIM template (llama.cpp server, Ollama, OpenAI-style). 'prompt': Cachet formats the FIM
   * prompt for `family` itself and sends it as a plain prompt (vLLM, SGLang: no `suffix` support).
   */
  fim?: { mode: 'suffix' } | { mode: 'prompt'; family: FimFamily; repoName?: string; path?: string };
}

export class RemoteProvider implements CompletionProvider {
  readonly name: string;
  private readonly base: string;
  private readonly inflight = new Set<AbortController>();
  private model: string | undefined;

  constructor(private readonly options: RemoteProviderOptions) {
    let base = options.baseUrl.replace(/\/+$/, '');
    if (!/\/v\d+$/.test(base)) base += '/v1';
    try {
      new URL(base);
    } catch (err) {
      throw new RemoteServerError(`not a URL: ${options.baseUrl}`, 'Give the server base URL, e.g. http://127.0.0.1:8080/v1.', undefined, { cause: err });
    }
    this.base = base;
    this.model = options.model;
    this.name = `remote ${this.base}`;
  }

  async models(): Promise<ProviderModel[]> {
    const ac = new AbortController();
    try {
      const res = await this.request('GET', '/models', undefined, undefined, ac);
      const body = (await res.json()) as { data?: { id: string; owned_by?: string; context_length?: number; max_model_len?: number }[] };
      // context_length: Cachet, LM Studio; max_model_len: vLLM.
      return (body.data ?? []).map((m) => ({ id: m.id, ownedBy: m.owned_by, contextLength: m.context_length ?? m.max_model_len }));
    } catch (err) {
      throw this.mapError(err, undefined, ac, '/models');
    } finally {
      this.inflight.delete(ac);
    }
  }

  async complete(params: CompletionParams): Promise<CompletionOutput> {
    const body: Record<string, unknown> = { model: await this.modelName(), prompt: params.prompt, ...samplingBody(params) };
    const fim = this.options.fim;
    if (params.suffix !== undefined && fim?.mode === 'prompt') {
      const format = FIM_FORMATS[fim.family];
      const prompt = buildFimPrompt(format, { path: fim.path ?? 'untitled', repoName: fim.repoName, prefix: params.prompt, suffix: params.suffix }, { cursorLineInMiddle: true });
      body.prompt = promptText(prompt);
      body.stop = [...new Set([...(params.stop ?? []), ...format.stopStrings])];
    } else if (params.suffix !== undefined) {
      body.suffix = params.suffix;
    }
    return this.generate('/completions', body, params.signal, params.onText, (c) => c.text);
  }

  async chat(params: ChatParams): Promise<CompletionOutput> {
    const body: Record<string, unknown> = { model: await this.modelName(), messages: params.messages, ...samplingBody(params) };
    return this.generate('/chat/completions', body, params.signal, params.onText, (c) => c.delta?.content ?? c.message?.content);
  }

  cancelAll(): void {
    for (const ac of this.inflight) ac.abort();
    this.inflight.clear();
  }

  private async modelName(): Promise<string> {
    if (this.model === undefined) {
      const list = await this.models();
      if (list.length === 0) throw new RemoteServerError(`${this.base}/models lists no model`, 'Load a model on the server, or set the model name in the settings.');
      this.model = list[0]!.id;
    }
    return this.model;
  }

  private async generate(
    path: string,
    body: Record<string, unknown>,
    signal: AbortSignal | undefined,
    onText: ((delta: string) => void) | undefined,
    pick: (choice: Choice) => string | undefined,
  ): Promise<CompletionOutput> {
    const started = Date.now();
    const stream = onText !== undefined;
    if (stream) {
      body.stream = true;
      body.stream_options = { include_usage: true };
    }
    const ac = new AbortController();
    const res = await this.request('POST', path, body, signal, ac);
    try {
      if (!stream) {
        const json = (await res.json()) as Completion;
        const choice = json.choices?.[0];
        if (!choice) throw new RemoteServerError(`${this.base}${path} returned no choices`, 'The server answered in an unexpected shape; check that it is OpenAI-compatible.', res.status);
        return output(pick(choice) ?? '', choice.finish_reason, json.usage, started);
      }
      let text = '';
      let finish: string | null | undefined;
      let usage: Usage | undefined;
      const parser = new SseParser();
      const decoder = new TextDecoder();
      const handle = (data: string): boolean => {
        if (data.trim() === '[DONE]') return true;
        let json: Completion & { error?: { message?: string } };
        try {
          json = JSON.parse(data);
        } catch {
          throw new RemoteServerError(`${this.base}${path} sent a stream event that is not JSON: ${data.slice(0, 80)}`, 'The server is not speaking OpenAI-style SSE; check the URL.');
        }
        if (json.error) throw new RemoteServerError(`${this.base}${path}: ${json.error.message ?? 'error in stream'}`, 'See the server log.');
        if (json.usage) usage = json.usage;
        const choice = json.choices?.[0];
        if (choice) {
          const delta = pick(choice);
          if (delta) {
            text += delta;
            onText!(delta);
          }
          if (choice.finish_reason) finish = choice.finish_reason;
        }
        return false;
      };
      const reader = res.body!.getReader();
      let done = false;
      while (!done) {
        const r = await reader.read();
        if (r.done) break;
        for (const ev of parser.push(decoder.decode(r.value, { stream: true }))) {
          if (handle(ev.data)) done = true;
        }
      }
      if (!done) for (const ev of parser.flush()) handle(ev.data);
      if (done) await reader.cancel().catch(() => undefined);
      return output(text, finish, usage, started);
    } catch (err) {
      throw this.mapError(err, signal, ac, path);
    } finally {
      this.inflight.delete(ac);
    }
  }

  private async request(method: string, path: string, body: unknown, signal: AbortSignal | undefined, ac = new AbortController()): Promise<Response> {
    const url = this.base + path;
    const onAbort = () => ac.abort();
    if (signal?.aborted) throw new CancelledError();
    signal?.addEventListener('abort', onAbort, { once: true });
    const timer = setTimeout(() => ac.abort(new Error('timeout')), this.options.timeoutMs ?? 60_000);
    timer.unref?.();
    this.inflight.add(ac);
    const headers: Record<string, string> = { accept: 'application/json, text/event-stream' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (this.options.apiKey) headers.authorization = `Bearer ${this.options.apiKey}`;
    let res: Response;
    try {
      res = await (this.options.fetch ?? fetch)(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: ac.signal });
    } catch (err) {
      this.inflight.delete(ac);
      throw this.mapError(err, signal, ac, path);
    } finally {
      clearTimeout(timer);
    }
    if (!res.ok) {
      this.inflight.delete(ac);
      const text = await res.text().catch(() => '');
      throw httpError(url, res.status, text);
    }
    return res;
  }

  private mapError(err: unknown, signal: AbortSignal | undefined, ac: AbortController, path: string): Error {
    if (err instanceof CachetError) return err;
    if (signal?.aborted) return new CancelledError();
    const reason = ac.signal.reason as Error | undefined;
    if (ac.signal.aborted && reason?.message === 'timeout') {
      return new RemoteServerError(`${this.base}${path} did not answer within ${this.options.timeoutMs ?? 60_000} ms`, `Is the server at ${this.base} overloaded or still loading the model? Raise the timeout or check its log.`);
    }
    if (ac.signal.aborted) return new CancelledError();
    const code = findCode(err);
    if (code === 'ECONNREFUSED') {
      return new RemoteServerError(`cannot connect to ${this.base}: connection refused`, `Is the server running at ${this.base}? Start it (e.g. llama-server --port N, vllm serve ...) or fix the URL.`, undefined, { cause: err });
    }
    if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
      return new RemoteServerError(`cannot resolve the host of ${this.base}`, 'Check the host name in the URL.', undefined, { cause: err });
    }
    if (code === 'ECONNRESET' || code === 'UND_ERR_SOCKET') {
      return new RemoteServerError(`${this.base} closed the connection`, `The server at ${this.base} dropped the request; check its log (crash, out of memory).`, undefined, { cause: err });
    }
    return new RemoteServerError(`request to ${this.base}${path} failed: ${(err as Error)?.message ?? err}`, `Check that ${this.base} is an OpenAI-compatible server.`, undefined, { cause: err });
  }
}

interface Choice {
  text?: string;
  delta?: { content?: string };
  message?: { content?: string };
  finish_reason?: string | null;
}
interface Usage {
  prompt_tokens?: number;
  completion_tokens?: number;
  prompt_tokens_details?: { cached_tokens?: number };
}
interface Completion {
  choices?: Choice[];
  usage?: Usage;
}

function samplingBody(p: SamplingOptions): Record<string, unknown> {
  const b: Record<string, unknown> = {};
  if (p.maxTokens !== undefined) b.max_tokens = p.maxTokens;
  if (p.temperature !== undefined) b.temperature = p.temperature;
  if (p.topP !== undefined) b.top_p = p.topP;
  if (p.topK !== undefined) b.top_k = p.topK;
  if (p.seed !== undefined) b.seed = p.seed;
  if (p.stop !== undefined && p.stop.length > 0) b.stop = p.stop;
  return b;
}

function output(text: string, finish: string | null | undefined, usage: Usage | undefined, started: number): CompletionOutput {
  return {
    text,
    finishReason: finish === 'length' ? 'length' : 'stop',
    promptTokens: usage?.prompt_tokens,
    completionTokens: usage?.completion_tokens,
    cachedTokens: usage?.prompt_tokens_details?.cached_tokens,
    totalMs: Date.now() - started,
  };
}

function findCode(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    const errors = (e as { errors?: unknown[] }).errors;
    if (Array.isArray(errors)) for (const inner of errors) { const c = findCode(inner); if (c) return c; }
  }
  return undefined;
}

function httpError(url: string, status: number, bodyText: string): RemoteServerError {
  let detail = bodyText.slice(0, 300);
  try {
    const j = JSON.parse(bodyText) as { error?: { message?: string } | string; message?: string };
    detail = (typeof j.error === 'string' ? j.error : j.error?.message) ?? j.message ?? detail;
  } catch {
    /* not JSON: keep the text */
  }
  const hints: Record<number, string> = {
    401: 'The server wants an API key: set it in Cachet\'s settings (it is kept in secret storage).',
    403: 'The API key was refused; check it.',
    404: `No such endpoint or model at ${url}; check the base URL (it should end in /v1) and the model name.`,
    413: 'The prompt is too large for the server; lower the context budget.',
    429: 'The server is rate limiting; wait, or lower how often completions are requested.',
    501: 'The server does not implement this endpoint (some servers lack FIM `suffix`); use the prompt FIM mode.',
  };
  const hint = hints[status] ?? (status >= 500 ? 'The server failed; see its log.' : 'The server rejected the request; see the message.');
  return new RemoteServerError(`${url} answered ${status}: ${detail}`, hint, status);
}
