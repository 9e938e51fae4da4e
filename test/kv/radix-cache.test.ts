import { describe, expect, it } from 'vitest';
import { BlockPool } from '../../engine/kv/block-pool';
import { RadixCache, type RadixNode } from '../../engine/kv/radix-cache';
import { OutOfMemoryError } from '../../engine/errors';
import { mulberry32 } from './fake-backend';

const B = 4;
function setup(nBlocks = 64) {
  const pool = new BlockPool({ blockSize: B, nBlocks });
  const tree = new RadixCache(pool);
  pool.evictor = (n) => tree.evict(n);
  return { pool, tree };
}
/** Caches tokens the way a finished request does: allocate blocks, insert, drop the request's refs. */
function cache(pool: BlockPool, tree: RadixCache, tokens: number[]): number[] {
  const blocks = pool.allocate(Math.floor(tokens.length / B));
  tree.insert(tokens, blocks);
  for (const b of blocks) pool.decRef(b);
  return blocks;
}
function countNodes(n: RadixNode): number {
  let c = 1;
  for (const ch of n.children.values()) c += countNodes(ch);
  return c;
}
const seq = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);

describe('RadixCache', () => {
  it('matches the longest page-aligned prefix and returns its blocks', () => {
    const { pool, tree } = setup();
    const blocks = cache(pool, tree, seq(0, 12));
    expect(tree.totalSize).toBe(12);
    const m = tree.matchPrefix([...seq(0, 10), 99]);
    expect(m.length).toBe(8); // 10 matching tokens round down to 2 blocks
    expect(m.blocks).toEqual(blocks.slice(0, 2));
    expect(tree.matchPrefix([1, 2, 3, 4]).length).toBe(0);
    expect(tree.matchPrefix(seq(0, 12), 11).length).toBe(8); // maxLength
    tree.checkInvariants();
  });

  it('splits a node when an insert diverges inside it', () => {
    const { pool, tree } = setup();
    const a = cache(pool, tree, seq(0, 12));
    const bTokens = [...seq(0, 8), 50, 51, 52, 53];
    const bBlocks = pool.allocate(3);
    expect(tree.insert(bTokens, bBlocks)).toBe(8); // first two blocks already cached
    // Root -> [0..8) -> { [8..12), [50..54) }
    expect(tree.root.children.size).toBe(1);
    const head = [...tree.root.children.values()][0];
    expect(head.key).toEqual(seq(0, 8));
    expect(head.blocks).toEqual(a.slice(0, 2));
    expect(head.children.size).toBe(2);
    expect(pool.refCount(bBlocks[0])).toBe(1); // duplicates stay the caller's
    expect(pool.refCount(bBlocks[2])).toBe(2); // adopted by the tree
    expect(tree.totalSize).toBe(16);
    expect(tree.matchPrefix(bTokens).blocks).toEqual([...a.slice(0, 2), bBlocks[2]]);
    tree.checkInvariants();
  });

  it('splits on a match that ends inside a node and keeps the lock on both halves', () => {
    const { pool, tree } = setup();
    cache(pool, tree, seq(0, 16));
    const full = tree.matchPrefix(seq(0, 16));
    tree.incLock(full.node);
    const m = tree.matchPrefix(seq(0, 8));
    expect(m.node.key).toEqual(seq(0, 8));
    expect(m.node.lockRef).toBe(1);
    expect(tree.protectedSize).toBe(16);
    tree.checkInvariants();
    tree.decLock(full.node);
    expect(tree.evictableSize).toBe(16);
    tree.checkInvariants();
  });

  it('eviction frees least recently used unlocked leaves and never touches locked nodes', () => {
    const { pool, tree } = setup(6);
    cache(pool, tree, seq(0, 8)); // A: 2 blocks
    cache(pool, tree, seq(100, 8)); // B: 2 blocks
    cache(pool, tree, seq(200, 8)); // C: 2 blocks
    expect(pool.free).toBe(0);
    const a = tree.matchPrefix(seq(0, 8));
    tree.incLock(a.node); // A in use
    tree.matchPrefix(seq(100, 8)); // B touched after C: C is coldest unlocked
    expect(tree.evict(2)).toBe(2);
    expect(tree.matchPrefix(seq(200, 8)).length).toBe(0);
    expect(tree.matchPrefix(seq(100, 8)).length).toBe(8);
    expect(tree.evict(100)).toBe(2); // only B can go
    expect(tree.matchPrefix(seq(0, 8)).length).toBe(8);
    expect(tree.totalSize).toBe(8);
    tree.checkInvariants();
    tree.decLock(a.node);
    expect(tree.evict(100)).toBe(2);
    expect(tree.totalSize).toBe(0);
    pool.checkInvariants();
  });

  it('evicts a chain leaf-first, re-queuing parents that become leaves', () => {
    const { pool, tree } = setup(8);
    cache(pool, tree, seq(0, 8));
    cache(pool, tree, seq(0, 16)); // extends A: root -> [0,8) -> [8,16)
    expect(tree.evict(1)).toBe(2); // the leaf [8,16) goes first (2 blocks)
    expect(tree.matchPrefix(seq(0, 16)).length).toBe(8);
    expect(tree.evict(1)).toBe(2);
    expect(tree.totalSize).toBe(0);
  });

  it('budget exhaustion evicts cold prefixes, or fails cleanly when everything is locked', () => {
    const { pool, tree } = setup(4);
    cache(pool, tree, seq(0, 8));
    cache(pool, tree, seq(100, 8));
    expect(pool.allocate(2).length).toBe(2); // evicted one cached prefix to make room
    expect(pool.evictions).toBe(2);
    const m = tree.matchPrefix(seq(0, 8)).length ? tree.matchPrefix(seq(0, 8)) : tree.matchPrefix(seq(100, 8));
    tree.incLock(m.node);
    expect(() => pool.allocate(1)).toThrow(OutOfMemoryError);
    expect(tree.totalSize).toBe(8); // the locked prefix survived
    tree.checkInvariants();
    pool.checkInvariants();
  });

  it('keeps invariants through interleaved requests (lock / insert / evict) — seeded random', () => {
    let ooms = 0;
    let splits = 0;
    for (const seed of [1, 2, 3, 4, 5]) {
      const rnd = mulberry32(seed);
      const { pool, tree } = setup(24);
      const vocab = 3; // small vocab: many shared prefixes and splits
      const live: { node: RadixNode; blocks: number[]; tokens: number[] }[] = [];
      for (let step = 0; step < 400; step++) {
        const op = rnd();
        if (op < 0.45) {
          // A request arrives: match, lock, allocate its uncached blocks (may evict or fail).
          const n = B * (1 + Math.floor(rnd() * 5));
          const tokens = Array.from({ length: n }, () => Math.floor(rnd() * vocab));
          const m = tree.matchPrefix(tokens);
          tree.incLock(m.node);
          try {
            const own = pool.allocate((n - m.length) / B);
            live.push({ node: m.node, blocks: [...m.blocks, ...own], tokens });
            for (const b of m.blocks) pool.incRef(b);
          } catch (e) {
            expect(e).toBeInstanceOf(OutOfMemoryError);
            ooms++;
            tree.decLock(m.node);
          }
        } else if (op < 0.8 && live.length) {
          // A request finishes: insert its prefix, drop its refs and its lock.
          const r = live.splice(Math.floor(rnd() * live.length), 1)[0];
          const nodesBefore = countNodes(tree.root);
          const matched = tree.insert(r.tokens, r.blocks);
          if (countNodes(tree.root) === nodesBefore + 2 && matched < r.tokens.length) splits++;
          for (const b of r.blocks) pool.decRef(b);
          tree.decLock(r.node);
        } else {
          const locked = new Set<number>();
          for (const r of live) for (let n: RadixNode | undefined = r.node; n && n.parent; n = n.parent) n.blocks.forEach((b) => locked.add(b));
          tree.evict(1 + Math.floor(rnd() * 4));
          // Locked paths are still in the tree.
          for (const r of live) {
            const m = tree.matchPrefix(tree.pathTokens(r.node));
            expect(m.node).toBe(r.node);
          }
          const held = new Set(tree.heldBlocks());
          for (const b of locked) expect(held.has(b)).toBe(true);
        }
        tree.checkInvariants();
        pool.checkInvariants();
        // Pool refs = tree nodes + live requests.
        const expectRefs = new Int32Array(pool.nBlocks);
        for (const b of tree.heldBlocks()) expectRefs[b]++;
        for (const r of live) for (const b of r.blocks) expectRefs[b]++;
        for (let b = 0; b < pool.nBlocks; b++) expect(pool.refCount(b)).toBe(expectRefs[b]);
      }
      for (const r of live) {
        for (const b of r.blocks) pool.decRef(b);
        tree.decLock(r.node);
      }
      tree.clear();
      expect(tree.totalSize).toBe(0);
      expect(pool.free).toBe(pool.nBlocks);
      expect(pool.evictions).toBeGreaterThan(0);
    }
    expect(ooms).toBeGreaterThan(0); // the runs did hit the budget
    expect(splits).toBeGreaterThan(0); // and did split nodes on insert
  });

  it('the invariant checker catches corruption', () => {
    const { pool, tree } = setup();
    cache(pool, tree, seq(0, 8));
    cache(pool, tree, seq(100, 8));
    const [x, y] = [...tree.root.children.values()];
    y.blocks[0] = x.blocks[0];
    expect(() => tree.checkInvariants()).toThrow(/two tree nodes/);
  });
});
