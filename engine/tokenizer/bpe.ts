// Byte-level BPE over one pre-tokenized word (llama.cpp llm_tokenizer_bpe_session): the word's
// UTF-8 bytes become GPT-2 "byte characters", then the adjacent pair with the lowest merge rank
// (leftmost on ties) is merged until no pair has a rank. Results are cached per word, since code
// repeats the same identifiers and indentation runs over and over.

import { BYTE_TO_UNICODE, utf8Bytes } from './unicode';

export interface BpeOptions {
  /** Token text -> id (later duplicates win, as in llama.cpp's token_to_id). */
  tokenToId: Map<string, number>;
  /** `tokenizer.ggml.merges` lines, "left right", rank = index. */
  merges: readonly string[];
  /** Emit a word that is itself a token without merging (llama3-style `ignore_merges`). */
  ignoreMerges: boolean;
}

interface Bigram {
  rank: number;
  left: number;
  right: number;
  size: number; // length of left + right text when queued; stale once either side changed
}

/** Min-heap on (rank, left): the order in which llama.cpp's priority queue pops bigrams. */
class BigramHeap {
  private items: Bigram[] = [];
  get size(): number {
    return this.items.length;
  }
  private static less(a: Bigram, b: Bigram): boolean {
    return a.rank < b.rank || (a.rank === b.rank && a.left < b.left);
  }
  push(b: Bigram): void {
    const items = this.items;
    let i = items.length;
    items.push(b);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!BigramHeap.less(items[i]!, items[parent]!)) break;
      [items[i], items[parent]] = [items[parent]!, items[i]!];
      i = parent;
    }
  }
  pop(): Bigram {
    const items = this.items;
    const top = items[0]!;
    const last = items.pop()!;
    if (items.length > 0) {
      items[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < items.length && BigramHeap.less(items[l]!, items[m]!)) m = l;
        if (r < items.length && BigramHeap.less(items[r]!, items[m]!)) m = r;
        if (m === i) break;
        [items[i], items[m]] = [items[m]!, items[i]!];
        i = m;
      }
    }
    return top;
  }
}

export class BpeModel {
  private readonly tokenToId: Map<string, number>;
  private readonly ranks = new Map<string, number>();
  private readonly ignoreMerges: boolean;
  private readonly cache = new Map<string, readonly number[]>();
  private static readonly CACHE_LIMIT = 200_000;

  constructor(opts: BpeOptions) {
    this.tokenToId = opts.tokenToId;
    this.ignoreMerges = opts.ignoreMerges;
    for (let i = 0; i < opts.merges.length; i++) {
      const m = opts.merges[i]!;
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
      ids = this.encodeUncached(BpeModel.byteEncode(word));
      if (this.cache.size >= BpeModel.CACHE_LIMIT) this.cache.clear();
      this.cache.set(word, ids);
    }
    for (let i = 0; i < ids.length; i++) out.push(ids[i]!);
  }

  /** BPE over an already byte-encoded word (one char per byte). */
  encodeUncached(text: string): number[] {
    if (this.ignoreMerges) {
      const whole = this.tokenToId.get(text);
      if (whole !== undefined) return [whole];
    }
    const n = text.length;
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
    const heap = new BigramHeap();
    const addBigram = (left: number, right: number) => {
      if (left < 0 || right < 0) return;
      const a = text.substr(start[left]!, len[left]!);
      const b = text.substr(start[right]!, len[right]!);
      const rank = this.ranks.get(a + ' ' + b);
      if (rank !== undefined) heap.push({ rank, left, right, size: len[left]! + len[right]! });
    };
    for (let i = 1; i < n; i++) addBigram(i - 1, i);
    while (heap.size > 0) {
      const bg = heap.pop();
      const l = bg.left;
      const r = bg.right;
      // Skip stale bigrams: a side was merged away or grew since this pair was queued.
      if (len[l] === 0 || len[r] === 0 || next[l] !== r || len[l]! + len[r]! !== bg.size) continue;
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
