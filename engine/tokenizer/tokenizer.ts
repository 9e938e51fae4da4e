// Tokenizer: text <-> token ids, bit-compatible with llama.cpp's llama_tokenize for byte-level BPE
// ('gpt2') and SentencePiece ('llama') vocabularies, plus detokenization and a streaming decoder.

import type { GgufFile } from '../gguf';
import { BpeModel } from './bpe';
import { createPreTokenizer, preTokenizerFor } from './pre-tokenize';
import { SpmModel } from './spm';
import { UNICODE_TO_BYTE, utf8Bytes } from './unicode';
import {
  ATTR_BYTE,
  ATTR_CONTROL,
  ATTR_LSTRIP,
  ATTR_NORMAL,
  ATTR_RSTRIP,
  ATTR_UNKNOWN,
  ATTR_USER_DEFINED,
  Vocab,
  vocabSpecFromMetadata,
  type FimTokens,
  type MetadataSource,
  type VocabSpec,
} from './vocab';

export interface EncodeOptions {
  /** Add BOS/EOS where the model asks for them (tokenizer.ggml.add_bos_token ...). Default false. */
  addSpecial?: boolean;
  /** Match control tokens such as <|fim_prefix|> in the text. Default false: they stay plain text. */
  parseSpecial?: boolean;
}

export interface DecodeOptions {
  /** Render control/unknown tokens as their text. Default false: they decode to nothing. */
  special?: boolean;
  /** Drop one leading space from the first non-empty piece (SentencePiece's prefix space). Default false. */
  stripLeadingSpace?: boolean;
}

export interface StreamDecoder {
  /** Text completed by this token; bytes of an unfinished UTF-8 character are held back. */
  push(id: number): string;
  /** Whatever is held back, with U+FFFD for an incomplete character. */
  flush(): string;
}

type Fragment = string | number; // raw text, or a token already matched

interface SpecialIndex {
  firstUnit: Uint8Array; // UTF-16 units that start some special token
  byPrefix: Map<string, number[]>; // first one or two units -> tokens
}

const EMPTY = new Uint8Array(0);

/** Lone surrogates become U+FFFD, as they do on the way to UTF-8 for llama.cpp. */
function wellFormed(text: string): string {
  const s = text as string & { isWellFormed?(): boolean; toWellFormed?(): string };
  if (s.isWellFormed && s.toWellFormed) return s.isWellFormed() ? text : s.toWellFormed();
  return text.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD');
}

function isCSpace(ch: number): boolean {
  return ch === 0x20 || (ch >= 0x09 && ch <= 0x0d);
}

export class Tokenizer {
  readonly vocab: Vocab;
  private readonly bpe: BpeModel | undefined;
  private readonly spm: SpmModel | undefined;
  private readonly preTokenize: ((text: string) => string[]) | undefined;
  private readonly pieces: (Uint8Array | undefined)[];

  constructor(vocab: Vocab, pre?: { regexes: string[]; ignoreMerges: boolean }) {
    this.vocab = vocab;
    if (vocab.type === 'bpe') {
      const info = pre ?? preTokenizerFor(vocab.pre);
      this.preTokenize = createPreTokenizer(info.regexes);
      this.bpe = new BpeModel({ tokenToId: vocab.tokenToId, merges: vocab.merges, ignoreMerges: info.ignoreMerges });
    } else {
      this.spm = new SpmModel(vocab);
    }
    this.pieces = new Array(vocab.tokens.length);
  }

  /** Builds the tokenizer from a GGUF's tokenizer.* metadata (a GgufFile from engine/gguf). */
  static fromGguf(gguf: GgufFile | MetadataSource): Tokenizer {
    return Tokenizer.fromSpec(vocabSpecFromMetadata(gguf));
  }

  static fromSpec(spec: VocabSpec): Tokenizer {
    if (spec.model === 'gpt2') {
      const pre = preTokenizerFor(spec.pre);
      return new Tokenizer(new Vocab(spec, pre.addBos), pre);
    }
    return new Tokenizer(new Vocab(spec));
  }

  get type(): 'bpe' | 'spm' {
    return this.vocab.type;
  }
  get vocabSize(): number {
    return this.vocab.tokens.length;
  }
  get bos(): number | undefined {
    return this.vocab.bos;
  }
  get eos(): number | undefined {
    return this.vocab.eos;
  }
  get eot(): number | undefined {
    return this.vocab.eot;
  }
  get pad(): number | undefined {
    return this.vocab.pad;
  }
  get addBos(): boolean {
    return this.vocab.addBos;
  }
  get addEos(): boolean {
    return this.vocab.addEos;
  }
  get fim(): FimTokens | undefined {
    return this.vocab.fim;
  }
  /** End-of-generation ids: eos, eot, <|im_end|>, <|endoftext|>, FIM pad/repo/file separators ... */
  get eogIds(): ReadonlySet<number> {
    return this.vocab.eog;
  }
  get chatTemplate(): string | undefined {
    return this.vocab.chatTemplate;
  }

