// GGUF v3 writer. Tensor data is written one tensor at a time, so a large model can be produced
// without holding it all in memory (pass a function that yields each tensor's bytes on demand).

import { closeSync, openSync, renameSync, writeSync } from 'node:fs';
import { BLOCK_LAYOUTS, GgmlType } from '../quant/types';
import { GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC, GgufValueType, type GgufMetadataEntry, type GgufValue } from './types';

export interface GgufTensorSpec {
  name: string;
  type: GgmlType;
  /** ggml order: dims[0] is the row length. */
  dims: number[];
  data: Uint8Array | (() => Uint8Array);
}

export interface GgufWriteSpec {
  metadata: Array<[string, GgufMetadataEntry]> | Map<string, GgufMetadataEntry>;
  tensors: GgufTensorSpec[];
  alignment?: number;
}

/** Growable little-endian byte buffer for the header. */
class ByteWriter {
  private buf = new Uint8Array(1 << 16);
  private view = new DataView(this.buf.buffer);
  length = 0;
  private readonly encoder = new TextEncoder();
  private grow(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.length + n) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
  u8(v: number): void { this.grow(1); this.view.setUint8(this.length, v); this.length += 1; }
  i8(v: number): void { this.grow(1); this.view.setInt8(this.length, v); this.length += 1; }
  u16(v: number): void { this.grow(2); this.view.setUint16(this.length, v, true); this.length += 2; }
  i16(v: number): void { this.grow(2); this.view.setInt16(this.length, v, true); this.length += 2; }
  u32(v: number): void { this.grow(4); this.view.setUint32(this.length, v, true); this.length += 4; }
  i32(v: number): void { this.grow(4); this.view.setInt32(this.length, v, true); this.length += 4; }
  f32(v: number): void { this.grow(4); this.view.setFloat32(this.length, v, true); this.length += 4; }
  f64(v: number): void { this.grow(8); this.view.setFloat64(this.length, v, true); this.length += 8; }
  u64(v: number | bigint): void { this.grow(8); this.view.setBigUint64(this.length, BigInt(v), true); this.length += 8; }
  i64(v: number | bigint): void { this.grow(8); this.view.setBigInt64(this.length, BigInt(v), true); this.length += 8; }
  bytes(b: Uint8Array): void { this.grow(b.length); this.buf.set(b, this.length); this.length += b.length; }
  string(s: string): void { const b = this.encoder.encode(s); this.u64(b.length); this.bytes(b); }
  pad(alignment: number): void { while (this.length % alignment !== 0) this.u8(0); }
  result(): Uint8Array { return this.buf.subarray(0, this.length); }
}

function writeValue(w: ByteWriter, type: GgufValueType, value: GgufValue, arrayType?: GgufValueType): void {
  switch (type) {
    case GgufValueType.UINT8: return w.u8(value as number);
    case GgufValueType.INT8: return w.i8(value as number);
    case GgufValueType.UINT16: return w.u16(value as number);
    case GgufValueType.INT16: return w.i16(value as number);
    case GgufValueType.UINT32: return w.u32(value as number);
    case GgufValueType.INT32: return w.i32(value as number);
    case GgufValueType.FLOAT32: return w.f32(value as number);
    case GgufValueType.BOOL: return w.u8(value ? 1 : 0);
    case GgufValueType.STRING: return w.string(value as string);
    case GgufValueType.UINT64: return w.u64(value as number | bigint);
    case GgufValueType.INT64: return w.i64(value as number | bigint);
    case GgufValueType.FLOAT64: return w.f64(value as number);
    case GgufValueType.ARRAY: {
      if (arrayType === undefined) throw new TypeError('array metadata needs an element type');
      if (arrayType === GgufValueType.ARRAY) throw new TypeError('nested arrays need per-level element types; not supported by the writer');
      const items = value as GgufValue[];
      w.u32(arrayType);
      w.u64(items.length);
      for (const item of items) writeValue(w, arrayType, item);
      return;
    }
    default:
      throw new TypeError(`unknown metadata value type ${type}`);
  }
}

function tensorBytes(t: GgufTensorSpec): number {
  const layout = BLOCK_LAYOUTS[t.type];
  if (!layout) throw new TypeError(`tensor ${t.name}: unsupported type ${GgmlType[t.type] ?? t.type}`);
  const n = t.dims.reduce((a, b) => a * b, 1);
  if (t.dims[0]! % layout.blockSize !== 0) throw new RangeError(`tensor ${t.name}: row length ${t.dims[0]} is not a multiple of ${layout.blockSize}`);
  return (n / layout.blockSize) * layout.typeSize;
}

