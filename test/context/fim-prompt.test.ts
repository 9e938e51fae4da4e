import { describe, expect, it } from 'vitest';
import {
  buildFimPrompt,
  FIM_FORMATS,
  familyFromPrefixText,
  fimFormatFor,
  promptText,
  splitTypedIndent,
  tokenizePrompt,
  type PromptTokenizer,
} from '../../engine/context';

const input = {
  repoName: 'demo',
  path: 'src/main.py',
  prefix: 'def add(a, b):\n    ',
  suffix: '\n\nprint(add(1, 2))\n',
  context: [{ path: 'src/util.py', text: 'def helper():\n    return 1' }],
};

describe('FIM prompt text per family', () => {
  it('qwen: repo-level layout', () => {
    const p = buildFimPrompt(FIM_FORMATS.qwen, input);
    expect(promptText(p)).toBe(
      '<|repo_name|>demo\n' +
        '<|file_sep|>src/util.py\ndef helper():\n    return 1\n' +
        '<|file_sep|>src/main.py\n' +
        '<|fim_prefix|>def add(a, b):\n    <|fim_suffix|>\n\nprint(add(1, 2))\n<|fim_middle|>',
    );
    expect(p.segments.map((s) => s.kind)).toEqual(['repo', 'context', 'file', 'prefix', 'suffix', 'middle']);
  });

  it('qwen without context or repo name: plain PSM after the file header', () => {
    const p = buildFimPrompt(FIM_FORMATS.qwen, { path: 'a.py', prefix: 'P', suffix: 'S' });
    expect(promptText(p)).toBe('<|file_sep|>a.py\n<|fim_prefix|>P<|fim_suffix|>S<|fim_middle|>');
  });

  it('starcoder2: <fim_*> with <file_sep>/<repo_name>', () => {
    const p = buildFimPrompt(FIM_FORMATS.starcoder, input);
    expect(promptText(p)).toBe(
      '<repo_name>demo\n<file_sep>src/util.py\ndef helper():\n    return 1\n<file_sep>src/main.py\n' +
        '<fim_prefix>def add(a, b):\n    <fim_suffix>\n\nprint(add(1, 2))\n<fim_middle>',
    );
  });

  it('deepseek: begin/hole/end, context as commented snippets inside the prefix', () => {
    const p = buildFimPrompt(FIM_FORMATS.deepseek, input);
    expect(promptText(p)).toBe(
      '<｜fim▁begin｜># path: src/util.py\ndef helper():\n    return 1\n' +
        'def add(a, b):\n    <｜fim▁hole｜>\n\nprint(add(1, 2))\n<｜fim▁end｜>',
    );
  });

  it('codellama: "<PRE> {pre} <SUF>{suf} <MID>"', () => {
    const p = buildFimPrompt(FIM_FORMATS.codellama, { path: 'a.py', prefix: 'def f():', suffix: '\n    return x' });
    expect(promptText(p)).toBe('<PRE> def f(): <SUF>\n    return x <MID>');
  });

  it('codestral: suffix first, context as +++++ blocks before the prefix', () => {
    const p = buildFimPrompt(FIM_FORMATS.codestral, input);
    expect(promptText(p)).toBe(
      '[SUFFIX]\n\nprint(add(1, 2))\n[PREFIX]+++++ src/util.py\ndef helper():\n    return 1\ndef add(a, b):\n    ',
    );
  });

  it('user text that looks like a FIM token stays text when tokenized', () => {
    const calls: string[] = [];
    const tok: PromptTokenizer = {
      fim: { prefix: 1, suffix: 2, middle: 3, repoName: 4, fileSep: 5 },
      tokenText: (id) => ['', '<|fim_prefix|>', '<|fim_suffix|>', '<|fim_middle|>', '<|repo_name|>', '<|file_sep|>'][id]!,
      encode: (text, opts) => {
        expect(opts?.parseSpecial).toBe(false);
        calls.push(text);
        return [...text].map((c) => 100 + c.charCodeAt(0));
      },
      isEog: () => false,
    };
    const p = buildFimPrompt(fimFormatFor(tok)!, { path: 'x', prefix: '<|fim_middle|>', suffix: '' });
    const t = tokenizePrompt(p, tok);
    expect(t.ids.filter((id) => id === 3)).toHaveLength(1); // only the real middle marker
    expect(t.ids[t.ids.length - 1]).toBe(3);
    expect(calls).toContain('<|fim_middle|>');
    expect(t.segments.map((s) => s.key)).toEqual(['file:x', 'prefix', 'suffix', 'middle']);
    expect(t.segments[3]).toMatchObject({ start: t.ids.length - 1, end: t.ids.length });
  });
});

