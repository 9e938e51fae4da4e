// Disk tier for chunk caches: one file per chunk, so K/V of a file chunk survives restarts.
//
// File layout (little endian):
//   "CKVC" | u32 format version | u32 header bytes | header JSON (utf8, padded to 4 bytes)
//   | tokens i32[nTokens] | kv f32 or f16 [layers * nTokens * 2 * kvDim]
// The header holds the chunk key, shapes and the sha256 of everything after the header. Files are
// written to a temp name and renamed, so a crash never leaves a half-written file under the real
// name. A file that is truncated, fails its checksum, has another format version or belongs to
// another key is deleted and reported as a miss (the caller recomputes). The directory is kept
// under a byte budget by deleting least recently used files (mtime is touched on every hit).

import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CachetError } from '../errors';
import { f16ToF32, f32ToF16 } from '../quant/half';

export const CHUNK_FILE_VERSION = 1;
const MAGIC = 0x43564b43; // "CKVC" read as u32 LE

/** Identity of one chunk's K/V: change any field and the cached K/V no longer applies. */
export interface ChunkKey {
  /** Model identity (e.g. architecture + name + weights file size/hash). */
  model: string;
  /** Tokenizer identity (vocab hash): the same text may tokenize differently elsewhere. */
  tokenizer: string;
  /** sha256 of the chunk's text. */
  contentHash: string;
  /** Chunk boundaries within its file (e.g. line or byte offsets). */
  start: number;
  end: number;
  /** Hash of the shared prefix the chunk was encoded after ('' for none). */
  prefixHash: string;
}

export interface ChunkEntry {
  key: ChunkKey;
  tokens: Int32Array;
  /** Position of the chunk's first token when it was encoded (= shared prefix length). */
  basePosition: number;
  layers: number;
  kvDim: number;
  /** K/V as backend.readSlots returns it: [layer][token][K|V][kvDim]; keys rotated for basePosition. */
  kv: Float32Array;
}

export function chunkKeyId(key: ChunkKey): string {
  const canon = JSON.stringify([key.model, key.tokenizer, key.contentHash, key.start, key.end, key.prefixHash]);
  return createHash('sha256').update(canon).digest('hex').slice(0, 40);
}

export function entryBytes(e: ChunkEntry): number {
  return e.kv.byteLength + e.tokens.byteLength;
}

export interface ChunkStoreOptions {
  dir: string;
  /** Keep the directory under this many bytes (LRU). */
  budgetBytes: number;
  /**
   * On-disk K/V type. 'f16' halves the files and is lossless when the device keeps f16 K/V (the
   * GPU path); the reference backend's f32 K/V gets rounded. Default 'f32'.
   */
  dtype?: 'f32' | 'f16';
}

export class ChunkStore {
  readonly dir: string;
  readonly budgetBytes: number;
  readonly dtype: 'f32' | 'f16';
  /** Files found damaged or stale and deleted. */
  discarded = 0;
  evictions = 0;

  constructor(options: ChunkStoreOptions) {
    this.dir = options.dir;
    this.budgetBytes = options.budgetBytes;
    this.dtype = options.dtype ?? 'f32';
    try {
      fs.mkdirSync(this.dir, { recursive: true });
    } catch (e) {
      throw new CachetError(`cannot create chunk cache directory ${this.dir}`, 'Check the path and its permissions, or disable the disk chunk cache.', { cause: e });
    }
  }

  fileFor(key: ChunkKey): string {
    return path.join(this.dir, `${chunkKeyId(key)}.kvc`);
  }

