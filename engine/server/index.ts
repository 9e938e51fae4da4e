// engine/server: the OpenAI-compatible local endpoint and the CompletionProvider interface that
// both the local engine and remote OpenAI-compatible servers implement.
export * from './provider';
export * from './openai-server';
export * from './remote-provider';
export * from './sse';
export * from './metrics-text';
export * from './engine-provider';
