// The bundled model (models/cachet-tiny*.gguf) was trained on deepseek-coder PSM samples
// "BOS <｜fim▁begin｜> pre <｜fim▁hole｜> suf <｜fim▁end｜> mid" (training/train.py). Check that the
// prompt engine/context assembles for HumanEval infilling tasks is exactly that layout.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { assembleFim } from '../../engine/context';
import { openGguf } from '../../engine/gguf';
import { Tokenizer } from '../../engine/tokenizer';

const model = existsSync('models') ? readdirSync('models').find((f) => /^cachet-tiny.*\.gguf$/.test(f)) : undefined;
const EVAL = '../shared/fixtures/eval/HumanEval-SingleLineInfilling.jsonl.gz';
const ready = model !== undefined && existsSync(EVAL);
if (!ready) console.warn(`SKIP cachet-tiny-format: needs models/cachet-tiny*.gguf and ${EVAL}`);

describe.skipIf(!ready)('FIM prompt for the bundled model matches its training layout', () => {
  it('HumanEval single-line tasks: [begin] pre [hole] suf [end]', () => {
    const gguf = openGguf(`models/${model}`);
    const tok = Tokenizer.fromGguf(gguf);
    gguf.close();
    expect(tok.fim).toMatchObject({ prefix: 32016, suffix: 32015, middle: 32017 });
    const tasks = gunzipSync(readFileSync(EVAL)).toString('utf8').trim().split('\n').slice(0, 25).map((l) => JSON.parse(l) as { prompt: string; suffix: string });
    for (const t of tasks) {
      const a = assembleFim(tok, { prefix: t.prompt, suffix: t.suffix, filePath: 'humaneval.py' }, { prefixLines: 10_000, suffixLines: 10_000, budget: { prefixTokens: 1e6, suffixTokens: 1e6 } });
      const enc = (s: string) => tok.encode(s, { addSpecial: false, parseSpecial: false });
      // Single-line holes start at a line boundary, so nothing moves after the middle token.
      expect(t.prompt.endsWith('\n')).toBe(true);
      expect(a.tokens.ids).toEqual([32016, ...enc(t.prompt), 32015, ...enc(t.suffix), 32017]);
    }
  });
});
