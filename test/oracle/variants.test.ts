// llama.cpp oracle on model shapes the per-arch suites do not cover: RoPE freq base and linear
// scaling as CodeLlama / DeepSeek-Coder 1.x set them, full multi-head attention, head size 128,
// tied / untied heads flipped from each arch's default, and a real 32k vocabulary.

import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'vitest';
import { agreementSuite } from './helpers-agreement';

agreementSuite('llama, CodeLlama-like (freq base 1e6, MHA 4/4)', { arch: 'llama', layers: 2, dims: 256, heads: 4, kvHeads: 4, ff: 512, seed: 2, ropeFreqBase: 1e6 }, ['F32', 'Q4_K']);

agreementSuite('llama, DeepSeek-Coder-1.x-like (linear RoPE x4, base 1e5)', { arch: 'llama', layers: 2, dims: 256, heads: 4, kvHeads: 2, ff: 512, seed: 3, ropeFreqBase: 1e5, ropeLinearFactor: 4 }, ['F32', 'Q8_0']);

agreementSuite('qwen2, head size 128 (2 heads / 1 KV head), untied, 3 layers', { arch: 'qwen2', layers: 3, dims: 256, heads: 2, kvHeads: 1, ff: 512, seed: 4, tied: false }, ['F32', 'Q6_K']);

agreementSuite('starcoder2, tied embeddings', { arch: 'starcoder2', layers: 2, dims: 256, heads: 4, kvHeads: 2, ff: 512, seed: 5, tied: true }, ['F32', 'Q4_0']);

const DEEPSEEK_VOCAB = fileURLToPath(new URL('../../../shared/fixtures/vocab/ggml-vocab-deepseek-coder.gguf', import.meta.url));
if (existsSync(DEEPSEEK_VOCAB)) {
  agreementSuite('llama with the DeepSeek-Coder vocabulary (32k tokens)', { arch: 'llama', layers: 2, dims: 256, heads: 4, kvHeads: 2, ff: 512, seed: 6, vocab: { gguf: DEEPSEEK_VOCAB }, ropeFreqBase: 1e5, ropeLinearFactor: 4 }, ['F16']);
} else {
  describe('llama with the DeepSeek-Coder vocabulary', () => {
    test.skip(`fixture ${DEEPSEEK_VOCAB} is absent (shared fixtures not checked out)`, () => {});
  });
}
