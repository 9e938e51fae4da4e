// The vocabulary as llama.cpp loads it (llama_vocab::impl::load): tokens, scores, token types
// turned into attributes, special ids from metadata, and the tokens it recognises by their text
// (end-of-turn, FIM) and marks as control. Tokenization depends on those marks: a control token
// is only matched in text when special tokens are parsed, a user-defined one always.

import { CachetError, ModelNotSupportedError } from '../errors';

/** Token types as stored in tokenizer.ggml.token_type (llama.h llama_token_type). */
export enum TokenType {
  Undefined = 0,
  Normal = 1,
  Unknown = 2,
  Control = 3,
  UserDefined = 4,
  Unused = 5,
  Byte = 6,
}

/** Token attributes (llama.h llama_token_attr). */
export const ATTR_UNKNOWN = 1 << 0;
export const ATTR_UNUSED = 1 << 1;
export const ATTR_NORMAL = 1 << 2;
export const ATTR_CONTROL = 1 << 3;
export const ATTR_USER_DEFINED = 1 << 4;
export const ATTR_BYTE = 1 << 5;
export const ATTR_LSTRIP = 1 << 7;
export const ATTR_RSTRIP = 1 << 8;

/** Everything a tokenizer needs, as plain data (from a GGUF or built by hand in tests). */
export interface VocabSpec {
  /** tokenizer.ggml.model: 'gpt2' (byte-level BPE) or 'llama' (SentencePiece). */
  model: string;
  /** tokenizer.ggml.pre (BPE only). */
  pre?: string;
  tokens: readonly string[];
  scores?: ArrayLike<number>;
  tokenTypes?: ArrayLike<number>;
  merges?: readonly string[];
  bos?: number;
  eos?: number;
  eot?: number;
  eom?: number;
  unk?: number;
  sep?: number;
  pad?: number;
  mask?: number;
  fimPrefix?: number;
  fimSuffix?: number;
  fimMiddle?: number;
  fimPad?: number;
  fimRepo?: number;
  fimSep?: number;
  addBos?: boolean;
  addEos?: boolean;
  addSpacePrefix?: boolean;
  /** general.name; llama.cpp keys a few per-model token attributes on it (phi-3). */
  modelName?: string;
  chatTemplate?: string;
}

/** Anything with GgufFile's `get` (engine/gguf), so specs can also come from plain maps. */
export interface MetadataSource {
  get(key: string): unknown;
  readonly path?: string;
}

export class TokenizerLoadError extends CachetError {}

function fail(source: MetadataSource, problem: string): never {
  throw new TokenizerLoadError(
    `${source.path ?? 'model'}: ${problem}`,
    'The tokenizer metadata of this GGUF is missing or damaged; re-convert the model with a current llama.cpp.',
  );
}

