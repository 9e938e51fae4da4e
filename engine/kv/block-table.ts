// One sequence's view of the KV cache: its cells in context order (slot, RoPE position, token id)
// and one pool reference per block it touches. Blocks may be shared with other sequences or with
// the radix cache; before this table writes into a shared block (append into a partially filled
// block, or re-rotating keys in place) it copies its cells to a private block (copy-on-write).

import type { BlockPool } from './block-pool';
import type { KvSlotBackend } from './types';

export class BlockTable {
  /** Cell i of the context: its KV slot, RoPE position and token id (-1 when unknown). */
  readonly slots: number[] = [];
  readonly positions: number[] = [];
  readonly tokens: number[] = [];
  /**
   * Whether cell i's K/V is exactly what a fresh run of this context computes. Re-rotated cells
   * (seqAdd, placed chunks) are approximate, and so is anything appended while one is present
   * (it attended to it). Only an exact, cleanly laid-out prefix may go into the radix cache.
   */
  readonly exact: boolean[] = [];
  private inexact = 0;
  /** block -> number of this table's cells in it (one pool reference per entry). */
  private readonly held = new Map<number, number>();

  constructor(private readonly pool: BlockPool) {}

  get length(): number {
    return this.slots.length;
  }

  /** Blocks this table holds a reference on. */
  blocks(): number[] {
    return [...this.held.keys()];
  }

  context(): Int32Array {
    return new Int32Array(this.slots);
  }

  /**
   * Appends whole cached blocks (a radix-cache hit): cell k of block j gets slot block*B+k,
   * position start+j*B+k. Takes one reference per block.
   */
  adoptBlocks(blocks: number[], tokens: ArrayLike<number>, start = this.length): void {
    const B = this.pool.blockSize;
    if (tokens.length !== blocks.length * B) throw new Error('adoptBlocks: tokens must fill the blocks exactly');
    for (let j = 0; j < blocks.length; j++) {
      this.pool.incRef(blocks[j]);
      this.held.set(blocks[j], B);
      for (let k = 0; k < B; k++) {
        this.slots.push(this.pool.slot(blocks[j], k));
        this.positions.push(start + j * B + k);
        this.tokens.push(tokens[j * B + k]);
        this.exact.push(true);
      }
    }
  }

  /**
   * Appends n cells and returns their slots. New cells fill the free tail of the last block when
   * this table owns it alone; a shared, partially filled tail block is copied first. All blocks
   * are allocated up front, so on OutOfMemoryError the table is unchanged.
   */
  async append(
    backend: KvSlotBackend,
    tokens: ArrayLike<number>,
    positions?: ArrayLike<number>,
    exact = true,
  ): Promise<Int32Array> {
    const n = tokens.length;
    const B = this.pool.blockSize;
    const out = new Int32Array(n);
    if (n === 0) return out;
    let startPos = this.length === 0 ? 0 : this.positions[this.length - 1] + 1;
    const tail = this.tailRoom();
    const room = tail ? B - tail.offset : 0;
    const cow = tail !== undefined && room > 0 && this.pool.refCount(tail.block) > 1;
    const nNew = Math.ceil(Math.max(0, n - room) / B) + (cow ? 1 : 0);
    const fresh = this.pool.allocate(nNew);
    let next = 0;
    let block = -1;
    let offset = B;
    if (tail && room > 0) {
      block = tail.block;
      offset = tail.offset;
      if (cow) {
        block = fresh[next++];
        await this.moveCells(backend, tail.block, block);
      }
    }
    let i = 0;
    while (i < n) {
      if (offset === B) {
        block = fresh[next++];
        offset = 0;
        this.held.set(block, 0);
      }
      const take = Math.min(n - i, B - offset);
      this.held.set(block, this.held.get(block)! + take);
      for (let k = 0; k < take; k++, i++) {
        const slot = block * B + offset++;
        out[i] = slot;
        this.slots.push(slot);
        this.positions.push(positions ? positions[i] : startPos++);
        this.tokens.push(tokens[i]);
      }
    }
    const isExact = exact && this.inexact === 0;
    for (let i = 0; i < n; i++) this.exact.push(isExact);
    if (!isExact) this.inexact += n;
    return out;
  }

