// Bookkeeping cost of engine/kv (no model): acquire/commit/release, decode appends, radix matches,
// eviction, and the disk chunk store's write/read speed for a Qwen2.5-Coder-1.5B-sized chunk.
// Run: npx esbuild bench/kv-manager.ts --bundle --platform=node --outfile=/tmp/kvm.js \
//        --external:webgpu --external:onnxruntime-node && node /tmp/kvm.js
// Prints JSON and a table; writes bench/results/kv-manager-cpu.json.

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KvManager } from '../engine/kv/kv-manager';
import { ChunkStore, type ChunkEntry } from '../engine/kv/chunk-store';
import type { KvSlotBackend } from '../engine/kv/types';

/** Storage operations that do nothing: isolates the manager's own cost. */
const nullBackend: KvSlotBackend = {
  async copySlots() {},
  async rotateKeys() {},
  async readSlots(slots) {
    return new Float32Array(slots.length);
  },
  async writeSlots() {},
};

function tokens(seed: number, n: number): number[] {
  let s = seed >>> 0;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s % 150000;
  });
}

/** Median over 7 rounds of reps calls, after a warm-up round (the JIT needs a few dozen calls). */
async function time(reps: number, fn: (i: number) => Promise<void> | void): Promise<number> {
  for (let i = 0; i < reps; i++) await fn(i);
  const rounds: number[] = [];
  for (let r = 0; r < 7; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < reps; i++) await fn(i);
    rounds.push(Number(process.hrtime.bigint() - t0) / 1e3 / reps); // µs per op
  }
  return rounds.sort((a, b) => a - b)[3];
}

interface Row {
  what: string;
  blockSize: number;
  usPerOp: number;
  note?: string;
}

async function main() {
  const rows: Row[] = [];
  for (const B of [16, 64]) {
    const kvSlots = 1 << 17;
    const kv = new KvManager({ backend: nullBackend, kvSlots, blockSize: B });
    const prompt = tokens(1, 4096);
    rows.push({
      what: 'acquire+release 4096-token prompt, cold (no prefix cache)',
      blockSize: B,
      usPerOp: await time(50, async () => {
        const a = await kv.acquire(prompt);
        kv.release(a.seq);
      }),
    });
    const a0 = await kv.acquire(prompt);
    kv.commit(a0.seq);
    kv.release(a0.seq);
    rows.push({
      what: 'acquire+commit+release 4096-token prompt, warm (prefix hit)',
      blockSize: B,
      usPerOp: await time(50, async () => {
        const a = await kv.acquire(prompt);
        kv.commit(a.seq);
        kv.release(a.seq);
      }),
    });
    const a = await kv.acquire(prompt);
    rows.push({
      what: 'decode append 1 token + context() at 4.1k-5k tokens',
      blockSize: B,
      usPerOp: await time(100, async (i) => {
        await kv.append(a.seq, [i % 1000]);
        kv.context(a.seq);
      }),
    });
    kv.release(a.seq);
    // A tree with 500 cached 1024-token prompts sharing a 256-token header.
    const header = tokens(7, 256);
    for (let i = 0; i < 500; i++) {
      const p = [...header, ...tokens(100 + i, 768)];
      const s = await kv.acquire(p);
      kv.commit(s.seq);
      kv.release(s.seq);
    }
    const probe = [...header, ...tokens(350, 768)];
    rows.push({
      what: 'radix matchPrefix 1024 tokens (tree of 500 prompts)',
      blockSize: B,
      usPerOp: await time(2000, () => {
        kv.tree.matchPrefix(probe);
      }),
      note: `tree holds ${kv.tree.totalSize} tokens`,
    });
    const t0 = process.hrtime.bigint();
    const freed = kv.tree.evict(1024);
    rows.push({
      what: 'evict LRU leaves, per freed block (one evict(1024) call)',
      blockSize: B,
      usPerOp: Number(process.hrtime.bigint() - t0) / 1e3 / freed,
      note: `${freed} blocks freed`,
    });
    kv.checkInvariants();
  }

  // Disk store: 256-token chunk of a 28-layer model with 2 KV heads x 128 dims (f32 on disk).
  const dir = mkdtempSync(join(tmpdir(), 'cachet-kvbench-'));
  const store = new ChunkStore({ dir, budgetBytes: 1 << 30 });
  const n = 256;
  const entry: ChunkEntry = {
    key: { model: 'qwen2.5-coder-1.5b', tokenizer: 'qwen2', contentHash: 'x', start: 0, end: 1, prefixHash: '' },
    tokens: Int32Array.from(tokens(3, n)),
    basePosition: 0,
    layers: 28,
    kvDim: 256,
    kv: Float32Array.from({ length: 28 * n * 2 * 256 }, (_, i) => Math.sin(i)),
  };
  const mb = entry.kv.byteLength / 1e6;
  const put = await time(2, (i) => store.put({ ...entry, key: { ...entry.key, contentHash: `c${i}` } }));
  const get = await time(2, (i) => {
    if (!store.get({ ...entry.key, contentHash: `c${i}` })) throw new Error('miss');
  });
  rows.push({ what: `chunk store put (${mb.toFixed(1)} MB, sha256, fsync, rename)`, blockSize: 0, usPerOp: put, note: `${(mb / (put / 1e6)).toFixed(0)} MB/s` });
  rows.push({ what: `chunk store get (${mb.toFixed(1)} MB, sha256 verify)`, blockSize: 0, usPerOp: get, note: `${(mb / (get / 1e6)).toFixed(0)} MB/s` });
  rmSync(dir, { recursive: true, force: true });

  const result = {
    bench: 'kv-manager',
    date: new Date().toISOString(),
    node: process.version,
    note: 'Median of 7 rounds; the 2-core dev machine is shared with other jobs, so expect ±2x noise.',
    rows,
  };
  console.log(JSON.stringify(result, null, 2));
  console.log(`\n${'what'.padEnd(64)}${'B'.padEnd(5)}${'µs/op'.padEnd(12)}note`);
  for (const r of rows) console.log(`${r.what.padEnd(64)}${String(r.blockSize || '-').padEnd(5)}${r.usPerOp.toFixed(1).padEnd(12)}${r.note ?? ''}`);
  const out = join(process.cwd(), 'bench', 'results');
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'kv-manager-cpu.json'), JSON.stringify(result, null, 2) + '\n');
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
