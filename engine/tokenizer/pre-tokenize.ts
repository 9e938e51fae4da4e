// Byte-level BPE pre-tokenizers: split text into words before BPE, the way llama.cpp does
// (src/llama-vocab.cpp picks a list of regexes by `tokenizer.ggml.pre`; src/unicode.cpp applies
// them one after another, each splitting the pieces the previous one left, matches and gaps
// alike). The three common patterns (gpt2, llama3, qwen2) have hand-written splitters in
// llama.cpp and here; the others run as JS regexes over the same "collapsed" text llama.cpp
// feeds std::regex (one character per code point, non-ASCII replaced by its class).

import { ModelNotSupportedError } from '../errors';
import {
  CPT_ACCENT_MARK,
  CPT_LETTER,
  CPT_MASK_CATEGORIES,
  CPT_NUMBER,
  CPT_PUNCTUATION,
  CPT_SYMBOL,
  CPT_WHITESPACE,
  codepointFlagTable,
  toCodepoints,
} from './unicode';

const GPT2_PATTERN = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";
const LLAMA3_PATTERN =
  "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const QWEN2_PATTERN =
  "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/** What a `tokenizer.ggml.pre` value means: its regexes and the vocab flags llama.cpp ties to it. */
export interface PreTokenizerInfo {
  /** llama.cpp's name for the family (LLAMA_VOCAB_PRE_TYPE_*), lower-case. */
  type: string;
  regexes: string[];
  /** If the whole word is a token, emit it without merging (llama3, tekken, ...). */
  ignoreMerges: boolean;
  /** Default for add_bos when the file has no tokenizer.ggml.add_bos_token. */
  addBos: boolean;
}

// Regex lists copied from llama-vocab.cpp, non-ASCII written as escapes (editors normalise some).
const FAMILIES: Record<string, { names: string[]; regexes: string[]; ignoreMerges?: boolean; addBos?: boolean }> = {
  llama3: {
    names: ['llama3', 'llama-v3', 'llama-bpe', 'falcon3', 'falcon-h1', 'pixtral', 'midm-2.0', 'lfm2', 'jina-v5-nano'],
    regexes: [LLAMA3_PATTERN],
    ignoreMerges: true,
    addBos: true,
  },
  dbrx: { names: ['dbrx', 'smaug-bpe'], regexes: [LLAMA3_PATTERN] },
  chatglm4: { names: ['glm4', 'chatglm-bpe'], regexes: [LLAMA3_PATTERN] },
  'deepseek-llm': {
    names: ['deepseek-llm'],
    regexes: ['[\r\n]', '\\s?[A-Za-z\u00B5\u00C0-\u00D6\u00D8-\u00F6\u00F8-\u01BA\u01BC-\u01BF\u01C4-\u0293\u0295-\u02AF\u0370-\u0373\u0376\u0377\u037B-\u037D\u037F\u0386\u0388-\u038A\u038C\u038E-\u03A1\u03A3-\u03F5\u03F7-\u0481\u048A-\u052F\u0531-\u0556\u10A0-\u10C5\u13A0-\u13F5\u13F8-\u13FD\u1C90-\u1CBA\u1CBD-\u1CBF\u1D00-\u1D2B\u1D6B-\u1D77\u1D79-\u1D9A\u1E00-\u1F15\u1F18-\u1F1D\u1F20-\u1F45\u1F48-\u1F4D\u1F50-\u1F57\u1F59\u1F5B\u1F5D\u1F5F-\u1F7D\u1F80-\u1FB4\u1FB6-\u1FBC\u1FBE\u1FC2-\u1FC4\u1FC6-\u1FCC\u1FD0-\u1FD3\u1FD6-\u1FDB\u1FE0-\u1FEC\u1FF2-\u1FF4\u1FF6-\u1FFC\u2102\u2107\u210A-\u2113\u2115\u2119-\u211D\u2124\u2126\u2128\u212A-\u212D\u212F-\u2134\u2139\u213C-\u213F\u2145-\u2149\u214E\u2183\u2184\u2C00-\u2C7B\u2C7E-\u2CE4\u2CEB-\u2CEE\u2CF2\u2CF3\uA640-\uA66D\uA680-\uA69B\uA722-\uA76F\uA771-\uA787\uA78B-\uA78E\uAB70-\uABBF\uFB00-\uFB06\uFB13-\uFB17\uFF21-\uFF3A\uFF41-\uFF5A\u{10400}-\u{1044F}\u{104B0}-\u{104D3}\u{104D8}-\u{104FB}\u{10C80}-\u{10CB2}\u{10CC0}-\u{10CF2}\u{118A0}-\u{118DF}\u{1E900}-\u{1E943}]+', '\\s?[!-/:-~\uFF01-\uFF0F\uFF1A-\uFF5E\u2018-\u201F\u3000-\u3002]+', '\\s+$', '[\u4E00-\u9FA5\u0800-\u4E00\uAC00-\uD7FF]+', '\\p{N}+'],
  },
  'deepseek-coder': {
    names: ['deepseek-coder'],
    regexes: ['[\r\n]', '\\s?\\p{L}+', '\\s?\\p{P}+', '[\u4E00-\u9FA5\u0800-\u4E00\uAC00-\uD7FF]+', '\\p{N}'],
  },
  'deepseek3-llm': {
    names: ['deepseek-v3'],
    regexes: [
      '\\p{N}{1,3}',
      '[\u4E00-\u9FA5\u3040-\u309F\u30A0-\u30FF]+',
      '[!"#$%&\'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+',
    ],
  },
  falcon: {
    names: ['falcon'],
    regexes: ['[\\p{P}\\$\\+<=>\\^~\\|`]+', GPT2_PATTERN, '[0-9][0-9][0-9]'],
  },
  starcoder: {
    names: ['starcoder', 'refact', 'command-r', 'smollm', 'codeshell', 'exaone', 'minerva-7b', 'mellum2'],
    regexes: ['\\p{N}', GPT2_PATTERN],
  },
  gpt2: {
    names: [
      'gpt-2', 'phi-2', 'jina-es', 'jina-de', 'gigachat', 'jina-v2-es', 'jina-v2-de', 'a.x-4.0', 'mellum',
      'modern-bert', 'jina-v1-en', 'jina-v2-code', 'roberta-bpe', 'mpt', 'olmo', 'jais', 'exaone4',
      'trillion', 'granite-docling',
    ],
    regexes: [GPT2_PATTERN],
  },
  qwen2: {
    names: ['qwen2', 'deepseek-r1-qwen', 'kormo', 'f2llmv2', 'stablelm2', 'megrez', 'hunyuan', 'solar-open'],
    regexes: [QWEN2_PATTERN],
  },
  viking: { names: ['viking'], regexes: [' ?[^(\\s|.,!?\u2026\u3002\uFF0C\u3001\u0964\u06D4\u060C)]+', '\\p{N}'] },
  default: {
    names: ['default'],
    regexes: ['[\\p{P}\\$\\+<=>\\^~\\|]+', GPT2_PATTERN, '\\p{N}+', '[0-9][0-9][0-9]'],
  },
};

