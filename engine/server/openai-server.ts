// OpenAI-compatible HTTP endpoint on loopback: /v1/completions (with `suffix` for FIM),
// /v1/chat/completions (SSE with stream: true), /v1/models, /metrics (Prometheus), /health.
// node:http only. A client that disconnects cancels its generation.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { CachetError, CancelledError, ContextOverflowError } from '../errors';
import type { ChatTurn, CompletionOutput, CompletionProvider, SamplingOptions } from './provider';
import { prometheusText, type ServerCounters } from './metrics-text';
import { startSse, writeSseData } from './sse';

export interface ServerOptions {
  provider: CompletionProvider;
  /** Default 127.0.0.1. Any other host requires a token. */
  host?: string;
  /** 0 = any free port. Default 8012. */
  port?: number;
  /** Bearer token every request except /health must carry; absent = no auth (loopback only). */
  token?: string;
  /** Largest request body accepted (bytes). Default 4 MiB. */
  maxBodyBytes?: number;
  /** Model id reported when the provider lists none. */
  modelId?: string;
}

export interface RunningServer {
  server: Server;
  url: string;
  port: number;
  close(): Promise<void>;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code: string,
    readonly hint?: string,
  ) {
    super(message);
  }
}

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const host = options.host ?? '127.0.0.1';
  if (!LOOPBACK.has(host) && !options.token) {
    throw new CachetError(
      `refusing to listen on ${host} without a token`,
      'Pass a bearer token (--token or CACHET_TOKEN) to expose the endpoint beyond this machine, or keep --host 127.0.0.1.',
    );
  }
  const server = createServer((req, res) => {
    handle(req, res, options, counters).catch((err) => sendError(res, err));
  });
  const counters: ServerCounters = { requests: new Map(), cancelled: 0 };
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE') {
        reject(new CachetError(`port ${options.port} on ${host} is already in use`, 'Pick another port with --port, or stop the program using it.', { cause: err }));
      } else reject(err);
    });
    server.listen(options.port ?? 8012, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const urlHost = host.includes(':') ? `[${host}]` : host;
  return {
    server,
    port,
    url: `http://${urlHost}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        options.provider.cancelAll();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function handle(req: IncomingMessage, res: ServerResponse, options: ServerOptions, counters: ServerCounters): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://localhost');
  const route = url.pathname.replace(/\/+$/, '') || '/';
  res.on('finish', () => {
    const key = `${route} ${res.statusCode}`;
    counters.requests.set(key, (counters.requests.get(key) ?? 0) + 1);
  });

  // Web pages must not drive a loopback server: DNS rebinding shows up as a foreign Host header,
  // cross-site requests as a foreign Origin (and JSON bodies force a CORS preflight we never grant).
  if (LOOPBACK.has(options.host ?? '127.0.0.1') && !isLoopbackHost(req.headers.host)) {
    throw new HttpError(403, `Host header ${JSON.stringify(req.headers.host ?? '')} is not this machine`, 'forbidden_host', 'Connect to 127.0.0.1 or localhost.');
  }
  const origin = req.headers.origin;
  if (origin !== undefined && origin !== 'null' && !isLoopbackOrigin(origin) && options.token === undefined) {
    throw new HttpError(403, `requests from web origin ${origin} are refused`, 'forbidden_origin', 'Call the endpoint from a local program, or start the server with a bearer token.');
  }
  if (route === '/health' && req.method === 'GET') return sendJson(res, 200, { status: 'ok' });
  if (options.token !== undefined && !authorized(req, options.token)) {
    res.setHeader('www-authenticate', 'Bearer');
    throw new HttpError(401, 'missing or wrong bearer token', 'invalid_api_key', 'Send "Authorization: Bearer <token>" with the token Cachet was started with.');
  }
  if (req.method === 'POST' && !/^application\/json\b/i.test(req.headers['content-type'] ?? '')) {
    throw new HttpError(415, `content-type must be application/json, got ${JSON.stringify(req.headers['content-type'] ?? '')}`, 'unsupported_media_type', 'Send the body as JSON with "Content-Type: application/json".');
  }

  const routes: Record<string, { method: string; run: () => Promise<void> }> = {
    '/v1/models': { method: 'GET', run: () => models(res, options) },
    '/metrics': { method: 'GET', run: () => metrics(res, options, counters) },
    '/v1/completions': { method: 'POST', run: async () => completions(res, await readJson(req, options), options, counters) },
    '/v1/chat/completions': { method: 'POST', run: async () => chat(res, await readJson(req, options), options, counters) },
  };
  const r = routes[route];
  if (!r) throw new HttpError(404, `no route ${req.method} ${url.pathname}`, 'not_found', 'Routes: GET /v1/models, POST /v1/completions, POST /v1/chat/completions, GET /metrics, GET /health.');
  if (req.method !== r.method) {
    res.setHeader('allow', r.method);
    throw new HttpError(405, `${url.pathname} takes ${r.method}, not ${req.method}`, 'method_not_allowed');
  }
  await r.run();
}

function hostnameOf(hostHeader: string): string {
  const m = /^\[([^\]]+)\](?::\d+)?$/.exec(hostHeader);
  if (m) return m[1]!;
  return hostHeader.replace(/:\d+$/, '');
}

function isLoopbackHost(hostHeader: string | undefined): boolean {
  if (!hostHeader) return true; // HTTP/1.0 clients may omit it
  const h = hostnameOf(hostHeader.toLowerCase());
  return LOOPBACK.has(h) || h.endsWith('.localhost') || /^127\.\d+\.\d+\.\d+$/.test(h);
}

function isLoopbackOrigin(origin: string): boolean {
  try {
    const u = new URL(origin);
    if (u.protocol === 'vscode-webview:' || u.protocol === 'vscode-file:') return true;
    return isLoopbackHost(u.host);
  } catch {
    return false;
  }
}

function authorized(req: IncomingMessage, token: string): boolean {
  const h = req.headers.authorization ?? '';
  const m = /^Bearer\s+(.+)$/i.exec(h);
  if (!m) return false;
  const a = Buffer.from(m[1]!.trim());
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

async function readJson(req: IncomingMessage, options: ServerOptions): Promise<Record<string, unknown>> {
  const limit = options.maxBodyBytes ?? 4 * 1024 * 1024;
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (Number.isFinite(declared) && declared > limit) throw tooLarge(limit);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw tooLarge(limit);
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (err) {
    throw new HttpError(400, `malformed JSON body: ${(err as Error).message}`, 'invalid_json', 'Send a JSON object with content-type application/json.');
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new HttpError(400, 'the JSON body must be an object', 'invalid_request_error');
  }
  return body as Record<string, unknown>;
}

function tooLarge(limit: number): HttpError {
  return new HttpError(413, `request body larger than ${limit} bytes`, 'body_too_large', 'Send less context, or start the server with a larger --max-body.');
}

async function models(res: ServerResponse, options: ServerOptions): Promise<void> {
  const list = await options.provider.models();
  const data = (list.length ? list : [{ id: options.modelId ?? 'cachet' }]).map((m) => ({
    id: m.id,
    object: 'model',
    created: 0,
    owned_by: 'ownedBy' in m && m.ownedBy ? m.ownedBy : 'cachet',
    ...('contextLength' in m && m.contextLength ? { context_length: m.contextLength } : {}),
  }));
  sendJson(res, 200, { object: 'list', data });
}

async function metrics(res: ServerResponse, options: ServerOptions, counters: ServerCounters): Promise<void> {
  const snap = options.provider.metrics ? await options.provider.metrics() : undefined;
  res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
  res.end(prometheusText(counters, snap));
}

// ---------------------------------------------------------------------------------------------
// Request fields

function optNumber(body: Record<string, unknown>, key: string, min: number, max: number): number | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) {
    throw new HttpError(400, `${key} must be a number in [${min}, ${max}], got ${JSON.stringify(v)}`, 'invalid_request_error');
  }
  return v;
}

function sampling(body: Record<string, unknown>, defaultMax: number): SamplingOptions {
  const stop = body.stop;
  let stops: string[] | undefined;
  if (typeof stop === 'string') stops = [stop];
  else if (Array.isArray(stop) && stop.every((s) => typeof s === 'string')) stops = stop as string[];
  else if (stop !== undefined && stop !== null) throw new HttpError(400, 'stop must be a string or an array of strings', 'invalid_request_error');
  optNumber(body, 'n', 1, 1); // one choice per request
  return {
    maxTokens: optNumber(body, 'max_completion_tokens', 0, 1 << 20) ?? optNumber(body, 'max_tokens', 0, 1 << 20) ?? defaultMax,
    temperature: optNumber(body, 'temperature', 0, 2),
    topP: optNumber(body, 'top_p', 0, 1),
    topK: optNumber(body, 'top_k', 0, 1 << 20),
    seed: optNumber(body, 'seed', -(2 ** 53), 2 ** 53),
    stop: stops,
  };
}

/** Aborts the generation when the client goes away before the response is complete. */
function abortOnDisconnect(res: ServerResponse, counters: ServerCounters): AbortController {
  const ac = new AbortController();
  res.on('close', () => {
    if (!res.writableFinished) {
      counters.cancelled++;
      ac.abort();
    }
  });
  return ac;
}

function usage(out: CompletionOutput) {
  const p = out.promptTokens ?? 0;
  const c = out.completionTokens ?? 0;
  return { prompt_tokens: p, completion_tokens: c, total_tokens: p + c, ...(out.cachedTokens !== undefined ? { prompt_tokens_details: { cached_tokens: out.cachedTokens } } : {}) };
}

async function modelName(body: Record<string, unknown>, options: ServerOptions): Promise<string> {
  if (typeof body.model === 'string' && body.model) return body.model;
  return options.modelId ?? (await options.provider.models())[0]?.id ?? 'cachet';
}

async function completions(res: ServerResponse, body: Record<string, unknown>, options: ServerOptions, counters: ServerCounters): Promise<void> {
  let prompt = body.prompt;
  if (Array.isArray(prompt) && prompt.length === 1 && typeof prompt[0] === 'string') prompt = prompt[0];
  if (typeof prompt !== 'string') throw new HttpError(400, 'prompt must be a string (token-id and batched prompts are not supported)', 'invalid_request_error');
  if (body.suffix !== undefined && body.suffix !== null && typeof body.suffix !== 'string') throw new HttpError(400, 'suffix must be a string', 'invalid_request_error');
  const params = sampling(body, 16);
  const model = await modelName(body, options);
  const stream = body.stream === true;
  const id = 'cmpl-' + randomBytes(12).toString('hex');
  const created = Math.floor(Date.now() / 1000);
  const ac = abortOnDisconnect(res, counters);
  const chunk = (text: string, finish: string | null) => ({ id, object: 'text_completion', created, model, choices: [{ text, index: 0, logprobs: null, finish_reason: finish }] });

  if (stream) startSse(res);
  try {
    const out = await options.provider.complete({
      ...params,
      prompt,
      suffix: typeof body.suffix === 'string' ? body.suffix : undefined,
      signal: ac.signal,
      onText: stream ? (delta) => writeSseData(res, chunk(delta, null)) : undefined,
    });
    if (stream) {
      writeSseData(res, { ...chunk('', out.finishReason), usage: usage(out) });
      writeSseData(res, '[DONE]');
      res.end();
    } else {
      sendJson(res, 200, { ...chunk(out.text, out.finishReason), usage: usage(out) });
    }
  } catch (err) {
    if (stream) return endStreamWithError(res, err);
    throw err;
  }
}

async function chat(res: ServerResponse, body: Record<string, unknown>, options: ServerOptions, counters: ServerCounters): Promise<void> {
  const messages = body.messages;
  if (!Array.isArray(messages) || messages.length === 0) throw new HttpError(400, 'messages must be a non-empty array', 'invalid_request_error');
  const turns: ChatTurn[] = messages.map((m, i) => {
    const role = (m as { role?: unknown })?.role;
    let content = (m as { content?: unknown })?.content;
    // Content parts: keep the text ones.
    if (Array.isArray(content)) content = content.map((p) => (p && typeof p === 'object' && (p as { type?: unknown }).type === 'text' ? String((p as { text?: unknown }).text ?? '') : '')).join('');
    if ((role !== 'system' && role !== 'user' && role !== 'assistant') || typeof content !== 'string') {
      throw new HttpError(400, `messages[${i}] must be {role: system|user|assistant, content: string}`, 'invalid_request_error');
    }
    return { role, content };
  });
  const params = sampling(body, 512);
  const model = await modelName(body, options);
  const stream = body.stream === true;
  const id = 'chatcmpl-' + randomBytes(12).toString('hex');
  const created = Math.floor(Date.now() / 1000);
  const ac = abortOnDisconnect(res, counters);
  const chunk = (delta: Record<string, string>, finish: string | null) => ({ id, object: 'chat.completion.chunk', created, model, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }] });

  if (stream) {
    startSse(res);
    writeSseData(res, chunk({ role: 'assistant', content: '' }, null));
  }
  try {
    const out = await options.provider.chat({
      ...params,
      messages: turns,
      signal: ac.signal,
      onText: stream ? (delta) => writeSseData(res, chunk({ content: delta }, null)) : undefined,
    });
    if (stream) {
      writeSseData(res, { ...chunk({}, out.finishReason), usage: usage(out) });
      writeSseData(res, '[DONE]');
      res.end();
    } else {
      sendJson(res, 200, {
        id,
        object: 'chat.completion',
        created,
        model,
        choices: [{ index: 0, message: { role: 'assistant', content: out.text }, logprobs: null, finish_reason: out.finishReason }],
        usage: usage(out),
      });
    }
  } catch (err) {
    if (stream) return endStreamWithError(res, err);
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------
// Responses

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function errorBody(err: unknown): { status: number; body: unknown } {
  if (err instanceof HttpError) {
    return { status: err.status, body: { error: { message: err.message, type: err.status >= 500 ? 'server_error' : 'invalid_request_error', code: err.code, ...(err.hint ? { hint: err.hint } : {}) } } };
  }
  if (err instanceof CancelledError) return { status: 499, body: { error: { message: err.message, type: 'cancelled', code: 'cancelled' } } };
  if (err instanceof ContextOverflowError) return { status: 400, body: { error: { message: err.message, type: 'invalid_request_error', code: 'context_length_exceeded', hint: err.hint } } };
  if (err instanceof CachetError) return { status: 500, body: { error: { message: err.message, type: 'server_error', code: err.name, hint: err.hint } } };
  return { status: 500, body: { error: { message: String((err as Error)?.message ?? err), type: 'server_error', code: 'internal' } } };
}

function sendError(res: ServerResponse, err: unknown): void {
  if (res.destroyed) return;
  const { status, body } = errorBody(err);
  if (res.headersSent) {
    res.end();
    return;
  }
  if (status === 413) res.setHeader('connection', 'close');
  sendJson(res, status, body);
}

function endStreamWithError(res: ServerResponse, err: unknown): void {
  if (res.destroyed || res.writableEnded) return;
  writeSseData(res, errorBody(err).body);
  res.end();
}
