// GGUF v2/v3 reader. Parses the header (metadata + tensor infos) and validates it; tensor data is
// read lazily by offset so a multi-gigabyte model never enters the JS heap whole.

import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { basename } from 'node:path';
import { GgufError } from '../errors';
import { BLOCK_LAYOUTS, GgmlType } from '../quant/types';
import {
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_MAGIC,
  GgufValueType,
  type GgufMetadataEntry,
  type GgufTensorInfo,
  type GgufValue,
} from './types';

/** Random access to the file's bytes: a file descriptor or an in-memory buffer. */
interface ByteSource {
  readonly size: number;
  read(position: number, length: number): Uint8Array;
  close(): void;
}

class FileSource implements ByteSource {
  readonly size: number;
  private fd: number | undefined;
  constructor(path: string) {
    this.fd = openSync(path, 'r');
    this.size = fstatSync(this.fd).size;
  }
  read(position: number, length: number): Uint8Array {
    if (this.fd === undefined) throw new Error('GGUF file is closed');
    const out = new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const n = readSync(this.fd, out, done, length - done, position + done);
      if (n <= 0) break;
      done += n;
    }
    return done === length ? out : out.subarray(0, done);
  }
  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

class MemorySource implements ByteSource {
  constructor(private readonly bytes: Uint8Array) {}
  get size(): number {
    return this.bytes.length;
  }
  read(position: number, length: number): Uint8Array {
    return this.bytes.subarray(position, Math.min(this.bytes.length, position + length));
  }
  close(): void {}
}

class Truncated extends Error {}

/** Sequential little-endian cursor over a ByteSource, refilled in chunks. */
class Cursor {
  private buf: Uint8Array = new Uint8Array(0);
  private view = new DataView(this.buf.buffer);
  private bufStart = 0;
  pos = 0;
  // ignoreBOM: a token may be exactly U+FEFF (llama-spm, phi-3); the default strips it.
  private readonly decoder = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });
  constructor(private readonly src: ByteSource) {}

  private ensure(n: number): number {
    const rel = this.pos - this.bufStart;
    if (rel + n <= this.buf.length) return rel;
    if (this.pos + n > this.src.size) throw new Truncated();
    const want = Math.max(n, 1 << 20);
    this.buf = this.src.read(this.pos, Math.min(want, this.src.size - this.pos));
    this.view = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
    this.bufStart = this.pos;
    return 0;
  }
  u8(): number { const r = this.ensure(1); this.pos += 1; return this.view.getUint8(r); }
  i8(): number { const r = this.ensure(1); this.pos += 1; return this.view.getInt8(r); }
  u16(): number { const r = this.ensure(2); this.pos += 2; return this.view.getUint16(r, true); }
  i16(): number { const r = this.ensure(2); this.pos += 2; return this.view.getInt16(r, true); }
  u32(): number { const r = this.ensure(4); this.pos += 4; return this.view.getUint32(r, true); }
  i32(): number { const r = this.ensure(4); this.pos += 4; return this.view.getInt32(r, true); }
  f32(): number { const r = this.ensure(4); this.pos += 4; return this.view.getFloat32(r, true); }
  f64(): number { const r = this.ensure(8); this.pos += 8; return this.view.getFloat64(r, true); }
  u64(): number | bigint { const r = this.ensure(8); this.pos += 8; return narrow(this.view.getBigUint64(r, true)); }
  i64(): number | bigint { const r = this.ensure(8); this.pos += 8; return narrow(this.view.getBigInt64(r, true)); }
  /** A u64 that must be a usable count or size. */
  count(what: string, limit: number): number {
    const v = this.u64();
    if (typeof v === 'bigint' || v > limit) throw new RangeError(`${what} ${v} is implausibly large`);
    return v;
  }
  string(): string {
    const len = this.count('string length', this.src.size);
    const r = this.ensure(len);
    this.pos += len;
    return this.decoder.decode(this.buf.subarray(r, r + len));
  }
}

function narrow(v: bigint): number | bigint {
  return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : v;
}