/** The pre-tokenizer llama.cpp uses for `tokenizer.ggml.pre` (missing -> 'default'). */
export function preTokenizerFor(pre: string | undefined): PreTokenizerInfo {
  const name = pre === undefined || pre === '' ? 'default' : pre;
  for (const [type, family] of Object.entries(FAMILIES)) {
    if (family.names.includes(name)) {
      return { type, regexes: family.regexes, ignoreMerges: family.ignoreMerges ?? false, addBos: family.addBos ?? false };
    }
  }
  throw new ModelNotSupportedError(
    `unknown BPE pre-tokenizer '${name}' (tokenizer.ggml.pre)`,
    `Cachet knows the pre-tokenizers ${Object.values(FAMILIES).flatMap((f) => f.names).join(', ')}. ` +
      'Use a GGUF converted for one of these families, or report the model so its pre-tokenizer can be added.',
  );
}

// ---------------------------------------------------------------------------------------------
// Splitting. State: lengths (in code points) of consecutive pieces covering the text.

interface SplitContext {
  cpts: Uint32Array;
  flags: Uint16Array; // per code point
  collapsed?: string;
  wide?: WideText;
}

interface WideText {
  text: string;
  cpToUnit: Int32Array | undefined; // undefined: one UTF-16 unit per code point
  unitToCp: Int32Array | undefined;
}

type Splitter = (ctx: SplitContext, pieces: number[]) => number[];

const OUT = 0xffffffff;
const QUOTE = 0x27;
const CR = 0x0d;
const LF = 0x0a;
const SPACE = 0x20;

function lowerAscii(c: number): number {
  return c >= 0x41 && c <= 0x5a ? c + 32 : c;
}

