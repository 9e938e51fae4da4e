// Model discovery: GGUFs that Ollama, LM Studio, the Hugging Face cache and configured paths keep,
// what each is (family, size, quantization, context, FIM), why one cannot be loaded, and whether
// it fits in memory.

import { freemem } from 'node:os';
import { checkFit, type FitOptions } from './fit';
import { inspectCandidate } from './inspect';
import { findCandidates, type SourceOptions } from './sources';
import type { DiscoveredModelWithFit } from './types';

export type {
  ModelSource, ProblemKind, ModelProblem, ModelCandidate, ModelInfo, DiscoveredModel, DiscoveredModelWithFit, MemoryEstimate, FitReport,
} from './types';
export { inspectCandidate, splitPart, formatParameters } from './inspect';
export {
  findCandidates, findGgufFiles, ollamaCandidates, ollamaDirs, ollamaName, lmStudioCandidates, lmStudioDirs, huggingFaceCandidates,
  huggingFaceHubDir, configuredCandidates,
} from './sources';
export type { SourceOptions } from './sources';
export { estimateMemory, checkFit, formatBytes } from './fit';
export { summarizeModel } from './summary';
export type { FitOptions } from './fit';

export interface DiscoverOptions extends SourceOptions, FitOptions {
  /** Memory available to the model (default os.freemem()); pass the GPU's for a GPU backend. */
  freeBytes?: number;
}

/** Finds, inspects and fit-checks every local GGUF; loadable models first, then by name. */
export function discoverModels(o: DiscoverOptions = {}): DiscoveredModelWithFit[] {
  const free = o.freeBytes ?? freemem();
  const out: DiscoveredModelWithFit[] = findCandidates(o).map((c) => {
    const m = inspectCandidate(c);
    const fit = m.loadable && m.info ? checkFit(m.info, free, o) : undefined;
    return fit ? { ...m, fit } : m;
  });
  return out.sort((a, b) => Number(b.loadable) - Number(a.loadable) || a.displayName.localeCompare(b.displayName));
}
