// Byte-level BPE over one pre-tokenized word (llama.cpp llm_tokenizer_bpe_session): the word's
// UTF-8 bytes become GPT-2 "byte characters", then the adjacent pair with the lowest merge rank
// (leftmost on ties) is merged until no pair has a rank. Results are cached per word, since code
// repeats the same identifiers and indentation runs over and over.

import { PairHeap } from './pair-heap';
import { BYTE_TO_UNICODE, utf8Bytes } from './unicode';

export interface BpeOptions {
  /** Token text -> id (later duplicates win, as in llama.cpp's token_to_id). */
  tokenToId: Map<string, number>;
  /** `tokenizer.ggml.merges` lines, "left right", rank = index. */
  merges: readonly string[];
  /** Emit a word that is itself a token without merging (llama3-style `ignore_merges`). */
  ignoreMerges: boolean;
}

/** Open-addressing hash from a token-id pair to its merge rank (faster than string keys). */
class PairTable {
  private readonly mask: number;
  private readonly left: Int32Array;
  private readonly right: Int32Array;
  private readonly value: Int32Array;
  constructor(capacityHint: number) {
    let cap = 16;
    while (cap < capacityHint * 2) cap <<= 1;
    this.mask = cap - 1;
    this.left = new Int32Array(cap).fill(-1);
    this.right = new Int32Array(cap);
    this.value = new Int32Array(cap);
  }
  private slot(l: number, r: number): number {
    return (Math.imul(l, 0x9e3779b1) ^ Math.imul(r + 0x7f4a7c15, 0x85ebca77)) & this.mask;
  }
  /** Sets the value unless the pair is there already (first wins). */
  setIfAbsent(l: number, r: number, v: number): void {
    for (let i = this.slot(l, r); ; i = (i + 1) & this.mask) {
      if (this.left[i] === -1) {
        this.left[i] = l;
        this.right[i] = r;
        this.value[i] = v;
        return;
      }
      if (this.left[i] === l && this.right[i] === r) return;
    }
  }
  get(l: number, r: number): number {
    for (let i = this.slot(l, r); ; i = (i + 1) & this.mask) {
      const k = this.left[i]!;
      if (k === -1) return -1;
      if (k === l && this.right[i] === r) return this.value[i]!;
    }
  }
}

export class BpeModel {
  private readonly tokenToId: Map<string, number>;
  private readonly ranks = new Map<string, number>();
  private readonly merges: readonly string[];
  private readonly ignoreMerges: boolean;
  private readonly cache = new Map<string, readonly number[]>();
  private static readonly CACHE_LIMIT = 200_000;
  // Id-based fast path, used when every merge joins two tokens into a token and every byte
  // character is a token (true of real byte-level vocabularies): no strings while merging.
  private readonly pairs: PairTable | undefined;
  private readonly mergeResult: Int32Array | undefined;
  private readonly byteIds: Int32Array | undefined;
  private readonly heap = new PairHeap(); // reused word after word

  constructor(opts: BpeOptions) {
    this.tokenToId = opts.tokenToId;
    this.ignoreMerges = opts.ignoreMerges;
    const merges = opts.merges;
    const byteIds = new Int32Array(256);
    let fast = true;
    for (let b = 0; b < 256 && fast; b++) {
      const id = this.tokenToId.get(BYTE_TO_UNICODE[b]!);
      if (id === undefined) fast = false;
      else byteIds[b] = id;
    }
    const pairs = new PairTable(merges.length);
    const mergeResult = new Int32Array(merges.length);
    for (let i = 0; i < merges.length && fast; i++) {
      const m = merges[i]!;
      const sp = m.indexOf(' ', 1); // llama.cpp splits at the first space after position 0
      if (sp < 0) continue; // an empty pair, never applicable
      const l = this.tokenToId.get(m.slice(0, sp));
      const r = this.tokenToId.get(m.slice(sp + 1));
      const res = this.tokenToId.get(m.slice(0, sp) + m.slice(sp + 1));
      if (l === undefined || r === undefined || res === undefined) fast = false;
      else {
        pairs.setIfAbsent(l, r, i);
        mergeResult[i] = res;
      }
    }
    if (fast) {
      this.pairs = pairs;
      this.mergeResult = mergeResult;
      this.byteIds = byteIds;
    }
    this.merges = merges;
    if (!fast) this.buildStringRanks();
  }

  /** Ranks keyed by merge text, for the string path (merges naming non-tokens, or tests). */
  private buildStringRanks(): void {
    for (let i = 0; i < this.merges.length; i++) {
      const m = this.merges[i]!;
      if (!this.ranks.has(m)) this.ranks.set(m, i); // first rank wins, as std::unordered_map::emplace
    }
  }

  /** GPT-2 byte characters of a word: each UTF-8 byte becomes one char. */
  static byteEncode(word: string): string {
    let ascii = true;
    for (let i = 0; i < word.length; i++) {
      if (word.charCodeAt(i) >= 0x80) {
        ascii = false;
        break;
      }
    }
    let s = '';
    if (ascii) {
      for (let i = 0; i < word.length; i++) s += BYTE_TO_UNICODE[word.charCodeAt(i)];
      return s;
    }
    for (const b of utf8Bytes(word)) s += BYTE_TO_UNICODE[b];
    return s;
  }

