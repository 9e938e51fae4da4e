import type { GgmlType } from '../quant/types';

/** GGUF metadata value types, numbered as in gguf.h. */
export enum GgufValueType {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
}

/** A plain metadata value. 64-bit integers are numbers when safe, bigints otherwise. */
export type GgufValue = number | bigint | boolean | string | GgufValue[];

/** A metadata entry with its stored type, so files round-trip through the writer unchanged. */
export interface GgufMetadataEntry {
  type: GgufValueType;
  value: GgufValue;
  /** Element type when type is ARRAY (nested arrays: ARRAY, elements are entries' values). */
  arrayType?: GgufValueType;
}

export interface GgufTensorInfo {
  name: string;
  /** ggml order: dims[0] is the innermost (row length). */
  dims: number[];
  type: GgmlType;
  /** Absolute byte offset of the tensor's data in the file. */
  offset: number;
  byteLength: number;
}

export const GGUF_MAGIC = 0x46554747; // "GGUF" little-endian
export const GGUF_DEFAULT_ALIGNMENT = 32;
