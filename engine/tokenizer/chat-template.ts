// Chat prompts: render the model's own `tokenizer.chat_template` (Jinja, via @huggingface/jinja),
// or, when the file has none, a built-in format for the family written as llama.cpp's
// llama-chat.cpp writes it (chatml, deepseek, llama2 with <<SYS>>, phi3).

import { Template } from '@huggingface/jinja';
import { CachetError } from '../errors';

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant' | (string & {});
  content: string;
}

export type ChatFamily = 'chatml' | 'deepseek' | 'llama2' | 'phi3';

export interface RenderChatOptions {
  addGenerationPrompt?: boolean;
  bosToken?: string;
  eosToken?: string;
  /** Built-in format used when `template` is undefined. Default 'chatml'. */
  family?: ChatFamily;
  /** Extra variables for the template (tools, documents, ...). */
  extra?: Record<string, unknown>;
}

export class ChatTemplateError extends CachetError {}

const compiled = new Map<string, Template>();

export function renderChat(template: string | undefined, messages: readonly ChatMessage[], opts: RenderChatOptions = {}): string {
  const addGenerationPrompt = opts.addGenerationPrompt ?? false;
  if (template === undefined || template === '') return renderBuiltin(opts.family ?? 'chatml', messages, addGenerationPrompt);
  let tpl = compiled.get(template);
  try {
    if (tpl === undefined) {
      tpl = new Template(template);
      if (compiled.size > 16) compiled.clear();
      compiled.set(template, tpl);
    }
    return tpl.render({
      ...opts.extra,
      messages: messages.map((m) => ({ ...m })),
      add_generation_prompt: addGenerationPrompt,
      bos_token: opts.bosToken ?? '',
      eos_token: opts.eosToken ?? '',
    });
  } catch (e) {
    throw new ChatTemplateError(
      `the model's chat template cannot be rendered: ${(e as Error).message}`,
      'Set a built-in chat format for this model (chatml, deepseek, llama2, phi3) in the settings, or use completion mode.',
      { cause: e },
    );
  }
}

export function renderBuiltin(family: ChatFamily, messages: readonly ChatMessage[], addGenerationPrompt: boolean): string {
  let s = '';
  switch (family) {
    case 'chatml':
      for (const m of messages) s += `<|im_start|>${m.role}\n${m.content}<|im_end|>\n`;
      if (addGenerationPrompt) s += '<|im_start|>assistant\n';
      return s;
    case 'deepseek':
      for (const m of messages) {
        if (m.role === 'system') s += m.content;
        else if (m.role === 'user') s += `### Instruction:\n${m.content}\n`;
        else if (m.role === 'assistant') s += `### Response:\n${m.content}\n<|EOT|>\n`;
      }
      if (addGenerationPrompt) s += '### Response:\n';
      return s;
    case 'llama2': {
      // The BOS of the first turn comes from the tokenizer (add_bos), as in llama.cpp.
      let insideTurn = true;
      s = '[INST] ';
      for (const m of messages) {
        if (!insideTurn) {
          insideTurn = true;
          s += '[INST] ';
        }
        if (m.role === 'system') s += `<<SYS>>\n${m.content}\n<</SYS>>\n\n`;
        else if (m.role === 'user') s += `${m.content} [/INST]`;
        else {
          s += `${m.content}</s>`;
          insideTurn = false;
        }
      }
      return s;
    }
    case 'phi3':
      for (const m of messages) s += `<|${m.role}|>\n${m.content}<|end|>\n`;
      if (addGenerationPrompt) s += '<|assistant|>\n';
      return s;
  }
}

/** The built-in format that fits a vocabulary, judged by its tokens. */
export function chatFamilyFor(hasToken: (text: string) => boolean, model: 'bpe' | 'spm'): ChatFamily {
  if (hasToken('<|im_start|>')) return 'chatml';
  if (hasToken('<｜begin▁of▁sentence｜>') || hasToken('<|EOT|>')) return 'deepseek';
  if (hasToken('<|assistant|>') && hasToken('<|end|>')) return 'phi3';
  return model === 'spm' ? 'llama2' : 'chatml';
}

/** The minimum of a Tokenizer that renderChatFor needs. */
export interface ChatTokenizer {
  readonly chatTemplate: string | undefined;
  readonly bos: number | undefined;
  readonly eos: number | undefined;
  readonly type: 'bpe' | 'spm';
  tokenText(id: number): string;
  tokenId(text: string): number | undefined;
}

/** Renders a chat with the model's template, or the built-in format of its family. */
export function renderChatFor(
  tokenizer: ChatTokenizer,
  messages: readonly ChatMessage[],
  opts: { addGenerationPrompt?: boolean; family?: ChatFamily } = {},
): string {
  const text = (id: number | undefined) => (id === undefined ? '' : tokenizer.tokenText(id));
  return renderChat(tokenizer.chatTemplate, messages, {
    addGenerationPrompt: opts.addGenerationPrompt,
    bosToken: text(tokenizer.bos),
    eosToken: text(tokenizer.eos),
    family: opts.family ?? chatFamilyFor((t) => tokenizer.tokenId(t) !== undefined, tokenizer.type),
  });
}
