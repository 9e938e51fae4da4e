// Prefix cache over token ids, modelled on SGLang's RadixAttention (mem_cache/radix_cache.py).
//
// Granularity: whole KV blocks (SGLang's page_size = our blockSize). A node's key is a run of token
// ids whose length is a multiple of blockSize, and its value is the blocks holding those tokens'
// K/V at positions equal to their index in the full key path. Matching is page-aligned: a request
// reuses the longest cached prefix rounded down to whole blocks, so a partially filled block is
// never shared through the tree and the tree never needs copy-on-write. The cost is up to
// blockSize-1 recomputed tokens per hit.
//
// The tree holds one pool reference per block. Requests lock the path of the node they use
// (inc/dec walks to the root); eviction only removes unlocked leaves, least recently used first,
// and re-queues a parent once it becomes an unlocked leaf.
//
// Approximate nodes: K/V assembled from chunk caches (re-rotated, partly recomputed) is not what a
// fresh run computes, but a later prompt with the same tokens would assemble the same thing, so it
// is worth caching for requests that accept chunk reuse. Such nodes are marked `approx`; a plain
// lookup stops at them, a lookup with approximate = true goes through. Along any path the exact
// nodes come first: an exact insert over an approximate node takes its place (its blocks win).

import type { BlockPool } from './block-pool';

export class RadixNode {
  readonly children = new Map<string, RadixNode>();
  parent: RadixNode | undefined;
  /** Token ids of this edge (a multiple of blockSize long; empty for the root). */
  key: number[];
  /** Blocks holding the K/V of key, one per blockSize tokens. */
  blocks: number[];
  lockRef = 0;
  lastAccess = 0;
  hits = 0;
  /** K/V assembled from reused chunks rather than computed in place (see the header). */
  approx: boolean;
  constructor(key: number[], blocks: number[], parent: RadixNode | undefined, approx = false) {
    this.key = key;
    this.blocks = blocks;
    this.parent = parent;
    this.approx = approx;
  }
  get isLeaf(): boolean {
    return this.children.size === 0;
  }
}

export interface PrefixMatch {
  /** Matched tokens (a multiple of blockSize). */
  length: number;
  /** Blocks of the matched prefix, in order. */
  blocks: number[];
  /** Deepest matched node (the root on a miss); lock it while the blocks are in use. */
  node: RadixNode;
  /** Leading matched tokens held by exact nodes (= length unless approximate nodes matched). */
  exactLength: number;
}

export class RadixCache {
  readonly root = new RadixNode([], [], undefined);
  private clock = 0;
  private evictable = 0;
  private protectedTokens = 0;
  private evictedTokens = 0;

  constructor(private readonly pool: BlockPool) {
    this.root.lockRef = 1; // the root is never evicted
  }

  get blockSize(): number {
    return this.pool.blockSize;
  }

  /** Tokens in unlocked nodes (what evict() could free). */
  get evictableSize(): number {
    return this.evictable;
  }

  /** Tokens in nodes some request has locked. */
  get protectedSize(): number {
    return this.protectedTokens;
  }

  /** All cached tokens. */
  get totalSize(): number {
    return this.evictable + this.protectedTokens;
  }

  /** Tokens evicted over the cache's life. */
  get evictedSize(): number {
    return this.evictedTokens;
  }

  /**
   * Longest cached prefix of tokens, page-aligned and at most maxLength tokens. Splits a node when
   * the match ends inside it, so the returned node covers exactly the match. Refreshes LRU times.
   */
  matchPrefix(tokens: ArrayLike<number>, maxLength = tokens.length, approximate = false): PrefixMatch {
    const B = this.blockSize;
    const limit = Math.floor(Math.min(maxLength, tokens.length) / B) * B;
    const now = ++this.clock;
    const blocks: number[] = [];
    let node = this.root;
    node.lastAccess = now;
    let pos = 0;
    let exactLength = -1;
    while (pos < limit) {
      const child = node.children.get(pageKey(tokens, pos, B));
      if (!child || (child.approx && !approximate)) break;
      if (child.approx && exactLength < 0) exactLength = pos;
      const n = matchLength(child.key, tokens, pos, limit, B);
      if (n < child.key.length) {
        const head = this.split(child, n);
        head.lastAccess = now;
        head.hits++;
        for (const b of head.blocks) blocks.push(b);
        node = head;
        pos += n;
        break;
      }
      child.lastAccess = now;
      child.hits++;
      for (const b of child.blocks) blocks.push(b);
      node = child;
      pos += n;
    }
    return { length: pos, blocks, node, exactLength: exactLength < 0 ? pos : exactLength };
  }