  /**
   * Removes the cells whose position is in [p0, p1) (p1 < 0: to the end). Returns how many. Cells
   * after a removed one attended to it, so they become approximate (a tail cut changes nothing).
   */
  remove(p0: number, p1: number): number {
    const hi = p1 < 0 ? Infinity : p1;
    let w = 0;
    let removed = 0;
    for (let i = 0; i < this.length; i++) {
      const p = this.positions[i];
      if (p >= p0 && p < hi) {
        this.dropCell(this.slots[i]);
        if (!this.exact[i]) this.inexact--;
        removed++;
        continue;
      }
      this.slots[w] = this.slots[i];
      this.positions[w] = this.positions[i];
      this.tokens[w] = this.tokens[i];
      this.exact[w] = this.exact[i];
      if (removed > 0 && this.exact[w]) {
        this.exact[w] = false;
        this.inexact++;
      }
      w++;
    }
    this.slots.length = this.positions.length = this.tokens.length = this.exact.length = w;
    return removed;
  }

  /**
   * Adds delta to the positions in [p0, p1) and re-rotates those keys (llama.cpp seq_add). Cells
   * that would get a negative position are removed, as llama.cpp does. Shared blocks are copied
   * first so other holders keep their keys unrotated.
   */
  async shift(backend: KvSlotBackend, p0: number, p1: number, delta: number): Promise<number> {
    if (delta === 0) return 0;
    const hi = p1 < 0 ? Infinity : p1;
    if (delta < 0) {
      // Cells whose position would go below 0 are dropped (positions in [p0, -delta)).
      const cut = Math.min(hi, -delta);
      if (cut > p0) this.remove(p0, cut);
    }
    const idx: number[] = [];
    for (let i = 0; i < this.length; i++) if (this.positions[i] >= p0 && this.positions[i] < hi) idx.push(i);
    if (idx.length === 0) return 0;
    await this.makePrivate(backend, idx);
    const slots = new Int32Array(idx.length);
    for (let k = 0; k < idx.length; k++) {
      slots[k] = this.slots[idx[k]];
      this.positions[idx[k]] += delta;
      this.setExact(idx[k], false);
    }
    await backend.rotateKeys(slots, new Int32Array(idx.length).fill(delta));
    return idx.length;
  }

  /**
   * Keeps only the cells keep[k] (ascending cell indices), moved to positions[k]; drops the rest.
   * Moved cells are re-rotated (copy-on-write first where shared) and become approximate.
   */
  async retain(backend: KvSlotBackend, keep: number[], positions: number[]): Promise<void> {
    const moved: number[] = [];
    const deltas: number[] = [];
    const keepSet = new Set(keep);
    for (let k = 0; k < keep.length; k++) {
      const d = positions[k] - this.positions[keep[k]];
      if (d !== 0) {
        moved.push(keep[k]);
        deltas.push(d);
      }
    }
    // Drop first (frees blocks), then copy-on-write what will be rotated.
    let w = 0;
    const remap = new Map<number, number>();
    for (let i = 0; i < this.length; i++) {
      if (!keepSet.has(i)) {
        this.dropCell(this.slots[i]);
        if (!this.exact[i]) this.inexact--;
        continue;
      }
      remap.set(i, w);
      this.slots[w] = this.slots[i];
      this.positions[w] = this.positions[i];
      this.tokens[w] = this.tokens[i];
      this.exact[w] = this.exact[i];
      if (w < i && this.exact[w]) {
        this.exact[w] = false; // an earlier cell was dropped: it attended to it
        this.inexact++;
      }
      w++;
    }
    this.slots.length = this.positions.length = this.tokens.length = this.exact.length = w;
    if (moved.length === 0) return;
    const idx = moved.map((i) => remap.get(i)!);
    await this.makePrivate(backend, idx);
    const slots = new Int32Array(idx.length);
    for (let k = 0; k < idx.length; k++) {
      slots[k] = this.slots[idx[k]];
      this.positions[idx[k]] += deltas[k];
      this.setExact(idx[k], false);
    }
    await backend.rotateKeys(slots, Int32Array.from(deltas));
  }

