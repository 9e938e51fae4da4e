// The one interface both the local Engine and a remote OpenAI-compatible server implement, so the
// HTTP endpoint, the CLI and the extension can use either without knowing which.

import type { MetricsSnapshot } from '../protocol';

export interface SamplingOptions {
  maxTokens?: number;
  /** 0 or absent = greedy. */
  temperature?: number;
  topP?: number;
  topK?: number;
  seed?: number;
  stop?: string[];
}

export interface CompletionParams extends SamplingOptions {
  prompt: string;
  /** Text after the cursor: present = fill-in-the-middle. */
  suffix?: string;
  /** Ends the request; the promise then rejects with CancelledError. */
  signal?: AbortSignal;
  /** Streaming: called with each new piece of text, in order. */
  onText?: (delta: string) => void;
}

export interface ChatTurn {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

export interface ChatParams extends SamplingOptions {
  messages: ChatTurn[];
  signal?: AbortSignal;
  onText?: (delta: string) => void;
}

export type ProviderFinishReason = 'stop' | 'length';

export interface CompletionOutput {
  text: string;
  finishReason: ProviderFinishReason;
  promptTokens?: number;
  completionTokens?: number;
  /** Prompt tokens whose KV came from a cache (local engine only). */
  cachedTokens?: number;
  totalMs?: number;
}

export interface ProviderModel {
  id: string;
  contextLength?: number;
  ownedBy?: string;
}

export interface CompletionProvider {
  /** Short description for logs and errors ("local engine", "remote http://...") . */
  readonly name: string;
  models(): Promise<ProviderModel[]>;
  complete(params: CompletionParams): Promise<CompletionOutput>;
  chat(params: ChatParams): Promise<CompletionOutput>;
  /** Cancels every request in flight (each also takes its own AbortSignal). */
  cancelAll(): void;
  /** Engine counters, when the provider has them. */
  metrics?(): MetricsSnapshot | Promise<MetricsSnapshot>;
}
