// Reads the llama.cpp tokenizer test vectors from ../shared/fixtures/vocab (never copied here).
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { openGguf } from '../../engine/gguf';
import { Tokenizer } from '../../engine/tokenizer';

export const VOCAB_DIR = resolve(__dirname, '../../../shared/fixtures/vocab');
export const HAVE_VOCABS = existsSync(VOCAB_DIR);
if (!HAVE_VOCABS) console.warn(`tokenizer tests skipped: ${VOCAB_DIR} is absent (llama.cpp vocab fixtures)`);

export const VOCAB_NAMES = ['deepseek-coder', 'gpt-2', 'llama-spm', 'phi-3', 'qwen2', 'refact', 'starcoder'] as const;
export type VocabName = (typeof VOCAB_NAMES)[number];

const cache = new Map<string, Tokenizer>();
export function loadTokenizer(name: VocabName): Tokenizer {
  let tok = cache.get(name);
  if (!tok) {
    const gguf = openGguf(resolve(VOCAB_DIR, `ggml-vocab-${name}.gguf`));
    try {
      tok = Tokenizer.fromGguf(gguf);
    } finally {
      gguf.close();
    }
    cache.set(name, tok);
  }
  return tok;
}

/** The test strings and llama.cpp's ids, parsed as llama.cpp's tests/test-tokenizer-0.cpp does. */
export function loadVectors(name: VocabName): { text: string; ids: number[] }[] {
  const raw = readFileSync(resolve(VOCAB_DIR, `ggml-vocab-${name}.gguf.inp`), 'utf8');
  const sep = '\n__ggml_vocab_test__\n';
  const inputs: string[] = [];
  for (let pos = 0; pos < raw.length; ) {
    const next = raw.indexOf(sep, pos);
    if (next < 0) {
      inputs.push(raw.slice(pos));
      break;
    }
    inputs.push(raw.slice(pos, next));
    pos = next + sep.length;
  }
  const lines = readFileSync(resolve(VOCAB_DIR, `ggml-vocab-${name}.gguf.out`), 'utf8').split('\n');
  return inputs.map((text, i) => {
    const line = (lines[i] ?? '').trim();
    return { text, ids: line === '' ? [] : line.split(' ').map(Number) };
  });
}
