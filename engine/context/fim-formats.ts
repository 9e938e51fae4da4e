// FIM prompt formats per model family. The family is detected from the tokenizer's FIM tokens
// (their text), never from the model name: a GGUF carries its own truth.

/** The FIM-related special tokens a tokenizer exposes (engine/tokenizer `fim`). */
export interface FimTokenIds {
  prefix: number;
  suffix: number;
  middle: number;
  pad?: number;
  repoName?: number;
  fileSep?: number;
}

/** The slice of engine/tokenizer's Tokenizer that prompt assembly needs. */
export interface PromptTokenizer {
  fim?: FimTokenIds | undefined;
  tokenText(id: number): string;
  encode(text: string, options?: { addSpecial?: boolean; parseSpecial?: boolean }): number[];
  isEog(id: number): boolean;
}

export type FimFamily = 'qwen' | 'deepseek' | 'starcoder' | 'codellama' | 'codestral';

export type FimRole = 'prefix' | 'suffix' | 'middle' | 'repoName' | 'fileSep';

export interface FimFormat {
  family: FimFamily;
  /** 'psm': prefix, suffix, middle (generation after middle). 'spm': suffix first, then prefix. */
  order: 'psm' | 'spm';
  /** How each special token is written in a text prompt (spacing included, as the model was trained). */
  marker: Partial<Record<FimRole, string>>;
  /** Repo-level layout with repo_name/file_sep tokens (Qwen2.5-Coder, StarCoder2). */
  repoLevel: boolean;
  /** Strings that end a completion when they show up in the generated text. */
  stopStrings: string[];
}

const QWEN: FimFormat = {
  family: 'qwen',
  order: 'psm',
  marker: {
    prefix: '<|fim_prefix|>',
    suffix: '<|fim_suffix|>',
    middle: '<|fim_middle|>',
    repoName: '<|repo_name|>',
    fileSep: '<|file_sep|>',
  },
  repoLevel: true,
  stopStrings: [
    '<|endoftext|>', '<|fim_prefix|>', '<|fim_middle|>', '<|fim_suffix|>', '<|fim_pad|>',
    '<|repo_name|>', '<|file_sep|>', '<|im_start|>', '<|im_end|>',
  ],
};

const STARCODER: FimFormat = {
  family: 'starcoder',
  order: 'psm',
  marker: {
    prefix: '<fim_prefix>',
    suffix: '<fim_suffix>',
    middle: '<fim_middle>',
    repoName: '<repo_name>',
    fileSep: '<file_sep>',
  },
  repoLevel: true,
  stopStrings: ['<|endoftext|>', '<fim_prefix>', '<fim_suffix>', '<fim_middle>', '<file_sep>', '<repo_name>'],
};

const DEEPSEEK: FimFormat = {
  family: 'deepseek',
  order: 'psm',
  marker: { prefix: '<｜fim▁begin｜>', suffix: '<｜fim▁hole｜>', middle: '<｜fim▁end｜>' },
  repoLevel: false,
  stopStrings: ['<｜end▁of▁sentence｜>', '<｜fim▁begin｜>', '<｜fim▁hole｜>', '<｜fim▁end｜>', '<|EOT|>'],
};

// CodeLlama: "<PRE> {pre} <SUF>{suf} <MID>" (Meta's reference code, Ollama and Tabby agree).
// The vocabulary's tokens are "▁<PRE>", "▁<SUF>", "▁<MID>": the space before SUF/MID is the token's.
const CODELLAMA: FimFormat = {
  family: 'codellama',
  order: 'psm',
  marker: { prefix: '<PRE> ', suffix: ' <SUF>', middle: ' <MID>' },
  repoLevel: false,
  stopStrings: ['<PRE>', '<SUF>', '<MID>', '<EOT>'],
};

// Codestral: "[SUFFIX]{suf}[PREFIX]{pre}" — suffix first, generation follows the prefix.
const CODESTRAL: FimFormat = {
  family: 'codestral',
  order: 'spm',
  marker: { prefix: '[PREFIX]', suffix: '[SUFFIX]', middle: '' },
  repoLevel: false,
  stopStrings: ['[PREFIX]', '[SUFFIX]', '\n+++++ '],
};

export const FIM_FORMATS: Record<FimFamily, FimFormat> = {
  qwen: QWEN,
  deepseek: DEEPSEEK,
  starcoder: STARCODER,
  codellama: CODELLAMA,
  codestral: CODESTRAL,
};

/** Family from the text of the tokenizer's FIM prefix token; undefined if the model has no FIM. */
export function detectFimFamily(tokenizer: Pick<PromptTokenizer, 'fim' | 'tokenText'>): FimFamily | undefined {
  const fim = tokenizer.fim;
  if (!fim) return undefined;
  return familyFromPrefixText(tokenizer.tokenText(fim.prefix));
}

export function familyFromPrefixText(text: string): FimFamily | undefined {
  const t = text.replace(/^▁/, '').trim();
  switch (t) {
    case '<|fim_prefix|>':
      return 'qwen';
    case '<fim_prefix>':
    case '<fim-prefix>':
      return 'starcoder';
    case '<｜fim▁begin｜>':
      return 'deepseek';
    case '<PRE>':
      return 'codellama';
    case '[PREFIX]':
      return 'codestral';
    default:
      return undefined;
  }
}

/**
 * The format for a tokenizer: the family's layout, with repo-level mode only when the vocabulary
 * really has the repo_name and file_sep tokens (StarCoder 1 has FIM but no file_sep).
 */
export function fimFormatFor(tokenizer: Pick<PromptTokenizer, 'fim' | 'tokenText'>): FimFormat | undefined {
  const family = detectFimFamily(tokenizer);
  if (!family) return undefined;
  const format = FIM_FORMATS[family];
  const fim = tokenizer.fim!;
  const hasRepo = fim.fileSep !== undefined && fim.repoName !== undefined;
  return format.repoLevel && !hasRepo ? { ...format, repoLevel: false } : format;
}