// Port of unicode_regex_split_custom_gpt2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
function splitGpt2(ctx: SplitContext, pieces: number[]): number[] {
  const { cpts, flags } = ctx;
  const out: number[] = [];
  let start = 0;
  for (const len of pieces) {
    const ini = start;
    const end = start + len;
    start = end;
    const cpt = (p: number) => (p >= ini && p < end ? cpts[p]! : OUT);
    const flg = (p: number) => (p >= ini && p < end ? flags[p]! : 0);
    let prevEnd = ini;
    const add = (e: number) => {
      const n = e - prevEnd;
      if (n > 0) out.push(n);
      prevEnd = e;
      return n;
    };
    for (let pos = ini; pos < end; ) {
      const c = cpts[pos]!;
      const f = flags[pos]!;
      if (c === QUOTE && pos + 1 < end) {
        const n1 = cpt(pos + 1);
        if (n1 === 0x73 || n1 === 0x74 || n1 === 0x6d || n1 === 0x64) {
          pos += add(pos + 2);
          continue;
        }
        if (pos + 2 < end) {
          const n2 = cpt(pos + 2);
          if ((n1 === 0x72 && n2 === 0x65) || (n1 === 0x76 && n2 === 0x65) || (n1 === 0x6c && n2 === 0x6c)) {
            pos += add(pos + 3);
            continue;
          }
        }
      }
      let f2 = c === SPACE ? flg(pos + 1) : f;
      if (f2 & CPT_LETTER) {
        if (c === SPACE) pos++;
        while (f2 & CPT_LETTER) f2 = flg(++pos);
        add(pos);
        continue;
      }
      if (f2 & CPT_NUMBER) {
        if (c === SPACE) pos++;
        while (f2 & CPT_NUMBER) f2 = flg(++pos);
        add(pos);
        continue;
      }
      if (!(f2 & (CPT_WHITESPACE | CPT_LETTER | CPT_NUMBER)) && f2) {
        if (c === SPACE) pos++;
        while (!(f2 & (CPT_WHITESPACE | CPT_LETTER | CPT_NUMBER)) && f2) f2 = flg(++pos);
        add(pos);
        continue;
      }
      let ws = 0;
      while (flg(pos + ws) & CPT_WHITESPACE) ws++;
      if (ws > 1 && cpt(pos + ws) !== OUT) {
        pos += ws - 1;
        add(pos);
        continue;
      }
      if (ws > 0) {
        pos += ws;
        add(pos);
        continue;
      }
      add(++pos);
    }
  }
  return out;
}

// Port of unicode_regex_split_custom_llama3 (maxDigits 3) and _qwen2 (maxDigits 1):
// (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,K}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
function splitLlama3Like(maxDigits: number): Splitter {
  return (ctx, pieces) => {
    const { cpts, flags } = ctx;
    const out: number[] = [];
    let start = 0;
    for (const len of pieces) {
      const ini = start;
      const end = start + len;
      start = end;
      const cpt = (p: number) => (p >= ini && p < end ? cpts[p]! : OUT);
      const flg = (p: number) => (p >= ini && p < end ? flags[p]! : 0);
      let prevEnd = ini;
      const add = (e: number) => {
        const n = e - prevEnd;
        if (n > 0) out.push(n);
        prevEnd = e;
        return n;
      };
      for (let pos = ini; pos < end; ) {
        const c = cpts[pos]!;
        const f = flags[pos]!;
        if (c === QUOTE && pos + 1 < end) {
          const n1 = lowerAscii(cpt(pos + 1));
          if (n1 === 0x73 || n1 === 0x74 || n1 === 0x6d || n1 === 0x64) {
            pos += add(pos + 2);
            continue;
          }
          if (pos + 2 < end) {
            const n2 = lowerAscii(cpt(pos + 2));
            if ((n1 === 0x72 && n2 === 0x65) || (n1 === 0x76 && n2 === 0x65) || (n1 === 0x6c && n2 === 0x6c)) {
              pos += add(pos + 3);
              continue;
            }
          }
        }
        if (!(c === CR || c === LF || f & CPT_NUMBER)) {
          if (f & CPT_LETTER || flg(pos + 1) & CPT_LETTER) {
            pos++;
            while (flg(pos) & CPT_LETTER) pos++;
            add(pos);
            continue;
          }
        }
        if (f & CPT_NUMBER) {
          let first = pos;
          while (flg(pos) & CPT_NUMBER) {
            if (++pos - first >= maxDigits) {
              add(pos);
              first = pos;
            }
          }
          add(pos);
          continue;
        }
        let f2 = c === SPACE ? flg(pos + 1) : f;
        if (!(f2 & (CPT_WHITESPACE | CPT_LETTER | CPT_NUMBER)) && f) {
          if (c === SPACE) pos++;
          while (!(f2 & (CPT_WHITESPACE | CPT_LETTER | CPT_NUMBER)) && f2) f2 = flg(++pos);
          let c2 = cpt(pos);
          while (c2 === CR || c2 === LF) c2 = cpt(++pos);
          add(pos);
          continue;
        }
        let ws = 0;
        let lastNewlineEnd = 0;
        while (flg(pos + ws) & CPT_WHITESPACE) {
          const c2 = cpt(pos + ws);
          if (c2 === CR || c2 === LF) lastNewlineEnd = pos + ws + 1;
          ws++;
        }
        if (lastNewlineEnd > 0) {
          pos = lastNewlineEnd;
          add(pos);
          continue;
        }
        if (ws > 1 && cpt(pos + ws) !== OUT) {
          pos += ws - 1;
          add(pos);
          continue;
        }
        if (ws > 0) {
          pos += ws;
          add(pos);
          continue;
        }
        add(++pos);
      }
    }
    return out;
  };
}

