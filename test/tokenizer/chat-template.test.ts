import { describe, expect, it } from 'vitest';
import { ChatTemplateError, renderBuiltin, renderChat, renderChatFor } from '../../engine/tokenizer';
import { HAVE_VOCABS, loadTokenizer } from './fixtures';

const CHAT = [
  { role: 'system', content: 'You write TypeScript.' },
  { role: 'user', content: 'Add two numbers.' },
  { role: 'assistant', content: 'const add = (a, b) => a + b;' },
  { role: 'user', content: 'Now three.' },
];

describe('built-in chat formats (as llama.cpp llama-chat.cpp writes them)', () => {
  it('chatml', () => {
    expect(renderBuiltin('chatml', CHAT.slice(0, 2), true)).toBe(
      '<|im_start|>system\nYou write TypeScript.<|im_end|>\n<|im_start|>user\nAdd two numbers.<|im_end|>\n<|im_start|>assistant\n',
    );
  });
  it('deepseek', () => {
    expect(renderBuiltin('deepseek', CHAT, true)).toBe(
      'You write TypeScript.### Instruction:\nAdd two numbers.\n### Response:\nconst add = (a, b) => a + b;\n<|EOT|>\n### Instruction:\nNow three.\n### Response:\n',
    );
  });
  it('llama2 with <<SYS>>', () => {
    expect(renderBuiltin('llama2', CHAT, true)).toBe(
      '[INST] <<SYS>>\nYou write TypeScript.\n<</SYS>>\n\nAdd two numbers. [/INST]const add = (a, b) => a + b;</s>[INST] Now three. [/INST]',
    );
  });
  it('undefined template falls back to the chosen family', () => {
    expect(renderChat(undefined, CHAT.slice(1, 2), { family: 'deepseek', addGenerationPrompt: true })).toBe(
      '### Instruction:\nAdd two numbers.\n### Response:\n',
    );
  });
  it('a broken template gives a typed error with a hint', () => {
    expect(() => renderChat('{% for m in messages %}', CHAT)).toThrow(ChatTemplateError);
  });
});

describe.skipIf(!HAVE_VOCABS)('the qwen2 fixture template (Qwen2.5 Instruct)', () => {
  it('renders like chatml when a system message is given', () => {
    const tok = loadTokenizer('qwen2');
    expect(tok.chatTemplate).toContain('<|im_start|>');
    const out = renderChat(tok.chatTemplate, CHAT, { addGenerationPrompt: true });
    expect(out).toBe(renderBuiltin('chatml', CHAT, true));
  });
  it('adds its default system prompt when there is none', () => {
    const tok = loadTokenizer('qwen2');
    expect(renderChatFor(tok, [{ role: 'user', content: 'hi' }], { addGenerationPrompt: true })).toBe(
      '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' +
        '<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n',
    );
  });
  it('the rendered prompt tokenizes into the control tokens', () => {
    const tok = loadTokenizer('qwen2');
    const ids = tok.encode(renderChatFor(tok, CHAT, { addGenerationPrompt: true }), { parseSpecial: true });
    expect(ids[0]).toBe(151644); // <|im_start|>
    expect(ids.filter((id) => id === 151645)).toHaveLength(4); // one <|im_end|> per message
  });
  it('files without a template use the family built-in (deepseek-coder)', () => {
    const tok = loadTokenizer('deepseek-coder');
    expect(tok.chatTemplate).toBeUndefined();
    expect(renderChatFor(tok, CHAT.slice(1, 2), { addGenerationPrompt: true })).toBe('### Instruction:\nAdd two numbers.\n### Response:\n');
  });
});