  /**
   * Caches tokens (rounded down to whole blocks) with their blocks. The tree takes a reference on
   * each block it adopts; where a prefix is already cached the tree keeps its own blocks and the
   * caller's duplicates stay the caller's. Returns the length that was already cached.
   * exactLength: only tokens[0, exactLength) are exact; whole blocks past it go in as approximate
   * nodes, and exact blocks replace those of approximate nodes they match.
   */
  insert(tokens: ArrayLike<number>, blocks: number[], exactLength = Infinity): number {
    const B = this.blockSize;
    const total = Math.min(Math.floor(tokens.length / B), blocks.length) * B;
    const exactEnd = Math.min(total, Math.floor(Math.min(exactLength, total) / B) * B);
    const now = ++this.clock;
    let node = this.root;
    let pos = 0;
    while (pos < total) {
      let child = node.children.get(pageKey(tokens, pos, B));
      if (!child) break;
      let n = matchLength(child.key, tokens, pos, total, B);
      child.lastAccess = now;
      if (child.approx && pos < exactEnd) {
        // Exact K/V for (part of) an approximate node: split off that part and give it our blocks.
        n = Math.min(n, exactEnd - pos);
        if (n < child.key.length) child = this.split(child, n);
        this.makeExact(child, blocks.slice(pos / B, (pos + n) / B));
        node = child;
        pos += n;
        continue;
      }
      if (n < child.key.length) {
        node = this.split(child, n);
        pos += n;
        break;
      }
      node = child;
      pos += n;
    }
    const matched = pos;
    if (pos < exactEnd) {
      node = this.addLeaf(node, tokens, blocks, pos, exactEnd, false, now);
      pos = exactEnd;
    }
    if (pos < total) this.addLeaf(node, tokens, blocks, pos, total, true, now);
    return matched;
  }

  private addLeaf(parent: RadixNode, tokens: ArrayLike<number>, blocks: number[], from: number, to: number, approx: boolean, now: number): RadixNode {
    const B = this.blockSize;
    const key = Array.from({ length: to - from }, (_, i) => tokens[from + i]);
    const own = blocks.slice(from / B, to / B);
    for (const b of own) this.pool.incRef(b);
    const leaf = new RadixNode(key, own, parent, approx);
    leaf.lastAccess = now;
    parent.children.set(pageKey(key, 0, B), leaf);
    this.evictable += key.length;
    return leaf;
  }

  /** An approximate node takes exact blocks for its tokens (sequences using the old ones keep their own references). */
  private makeExact(node: RadixNode, blocks: number[]): void {
    for (const b of blocks) this.pool.incRef(b);
    for (const b of node.blocks) this.pool.decRef(b);
    node.blocks = blocks;
    node.approx = false;
  }

  /** Locks node and its ancestors against eviction (one request using the prefix). */
  incLock(node: RadixNode): void {
    for (let n: RadixNode | undefined = node; n && n !== this.root; n = n.parent) {
      if (n.lockRef++ === 0) {
        this.evictable -= n.key.length;
        this.protectedTokens += n.key.length;
      }
    }
  }

  decLock(node: RadixNode): void {
    for (let n: RadixNode | undefined = node; n && n !== this.root; n = n.parent) {
      if (n.lockRef <= 0) throw new Error('RadixCache.decLock: node is not locked (unbalanced release)');
      if (--n.lockRef === 0) {
        this.protectedTokens -= n.key.length;
        this.evictable += n.key.length;
      }
    }
  }

  /**
   * Evicts unlocked leaves, least recently used first, until `blocksNeeded` blocks were returned to
   * the pool or nothing evictable is left. Returns the blocks actually freed (a block a running
   * sequence still holds is dropped from the tree but not freed).
   */
  evict(blocksNeeded: number): number {
    const heap = new MinHeap<RadixNode>((a, b) => a.lastAccess - b.lastAccess);
    this.forEach((n) => {
      if (n !== this.root && n.isLeaf && n.lockRef === 0) heap.push(n);
    });
    let freed = 0;
    while (freed < blocksNeeded && heap.size > 0) {
      const leaf = heap.pop()!;
      for (const b of leaf.blocks) if (this.pool.decRef(b)) freed++;
      const parent = leaf.parent!;
      parent.children.delete(pageKey(leaf.key, 0, this.blockSize));
      leaf.parent = undefined;
      this.evictable -= leaf.key.length;
      this.evictedTokens += leaf.key.length;
      if (parent !== this.root && parent.isLeaf && parent.lockRef === 0) heap.push(parent);
    }
    return freed;
  }

  /** Unlocked leaves in eviction order (coldest first), for host offload. */
  coldLeaves(): RadixNode[] {
    const out: RadixNode[] = [];
    this.forEach((n) => {
      if (n !== this.root && n.isLeaf && n.lockRef === 0) out.push(n);
    });
    return out.sort((a, b) => a.lastAccess - b.lastAccess);
  }

  /** Removes one unlocked leaf (after its K/V was offloaded); returns the blocks it freed. */
  removeLeaf(leaf: RadixNode): number {
    if (!leaf.parent || !leaf.isLeaf || leaf.lockRef !== 0) throw new Error('RadixCache.removeLeaf: not an unlocked leaf');
    let freed = 0;
    for (const b of leaf.blocks) if (this.pool.decRef(b)) freed++;
    leaf.parent.children.delete(pageKey(leaf.key, 0, this.blockSize));
    leaf.parent = undefined;
    this.evictable -= leaf.key.length;
    this.evictedTokens += leaf.key.length;
    return freed;
  }