function readScalar(c: Cursor, type: GgufValueType): GgufValue {
  switch (type) {
    case GgufValueType.UINT8: return c.u8();
    case GgufValueType.INT8: return c.i8();
    case GgufValueType.UINT16: return c.u16();
    case GgufValueType.INT16: return c.i16();
    case GgufValueType.UINT32: return c.u32();
    case GgufValueType.INT32: return c.i32();
    case GgufValueType.FLOAT32: return c.f32();
    case GgufValueType.BOOL: return c.u8() !== 0;
    case GgufValueType.STRING: return c.string();
    case GgufValueType.UINT64: return c.u64();
    case GgufValueType.INT64: return c.i64();
    case GgufValueType.FLOAT64: return c.f64();
    default: throw new TypeError(`unknown metadata value type ${type}`);
  }
}

function readEntry(c: Cursor, type: GgufValueType, maxCount: number): GgufMetadataEntry {
  if (type !== GgufValueType.ARRAY) return { type, value: readScalar(c, type) };
  const arrayType = c.u32() as GgufValueType;
  const n = c.count('array length', maxCount);
  const values: GgufValue[] = new Array(n);
  for (let i = 0; i < n; i++) values[i] = readEntry(c, arrayType, maxCount).value;
  return { type, arrayType, value: values };
}

export class GgufFile {
  readonly path: string;
  readonly version: number;
  readonly alignment: number;
  /** Absolute offset where the tensor data section begins. */
  readonly dataOffset: number;
  readonly fileSize: number;
  readonly metadata: Map<string, GgufMetadataEntry>;
  readonly tensors: GgufTensorInfo[];
  private readonly byName: Map<string, GgufTensorInfo>;
  private src: ByteSource | undefined;

  /** Use openGguf / parseGguf. */
  constructor(path: string, src: ByteSource) {
    this.path = path;
    this.src = src;
    this.fileSize = src.size;
    const fail = (problem: string, hint: string, cause?: unknown): never => {
      src.close();
      throw new GgufError(path, problem, hint, { cause });
    };
    const c = new Cursor(src);
    let version = 0;
    const metadata = new Map<string, GgufMetadataEntry>();
    const tensors: GgufTensorInfo[] = [];
    try {
      if (src.size < 4 || c.u32() !== GGUF_MAGIC) {
        fail('not a GGUF file (bad magic)', 'Choose a .gguf model file (llama.cpp, Ollama and LM Studio use this format).');
      }
      version = c.u32();
      if (version !== 2 && version !== 3) {
        fail(`GGUF version ${version} is not supported (need 2 or 3)`, 'Re-convert or re-download the model with a current llama.cpp.');
      }
      const nTensors = c.count('tensor count', 1 << 24);
      const nKv = c.count('metadata count', 1 << 24);
      for (let i = 0; i < nKv; i++) {
        const key = c.string();
        const type = c.u32() as GgufValueType;
        metadata.set(key, readEntry(c, type, src.size));
      }
      for (let i = 0; i < nTensors; i++) {
        const name = c.string();
        const nDims = c.u32();
        if (nDims > 4) fail(`tensor ${name} has ${nDims} dimensions (max 4)`, 'The file is damaged; download it again.');
        const dims: number[] = [];
        for (let d = 0; d < nDims; d++) dims.push(c.count(`tensor ${name} dimension`, 2 ** 40));
        const type = c.u32() as GgmlType;
        const rel = c.count(`tensor ${name} offset`, src.size);
        tensors.push({ name, dims, type, offset: rel, byteLength: 0 });
      }
    } catch (e) {
      if (e instanceof GgufError) throw e;
      if (e instanceof Truncated) {
        fail(`truncated: the header ends past the end of the file (${src.size} bytes)`, 'The download is incomplete; download the model again.', e);
      }
      fail(`malformed header: ${(e as Error).message}`, 'The file is damaged or not a GGUF model; download it again.', e);
    }
    const alignEntry = metadata.get('general.alignment');
    const alignment = alignEntry ? Number(alignEntry.value) : GGUF_DEFAULT_ALIGNMENT;
    if (!Number.isInteger(alignment) || alignment <= 0 || (alignment & (alignment - 1)) !== 0) {
      fail(`general.alignment ${alignment} is not a power of two`, 'The file is damaged; download it again.');
    }
    const dataOffset = Math.ceil(c.pos / alignment) * alignment;
    for (const t of tensors) {
      const layout = BLOCK_LAYOUTS[t.type];
      if (!layout) {
        fail(`tensor ${t.name} has unsupported type ${GgmlType[t.type] ?? t.type}`,
          'Use a model quantized as F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K or Q6_K.');
      }
      const n = t.dims.reduce((a, b) => a * b, 1);
      if ((t.dims[0] ?? 1) % layout!.blockSize !== 0) {
        fail(`tensor ${t.name}: row length ${t.dims[0]} is not a multiple of the ${GgmlType[t.type]} block size ${layout!.blockSize}`,
          'The file is damaged; download it again.');
      }
      t.byteLength = (n / layout!.blockSize) * layout!.typeSize;
      t.offset += dataOffset;
      if (t.offset % alignment !== 0) {
        fail(`tensor ${t.name} data is not aligned to ${alignment}`, 'The file is damaged; download it again.');
      }
      if (t.offset + t.byteLength > src.size) {
        fail(`truncated: tensor ${t.name} ends at byte ${t.offset + t.byteLength} but the file has ${src.size}`,
          'The download is incomplete; download the model again.');
      }
    }
    this.version = version;
    this.alignment = alignment;
    this.dataOffset = dataOffset;
    this.metadata = metadata;
    this.tensors = tensors;
    this.byName = new Map(tensors.map((t) => [t.name, t]));
  }

