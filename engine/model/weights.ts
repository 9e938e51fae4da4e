// ModelWeights over a GGUF file: tensors are read from disk when asked for, not at load.

import { ModelNotSupportedError } from '../errors';
import { configFromGguf } from './config';
import type { GgufLike } from './gguf-like';
import type { ModelConfig, ModelWeights, TensorView } from './types';

export function loadWeights(gguf: GgufLike, config: ModelConfig = configFromGguf(gguf)): ModelWeights {
  const byName = new Map(gguf.tensors.map((t) => [t.name, t]));
  return {
    config,
    has: (name) => byName.has(name),
    names: () => [...byName.keys()],
    get(name): TensorView {
      const info = byName.get(name);
      if (!info) {
        throw new ModelNotSupportedError(
          `${gguf.path ?? 'model.gguf'}: missing tensor ${name}`,
          'The file is incomplete or was converted for a different architecture; re-download or re-convert it.',
        );
      }
      return { name, type: info.type, dims: info.dims.slice(), data: gguf.readTensorData(info) };
    },
  };
}

/** Weights held in memory (tests, converted models): same interface, no file behind it. */
export function weightsFromTensors(config: ModelConfig, tensors: TensorView[]): ModelWeights {
  const byName = new Map(tensors.map((t) => [t.name, t]));
  return {
    config,
    has: (name) => byName.has(name),
    names: () => [...byName.keys()],
    get(name) {
      const t = byName.get(name);
      if (!t) throw new ModelNotSupportedError(`missing tensor ${name}`, 'Pass every tensor the architecture needs.');
      return t;
    },
  };
}
