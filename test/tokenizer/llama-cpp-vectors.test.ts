// Every vocab fixture: our ids equal llama.cpp's for every test string (add_special=false,
// parse_special=false), and decoding gives the text back.
import { describe, expect, it } from 'vitest';
import { HAVE_VOCABS, VOCAB_NAMES, loadTokenizer, loadVectors } from './fixtures';

describe.skipIf(!HAVE_VOCABS)('llama.cpp tokenizer vectors', () => {
  for (const name of VOCAB_NAMES) {
    it(`${name}: all strings tokenize as llama.cpp`, () => {
      const tok = loadTokenizer(name);
      const vectors = loadVectors(name);
      expect(vectors.length).toBe(46);
      const mismatches = vectors
        .map((v, i) => ({ i, text: v.text, want: v.ids, got: tok.encode(v.text) }))
        .filter((r) => JSON.stringify(r.got) !== JSON.stringify(r.want));
      expect(mismatches).toEqual([]);
    });

    it(`${name}: decode(encode(s)) gives s back`, () => {
      const tok = loadTokenizer(name);
      for (const { text } of loadVectors(name)) {
        const ids = tok.encode(text);
        const back = tok.decode(ids, { stripLeadingSpace: tok.type === 'spm' });
        expect(back).toBe(text);
      }
    });
  }
});