// --- generic regexes, as llama.cpp runs them through std::regex ---------------------------------

const UCAT_CHAR: Record<string, number> = {
  '\\p{N}': CPT_NUMBER,
  '\\p{L}': CPT_LETTER,
  '\\p{P}': CPT_PUNCTUATION,
  '\\p{M}': CPT_ACCENT_MARK,
  '\\p{S}': CPT_SYMBOL,
  '\\p{Lu}': CPT_LETTER,
  '\\p{Ll}': CPT_LETTER,
  '\\p{Lt}': CPT_LETTER,
  '\\p{Lm}': CPT_LETTER,
  '\\p{Lo}': CPT_LETTER,
};
// The byte standing for each class in the collapsed text, and the ASCII members of the class.
const COLLAPSED_CLASS: Record<number, [string, string]> = {
  [CPT_NUMBER]: ['\xD1', '0-9'],
  [CPT_LETTER]: ['\xD2', 'A-Za-z'],
  [CPT_PUNCTUATION]: ['\xD3', '!-#%-*,-/:-;?-@\\[-\\]_\\{\\}'],
  [CPT_ACCENT_MARK]: ['\xD4', ''],
  [CPT_SYMBOL]: ['\xD5', '\\$\\+<->\\^`\\|~'],
};

function usesUnicodeClass(regex: string): boolean {
  return Object.keys(UCAT_CHAR).some((k) => regex.includes(k));
}

/** llama.cpp's rewrite of a \p{..} regex into one over collapsed text. */
function collapseRegex(regex: string): string {
  let out = '';
  let inside = false;
  for (let i = 0; i < regex.length; i++) {
    const ch = regex[i]!;
    if (ch === '[' && (i === 0 || regex[i - 1] !== '\\')) {
      out += '[';
      inside = true;
      continue;
    }
    if (inside && ch === ']' && regex[i - 1] !== '\\') {
      out += ']';
      inside = false;
      continue;
    }
    if (ch === '\\' && regex[i + 1] === 'p' && regex[i + 2] === '{') {
      const close = regex.indexOf('}', i + 3);
      if (close >= 0 && close <= i + 10) {
        const flag = UCAT_CHAR[regex.slice(i, close + 1)];
        if (flag !== undefined) {
          const [byte, ascii] = COLLAPSED_CLASS[flag]!;
          out += (inside ? '' : '[') + byte + ascii + (inside ? '' : ']');
          i = close;
          continue;
        }
      }
    }
    out += ch;
  }
  return out;
}

function collapsedText(ctx: SplitContext): string {
  if (ctx.collapsed !== undefined) return ctx.collapsed;
  const { cpts, flags } = ctx;
  const codes = new Uint16Array(cpts.length);
  for (let i = 0; i < cpts.length; i++) {
    const c = cpts[i]!;
    if (c < 128) {
      codes[i] = c;
      continue;
    }
    const f = flags[i]!;
    if (f & CPT_WHITESPACE) codes[i] = 0x0b;
    else {
      const cls = COLLAPSED_CLASS[f & CPT_MASK_CATEGORIES];
      codes[i] = cls ? cls[0].charCodeAt(0) : 0xd0;
    }
  }
  ctx.collapsed = decodeUtf16(codes);
  return ctx.collapsed;
}

const utf16 = new TextDecoder('utf-16le', { ignoreBOM: true });
function decodeUtf16(codes: Uint16Array): string {
  return utf16.decode(codes); // one flat string; building it with += makes slow rope strings
}

/**
 * Code points as a JS string, non-ASCII whitespace as \v (llama.cpp's std::wregex input), with
 * maps between code point and UTF-16 indices (identity when there is no astral code point).
 */