/** Reads the tokenizer.* metadata into a VocabSpec. */
export function vocabSpecFromMetadata(source: MetadataSource): VocabSpec {
  const str = (key: string): string | undefined => {
    const v = source.get(key);
    if (v === undefined) return undefined;
    if (typeof v !== 'string') fail(source, `${key} is not a string`);
    return v;
  };
  const num = (key: string): number | undefined => {
    const v = source.get(key);
    if (v === undefined) return undefined;
    if (typeof v === 'number') return v;
    if (typeof v === 'bigint') return Number(v);
    return fail(source, `${key} is not a number`);
  };
  const bool = (key: string): boolean | undefined => {
    const v = source.get(key);
    if (v === undefined) return undefined;
    if (typeof v === 'boolean') return v;
    if (typeof v === 'number') return v !== 0;
    return fail(source, `${key} is not a boolean`);
  };
  const arr = (key: string): ArrayLike<unknown> | undefined => {
    const v = source.get(key);
    if (v === undefined) return undefined;
    if (!Array.isArray(v) && !ArrayBuffer.isView(v)) fail(source, `${key} is not an array`);
    return v as ArrayLike<unknown>;
  };

  const model = str('tokenizer.ggml.model');
  if (model === undefined) fail(source, 'has no tokenizer (tokenizer.ggml.model is missing)');
  const tokens = arr('tokenizer.ggml.tokens');
  if (tokens === undefined) fail(source, 'has no tokenizer.ggml.tokens');
  const n = tokens.length;
  for (let i = 0; i < n; i++) if (typeof tokens[i] !== 'string') fail(source, `tokenizer.ggml.tokens[${i}] is not a string`);
  const scores = arr('tokenizer.ggml.scores') as ArrayLike<number> | undefined;
  if (scores && scores.length < n) fail(source, `tokenizer.ggml.scores has ${scores.length} entries for ${n} tokens`);
  const tokenTypes = arr('tokenizer.ggml.token_type') as ArrayLike<number> | undefined;
  if (tokenTypes && tokenTypes.length < n) fail(source, `tokenizer.ggml.token_type has ${tokenTypes.length} entries for ${n} tokens`);
  const merges = arr('tokenizer.ggml.merges') as readonly string[] | undefined;

  return {
    model,
    pre: str('tokenizer.ggml.pre'),
    tokens: tokens as readonly string[],
    scores,
    tokenTypes,
    merges,
    bos: num('tokenizer.ggml.bos_token_id'),
    eos: num('tokenizer.ggml.eos_token_id'),
    eot: num('tokenizer.ggml.eot_token_id'),
    eom: num('tokenizer.ggml.eom_token_id'),
    unk: num('tokenizer.ggml.unknown_token_id'),
    sep: num('tokenizer.ggml.seperator_token_id'), // sic: llama.cpp's key
    pad: num('tokenizer.ggml.padding_token_id'),
    mask: num('tokenizer.ggml.mask_token_id'),
    fimPrefix: num('tokenizer.ggml.fim_pre_token_id') ?? num('tokenizer.ggml.prefix_token_id'),
    fimSuffix: num('tokenizer.ggml.fim_suf_token_id') ?? num('tokenizer.ggml.suffix_token_id'),
    fimMiddle: num('tokenizer.ggml.fim_mid_token_id') ?? num('tokenizer.ggml.middle_token_id'),
    fimPad: num('tokenizer.ggml.fim_pad_token_id'),
    fimRepo: num('tokenizer.ggml.fim_rep_token_id'),
    fimSep: num('tokenizer.ggml.fim_sep_token_id'),
    addBos: bool('tokenizer.ggml.add_bos_token'),
    addEos: bool('tokenizer.ggml.add_eos_token'),
    addSpacePrefix: bool('tokenizer.ggml.add_space_prefix'),
    modelName: str('general.name'),
    chatTemplate: str('tokenizer.chat_template'),
  };
}

// Token texts llama.cpp recognises (llama-vocab.cpp). A match found this way is marked control.
const EOT_TEXTS = ['<|eot_id|>', '<|im_end|>', '<|end|>', '<end_of_turn>', '<|endoftext|>', '<|end_of_text|>', '<EOT>', '_<EOT>', '[EOT]', '<｜end▁of▁sentence｜>', '<end_of_utterance>'];
const EOM_TEXTS = ['<|eom_id|>'];
const FIM_PRE_TEXTS = ['<|fim_prefix|>', '<fim-prefix>', '<fim_prefix>', '<｜fim▁begin｜>', '<PRE>', '▁<PRE>', '<|code_prefix|>', '<|prefix|>'];
const FIM_SUF_TEXTS = ['<|fim_suffix|>', '<fim-suffix>', '<fim_suffix>', '<｜fim▁hole｜>', '<SUF>', '▁<SUF>', '<|code_suffix|>', '<|suffix|>'];
const FIM_MID_TEXTS = ['<|fim_middle|>', '<fim-middle>', '<fim_middle>', '<｜fim▁end｜>', '<MID>', '▁<MID>', '<|code_middle|>', '<|middle|>'];
const FIM_PAD_TEXTS = ['<|fim_pad|>', '<fim-pad>', '<fim_pad>', '<PAD>', '[PAD]'];
const FIM_REP_TEXTS = ['<|fim_repo|>', '<|repo_name|>', '<fim-repo>', '<REPO>', '<reponame>'];
const FIM_SEP_TEXTS = ['<|file_sep|>'];
const EOG_TEXTS = [
  '<|eot_id|>', '<|im_end|>', '<|end|>', '<|return|>', '<|call|>', '<|flush|>', '<|calls|>', '<end_of_turn>',
  '<|endoftext|>', '</s>', '<|eom_id|>', '<EOT>', '_<EOT>', '[EOT]', '[EOS]', '<|end_of_text|>',
  '<end_of_utterance>', '<eos>', '<turn|>', '<|tool_response>', '<｜end▁of▁sentence｜>', '[e~[',
];

