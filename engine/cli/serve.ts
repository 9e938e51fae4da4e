// `cachet serve`: the OpenAI-compatible endpoint over the local engine (or, with --remote, a
// pass-through to another OpenAI-compatible server, handy to test the remote provider).

import { EngineProvider, RemoteProvider, startServer, type CompletionProvider, type RunningServer } from '../server';
import type { Engine } from './engine-link';

export interface ServeOptions {
  engine?: Engine;
  remote?: { baseUrl: string; apiKey?: string; model?: string };
  host: string;
  port: number;
  token?: string;
  maxBodyBytes?: number;
}

export async function serve(opts: ServeOptions): Promise<{ server: RunningServer; provider: CompletionProvider }> {
  const provider: CompletionProvider = opts.engine ? new EngineProvider(opts.engine) : new RemoteProvider(opts.remote!);
  const server = await startServer({ provider, host: opts.host, port: opts.port, token: opts.token, maxBodyBytes: opts.maxBodyBytes });
  return { server, provider };
}