  /** A new table sharing this one's cells in [p0, p1) (p1 < 0: to the end); blocks get a reference each. */
  fork(p0 = 0, p1 = -1): BlockTable {
    const hi = p1 < 0 ? Infinity : p1;
    const t = new BlockTable(this.pool);
    let skipped = false;
    for (let i = 0; i < this.length; i++) {
      const p = this.positions[i];
      if (p < p0 || p >= hi) {
        skipped = true;
        continue;
      }
      const b = this.pool.blockOf(this.slots[i]);
      const c = t.held.get(b);
      if (c === undefined) {
        this.pool.incRef(b);
        t.held.set(b, 1);
      } else t.held.set(b, c + 1);
      t.slots.push(this.slots[i]);
      t.positions.push(p);
      t.tokens.push(this.tokens[i]);
      // A cell whose earlier context was left out is approximate in the copy.
      const exact = this.exact[i] && !skipped;
      t.exact.push(exact);
      if (!exact) t.inexact++;
    }
    return t;
  }

  /** Drops every cell and block reference. */
  clear(): void {
    for (const b of this.held.keys()) this.pool.decRef(b);
    this.held.clear();
    this.slots.length = this.positions.length = this.tokens.length = this.exact.length = 0;
    this.inexact = 0;
  }

  /** Marks cell i exact (after an in-place recompute over an exact context) or approximate. */
  /** Number of leading cells that are exact (the index of the first approximate cell). */
  exactLength(): number {
    if (this.inexact === 0) return this.length;
    let i = 0;
    while (i < this.length && this.exact[i]) i++;
    return i;
  }

  setExact(i: number, exact: boolean): void {
    if (this.exact[i] === exact) return;
    this.exact[i] = exact;
    this.inexact += exact ? -1 : 1;
  }

  /**
   * The leading run of whole blocks laid out exactly as the radix cache stores them (cell j*B+k in
   * slot block*B+k at position j*B+k) and computed exactly. Only this prefix can go into the tree
   * as exact; requireExact = false also takes approximate cells (the tree marks them approximate).
   */
  cleanPrefixBlocks(requireExact = true): number[] {
    const B = this.pool.blockSize;
    const out: number[] = [];
    for (let j = 0; (j + 1) * B <= this.length; j++) {
      const block = this.pool.blockOf(this.slots[j * B]);
      for (let k = 0; k < B; k++) {
        const i = j * B + k;
        if (this.slots[i] !== block * B + k || this.positions[i] !== i || this.tokens[i] < 0 || (requireExact && !this.exact[i])) return out;
      }
      out.push(block);
    }
    return out;
  }

  /** The block of the last cell and the offset after it, if the next cell could go there. */
  private tailRoom(): { block: number; offset: number } | undefined {
    if (this.length === 0) return undefined;
    const last = this.slots[this.length - 1];
    return { block: this.pool.blockOf(last), offset: (last % this.pool.blockSize) + 1 };
  }

  private dropCell(slot: number): void {
    const b = this.pool.blockOf(slot);
    const c = this.held.get(b)! - 1;
    if (c > 0) this.held.set(b, c);
    else {
      this.held.delete(b);
      this.pool.decRef(b);
    }
  }

  /** Copies this table's cells in `from` to block `to` (same offsets) and moves its reference. */
  private async moveCells(backend: KvSlotBackend, from: number, to: number): Promise<void> {
    const B = this.pool.blockSize;
    const src: number[] = [];
    const dst: number[] = [];
    const idx: number[] = [];
    for (let i = 0; i < this.length; i++) {
      if (this.pool.blockOf(this.slots[i]) !== from) continue;
      src.push(this.slots[i]);
      dst.push(to * B + (this.slots[i] % B));
      idx.push(i);
    }
    await backend.copySlots(Int32Array.from(src), Int32Array.from(dst));
    for (let k = 0; k < idx.length; k++) this.slots[idx[k]] = dst[k];
    this.held.set(to, this.held.get(from)!);
    this.held.delete(from);
    this.pool.decRef(from);
  }

  /** Copy-on-write for every shared block that holds one of the cells idx. */
  private async makePrivate(backend: KvSlotBackend, idx: number[]): Promise<void> {
    const shared = new Set<number>();
    for (const i of idx) {
      const b = this.pool.blockOf(this.slots[i]);
      if (this.pool.refCount(b) > 1) shared.add(b);
    }
    if (shared.size === 0) return;
    const fresh = this.pool.allocate(shared.size);
    let k = 0;
    for (const b of shared) await this.moveCells(backend, b, fresh[k++]);
  }
}