  isEog(id: number): boolean {
    return this.vocab.eog.has(id);
  }

  /** Control or unknown token (not text unless rendered with `special`). */
  isControl(id: number): boolean {
    return (this.vocab.attrs[id]! & (ATTR_CONTROL | ATTR_UNKNOWN)) !== 0;
  }

  /** The token's stored text (GPT-2 byte characters for BPE, U+2581 for SPM spaces). */
  tokenText(id: number): string {
    const t = this.vocab.tokens[id];
    if (t === undefined) throw new RangeError(`token id ${id} is outside the vocabulary (size ${this.vocabSize})`);
    return t;
  }

  /** Id of a token by its exact stored text. */
  tokenId(text: string): number | undefined {
    return this.vocab.tokenToId.get(text);
  }

  encode(input: string, opts: EncodeOptions = {}): number[] {
    const text = wellFormed(input);
    const addSpecial = opts.addSpecial ?? false;
    const v = this.vocab;
    const out: number[] = [];
    const fragments = text.length > 0 ? this.partition(text, opts.parseSpecial ?? false) : [];
    if (v.type === 'spm') {
      let prevSpecial = true; // the first text fragment gets the prefix space
      if (addSpecial && v.addBos && v.bos !== undefined) out.push(v.bos);
      for (const f of fragments) {
        if (typeof f === 'number') {
          out.push(f);
          prevSpecial = true;
          continue;
        }
        const withPrefix = v.addSpacePrefix && prevSpecial ? ' ' + f : f;
        this.spm!.encode(withPrefix.replaceAll(' ', '\u2581'), out);
        prevSpecial = false;
      }
    } else {
      if (addSpecial && v.addBos && v.bos !== undefined) out.push(v.bos);
      for (const f of fragments) {
        if (typeof f === 'number') {
          out.push(f);
          continue;
        }
        for (const word of this.preTokenize!(f)) this.bpe!.encodeWord(word, out);
      }
    }
    if (addSpecial && v.addEos && v.eos !== undefined) out.push(v.eos);
    return out;
  }

  /**
   * Splits out special tokens before BPE/SPM, as llama.cpp's tokenizer_st_partition: each special
   * token, longest first, is found in every remaining text fragment. User-defined tokens are
   * always matched; control and unknown ones only when `parseSpecial`.
   */
  private partition(text: string, parseSpecial: boolean): Fragment[] {
    const v = this.vocab;
    const candidates = this.specialCandidates(parseSpecial);
    const present = candidates.length > 8 ? this.specialsPresent(text, parseSpecial) : undefined;
    let fragments: Fragment[] = [text];
    for (const id of candidates) {
      if (present && !present.has(id)) continue;
      const attr = v.attrs[id]!;
      const tokenText = v.tokens[id]!;
      let touched = false;
      const next: Fragment[] = [];
      for (const f of fragments) {
        if (typeof f === 'number' || !f.includes(tokenText)) {
          next.push(f);
          continue;
        }
        touched = true;
        let pos = 0;
        for (;;) {
          const match = f.indexOf(tokenText, pos);
          if (match < 0) break;
          let leftEnd = match;
          if (attr & ATTR_LSTRIP) while (leftEnd > pos && isCSpace(f.charCodeAt(leftEnd - 1))) leftEnd--;
          if (leftEnd > pos) next.push(f.slice(pos, leftEnd));
          next.push(id);
          pos = match + tokenText.length;
          if (attr & ATTR_RSTRIP) while (pos < f.length && isCSpace(f.charCodeAt(pos))) pos++;
        }
        if (pos < f.length) next.push(f.slice(pos));
      }
      if (touched) fragments = next;
    }
    return fragments;
  }

  private readonly candidates: (readonly number[] | undefined)[] = [undefined, undefined];
  private readonly prefixIndex: (SpecialIndex | undefined)[] = [undefined, undefined];

  /** Special tokens matched in text: user-defined always, control/unknown with parseSpecial. */
  private specialCandidates(parseSpecial: boolean): readonly number[] {
    const k = parseSpecial ? 1 : 0;
    return (this.candidates[k] ??= this.vocab.specialTokens.filter(
      (id) => parseSpecial || !(this.vocab.attrs[id]! & (ATTR_CONTROL | ATTR_UNKNOWN)),
    ));
  }

