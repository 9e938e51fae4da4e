// Backend registry: one place that maps a backend kind to its factory. Other backends register
// here as they land (webgpu, onnx).

import { BackendUnavailableError } from '../errors';
import type { ModelWeights } from '../model/types';
import { createReferenceBackend } from './reference';
import { createWebGpuBackend } from './webgpu';
import { createOnnxBackend } from './onnx';
import type { Backend, BackendFactory, BackendOptions } from './types';

export type { Backend, BackendFactory, BackendOptions, ForwardResult, MemoryStats, SequenceBatch } from './types';

const factories = new Map<string, BackendFactory>([['reference', createReferenceBackend], ['webgpu', createWebGpuBackend], ['onnx', createOnnxBackend]]);

/** Adds (or replaces) a backend kind; backends register themselves from their own index. */
export function registerBackend(kind: string, factory: BackendFactory): void {
  factories.set(kind, factory);
}

export function backendKinds(): string[] {
  return [...factories.keys()];
}

export async function createBackend(kind: string, weights: ModelWeights, options: BackendOptions): Promise<Backend> {
  const factory = factories.get(kind);
  if (!factory) {
    throw new BackendUnavailableError(`backend '${kind}' is not available`, `Known backends: ${backendKinds().join(', ')}.`);
  }
  return factory(weights, options);
}
