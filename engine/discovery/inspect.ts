// Reads a GGUF's header and says what model it is and whether Cachet can run it. Only the header
// is read (metadata and tensor table); tensor data stays on disk.

import { statSync } from 'node:fs';
import { CachetError, GgufError } from '../errors';
import { openGguf, type GgufFile } from '../gguf';
import { configFromGguf, type ModelConfig } from '../model';
import { GgmlType } from '../quant';
import { Vocab, vocabSpecFromMetadata } from '../tokenizer';
import type { DiscoveredModel, ModelCandidate, ModelInfo, ModelProblem, ProblemKind } from './types';

/** llama.cpp's llama_ftype values (general.file_type) and the names its tools print. */
const FILE_TYPES: Record<number, string> = {
  0: 'F32', 1: 'F16', 2: 'Q4_0', 3: 'Q4_1', 7: 'Q8_0', 8: 'Q5_0', 9: 'Q5_1', 10: 'Q2_K', 11: 'Q3_K_S',
  12: 'Q3_K_M', 13: 'Q3_K_L', 14: 'Q4_K_S', 15: 'Q4_K_M', 16: 'Q5_K_S', 17: 'Q5_K_M', 18: 'Q6_K',
  19: 'IQ2_XXS', 20: 'IQ2_XS', 21: 'Q2_K_S', 22: 'IQ3_XS', 23: 'IQ3_XXS', 24: 'IQ1_S', 25: 'IQ4_NL',
  26: 'IQ3_S', 27: 'IQ3_M', 28: 'IQ2_S', 29: 'IQ2_M', 30: 'IQ4_XS', 31: 'IQ1_M', 32: 'BF16',
  36: 'TQ1_0', 37: 'TQ2_0',
};

const SPLIT_NAME = /-(\d{5})-of-(\d{5})\.gguf$/i;

/** For '...-00001-of-00003.gguf' returns {index: 1, count: 3}. */
export function splitPart(path: string): { index: number; count: number } | undefined {
  const m = SPLIT_NAME.exec(path);
  return m ? { index: Number(m[1]), count: Number(m[2]) } : undefined;
}

export function splitProblem(path: string, count: number): ModelProblem {
  return {
    kind: 'split',
    message: `${path}: part 1 of a GGUF split into ${count} files`,
    hint: 'Cachet loads single-file GGUFs: merge the parts with `llama-gguf-split --merge FIRST-PART.gguf merged.gguf` and point Cachet at the result.',
  };
}

/** '1.5B', '35M', '6.7B' from a parameter count. */
export function formatParameters(n: number): string {
  const fmt = (v: number, unit: string) => `${v >= 10 ? Math.round(v) : Math.round(v * 10) / 10}${unit}`;
  if (n >= 1e9) return fmt(n / 1e9, 'B');
  if (n >= 1e6) return fmt(n / 1e6, 'M');
  if (n >= 1e3) return fmt(n / 1e3, 'K');
  return String(n);
}

function classifyGgufError(e: GgufError): ProblemKind {
  const m = e.message;
  if (m.includes('bad magic')) return 'bad-magic';
  if (m.includes('truncated')) return 'truncated';
  if (m.includes('unsupported type')) return 'unsupported-tensor-type';
  if (m.includes('GGUF version')) return 'unsupported-version';
  if (m.includes('cannot open')) return 'unreadable';
  return 'corrupt';
}

function problemOf(kind: ProblemKind, e: CachetError): ModelProblem {
  return { kind, message: e.message, hint: e.hint };
}

/** Most bytes among 2-D weights decides the quantization when general.file_type is absent. */
function dominantType(g: GgufFile): string {
  const bytes = new Map<GgmlType, number>();
  for (const t of g.tensors) if (t.dims.length >= 2) bytes.set(t.type, (bytes.get(t.type) ?? 0) + t.byteLength);
  let best: GgmlType | undefined;
  for (const [type, b] of bytes) if (best === undefined || b > bytes.get(best)!) best = type;
  return best === undefined ? 'unknown' : (GgmlType[best] ?? String(best));
}