  /** Appends the token ids of one pre-tokenized word. */
  encodeWord(word: string, out: number[]): void {
    let ids = this.cache.get(word);
    if (ids === undefined) {
      if (this.pairs === undefined) ids = this.encodeUncached(BpeModel.byteEncode(word));
      else {
        const whole = this.ignoreMerges ? this.tokenToId.get(BpeModel.byteEncode(word)) : undefined;
        ids = whole !== undefined ? [whole] : this.encodeBytes(utf8Bytes(word));
      }
      if (this.cache.size >= BpeModel.CACHE_LIMIT) this.cache.clear();
      this.cache.set(word, ids);
    }
    for (let i = 0; i < ids.length; i++) out.push(ids[i]!);
  }

  /** The id-based path: same merges in the same order as encodeUncached, on token ids. */
  encodeBytes(bytes: Uint8Array): number[] {
    const pairs = this.pairs!;
    const mergeResult = this.mergeResult!;
    const n = bytes.length;
    if (n === 0) return [];
    const ids = new Int32Array(n);
    const prev = new Int32Array(n);
    const next = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      ids[i] = this.byteIds![bytes[i]!]!;
      prev[i] = i - 1;
      next[i] = i + 1 < n ? i + 1 : -1;
    }
    if (n > 1) {
      const heap = this.heap;
      heap.clear();
      // The check value is the right symbol's id; with the rank it pins down the pair.
      const addBigram = (left: number, right: number) => {
        if (left < 0 || right < 0) return;
        const rank = pairs.get(ids[left]!, ids[right]!);
        if (rank >= 0) heap.push(rank, left, right, ids[right]!);
      };
      for (let i = 1; i < n; i++) addBigram(i - 1, i);
      while (heap.size > 0) {
        heap.pop();
        const rank = heap.topKey;
        const l = heap.topLeft;
        const r = heap.topRight;
        // Stale when the right symbol was merged away or either side changed since queued
        // (a rank names exactly one pair, so an unchanged rank means an unchanged left side).
        if (ids[r] === -1 || next[l] !== r || ids[r] !== heap.topCheck || pairs.get(ids[l]!, ids[r]!) !== rank) continue;
        ids[l] = mergeResult[rank]!;
        ids[r] = -1;
        next[l] = next[r]!;
        if (next[r]! >= 0) prev[next[r]!] = l;
        addBigram(prev[l]!, l);
        addBigram(l, next[l]!);
      }
    }
    const out: number[] = [];
    for (let i = 0; i !== -1; i = next[i]!) out.push(ids[i]!);
    return out;
  }

  /** BPE over an already byte-encoded word (one char per byte), merging strings. */
  encodeUncached(text: string): number[] {
    if (this.ranks.size === 0 && this.pairs !== undefined) this.buildStringRanks();
    if (this.ignoreMerges) {
      const whole = this.tokenToId.get(text);
      if (whole !== undefined) return [whole];
    }
    const n = text.length;
    if (n === 0) return [];
    if (n === 1) return this.finish(text, [0], [1]);
    // Symbols: start offset into `text`, length (0 = merged away), linked list prev/next.
    const start = new Int32Array(n);
    const len = new Int32Array(n);
    const prev = new Int32Array(n);
    const next = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      start[i] = i;
      len[i] = 1;
      prev[i] = i - 1;
      next[i] = i + 1 < n ? i + 1 : -1;
    }
    const heap = new PairHeap();
    // The check value is the pair's text length; sides only grow, so a change shows.
    const addBigram = (left: number, right: number) => {
      if (left < 0 || right < 0) return;
      const a = text.substr(start[left]!, len[left]!);
      const b = text.substr(start[right]!, len[right]!);
      const rank = this.ranks.get(a + ' ' + b);
      if (rank !== undefined) heap.push(rank, left, right, len[left]! + len[right]!);
    };
    for (let i = 1; i < n; i++) addBigram(i - 1, i);
    while (heap.size > 0) {
      heap.pop();
      const l = heap.topLeft;
      const r = heap.topRight;
      // Skip stale bigrams: a side was merged away or grew since this pair was queued.
      if (len[l] === 0 || len[r] === 0 || next[l] !== r || len[l]! + len[r]! !== heap.topCheck) continue;
      len[l] = len[l]! + len[r]!;
      len[r] = 0;
      next[l] = next[r]!;
      if (next[r]! >= 0) prev[next[r]!] = l;
      addBigram(prev[l]!, l);
      addBigram(l, next[l]!);
    }
    const starts: number[] = [];
    const lens: number[] = [];
    for (let i = 0; i !== -1; i = next[i]!) {
      starts.push(start[i]!);
      lens.push(len[i]!);
    }
    return this.finish(text, starts, lens);
  }

  private finish(text: string, starts: number[], lens: number[]): number[] {
    const ids: number[] = [];
    for (let k = 0; k < starts.length; k++) {
      const piece = text.substr(starts[k]!, lens[k]!);
      const id = this.tokenToId.get(piece);
      if (id !== undefined) {
        ids.push(id);
        continue;
      }
      // No token for the merged piece: fall back to one token per byte character. llama.cpp
      // does the same; a byte missing from the vocabulary is dropped, as there.
      for (const ch of piece) {
        const byteId = this.tokenToId.get(ch);
        if (byteId !== undefined) ids.push(byteId);
      }
    }
    return ids;
  }
}