// Tokens Cachet also recognises, without changing their type (so tokenization stays llama.cpp's):
// Codestral's FIM tokens, StarCoder2's repository tokens, and end-of-turn tokens of code models.
const EXTRA_FIM_PRE = ['[PREFIX]'];
const EXTRA_FIM_SUF = ['[SUFFIX]'];
const EXTRA_FIM_MID = ['[MIDDLE]'];
const EXTRA_FIM_REP = ['<repo_name>'];
const EXTRA_FIM_SEP = ['<file_sep>'];
const EXTRA_EOG = ['<|EOT|>', '▁<EOT>'];

export interface FimTokens {
  prefix: number;
  suffix: number;
  middle: number;
  pad?: number;
  repoName?: number;
  fileSep?: number;
}

/** A loaded vocabulary: lookups, attributes and special ids, as llama.cpp ends up with them. */
export class Vocab {
  readonly type: 'bpe' | 'spm';
  readonly pre: string | undefined;
  readonly tokens: readonly string[];
  readonly scores: Float32Array;
  readonly attrs: Uint16Array;
  readonly tokenToId = new Map<string, number>();
  readonly merges: readonly string[];
  readonly bos: number | undefined;
  readonly eos: number | undefined;
  readonly eot: number | undefined;
  readonly eom: number | undefined;
  readonly unk: number | undefined;
  readonly pad: number | undefined;
  readonly addBos: boolean;
  readonly addEos: boolean;
  readonly addSpacePrefix: boolean;
  readonly fim: FimTokens | undefined;
  readonly eog: ReadonlySet<number>;
  /** Control, user-defined and unknown tokens, longest text first: matched before BPE/SPM. */
  readonly specialTokens: readonly number[];
  readonly chatTemplate: string | undefined;

