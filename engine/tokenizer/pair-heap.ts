// Min-heap of candidate merges ordered by (key, left), stored in typed arrays so pushing and
// popping allocate nothing: BPE uses key = merge rank, SentencePiece key = -score. Ties go to
// the leftmost pair, as llama.cpp's priority-queue comparators do.

export class PairHeap {
  private key = new Float64Array(64);
  private left = new Int32Array(64);
  private right = new Int32Array(64);
  private check = new Int32Array(64);
  size = 0;
  // The entry taken by the last pop().
  topKey = 0;
  topLeft = 0;
  topRight = 0;
  topCheck = 0;

  clear(): void {
    this.size = 0;
  }

  private grow(): void {
    const n = this.key.length * 2;
    const grow = <T extends Float64Array | Int32Array>(a: T, make: (n: number) => T): T => {
      const b = make(n);
      b.set(a);
      return b;
    };
    this.key = grow(this.key, (k) => new Float64Array(k));
    this.left = grow(this.left, (k) => new Int32Array(k));
    this.right = grow(this.right, (k) => new Int32Array(k));
    this.check = grow(this.check, (k) => new Int32Array(k));
  }

  push(key: number, left: number, right: number, check: number): void {
    if (this.size === this.key.length) this.grow();
    const K = this.key;
    const L = this.left;
    let i = this.size++;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (K[p]! < key || (K[p] === key && L[p]! < left)) break;
      K[i] = K[p]!;
      L[i] = L[p]!;
      this.right[i] = this.right[p]!;
      this.check[i] = this.check[p]!;
      i = p;
    }
    K[i] = key;
    L[i] = left;
    this.right[i] = right;
    this.check[i] = check;
  }

  /** Removes the smallest entry into topKey/topLeft/topRight/topCheck. */
  pop(): void {
    const K = this.key;
    const L = this.left;
    const R = this.right;
    const C = this.check;
    this.topKey = K[0]!;
    this.topLeft = L[0]!;
    this.topRight = R[0]!;
    this.topCheck = C[0]!;
    const n = --this.size;
    if (n === 0) return;
    const key = K[n]!;
    const left = L[n]!;
    const right = R[n]!;
    const check = C[n]!;
    let i = 0;
    for (;;) {
      const a = 2 * i + 1;
      if (a >= n) break;
      const b = a + 1;
      const c = b < n && (K[b]! < K[a]! || (K[b] === K[a] && L[b]! < L[a]!)) ? b : a;
      if (key < K[c]! || (key === K[c] && left < L[c]!)) break;
      K[i] = K[c]!;
      L[i] = L[c]!;
      R[i] = R[c]!;
      C[i] = C[c]!;
      i = c;
    }
    K[i] = key;
    L[i] = left;
    R[i] = right;
    C[i] = check;
  }
}