  /** Writes the entry atomically, then trims the directory to the budget. */
  put(e: ChunkEntry): void {
    const payload = encodePayload(e, this.dtype);
    if (payload.tokens.byteLength + payload.kv.byteLength > this.budgetBytes) return;
    const sha = createHash('sha256').update(payload.tokens).update(payload.kv).digest('hex');
    const header = Buffer.from(
      JSON.stringify({
        key: normalise(e.key),
        nTokens: e.tokens.length,
        basePosition: e.basePosition,
        layers: e.layers,
        kvDim: e.kvDim,
        dtype: this.dtype,
        sha256: sha,
      }),
      'utf8',
    );
    const padded = Math.ceil(header.length / 4) * 4;
    const head = Buffer.alloc(12 + padded, 0x20);
    head.writeUInt32LE(MAGIC, 0);
    head.writeUInt32LE(CHUNK_FILE_VERSION, 4);
    head.writeUInt32LE(padded, 8);
    header.copy(head, 12);
    const file = this.fileFor(e.key);
    const tmp = `${file}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
    const fd = fs.openSync(tmp, 'w');
    try {
      fs.writeSync(fd, head);
      fs.writeSync(fd, payload.tokens);
      fs.writeSync(fd, payload.kv);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
    this.trim(file);
  }

  /** The entry for key, or undefined when absent, damaged or stale (a damaged file is deleted). */
  get(key: ChunkKey): ChunkEntry | undefined {
    const file = this.fileFor(key);
    let bytes: Buffer;
    try {
      bytes = fs.readFileSync(file);
    } catch {
      return undefined;
    }
    const e = decode(bytes, key);
    if (!e) {
      this.discard(file);
      return undefined;
    }
    const now = new Date();
    try {
      fs.utimesSync(file, now, now);
    } catch {
      /* the file may have been trimmed by another writer; the entry is still good */
    }
    return e;
  }

  delete(key: ChunkKey): void {
    fs.rmSync(this.fileFor(key), { force: true });
  }

  /** Files and bytes currently on disk. */
  usage(): { entries: number; bytes: number } {
    let entries = 0;
    let bytes = 0;
    for (const f of this.files()) {
      entries++;
      bytes += f.size;
    }
    return { entries, bytes };
  }

  private files(): { file: string; size: number; mtime: number }[] {
    const out: { file: string; size: number; mtime: number }[] = [];
    let names: string[];
    try {
      names = fs.readdirSync(this.dir);
    } catch {
      return out;
    }
    for (const n of names) {
      if (!n.endsWith('.kvc')) continue;
      const file = path.join(this.dir, n);
      try {
        const st = fs.statSync(file);
        out.push({ file, size: st.size, mtime: st.mtimeMs });
      } catch {
        /* deleted meanwhile */
      }
    }
    return out;
  }

  /** Deletes least recently used files until the directory fits the budget (keeps `keep`). */
  private trim(keep: string): void {
    const files = this.files().sort((a, b) => a.mtime - b.mtime);
    let total = files.reduce((s, f) => s + f.size, 0);
    for (const f of files) {
      if (total <= this.budgetBytes) break;
      if (f.file === keep) continue;
      fs.rmSync(f.file, { force: true });
      total -= f.size;
      this.evictions++;
    }
  }

  private discard(file: string): void {
    fs.rmSync(file, { force: true });
    this.discarded++;
  }
}

function encodePayload(e: ChunkEntry, dtype: 'f32' | 'f16'): { tokens: Uint8Array; kv: Uint8Array } {
  let kv: Uint8Array;
  if (dtype === 'f16') {
    const h = new Uint16Array(e.kv.length);
    for (let i = 0; i < h.length; i++) h[i] = f32ToF16(e.kv[i]);
    kv = new Uint8Array(h.buffer);
  } else kv = new Uint8Array(e.kv.buffer, e.kv.byteOffset, e.kv.byteLength);
  return { tokens: new Uint8Array(e.tokens.buffer, e.tokens.byteOffset, e.tokens.byteLength), kv };
}

/** Parses and validates a chunk file; undefined when anything is off. */
function decode(bytes: Buffer, key: ChunkKey): ChunkEntry | undefined {
  if (bytes.length < 12 || bytes.readUInt32LE(0) !== MAGIC) return undefined;
  if (bytes.readUInt32LE(4) !== CHUNK_FILE_VERSION) return undefined;
  const hlen = bytes.readUInt32LE(8);
  if (12 + hlen > bytes.length) return undefined;
  let h: { key: ChunkKey; nTokens: number; basePosition: number; layers: number; kvDim: number; dtype?: string; sha256: string };
  try {
    h = JSON.parse(bytes.subarray(12, 12 + hlen).toString('utf8'));
  } catch {
    return undefined;
  }
  if (chunkKeyId(h.key) !== chunkKeyId(key) || JSON.stringify(h.key) !== JSON.stringify(normalise(key))) return undefined;
  const dtype = h.dtype ?? 'f32';
  if (dtype !== 'f32' && dtype !== 'f16') return undefined;
  const tokBytes = h.nTokens * 4;
  const nKv = h.layers * h.nTokens * 2 * h.kvDim;
  const kvBytes = nKv * (dtype === 'f16' ? 2 : 4);
  const body = bytes.subarray(12 + hlen);
  if (!Number.isInteger(tokBytes) || !Number.isInteger(kvBytes) || body.length !== tokBytes + kvBytes) return undefined;
  const sha = createHash('sha256').update(body).digest('hex');
  if (sha !== h.sha256) return undefined;
  // Copy out so the arrays are aligned and independent of the read buffer.
  const tokens = new Int32Array(h.nTokens);
  new Uint8Array(tokens.buffer).set(body.subarray(0, tokBytes));
  const kv = new Float32Array(nKv);
  if (dtype === 'f16') {
    const h16 = new Uint16Array(nKv);
    new Uint8Array(h16.buffer).set(body.subarray(tokBytes));
    for (let i = 0; i < nKv; i++) kv[i] = f16ToF32(h16[i]);
  } else new Uint8Array(kv.buffer).set(body.subarray(tokBytes));
  return { key: h.key, tokens, basePosition: h.basePosition, layers: h.layers, kvDim: h.kvDim, kv };
}

function normalise(k: ChunkKey): ChunkKey {
  return { model: k.model, tokenizer: k.tokenizer, contentHash: k.contentHash, start: k.start, end: k.end, prefixHash: k.prefixHash };
}
