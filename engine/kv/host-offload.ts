// Host tier for cold prefix-cache blocks. Instead of dropping an unlocked radix leaf, the KvManager
// can read its K/V to host memory (backend.readSlots) and keep it here, keyed by the token path
// that leads to it; a later request whose prompt continues that path gets the blocks back with
// backend.writeSlots instead of recomputing them. LRU within a byte budget.

export interface HostEntry {
  /** Tokens before this run (the radix path of the evicted leaf's parent). */
  prefix: Int32Array;
  /** The run's tokens (a multiple of blockSize). */
  key: Int32Array;
  /** K/V as readSlots returns it: [layer][token][K|V][kvDim]. */
  data: Float32Array;
  lastAccess: number;
}

export class HostTier {
  private readonly entries = new Map<string, HostEntry[]>();
  private bytesHeld = 0;
  private clock = 0;
  private count = 0;
  hits = 0;
  evictions = 0;

  constructor(readonly budgetBytes: number) {}

  get bytes(): number {
    return this.bytesHeld;
  }

  get size(): number {
    return this.count;
  }

  /** Keeps a run; drops least recently used runs to stay within the budget. False if it cannot fit. */
  put(prefix: ArrayLike<number>, key: ArrayLike<number>, data: Float32Array): boolean {
    if (data.byteLength > this.budgetBytes) return false;
    const h = hashTokens(prefix, prefix.length);
    const list = this.entries.get(h) ?? [];
    const k = Int32Array.from(key);
    // Replace an entry for the same run.
    const i = list.findIndex(
      (e) => e.key.length === k.length && e.prefix.length === prefix.length && sameRun(e.key, k, 0) && sameRun(e.prefix, prefix, 0),
    );
    if (i >= 0) this.drop(h, list, i);
    while (this.bytesHeld + data.byteLength > this.budgetBytes && this.dropColdest());
    const entry: HostEntry = { prefix: Int32Array.from(prefix), key: k, data, lastAccess: ++this.clock };
    const fresh = this.entries.get(h) ?? [];
    fresh.push(entry);
    this.entries.set(h, fresh);
    this.bytesHeld += data.byteLength;
    this.count++;
    return true;
  }

  /**
   * A run that continues tokens[0, pos) and whose whole key matches tokens[pos, limit). Removes it
   * from the tier (the caller moves it back to the device).
   */
  take(tokens: ArrayLike<number>, pos: number, limit: number): HostEntry | undefined {
    const h = hashTokens(tokens, pos);
    const list = this.entries.get(h);
    if (!list) return undefined;
    for (let i = 0; i < list.length; i++) {
      const e = list[i];
      if (e.prefix.length !== pos || pos + e.key.length > limit) continue;
      if (!sameRun(e.prefix, tokens, 0) || !sameRun(e.key, tokens, pos)) continue;
      this.drop(h, list, i);
      this.hits++;
      return e;
    }
    return undefined;
  }

  clear(): void {
    this.entries.clear();
    this.bytesHeld = 0;
    this.count = 0;
  }

  private drop(h: string, list: HostEntry[], i: number): void {
    this.bytesHeld -= list[i].data.byteLength;
    this.count--;
    list.splice(i, 1);
    if (list.length === 0) this.entries.delete(h);
  }

  private dropColdest(): boolean {
    let best: { h: string; list: HostEntry[]; i: number } | undefined;
    for (const [h, list] of this.entries) {
      for (let i = 0; i < list.length; i++) {
        if (!best || list[i].lastAccess < best.list[best.i].lastAccess) best = { h, list, i };
      }
    }
    if (!best) return false;
    this.drop(best.h, best.list, best.i);
    this.evictions++;
    return true;
  }
}

/** a equals b[off, off + a.length). */
function sameRun(a: ArrayLike<number>, b: ArrayLike<number>, off: number): boolean {
  if (off + a.length > b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[off + i]) return false;
  return true;
}

/** FNV-1a over the first n token ids. */
export function hashTokens(tokens: ArrayLike<number>, n: number): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < n; i++) {
    let t = tokens[i] | 0;
    for (let k = 0; k < 4; k++) {
      h ^= t & 0xff;
      h = Math.imul(h, 0x01000193);
      t >>>= 8;
    }
  }
  return `${n}:${(h >>> 0).toString(16)}`;
}
