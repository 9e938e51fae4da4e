// ggml tensor types, numbered exactly as in ggml.h (GGUF stores these numbers).
export enum GgmlType {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  BF16 = 30,
}

/** Elements per block and bytes per block, as ggml's type traits. */
export interface BlockLayout {
  readonly blockSize: number;
  readonly typeSize: number;
}

export const BLOCK_LAYOUTS: Partial<Record<GgmlType, BlockLayout>> = {
  [GgmlType.F32]: { blockSize: 1, typeSize: 4 },
  [GgmlType.F16]: { blockSize: 1, typeSize: 2 },
  [GgmlType.BF16]: { blockSize: 1, typeSize: 2 },
  [GgmlType.Q4_0]: { blockSize: 32, typeSize: 18 },
  [GgmlType.Q4_1]: { blockSize: 32, typeSize: 20 },
  [GgmlType.Q5_0]: { blockSize: 32, typeSize: 22 },
  [GgmlType.Q5_1]: { blockSize: 32, typeSize: 24 },
  [GgmlType.Q8_0]: { blockSize: 32, typeSize: 34 },
  [GgmlType.Q4_K]: { blockSize: 256, typeSize: 144 },
  [GgmlType.Q5_K]: { blockSize: 256, typeSize: 176 },
  [GgmlType.Q6_K]: { blockSize: 256, typeSize: 210 },
  [GgmlType.I8]: { blockSize: 1, typeSize: 1 },
  [GgmlType.I16]: { blockSize: 1, typeSize: 2 },
  [GgmlType.I32]: { blockSize: 1, typeSize: 4 },
  [GgmlType.F64]: { blockSize: 1, typeSize: 8 },
};

/** Bytes for `n` elements of `type`; throws if n is not a whole number of blocks. */
export function bytesFor(type: GgmlType, n: number): number {
  const l = BLOCK_LAYOUTS[type];
  if (!l) throw new Error(`unsupported ggml type ${GgmlType[type] ?? type}`);
  if (n % l.blockSize !== 0) throw new Error(`${n} elements is not a multiple of ${GgmlType[type]} block size ${l.blockSize}`);
  return (n / l.blockSize) * l.typeSize;
}