  get name(): string {
    return basename(this.path);
  }

  /** Plain value of a metadata key, or undefined. */
  get(key: string): GgufValue | undefined {
    return this.metadata.get(key)?.value;
  }

  getString(key: string): string | undefined {
    const v = this.get(key);
    return typeof v === 'string' ? v : undefined;
  }

  getNumber(key: string): number | undefined {
    const v = this.get(key);
    if (typeof v === 'number') return v;
    if (typeof v === 'bigint') return Number(v);
    if (typeof v === 'boolean') return v ? 1 : 0;
    return undefined;
  }

  getBool(key: string): boolean | undefined {
    const v = this.get(key);
    return typeof v === 'boolean' ? v : typeof v === 'number' ? v !== 0 : undefined;
  }

  getArray(key: string): GgufValue[] | undefined {
    const v = this.get(key);
    return Array.isArray(v) ? v : undefined;
  }

  /** Like get, but throws a GgufError naming the missing key. */
  require(key: string): GgufValue {
    const v = this.get(key);
    if (v === undefined) {
      throw new GgufError(this.path, `missing metadata key ${key}`, 'The file is incomplete or was converted by an old tool; re-convert it with a current llama.cpp.');
    }
    return v;
  }

  tensor(name: string): GgufTensorInfo | undefined {
    return this.byName.get(name);
  }

  /** Reads one tensor's raw bytes (in its stored format). */
  readTensorData(nameOrInfo: string | GgufTensorInfo): Uint8Array {
    const info = typeof nameOrInfo === 'string' ? this.byName.get(nameOrInfo) : nameOrInfo;
    if (!info) throw new GgufError(this.path, `no tensor named ${nameOrInfo as string}`, 'The model file lacks a tensor this architecture needs; it may be damaged or of another architecture.');
    if (!this.src) throw new GgufError(this.path, 'file is closed', 'Reopen the model.');
    const bytes = this.src.read(info.offset, info.byteLength);
    if (bytes.length !== info.byteLength) {
      throw new GgufError(this.path, `truncated while reading tensor ${info.name}`, 'The file changed on disk or is incomplete; download it again.');
    }
    return bytes;
  }

  close(): void {
    this.src?.close();
    this.src = undefined;
  }
}

/** Opens a GGUF file, reading and validating only its header. */
export function openGguf(path: string): GgufFile {
  let src: FileSource;
  try {
    src = new FileSource(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const hint = code === 'ENOENT' ? 'Check the model path in settings (cachet.modelPath).'
      : code === 'EISDIR' ? 'Point to a .gguf file, not a folder.'
      : 'Check the file exists and is readable.';
    throw new GgufError(path, `cannot open (${code ?? (e as Error).message})`, hint, { cause: e });
  }
  return new GgufFile(path, src);
}

/** Parses a GGUF held in memory. */
export function parseGguf(bytes: Uint8Array, name = '<memory>'): GgufFile {
  // A Node Buffer's slice() is a view, not a copy: hand out plain Uint8Arrays only.
  const plain = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return new GgufFile(name, new MemorySource(plain));
}