function wideText(ctx: SplitContext): WideText {
  if (ctx.wide !== undefined) return ctx.wide;
  const { cpts, flags } = ctx;
  let astral = false;
  for (let i = 0; i < cpts.length; i++) if (cpts[i]! > 0xffff) astral = true;
  if (!astral) {
    const codes = new Uint16Array(cpts.length);
    for (let i = 0; i < cpts.length; i++) codes[i] = cpts[i]! > 0x7f && flags[i]! & CPT_WHITESPACE ? 0x0b : cpts[i]!;
    ctx.wide = { text: decodeUtf16(codes), cpToUnit: undefined, unitToCp: undefined };
    return ctx.wide;
  }
  const parts: string[] = [];
  const unitToCp = new Int32Array(cpts.length * 2 + 1);
  const cpToUnit = new Int32Array(cpts.length + 1);
  let u = 0;
  for (let i = 0; i < cpts.length; i++) {
    const c = cpts[i]! > 0x7f && flags[i]! & CPT_WHITESPACE ? 0x0b : cpts[i]!;
    const ch = String.fromCodePoint(c);
    parts.push(ch);
    cpToUnit[i] = u;
    unitToCp[u++] = i;
    if (ch.length === 2) unitToCp[u++] = i;
  }
  cpToUnit[cpts.length] = u;
  unitToCp[u] = cpts.length;
  ctx.wide = { text: parts.join(''), cpToUnit, unitToCp: unitToCp.subarray(0, u + 1) };
  return ctx.wide;
}

function regexSplitter(regex: string): Splitter {
  if (usesUnicodeClass(regex)) {
    const re = new RegExp(collapseRegex(regex), 'g');
    return (ctx, pieces) => {
      const text = collapsedText(ctx); // one UTF-16 unit per code point: indices are code points
      return splitWithRegex(re, pieces, (s, e) => text.slice(s, e), (s, u) => s + u);
    };
  }
  const re = new RegExp(regex, 'gu');
  return (ctx, pieces) => {
    const { text, cpToUnit, unitToCp } = wideText(ctx);
    if (!cpToUnit || !unitToCp) return splitWithRegex(re, pieces, (s, e) => text.slice(s, e), (s, u) => s + u);
    return splitWithRegex(
      re,
      pieces,
      (s, e) => text.slice(cpToUnit[s]!, cpToUnit[e]!),
      (s, u) => unitToCp[cpToUnit[s]! + u]!,
    );
  };
}

/**
 * Splits each piece into matches and the gaps between them, like std::regex_iterator over the
 * piece alone (so lookaheads and `$` see the piece's end). `toCodepoint(pieceStart, unit)` maps a
 * UTF-16 index inside the piece's string to an absolute code point index.
 */
function splitWithRegex(
  re: RegExp,
  pieces: number[],
  slice: (start: number, end: number) => string,
  toCodepoint: (pieceStart: number, unit: number) => number,
): number[] {
  const out: number[] = [];
  let start = 0;
  for (const len of pieces) {
    const s = slice(start, start + len);
    re.lastIndex = 0;
    let prev = start;
    for (let m = re.exec(s); m !== null; m = re.exec(s)) {
      if (m[0].length === 0) {
        re.lastIndex++;
        continue;
      }
      const mStart = toCodepoint(start, m.index);
      const mEnd = toCodepoint(start, m.index + m[0].length);
      if (mStart > prev) out.push(mStart - prev);
      out.push(mEnd - mStart);
      prev = mEnd;
    }
    if (prev < start + len) out.push(start + len - prev);
    start += len;
  }
  return out;
}

function splitterFor(regex: string): Splitter {
  if (regex === GPT2_PATTERN) return splitGpt2;
  if (regex === LLAMA3_PATTERN) return splitLlama3Like(3);
  if (regex === QWEN2_PATTERN) return splitLlama3Like(1);
  return regexSplitter(regex);
}

/** A function splitting text into the words BPE runs on, for the given regex list. */
export function createPreTokenizer(regexes: string[]): (text: string) => string[] {
  const splitters = regexes.map(splitterFor);
  const table = codepointFlagTable();
  return (text) => {
    if (text.length === 0) return [];
    const { cpts, starts } = toCodepoints(text);
    const flags = new Uint16Array(cpts.length);
    for (let i = 0; i < cpts.length; i++) flags[i] = table[cpts[i]!]!;
    const ctx: SplitContext = { cpts, flags };
    let pieces = [cpts.length];
    for (const split of splitters) pieces = split(ctx, pieces);
    const words: string[] = new Array(pieces.length);
    let at = 0;
    for (let i = 0; i < pieces.length; i++) {
      words[i] = text.slice(starts[at]!, starts[at + pieces[i]!]!);
      at += pieces[i]!;
    }
    return words;
  };
}
