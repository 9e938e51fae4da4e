// `cachet info MODEL`: what a GGUF file holds and whether Cachet can run it. Reads the header and
// metadata only (tensor data stays on disk), so it is fast on multi-GB files.

import { statSync } from 'node:fs';
import { fimFormatFor } from '../context';
import { CachetError, GgufError } from '../errors';
import { openGguf, type GgufFile } from '../gguf';
import { configFromGguf, requiredTensorNames, type ModelConfig } from '../model';
import { GgmlType } from '../quant/types';
import { Tokenizer } from '../tokenizer';

export interface QuantMixEntry {
  type: string;
  tensors: number;
  params: number;
  bytes: number;
}

export interface InfoReport {
  path: string;
  fileBytes: number;
  ggufVersion: number;
  tensorCount: number;
  metadataCount: number;
  architecture: string | undefined;
  name: string | undefined;
  config: ModelConfig | undefined;
  params: number;
  weightBytes: number;
  /** By type, largest byte share first. */
  quantMix: QuantMixEntry[];
  /** The type holding most of the weight bytes (e.g. "Q8_0"). */
  dominantType: string | undefined;
  contextLength: number | undefined;
  tokenizer:
    | {
        model: string | undefined;
        pre: string | undefined;
        vocabSize: number;
        bos: number | undefined;
        eos: number | undefined;
        eot: number | undefined;
        addBos: boolean;
        chatTemplate: boolean;
      }
    | undefined;
  fim:
    | { supported: true; family: string; repoLevel: boolean; tokens: Record<string, { id: number; text: string }> }
    | { supported: false; reason: string };
  /** Everything that would stop Cachet from running the file; empty = runnable. */
  problems: { what: string; message: string; hint: string }[];
}

function problemOf(what: string, err: unknown): { what: string; message: string; hint: string } {
  if (err instanceof CachetError) return { what, message: err.message, hint: err.hint };
  return { what, message: String((err as Error)?.message ?? err), hint: 'Unexpected error; the file may be damaged. Re-download or re-convert it.' };
}

/** Throws GgufError only when the file cannot be read at all; everything else lands in `problems`. */
export function inspectModel(path: string): InfoReport {
  let fileBytes: number;
  try {
    fileBytes = statSync(path).size;
  } catch (err) {
    throw new GgufError(path, 'cannot read the file', `Check the path (${(err as NodeJS.ErrnoException).code ?? 'error'}). Models are .gguf files, e.g. models/cachet-tiny.gguf.`, { cause: err });
  }
  const gguf = openGguf(path);
  try {
    return report(gguf, path, fileBytes);
  } finally {
    gguf.close();
  }
}