function readInfo(g: GgufFile, config: ModelConfig | undefined): ModelInfo {
  const str = (k: string) => (typeof g.get(k) === 'string' ? (g.get(k) as string) : undefined);
  const arch = str('general.architecture') ?? 'unknown';
  const num = (k: string) => g.getNumber(`${arch}.${k}`);
  let parameters = 0;
  let weightBytes = 0;
  for (const t of g.tensors) {
    parameters += t.dims.reduce((a, b) => a * b, 1);
    weightBytes += t.byteLength;
  }
  const ft = g.getNumber('general.file_type');
  let fim: ModelInfo['fimTokens'];
  let tokenizer: string | undefined;
  let vocabSize: number | undefined;
  try {
    const vocab = new Vocab(vocabSpecFromMetadata(g));
    tokenizer = vocab.pre ? `${vocab.type} (${vocab.pre})` : vocab.type;
    vocabSize = vocab.tokens.length;
    if (vocab.fim) fim = { prefix: vocab.fim.prefix, suffix: vocab.fim.suffix, middle: vocab.fim.middle };
  } catch {
    // No usable tokenizer: reported through configFromGguf/Tokenizer at load time; here only FIM matters.
  }
  const heads = config?.nHeads ?? num('attention.head_count');
  const embedding = config?.nEmbd ?? num('embedding_length');
  return {
    arch,
    family: str('general.basename') ?? str('general.name') ?? arch,
    name: str('general.name'),
    sizeLabel: str('general.size_label') ?? formatParameters(parameters),
    parameters,
    quantization: ft !== undefined && FILE_TYPES[ft] ? FILE_TYPES[ft]! : dominantType(g),
    weightBytes,
    contextLength: config?.contextLength ?? num('context_length'),
    layers: config?.nLayers ?? num('block_count'),
    embedding,
    feedForward: config?.nFf ?? num('feed_forward_length'),
    heads,
    kvHeads: config?.nKvHeads ?? num('attention.head_count_kv') ?? heads,
    headDim: config?.headDim ?? (heads && embedding ? embedding / heads : undefined),
    vocabSize: config?.vocabSize ?? vocabSize,
    fim: fim !== undefined,
    fimTokens: fim,
    tokenizer,
  };
}

/** Opens the candidate's header and reports what it is and whether Cachet can load it. */
export function inspectCandidate(c: ModelCandidate): DiscoveredModel {
  let bytes = 0;
  try {
    const st = statSync(c.path);
    bytes = st.size;
    if (!st.isFile()) {
      return { ...c, bytes, loadable: false, problem: { kind: 'unreadable', message: `${c.path}: not a file`, hint: 'Point to a .gguf file.' } };
    }
  } catch (e) {
    if (c.problem) return { ...c, bytes, loadable: false };
    return { ...c, bytes, loadable: false, problem: { kind: 'unreadable', message: `${c.path}: ${(e as Error).message}`, hint: 'Check the file exists and is readable.' } };
  }
  let g: GgufFile;
  try {
    g = openGguf(c.path);
  } catch (e) {
    if (e instanceof GgufError) return { ...c, bytes, loadable: false, problem: c.problem ?? problemOf(classifyGgufError(e), e) };
    throw e;
  }
  try {
    let problem = c.problem;
    let config: ModelConfig | undefined;
    const arch = g.get('general.architecture');
    const splitCount = g.getNumber('split.count');
    if (splitCount !== undefined && splitCount > 1) problem ??= splitProblem(c.path, splitCount);
    if (typeof arch !== 'string' || g.tensors.length === 0) {
      problem ??= {
        kind: 'not-a-model',
        message: `${c.path}: ${typeof arch !== 'string' ? 'no general.architecture' : 'no tensors'} (a vocabulary-only file or an adapter)`,
        hint: 'Choose a full model GGUF.',
      };
    } else {
      try {
        config = configFromGguf(g);
      } catch (e) {
        if (!(e instanceof CachetError)) throw e;
        const unknownArch = e.message.includes(`architecture '${arch}' is not supported`);
        problem ??= problemOf(unknownArch ? 'unknown-arch' : 'unsupported', e);
      }
    }
    const info = typeof arch === 'string' ? readInfo(g, config) : undefined;
    return { ...c, bytes, loadable: problem === undefined, info, ...(problem ? { problem } : {}) };
  } finally {
    g.close();
  }
}
