// The slice of engine/gguf's GgufFile that model/ needs. Kept structural so config parsing can be
// tested against plain objects and so model/ does not depend on how the file is read.

import type { GgmlType } from '../quant/types';

export interface GgufTensorLike {
  name: string;
  /** ggml order: dims[0] is a row's length. */
  dims: number[];
  type: GgmlType;
}

export interface GgufLike {
  /** File path (or a name) used in error messages. */
  path?: string;
  /** Plain JS value of a metadata key, or undefined when absent. */
  get(key: string): unknown;
  tensors: GgufTensorLike[];
  readTensorData(nameOrInfo: string | GgufTensorLike): Uint8Array;
}