/** Header bytes (padded to the alignment) and each tensor's data offset relative to the data section. */
function buildHeader(spec: GgufWriteSpec): { header: Uint8Array; offsets: number[]; sizes: number[]; alignment: number } {
  const entries = spec.metadata instanceof Map ? [...spec.metadata] : spec.metadata;
  let alignment = spec.alignment ?? GGUF_DEFAULT_ALIGNMENT;
  const alignEntry = entries.find(([k]) => k === 'general.alignment');
  if (alignEntry) alignment = Number(alignEntry[1].value);
  const w = new ByteWriter();
  w.u32(GGUF_MAGIC);
  w.u32(3);
  w.u64(spec.tensors.length);
  w.u64(entries.length);
  for (const [key, e] of entries) {
    w.string(key);
    w.u32(e.type);
    writeValue(w, e.type, e.value, e.arrayType);
  }
  const offsets: number[] = [];
  const sizes: number[] = [];
  let offset = 0;
  for (const t of spec.tensors) {
    const size = tensorBytes(t);
    w.string(t.name);
    w.u32(t.dims.length);
    for (const d of t.dims) w.u64(d);
    w.u32(t.type);
    w.u64(offset);
    offsets.push(offset);
    sizes.push(size);
    offset += Math.ceil(size / alignment) * alignment;
  }
  w.pad(alignment);
  return { header: w.result(), offsets, sizes, alignment };
}

function dataOf(t: GgufTensorSpec, size: number): Uint8Array {
  const data = typeof t.data === 'function' ? t.data() : t.data;
  if (data.length !== size) throw new RangeError(`tensor ${t.name}: ${data.length} bytes given, ${size} expected for ${GgmlType[t.type]} ${t.dims.join('x')}`);
  return data;
}

/** Writes a GGUF file atomically (temp file, then rename). */
export function writeGguf(path: string, spec: GgufWriteSpec): void {
  const { header, sizes, alignment } = buildHeader(spec);
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  try {
    writeAll(fd, header);
    const zeros = new Uint8Array(alignment);
    spec.tensors.forEach((t, i) => {
      const size = sizes[i]!;
      writeAll(fd, dataOf(t, size));
      const pad = (alignment - (size % alignment)) % alignment;
      if (pad) writeAll(fd, zeros.subarray(0, pad));
    });
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

function writeAll(fd: number, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.length) done += writeSync(fd, bytes, done, bytes.length - done);
}

/** The whole file in memory (small models in tests). */
export function ggufToBytes(spec: GgufWriteSpec): Uint8Array {
  const { header, offsets, sizes, alignment } = buildHeader(spec);
  const end = spec.tensors.length ? offsets[offsets.length - 1]! + sizes[sizes.length - 1]! : 0;
  const last = Math.ceil(end / alignment) * alignment; // padded like the file writer
  const out = new Uint8Array(header.length + last);
  out.set(header);
  spec.tensors.forEach((t, i) => out.set(dataOf(t, sizes[i]!), header.length + offsets[i]!));
  return out;
}

/** Fluent builder: metadata in insertion order, then tensors. */
export class GgufBuilder {
  private readonly metadata = new Map<string, GgufMetadataEntry>();
  private readonly tensors: GgufTensorSpec[] = [];
  alignment = GGUF_DEFAULT_ALIGNMENT;

  set(key: string, entry: GgufMetadataEntry): this { this.metadata.set(key, entry); return this; }
  string(key: string, value: string): this { return this.set(key, { type: GgufValueType.STRING, value }); }
  u32(key: string, value: number): this { return this.set(key, { type: GgufValueType.UINT32, value }); }
  i32(key: string, value: number): this { return this.set(key, { type: GgufValueType.INT32, value }); }
  u64(key: string, value: number | bigint): this { return this.set(key, { type: GgufValueType.UINT64, value }); }
  f32(key: string, value: number): this { return this.set(key, { type: GgufValueType.FLOAT32, value }); }
  bool(key: string, value: boolean): this { return this.set(key, { type: GgufValueType.BOOL, value }); }
  array(key: string, arrayType: GgufValueType, values: GgufValue[]): this {
    return this.set(key, { type: GgufValueType.ARRAY, arrayType, value: values });
  }
  /** Copies entries (e.g. every `tokenizer.` key of a vocab file) from another file's metadata. */
  copyFrom(metadata: Map<string, GgufMetadataEntry>, filter: (key: string) => boolean): this {
    for (const [k, e] of metadata) if (filter(k)) this.metadata.set(k, e);
    return this;
  }
  tensor(name: string, type: GgmlType, dims: number[], data: GgufTensorSpec['data']): this {
    this.tensors.push({ name, type, dims, data });
    return this;
  }
  spec(): GgufWriteSpec {
    return { metadata: this.metadata, tensors: this.tensors, alignment: this.alignment };
  }
  write(path: string): void { writeGguf(path, this.spec()); }
  toBytes(): Uint8Array { return ggufToBytes(this.spec()); }
}