  /**
   * Which candidates occur in the text at all, in one pass (vocabularies such as deepseek-coder
   * have hundreds of user-defined tokens; searching the text once per token is slow).
   */
  private specialsPresent(text: string, parseSpecial: boolean): Set<number> {
    const k = parseSpecial ? 1 : 0;
    let index = this.prefixIndex[k];
    if (index === undefined) {
      index = { firstUnit: new Uint8Array(65536), byPrefix: new Map() };
      for (const id of this.specialCandidates(parseSpecial)) {
        const t = this.vocab.tokens[id]!;
        index.firstUnit[t.charCodeAt(0)] = 1;
        const key = t.slice(0, 2);
        const list = index.byPrefix.get(key);
        if (list) list.push(id);
        else index.byPrefix.set(key, [id]);
      }
      this.prefixIndex[k] = index;
    }
    const found = new Set<number>();
    const { firstUnit, byPrefix } = index;
    for (let i = 0; i < text.length; i++) {
      if (!firstUnit[text.charCodeAt(i)]) continue;
      const one = byPrefix.get(text[i]!); // one-unit tokens
      if (one) for (const id of one) found.add(id);
      const two = i + 1 < text.length ? byPrefix.get(text.slice(i, i + 2)) : undefined;
      if (two) for (const id of two) if (!found.has(id) && text.startsWith(this.vocab.tokens[id]!, i)) found.add(id);
    }
    return found;
  }

  /** UTF-8 bytes a token stands for (llama.cpp token_to_piece); control tokens give none unless `special`. */
  tokenBytes(id: number, special = false): Uint8Array {
    const v = this.vocab;
    const attr = v.attrs[id];
    if (attr === undefined) throw new RangeError(`token id ${id} is outside the vocabulary (size ${this.vocabSize})`);
    if (attr & (ATTR_CONTROL | ATTR_UNKNOWN)) return special ? utf8Bytes(v.tokens[id]!) : EMPTY;
    let piece = this.pieces[id];
    if (piece === undefined) {
      piece = this.computePiece(id, attr);
      this.pieces[id] = piece;
    }
    return piece;
  }

  private computePiece(id: number, attr: number): Uint8Array {
    const text = this.vocab.tokens[id]!;
    if (attr & ATTR_USER_DEFINED) return utf8Bytes(text);
    if (attr & ATTR_NORMAL) {
      if (this.vocab.type === 'spm') return utf8Bytes(text.replaceAll('\u2581', ' '));
      // Byte-level BPE: each character stands for one byte.
      const bytes: number[] = [];
      for (const ch of text) {
        const b = UNICODE_TO_BYTE.get(ch.codePointAt(0)!);
        if (b !== undefined) bytes.push(b);
        else for (const x of utf8Bytes(ch)) bytes.push(x); // not a byte character: keep it as text
      }
      return Uint8Array.from(bytes);
    }
    if (attr & ATTR_BYTE) return Uint8Array.of(parseInt(text.slice(3, 5), 16));
    return EMPTY; // unused / undefined tokens print nothing, as in llama.cpp
  }

  /** Text of a token sequence; invalid UTF-8 becomes U+FFFD. */
  decode(ids: readonly number[], opts: DecodeOptions = {}): string {
    const parts: Uint8Array[] = [];
    let total = 0;
    let first = true;
    for (let i = 0; i < ids.length; i++) {
      let piece = this.tokenBytes(ids[i]!, opts.special ?? false);
      if (first && piece.length > 0) {
        if (opts.stripLeadingSpace && piece[0] === 0x20) piece = piece.subarray(1);
        first = false;
      }
      parts.push(piece);
      total += piece.length;
    }
    const bytes = new Uint8Array(total);
    let at = 0;
    for (const p of parts) {
      bytes.set(p, at);
      at += p.length;
    }
    return new TextDecoder('utf-8', { ignoreBOM: true }).decode(bytes);
  }

  /** A decoder for tokens arriving one by one that never splits a UTF-8 character. */
  createStreamDecoder(opts: DecodeOptions = {}): StreamDecoder {
    const decoder = new TextDecoder('utf-8', { ignoreBOM: true });
    let first = true;
    return {
      push: (id) => {
        let piece = this.tokenBytes(id, opts.special ?? false);
        if (first && piece.length > 0) {
          if (opts.stripLeadingSpace && piece[0] === 0x20) piece = piece.subarray(1);
          first = false;
        }
        return decoder.decode(piece, { stream: true });
      },
      flush: () => decoder.decode(),
    };
  }
}
