import { describe, expect, it } from 'vitest';
import { HAVE_VOCABS, loadTokenizer, type VocabName } from './fixtures';

const TEXT = 'const 名前 = "🦙 llama 🚀"; // ✅ Äpfel ﷽ 𝔘𝔫𝔦';

describe.skipIf(!HAVE_VOCABS)('streaming decoder', () => {
  for (const name of ['qwen2', 'deepseek-coder', 'llama-spm', 'gpt-2'] as VocabName[]) {
    it(`${name}: never emits half a character and ends with the whole text`, () => {
      const tok = loadTokenizer(name);
      const ids = tok.encode(TEXT);
      // The test means something only if some token carries an incomplete UTF-8 sequence.
      const partial = ids.filter((id) => new TextDecoder().decode(tok.tokenBytes(id)).includes('\uFFFD'));
      expect(partial.length).toBeGreaterThan(0);
      const dec = tok.createStreamDecoder({ stripLeadingSpace: tok.type === 'spm' });
      let out = '';
      for (const id of ids) {
        const piece = dec.push(id);
        expect(piece).not.toContain('\uFFFD');
        out += piece;
      }
      out += dec.flush();
      expect(out).toBe(TEXT);
      expect(tok.decode(ids, { stripLeadingSpace: tok.type === 'spm' })).toBe(TEXT);
    });
  }

  it('flush reports an unfinished character as U+FFFD', () => {
    const tok = loadTokenizer('qwen2');
    // A token that starts a multi-byte character without finishing it.
    const lead = tok.encode(TEXT).find((id) => {
      const b = tok.tokenBytes(id);
      return b.length > 0 && b[0]! >= 0xc0 && new TextDecoder().decode(b).endsWith('\uFFFD');
    });
    expect(lead).toBeDefined();
    const dec = tok.createStreamDecoder();
    expect(dec.push(lead!)).not.toContain('\uFFFD');
    expect(dec.flush()).toBe('\uFFFD');
  });
});
