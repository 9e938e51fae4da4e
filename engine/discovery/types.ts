// What model discovery reports: where a GGUF was found, what it is, and whether Cachet can run it.

export type ModelSource = 'ollama' | 'lmstudio' | 'huggingface' | 'configured';

/** Why a found file cannot be loaded. */
export type ProblemKind =
  | 'unreadable' // cannot open or stat the file
  | 'bad-magic' // not a GGUF file
  | 'unsupported-version' // GGUF version other than 2 or 3
  | 'truncated' // header or tensor data runs past the end of the file
  | 'corrupt' // malformed header
  | 'unsupported-tensor-type' // e.g. IQ2_XS: no dequantizer in Cachet
  | 'not-a-model' // no architecture or no tensors (vocab-only, LoRA adapter)
  | 'unknown-arch' // an architecture Cachet does not run (clip projector, mamba, ...)
  | 'unsupported' // a supported arch with features Cachet lacks (rope_freqs, odd heads)
  | 'split' // first part of a multi-file GGUF
  | 'missing-blob'; // an Ollama manifest whose model layer is not on disk

export interface ModelProblem {
  kind: ProblemKind;
  message: string;
  /** What the user can do about it. */
  hint: string;
}

/** A GGUF file some tool keeps on disk. */
export interface ModelCandidate {
  path: string;
  source: ModelSource;
  /** How the owning tool names it: 'qwen2.5-coder:1.5b' (Ollama), 'org/repo/file.gguf' (LM Studio, HF). */
  displayName: string;
  /** Set where the candidate is known to be unusable before opening it (missing blob, split part). */
  problem?: ModelProblem;
  /** Extra remarks from the source (e.g. an Ollama LoRA adapter layer that Cachet ignores). */
  notes?: string[];
}

export interface ModelInfo {
  arch: string;
  /** general.basename / general.name, or the architecture. */
  family: string;
  name?: string;
  /** general.size_label, or derived from the parameter count ('1.5B', '35M'). */
  sizeLabel: string;
  parameters: number;
  /** 'Q4_K_M', 'Q8_0', 'F16', ... from general.file_type, else the dominant weight type. */
  quantization: string;
  /** Bytes of tensor data (what the weights occupy once loaded as stored). */
  weightBytes: number;
  contextLength?: number;
  layers?: number;
  embedding?: number;
  feedForward?: number;
  heads?: number;
  kvHeads?: number;
  headDim?: number;
  vocabSize?: number;
  /** Fill-in-the-middle tokens present (prefix, suffix and middle). */
  fim: boolean;
  fimTokens?: { prefix: number; suffix: number; middle: number };
  tokenizer?: string;
}

export interface DiscoveredModel extends ModelCandidate {
  bytes: number;
  /** True when Cachet can load it (no problem). */
  loadable: boolean;
  /** Present whenever the header could be read, also for models Cachet cannot run. */
  info?: ModelInfo;
}

/** Bytes a model needs at a context length, by part. */
export interface MemoryEstimate {
  context: number;
  weights: number;
  /** K and V for every layer at `context` tokens. */
  kv: number;
  /** Activations for one prompt chunk, attention tile, logits, runtime overhead. */
  scratch: number;
  total: number;
  /** KV bytes per token (all layers, K and V). */
  kvPerToken: number;
}

export interface FitReport {
  /** 'fits' with room to spare, 'tight' within 25% of the budget, 'too-big' over it. */
  verdict: 'fits' | 'tight' | 'too-big';
  estimate: MemoryEstimate;
  /** Bytes considered available (free memory x headroom). */
  budget: number;
  /** Largest context (multiple of 256, up to the model's) that fits the budget; 0 if none does. */
  maxContext: number;
  suggestions: string[];
}

export interface DiscoveredModelWithFit extends DiscoveredModel {
  fit?: FitReport;
}
