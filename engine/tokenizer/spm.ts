// SentencePiece BPE as llama.cpp runs it (llm_tokenizer_spm_session): start from single
// characters, repeatedly merge the adjacent pair whose concatenation is the token with the highest
// score (leftmost on ties), then emit each final piece as its token or, when it is not one, as
// byte-fallback tokens <0xXX>.

interface SpmBigram {
  score: number;
  left: number;
  right: number;
  size: number;
}

/** Max-heap on score, then min on left: llama.cpp's llm_bigram_spm comparator. */
class SpmHeap {
  private items: SpmBigram[] = [];
  get size(): number {
    return this.items.length;
  }
  private static before(a: SpmBigram, b: SpmBigram): boolean {
    return a.score > b.score || (a.score === b.score && a.left < b.left);
  }
  push(b: SpmBigram): void {
    const items = this.items;
    let i = items.length;
    items.push(b);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!SpmHeap.before(items[i]!, items[parent]!)) break;
      [items[i], items[parent]] = [items[parent]!, items[i]!];
      i = parent;
    }
  }
  pop(): SpmBigram {
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
        if (l < items.length && SpmHeap.before(items[l]!, items[m]!)) m = l;
        if (r < items.length && SpmHeap.before(items[r]!, items[m]!)) m = r;
        if (m === i) break;
        [items[i], items[m]] = [items[m]!, items[i]!];
        i = m;
      }
    }
    return top;
  }
}

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
  const heap = new SpmHeap();
  const tryAdd = (left: number, right: number) => {
    if (left < 0 || right < 0) return;
    const id = vocab.tokenToId.get(text.substr(start[left]!, len[left]! + len[right]!));
    if (id === undefined) return;
    heap.push({ score: vocab.scores[id] ?? 0, left, right, size: len[left]! + len[right]! });
  };
  for (let i = 1; i < n; i++) tryAdd(i - 1, i);
  while (heap.size > 0) {
    const bg = heap.pop();
    const l = bg.left;
    const r = bg.right;
    if (len[l] === 0 || len[r] === 0 || len[l]! + len[r]! !== bg.size) continue;
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