  /** Full token path from the root to node (exclusive of nothing: includes node's key). */
  pathTokens(node: RadixNode): number[] {
    const parts: number[][] = [];
    for (let n: RadixNode | undefined = node; n && n !== this.root; n = n.parent) parts.push(n.key);
    return parts.reverse().flat();
  }

  /** Blocks the tree holds, in no particular order. */
  heldBlocks(): number[] {
    const out: number[] = [];
    this.forEach((n) => {
      for (const b of n.blocks) out.push(b);
    });
    return out;
  }

  /** Drops every unlocked node (e.g. when the model changes). */
  clear(): void {
    this.evict(Number.POSITIVE_INFINITY);
  }

  /**
   * Throws if the tree is inconsistent: sizes, page alignment, child keys, parent links, lock
   * counts (a parent's lock >= sum of its children's), a block in two nodes, a block with no
   * pool reference.
   */
  checkInvariants(): void {
    const B = this.blockSize;
    const seen = new Set<number>();
    let evictable = 0;
    let protectedTokens = 0;
    this.forEach((n) => {
      if (n === this.root) return;
      if (n.key.length === 0 || n.key.length % B !== 0) throw new Error(`node key length ${n.key.length} not a positive multiple of ${B}`);
      if (n.blocks.length * B !== n.key.length) throw new Error(`node has ${n.blocks.length} blocks for ${n.key.length} tokens`);
      if (!n.parent || n.parent.children.get(pageKey(n.key, 0, B)) !== n) throw new Error('node is not reachable under its child key');
      if (n.lockRef < 0) throw new Error('negative lockRef');
      let childLocks = 0;
      for (const c of n.children.values()) childLocks += c.lockRef;
      if (n.lockRef < childLocks) throw new Error(`lockRef ${n.lockRef} below children's ${childLocks}`);
      if (!n.approx && n.parent.approx) throw new Error('an exact node sits under an approximate one');
      if (n.lockRef > 0) protectedTokens += n.key.length;
      else evictable += n.key.length;
      for (const b of n.blocks) {
        if (seen.has(b)) throw new Error(`block ${b} is in two tree nodes`);
        seen.add(b);
        if (this.pool.refCount(b) < 1) throw new Error(`tree block ${b} has no pool reference`);
      }
    });
    if (evictable !== this.evictable) throw new Error(`evictable size ${this.evictable} != counted ${evictable}`);
    if (protectedTokens !== this.protectedTokens) throw new Error(`protected size ${this.protectedTokens} != counted ${protectedTokens}`);
    if (seen.size * B !== this.totalSize) throw new Error(`tree holds ${seen.size} blocks but sizes say ${this.totalSize} tokens`);
  }

  /** New parent takes key[:n] (n a multiple of blockSize) and inherits the lock count. */
  private split(child: RadixNode, n: number): RadixNode {
    const B = this.blockSize;
    const parent = child.parent!;
    const head = new RadixNode(child.key.slice(0, n), child.blocks.slice(0, n / B), parent, child.approx);
    head.lockRef = child.lockRef;
    head.lastAccess = child.lastAccess;
    head.hits = child.hits;
    child.key = child.key.slice(n);
    child.blocks = child.blocks.slice(n / B);
    child.parent = head;
    head.children.set(pageKey(child.key, 0, B), child);
    parent.children.set(pageKey(head.key, 0, B), head);
    return head;
  }

  private forEach(fn: (n: RadixNode) => void): void {
    const stack = [this.root];
    while (stack.length) {
      const n = stack.pop()!;
      fn(n);
      for (const c of n.children.values()) stack.push(c);
    }
  }
}

function pageKey(tokens: ArrayLike<number>, pos: number, B: number): string {
  let s = '';
  for (let i = pos; i < pos + B; i++) s += tokens[i] + ',';
  return s;
}

/** Whole-page common length of key and tokens[pos, limit). */
function matchLength(key: number[], tokens: ArrayLike<number>, pos: number, limit: number, B: number): number {
  const max = Math.min(key.length, limit - pos);
  let i = 0;
  while (i < max && key[i] === tokens[pos + i]) i++;
  return Math.floor(i / B) * B;
}

class MinHeap<T> {
  private a: T[] = [];
  constructor(private readonly less: (x: T, y: T) => number) {}
  get size(): number {
    return this.a.length;
  }
  push(x: T): void {
    const a = this.a;
    a.push(x);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (this.less(a[i], a[p]) >= 0) break;
      [a[i], a[p]] = [a[p], a[i]];
      i = p;
    }
  }
  pop(): T | undefined {
    const a = this.a;
    if (a.length === 0) return undefined;
    const top = a[0];
    const last = a.pop()!;
    if (a.length > 0) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && this.less(a[l], a[m]) < 0) m = l;
        if (r < a.length && this.less(a[r], a[m]) < 0) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m], a[i]];
        i = m;
      }
    }
    return top;
  }
}