function report(gguf: GgufFile, path: string, fileBytes: number): InfoReport {
  const problems: InfoReport['problems'] = [];
  const arch = gguf.getString('general.architecture');
  let config: ModelConfig | undefined;
  try {
    config = configFromGguf(gguf);
  } catch (err) {
    problems.push(problemOf('model', err));
  }
  if (config) {
    const missing = requiredTensorNames(config).filter((n) => !gguf.tensor(n));
    if (missing.length) {
      problems.push({ what: 'tensors', message: `missing ${missing.length} tensors: ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', ...' : ''}`, hint: 'The file is incomplete or for another architecture; re-convert it.' });
    }
  }

  const mix = new Map<string, QuantMixEntry>();
  let params = 0;
  let weightBytes = 0;
  for (const t of gguf.tensors) {
    const n = t.dims.reduce((a, b) => a * b, 1);
    const type = GgmlType[t.type] ?? `type${t.type}`;
    const e = mix.get(type) ?? { type, tensors: 0, params: 0, bytes: 0 };
    e.tensors++;
    e.params += n;
    e.bytes += t.byteLength;
    mix.set(type, e);
    params += n;
    weightBytes += t.byteLength;
  }
  const quantMix = [...mix.values()].sort((a, b) => b.bytes - a.bytes || a.type.localeCompare(b.type));

  let tokenizerInfo: InfoReport['tokenizer'];
  let fim: InfoReport['fim'] = { supported: false, reason: 'no tokenizer' };
  try {
    const tok = Tokenizer.fromGguf(gguf);
    tokenizerInfo = {
      model: gguf.getString('tokenizer.ggml.model'),
      pre: gguf.getString('tokenizer.ggml.pre'),
      vocabSize: tok.vocabSize,
      bos: tok.bos,
      eos: tok.eos,
      eot: tok.eot,
      addBos: tok.addBos,
      chatTemplate: tok.chatTemplate !== undefined,
    };
    if (config && tok.vocabSize !== config.vocabSize) {
      problems.push({ what: 'tokenizer', message: `tokenizer has ${tok.vocabSize} tokens but token_embd has ${config.vocabSize} rows`, hint: 'The tokenizer and weights come from different models; re-convert the model.' });
    }
    const format = fimFormatFor(tok);
    if (tok.fim && format) {
      const tokens: Record<string, { id: number; text: string }> = {};
      for (const [k, id] of Object.entries(tok.fim)) if (typeof id === 'number') tokens[k] = { id, text: tok.tokenText(id) };
      fim = { supported: true, family: format.family, repoLevel: format.repoLevel, tokens };
    } else {
      fim = { supported: false, reason: tok.fim ? `unknown FIM token style ${JSON.stringify(tok.tokenText(tok.fim.prefix))}` : 'the vocabulary has no FIM tokens' };
    }
  } catch (err) {
    problems.push(problemOf('tokenizer', err));
  }

  return {
    path,
    fileBytes,
    ggufVersion: gguf.version,
    tensorCount: gguf.tensors.length,
    metadataCount: gguf.metadata.size,
    architecture: arch,
    name: gguf.getString('general.name'),
    config,
    params,
    weightBytes,
    quantMix,
    dominantType: quantMix[0]?.type,
    contextLength: config?.contextLength ?? (arch ? gguf.getNumber(`${arch}.context_length`) : undefined),
    tokenizer: tokenizerInfo,
    fim,
    problems,
  };
}

function human(n: number): string {
  if (n >= 1e9) return (n / 1e9).toFixed(2) + ' G';
  if (n >= 1e6) return (n / 1e6).toFixed(2) + ' M';
  if (n >= 1e3) return (n / 1e3).toFixed(1) + ' k';
  return String(n);
}

export function formatInfo(r: InfoReport): string {
  const lines: string[] = [];
  lines.push(`file          ${r.path} (${human(r.fileBytes)}B, GGUF v${r.ggufVersion}, ${r.tensorCount} tensors, ${r.metadataCount} metadata keys)`);
  lines.push(`model         ${r.name ?? '(no name)'} — architecture ${r.architecture ?? '(none)'}`);
  if (r.config) {
    const c = r.config;
    lines.push(`sizes         ${c.nLayers} layers, embd ${c.nEmbd}, heads ${c.nHeads}/${c.nKvHeads} kv, head dim ${c.headDim}, ff ${c.nFf}, vocab ${c.vocabSize}`);
    lines.push(`context       ${c.contextLength} tokens; RoPE ${c.rope.type} base ${c.rope.freqBase}${c.rope.scaling.type !== 'none' ? `, ${c.rope.scaling.type} x${c.rope.scaling.factor}` : ''}; ${c.norm.type} norm; ${c.tiedEmbeddings ? 'tied' : 'separate'} output`);
  }
  lines.push(`parameters    ${human(r.params)} (${human(r.weightBytes)}B of weights)`);
  lines.push(`quant mix     ${r.quantMix.map((q) => `${q.type} ${((100 * q.bytes) / Math.max(1, r.weightBytes)).toFixed(1)}% (${q.tensors})`).join(', ')}`);
  if (r.tokenizer) {
    const t = r.tokenizer;
    lines.push(`tokenizer     ${t.model ?? '?'}${t.pre ? `/${t.pre}` : ''}, ${t.vocabSize} tokens, bos ${t.bos ?? '-'} eos ${t.eos ?? '-'} eot ${t.eot ?? '-'}${t.chatTemplate ? ', chat template' : ''}`);
  }
  lines.push(r.fim.supported ? `FIM           yes: ${r.fim.family}${r.fim.repoLevel ? ' (repo-level)' : ''}; ${Object.entries(r.fim.tokens).map(([k, v]) => `${k}=${v.text}`).join(' ')}` : `FIM           no (${r.fim.reason})`);
  if (r.problems.length === 0) lines.push('problems      none: Cachet can run this file');
  else for (const p of r.problems) lines.push(`problem       [${p.what}] ${p.message}\n              hint: ${p.hint}`);
  return lines.join('\n');
}
