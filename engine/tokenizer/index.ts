// Public surface of the tokenizer: llama.cpp-compatible BPE/SPM tokenization from GGUF metadata,
// special and FIM tokens, detokenization (whole and streaming), chat templates.
export { Tokenizer } from './tokenizer';
export type { EncodeOptions, DecodeOptions, StreamDecoder } from './tokenizer';
export { Vocab, TokenType, TokenizerLoadError, vocabSpecFromMetadata } from './vocab';
export type { VocabSpec, FimTokens, MetadataSource } from './vocab';
export { preTokenizerFor, createPreTokenizer } from './pre-tokenize';
export type { PreTokenizerInfo } from './pre-tokenize';
export { BpeModel } from './bpe';
export { spmTokenize, SpmModel } from './spm';
export { BYTE_TO_UNICODE, UNICODE_TO_BYTE, codepointFlags } from './unicode';
export { renderChat, renderBuiltin, renderChatFor, chatFamilyFor, ChatTemplateError } from './chat-template';
export type { ChatMessage, ChatFamily, RenderChatOptions, ChatTokenizer } from './chat-template';
