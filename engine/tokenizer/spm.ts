// SentencePiece BPE as llama.cpp runs it (llm_tokenizer_spm_session): start from single
// characters, repeatedly merge the adjacent pair whose concatenation is the token with the highest
// score (leftmost on ties), then emit each final piece as its token or, when it is not one, as
// byte-fallback tokens <0xXX>.

import { PairHeap } from './pair-heap';

export interface SpmVocab {
  tokenToId: Map<string, number>;
  scores: ArrayLike<number>;
  /** Token id for a byte: <0xXX>, else the one-character token for ASCII. */
  byteToken(byte: number): number | undefined;
}

const encoder = new TextEncoder();

/** Appends the tokens of `text` (spaces already escaped to U+2581). */
export function spmTokenize(text: string, vocab: SpmVocab, out: number[]): void {
  if (text.length === 0) return;
  // Symbols are code points: start offset and length in UTF-16 units.
  const chars = Array.from(text);
  const n = chars.length;
  const start = new Int32Array(n);
  const len = new Int32Array(n);
  const prev = new Int32Array(n);
  const next = new Int32Array(n);
  let offset = 0;
  for (let i = 0; i < n; i++) {
    start[i] = offset;
    len[i] = chars[i]!.length;
    offset += len[i]!;
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  // Highest score first: the heap pops the smallest key, so the key is -score.
  const heap = new PairHeap();
  const tryAdd = (left: number, right: number) => {
    if (left < 0 || right < 0) return;
    const id = vocab.tokenToId.get(text.substr(start[left]!, len[left]! + len[right]!));
    if (id === undefined) return;
    heap.push(-(vocab.scores[id] ?? 0), left, right, len[left]! + len[right]!);
  };
  for (let i = 1; i < n; i++) tryAdd(i - 1, i);
  while (heap.size > 0) {
    heap.pop();
    const l = heap.topLeft;
    const r = heap.topRight;
    // Stale: a side was merged away or grew since queued (lengths only grow).
    if (len[l] === 0 || len[r] === 0 || len[l]! + len[r]! !== heap.topCheck) continue;
    len[l] = len[l]! + len[r]!;
    len[r] = 0;
    next[l] = next[r]!;
    if (next[r]! >= 0) prev[next[r]!] = l;
    tryAdd(prev[l]!, l);
    tryAdd(l, next[l]!);
  }
  // Merged pieces are tokens by construction; a piece that is not is a single character
  // unknown to the vocabulary, emitted as its UTF-8 bytes.
  for (let i = 0; i !== -1; i = next[i]!) {
    const piece = text.substr(start[i]!, len[i]!);
    const id = vocab.tokenToId.get(piece);
    if (id !== undefined) {
      out.push(id);
      continue;
    }
    for (const b of encoder.encode(piece)) {
      const byteId = vocab.byteToken(b);
      if (byteId !== undefined) out.push(byteId);
    }
  }
}

/**
 * SentencePiece over long text, in independent pieces with a cache. When no token has U+2581 after
 * its first character (other than runs of U+2581 alone), no merge can join a character to a
 * following U+2581, so the text can be cut before every U+2581 that follows another character:
 * each piece merges exactly as it would inside the whole text, and repeated words hit the cache.
 * Otherwise the whole text is one piece, as in llama.cpp.
 */
export class SpmModel {
  private readonly vocab: SpmVocab;
  private readonly splittable: boolean;
  private readonly cache = new Map<string, readonly number[]>();
  private static readonly CACHE_LIMIT = 200_000;

  constructor(vocab: SpmVocab & { tokens: readonly string[] }) {
    this.vocab = vocab;
    this.splittable = vocab.tokens.every((t) => t.indexOf('\u2581', 1) < 0 || /^\u2581+$/.test(t));
  }

  /** Appends the tokens of `text` (spaces already escaped to U+2581). */
  encode(text: string, out: number[]): void {
    if (!this.splittable) {
      spmTokenize(text, this.vocab, out);
      return;
    }
    let start = 0;
    for (let i = 1; i <= text.length; i++) {
      if (i < text.length && !(text.charCodeAt(i) === 0x2581 && text.charCodeAt(i - 1) !== 0x2581)) continue;
      const piece = text.slice(start, i);
      let ids = this.cache.get(piece);
      if (ids === undefined) {
        const fresh: number[] = [];
        spmTokenize(piece, this.vocab, fresh);
        if (this.cache.size >= SpmModel.CACHE_LIMIT) this.cache.clear();
        this.cache.set(piece, fresh);
        ids = fresh;
      }
      for (let k = 0; k < ids.length; k++) out.push(ids[k]!);
      start = i;
    }
  }
}