describe('budgets', () => {
  const count = (s: string) => s.length; // one token per character keeps the arithmetic visible

  it('prefix keeps the lines nearest the cursor, suffix the first lines', () => {
    const prefix = 'line1\nline2\nline3\ncur';
    const suffix = 'rest\nnext1\nnext2\n';
    const p = buildFimPrompt(FIM_FORMATS.qwen, { path: 'a', prefix, suffix }, { countTokens: count, budget: { prefixTokens: 10, suffixTokens: 11 } });
    const pre = p.segments.find((s) => s.kind === 'prefix')!.parts[1]!.text;
    const suf = p.segments.find((s) => s.kind === 'suffix')!.parts[1]!.text;
    expect(pre).toBe('line3\ncur');
    expect(suf).toBe('rest\nnext1');
  });

  it('context drops the lowest-priority files whole and reports them', () => {
    const ctx = [
      { path: 'a', text: 'x'.repeat(20) },
      { path: 'b', text: 'y'.repeat(20) },
      { path: 'c', text: 'z'.repeat(20) },
    ];
    const p = buildFimPrompt(FIM_FORMATS.qwen, { path: 'cur', prefix: '', suffix: '', context: ctx }, { countTokens: count, budget: { contextTokens: 75 } }); // each segment: 12 (file_sep) + 2 + 21 = 35
    expect(p.segments.filter((s) => s.kind === 'context').length).toBe(2);
    expect(p.droppedContext).toEqual(['c']);
  });

  it('segment keys are stable for unchanged context and change with content', () => {
    const a = buildFimPrompt(FIM_FORMATS.qwen, { ...input, prefix: 'x' });
    const b = buildFimPrompt(FIM_FORMATS.qwen, { ...input, prefix: 'xy' });
    const c = buildFimPrompt(FIM_FORMATS.qwen, { ...input, context: [{ path: 'src/util.py', text: 'changed' }] });
    expect(a.segments[1]!.key).toBe(b.segments[1]!.key);
    expect(a.segments[1]!.key).not.toBe(c.segments[1]!.key);
  });
});

describe('family detection', () => {
  it('maps FIM prefix token texts to families', () => {
    expect(familyFromPrefixText('<|fim_prefix|>')).toBe('qwen');
    expect(familyFromPrefixText('<fim_prefix>')).toBe('starcoder');
    expect(familyFromPrefixText('<｜fim▁begin｜>')).toBe('deepseek');
    expect(familyFromPrefixText('▁<PRE>')).toBe('codellama');
    expect(familyFromPrefixText('[PREFIX]')).toBe('codestral');
    expect(familyFromPrefixText('<s>')).toBeUndefined();
  });

  it('turns repo-level off when the vocabulary lacks file_sep', () => {
    const tok = { fim: { prefix: 0, suffix: 1, middle: 2 }, tokenText: () => '<fim_prefix>' };
    expect(fimFormatFor(tok)!.repoLevel).toBe(false);
    const p = buildFimPrompt(fimFormatFor(tok)!, { path: 'a', prefix: 'P', suffix: 'S' });
    expect(promptText(p)).toBe('<fim_prefix>P<fim_suffix>S<fim_middle>');
  });
});

describe('cursor line after the middle token', () => {
  it('moves the typed part of the cursor line after <|fim_middle|> so the rest stays cached while typing', () => {
    const at = (typed: string) =>
      promptText(buildFimPrompt(FIM_FORMATS.qwen, { path: 'a.py', prefix: 'def f(x):\n    ' + typed, suffix: '\n' }, { cursorLineInMiddle: true }));
    expect(at('ret')).toBe('<|file_sep|>a.py\n<|fim_prefix|>def f(x):\n<|fim_suffix|>\n<|fim_middle|>    ret');
    const a = at('r');
    const b = at('return x');
    const common = a.slice(0, a.indexOf('<|fim_middle|>') + '<|fim_middle|>'.length);
    expect(b.startsWith(common)).toBe(true);
  });

  it('keeps a cursor line of bare indentation in the prefix', () => {
    const p = buildFimPrompt(FIM_FORMATS.deepseek, { path: 'a.py', prefix: 'if x:\n    ', suffix: '\n' }, { cursorLineInMiddle: true });
    expect(promptText(p)).toBe('<｜fim▁begin｜>if x:\n    <｜fim▁hole｜>\n<｜fim▁end｜>');
  });

  it('splitTypedIndent: a line-aligned prompt and the indentation to strip from the output', () => {
    expect(splitTypedIndent('if x:\n    ')).toEqual({ prefix: 'if x:\n', indent: '    ' });
    expect(splitTypedIndent('if x:\n    y')).toEqual({ prefix: 'if x:\n    y', indent: '' });
    expect(splitTypedIndent('if x:\n')).toEqual({ prefix: 'if x:\n', indent: '' });
    expect(splitTypedIndent('  ')).toEqual({ prefix: '  ', indent: '' });
  });

  it('leaves SPM (Codestral) alone: its prefix is already last', () => {
    const p = buildFimPrompt(FIM_FORMATS.codestral, { path: 'a', prefix: 'x\n  y', suffix: 'S' }, { cursorLineInMiddle: true });
    expect(promptText(p)).toBe('[SUFFIX]S[PREFIX]x\n  y');
  });
});
