// Fixed-size KV blocks over the backend's slot space: slot = block * blockSize + offset.
// Blocks are reference counted; a block returns to the free list when its last holder (a
// sequence's block table or a radix-tree node) lets go. When the free list runs dry the pool asks
// its evictor (the radix cache) to free unlocked cached blocks, then fails with OutOfMemoryError —
// it never hands out a block that someone still holds.

import { CachetError, OutOfMemoryError } from '../errors';

export interface BlockPoolOptions {
  /** Tokens per block; 16–64 is the sensible range (16 = vLLM's default). */
  blockSize: number;
  /** Blocks in the pool (the KV budget): at most floor(kvSlots / blockSize). */
  nBlocks: number;
}

/** Frees at least `blocksNeeded` blocks if it can; returns how many it actually freed. */
export type Evictor = (blocksNeeded: number) => number;

export class BlockPool {
  readonly blockSize: number;
  readonly nBlocks: number;
  /** Called by allocate() when the free list is short. The KvManager wires the radix cache in. */
  evictor: Evictor | undefined;
  private readonly refs: Int32Array;
  /** Free block ids; a FIFO so freed blocks are reused last (their slots stay readable longest). */
  private freeQueue: number[] = [];
  private freeHead = 0;
  private evictedBlocks = 0;

  constructor(options: BlockPoolOptions) {
    const { blockSize, nBlocks } = options;
    if (!Number.isInteger(blockSize) || blockSize < 1 || blockSize > 1024) {
      throw new CachetError(
        `KV block size ${blockSize} is invalid`,
        'Use an integer block size between 1 and 1024 tokens (16–64 is typical).',
      );
    }
    if (!Number.isInteger(nBlocks) || nBlocks < 1) {
      throw new CachetError(
        `KV budget of ${nBlocks} blocks is too small`,
        `Give the KV cache at least one block (${blockSize} tokens): raise the KV budget or lower the block size.`,
      );
    }
    this.blockSize = blockSize;
    this.nBlocks = nBlocks;
    this.refs = new Int32Array(nBlocks);
    for (let b = 0; b < nBlocks; b++) this.freeQueue.push(b);
  }

  /** Blocks on the free list. */
  get free(): number {
    return this.freeQueue.length - this.freeHead;
  }

  get used(): number {
    return this.nBlocks - this.free;
  }

  /** Blocks the evictor has freed over the pool's life. */
  get evictions(): number {
    return this.evictedBlocks;
  }

  slot(block: number, offset: number): number {
    return block * this.blockSize + offset;
  }

  blockOf(slot: number): number {
    return Math.floor(slot / this.blockSize);
  }

  refCount(block: number): number {
    this.check(block);
    return this.refs[block];
  }

  /**
   * n fresh blocks, each with ref count 1. All or nothing: evicts first if needed, then either
   * returns n blocks or throws OutOfMemoryError without having taken any.
   */
  allocate(n: number): number[] {
    if (n <= 0) return [];
    if (this.free < n && this.evictor) this.evictedBlocks += this.evictor(n - this.free);
    if (this.free < n) {
      throw new OutOfMemoryError(
        `KV cache full: need ${n} blocks of ${this.blockSize} tokens, ${this.free} free of ${this.nBlocks} ` +
          `(the rest are held by active requests)`,
        'Raise the KV budget (kvSlots), shorten the context, or run fewer requests at once.',
      );
    }
    const out = this.freeQueue.slice(this.freeHead, this.freeHead + n);
    this.freeHead += n;
    if (this.freeHead > 1024 && this.freeHead * 2 > this.freeQueue.length) {
      this.freeQueue = this.freeQueue.slice(this.freeHead);
      this.freeHead = 0;
    }
    for (const b of out) this.refs[b] = 1;
    return out;
  }

  incRef(block: number): void {
    this.check(block);
    if (this.refs[block] <= 0) throw new Error(`KV block ${block} is free; cannot add a reference`);
    this.refs[block]++;
  }

  /** Drops one reference; returns true when that freed the block. */
  decRef(block: number): boolean {
    this.check(block);
    if (this.refs[block] <= 0) throw new Error(`KV block ${block} is already free (double release)`);
    if (--this.refs[block] > 0) return false;
    this.freeQueue.push(block);
    return true;
  }

  /** Free-list consistency: every block with ref 0 is on the free list exactly once. */
  checkInvariants(): void {
    const onFree = new Uint8Array(this.nBlocks);
    for (let i = this.freeHead; i < this.freeQueue.length; i++) {
      const b = this.freeQueue[i];
      if (onFree[b]) throw new Error(`block ${b} is on the free list twice`);
      onFree[b] = 1;
      if (this.refs[b] !== 0) throw new Error(`block ${b} is on the free list with ref ${this.refs[b]}`);
    }
    for (let b = 0; b < this.nBlocks; b++) {
      if (this.refs[b] < 0) throw new Error(`block ${b} has negative ref ${this.refs[b]}`);
      if (this.refs[b] === 0 && !onFree[b]) throw new Error(`block ${b} has ref 0 but is not free (leak)`);
    }
  }

  private check(block: number): void {
    if (!Number.isInteger(block) || block < 0 || block >= this.nBlocks) {
      throw new RangeError(`KV block ${block} out of range [0, ${this.nBlocks})`);
    }
  }
}