  constructor(spec: VocabSpec, preAddBos = false) {
    if (spec.model === 'gpt2') this.type = 'bpe';
    else if (spec.model === 'llama') this.type = 'spm';
    else {
      throw new ModelNotSupportedError(
        `tokenizer model '${spec.model}' is not supported`,
        "Cachet reads byte-level BPE ('gpt2') and SentencePiece ('llama') vocabularies; pick a model with one of those.",
      );
    }
    const n = spec.tokens.length;
    this.pre = spec.pre;
    this.tokens = spec.tokens.map((t, i) => (t === '' ? `[EMPTY_${i}]` : t));
    this.scores = new Float32Array(n);
    this.attrs = new Uint16Array(n);
    for (let i = 0; i < n; i++) {
      this.tokenToId.set(this.tokens[i]!, i);
      this.scores[i] = spec.scores ? Number(spec.scores[i]) : 0;
      this.attrs[i] = spec.tokenTypes ? attrFromType(Number(spec.tokenTypes[i])) : ATTR_NORMAL;
    }
    this.merges = spec.merges ?? [];
    if (this.type === 'bpe' && spec.merges === undefined) {
      throw new TokenizerLoadError('BPE vocabulary without tokenizer.ggml.merges', 'The GGUF is incomplete; re-convert it with a current llama.cpp.');
    }
    this.chatTemplate = spec.chatTemplate;

    // Defaults llama.cpp uses when the file does not say; ids out of range are dropped.
    const inRange = (id: number | undefined) => (id !== undefined && id >= 0 && id < n ? id : undefined);
    const pick = (fromFile: number | undefined, fallback: number | undefined) =>
      fromFile !== undefined && fromFile >= 0 && fromFile < n ? fromFile : inRange(fallback);
    const spm = this.type === 'spm';
    // (llama.cpp's BPE fallback of 11 for both is left out: id 11 is ',' in GPT-2-style vocabularies.)
    this.bos = pick(spec.bos, spm ? 1 : undefined);
    this.eos = pick(spec.eos, spm ? 2 : undefined);
    this.unk = pick(spec.unk, spm ? 0 : undefined);
    this.pad = pick(spec.pad, undefined);
    this.addBos = spec.addBos ?? (spm ? true : preAddBos);
    this.addEos = spec.addEos ?? false;
    this.addSpacePrefix = spec.addSpacePrefix ?? spm;

    // Recognise tokens by text where the file gave no id; llama.cpp marks those control.
    const byText = (texts: readonly string[], markControl: boolean): number | undefined => {
      for (const t of texts) {
        const id = this.tokenToId.get(t);
        if (id !== undefined) {
          if (markControl) this.attrs[id]! |= ATTR_CONTROL;
          return id;
        }
      }
      return undefined;
    };
    this.eot = pick(spec.eot, undefined) ?? byText(EOT_TEXTS, true);
    this.eom = pick(spec.eom, undefined) ?? byText(EOM_TEXTS, true);
    const fimPrefix = pick(spec.fimPrefix, undefined) ?? byText(FIM_PRE_TEXTS, true) ?? byText(EXTRA_FIM_PRE, false);
    const fimSuffix = pick(spec.fimSuffix, undefined) ?? byText(FIM_SUF_TEXTS, true) ?? byText(EXTRA_FIM_SUF, false);
    const fimMiddle = pick(spec.fimMiddle, undefined) ?? byText(FIM_MID_TEXTS, true) ?? byText(EXTRA_FIM_MID, false);
    const fimPad = pick(spec.fimPad, undefined) ?? byText(FIM_PAD_TEXTS, true);
    const llamaRepo = pick(spec.fimRepo, undefined) ?? byText(FIM_REP_TEXTS, true);
    const llamaSep = pick(spec.fimSep, undefined) ?? byText(FIM_SEP_TEXTS, true);
    const fimRepo = llamaRepo ?? byText(EXTRA_FIM_REP, false);
    const fimSep = llamaSep ?? byText(EXTRA_FIM_SEP, false);
    this.fim =
      fimPrefix !== undefined && fimSuffix !== undefined && fimMiddle !== undefined
        ? { prefix: fimPrefix, suffix: fimSuffix, middle: fimMiddle, pad: fimPad, repoName: fimRepo, fileSep: fimSep }
        : undefined;

    // End of generation: llama.cpp's set, plus the FIM repo/file separators and the
    // end-of-turn tokens of code models that it does not list.
    const eog = new Set<number>();
    for (const id of [fimPad, fimRepo, fimSep, this.eos, this.eot, this.eom]) if (id !== undefined) eog.add(id);
    for (const t of EOG_TEXTS) {
      const id = this.tokenToId.get(t);
      if (id !== undefined) {
        eog.add(id);
        this.attrs[id]! |= ATTR_CONTROL;
      }
    }
    for (const t of EXTRA_EOG) {
      const id = this.tokenToId.get(t);
      if (id !== undefined) eog.add(id);
    }
    this.eog = eog;

    const special: number[] = [];
    for (let i = 0; i < n; i++) if (this.attrs[i]! & (ATTR_CONTROL | ATTR_USER_DEFINED | ATTR_UNKNOWN)) special.push(i);
    special.sort((a, b) => this.tokens[b]!.length - this.tokens[a]!.length || a - b);
    this.specialTokens = special;

    // Per-model attributes llama.cpp sets by name: phi-3 strips whitespace after its specials.
    const name = (spec.modelName ?? '').toLowerCase();
    if (name.includes('phi-3') || name.includes('phi3')) {
      for (const id of special) this.attrs[id]! |= ATTR_RSTRIP;
      const set = (text: string, on: boolean) => {
        const id = this.tokenToId.get(text);
        if (id !== undefined) this.attrs[id] = on ? this.attrs[id]! | ATTR_RSTRIP : this.attrs[id]! & ~ATTR_RSTRIP;
      };
      set('</s>', true);
      for (const t of ['<unk>', '<s>', '<|endoftext|>']) set(t, false);
    }
  }

  /** SPM byte fallback: <0xXX>, else the one-character token for the byte. */
  byteToken(byte: number): number | undefined {
    const hex = byte.toString(16).toUpperCase().padStart(2, '0');
    return this.tokenToId.get(`<0x${hex}>`) ?? (byte < 0x80 ? this.tokenToId.get(String.fromCharCode(byte)) : undefined);
  }
}

function attrFromType(type: number): number {
  switch (type) {
    case TokenType.Unknown: return ATTR_UNKNOWN;
    case TokenType.Unused: return ATTR_UNUSED;
    case TokenType.Normal: return ATTR_NORMAL;
    case TokenType.Control: return ATTR_CONTROL;
    case TokenType.UserDefined: return ATTR_USER_DEFINED;
    case TokenType.Byte: return ATTR_BYTE;
    default: return 0;
  }
}
