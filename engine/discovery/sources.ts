// Where local tools keep GGUF files, and how each names them:
//  - Ollama: <models>/manifests/<host>/<namespace>/<model>/<tag> (JSON) -> blobs/sha256-<hex>
//    (<models> = $OLLAMA_MODELS, ~/.ollama/models, or /usr/share/ollama/.ollama/models for the
//    Linux service);
//  - LM Studio: ~/.lmstudio/models/<publisher>/<repo>/*.gguf (older: ~/.cache/lm-studio/models);
//  - Hugging Face hub cache: $HF_HUB_CACHE or ($HF_HOME or ~/.cache/huggingface)/hub,
//    models--<org>--<name>/snapshots/<revision>/**.gguf (links into blobs/);
//  - configured paths: files, or folders searched a few levels down.

import { existsSync, readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, join, relative, sep } from 'node:path';
import { splitPart, splitProblem } from './inspect';
import type { ModelCandidate } from './types';

export interface SourceOptions {
  /** Home folder to search (default os.homedir()). */
  home?: string;
  /** Environment for OLLAMA_MODELS, HF_HOME, HF_HUB_CACHE (default process.env). */
  env?: Record<string, string | undefined>;
  /** Extra files or folders (settings). */
  paths?: string[];
  /** Folder depth searched below LM Studio / configured folders (default 4). */
  depth?: number;
  /** Search the system-wide Ollama service store too (default true). */
  systemOllama?: boolean;
}

const OLLAMA_MODEL_LAYER = 'application/vnd.ollama.image.model';
const OLLAMA_ADAPTER_LAYER = 'application/vnd.ollama.image.adapter';
const OLLAMA_PROJECTOR_LAYER = 'application/vnd.ollama.image.projector';

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

function list(dir: string): string[] {
  try {
    return readdirSync(dir).sort();
  } catch {
    return [];
  }
}

/** *.gguf files under dir (following links), at most `depth` folders down. */
export function findGgufFiles(dir: string, depth: number): string[] {
  const out: string[] = [];
  const walk = (d: string, level: number) => {
    for (const e of list(d)) {
      if (e.startsWith('.') || e === 'node_modules') continue;
      const p = join(d, e);
      let st;
      try {
        st = statSync(p);
      } catch {
        continue; // dangling link
      }
      if (st.isDirectory()) {
        if (level < depth) walk(p, level + 1);
      } else if (e.toLowerCase().endsWith('.gguf')) out.push(p);
    }
  };
  walk(dir, 0);
  return out;
}

/** Candidates for plain .gguf files: later split parts are dropped, first parts flagged. */
function fileCandidates(files: string[], source: ModelCandidate['source'], nameOf: (f: string) => string): ModelCandidate[] {
  const out: ModelCandidate[] = [];
  for (const f of files) {
    const part = splitPart(f);
    if (part && part.index !== 1) continue;
    out.push({ path: f, source, displayName: nameOf(f), ...(part ? { problem: splitProblem(f, part.count) } : {}) });
  }
  return out;
}

export function ollamaDirs(o: SourceOptions = {}): string[] {
  const env = o.env ?? process.env;
  const dirs = [env.OLLAMA_MODELS, join(o.home ?? homedir(), '.ollama', 'models')];
  if (o.systemOllama ?? true) dirs.push('/usr/share/ollama/.ollama/models');
  return dirs.filter((d): d is string => !!d);
}

/** 'qwen2.5-coder:1.5b' for the default registry and namespace, else 'host/namespace/model:tag'. */
export function ollamaName(host: string, namespace: string, model: string, tag: string): string {
  if (host === 'registry.ollama.ai') return namespace === 'library' ? `${model}:${tag}` : `${namespace}/${model}:${tag}`;
  return `${host}/${namespace}/${model}:${tag}`;
}

export function ollamaCandidates(root: string): ModelCandidate[] {
  const out: ModelCandidate[] = [];
  const manifests = join(root, 'manifests');
  for (const host of list(manifests)) {
    for (const ns of list(join(manifests, host))) {
      for (const model of list(join(manifests, host, ns))) {
        for (const tag of list(join(manifests, host, ns, model))) {
          const file = join(manifests, host, ns, model, tag);
          const displayName = ollamaName(host, ns, model, tag);
          let layers: Array<{ mediaType?: string; digest?: string }> = [];
          try {
            const m = JSON.parse(readFileSync(file, 'utf8')) as { layers?: typeof layers };
            layers = Array.isArray(m.layers) ? m.layers : [];
          } catch {
            continue; // not a manifest (stray file)
          }
          const layer = layers.find((l) => l.mediaType === OLLAMA_MODEL_LAYER);
          if (!layer?.digest) continue;
          const hex = layer.digest.replace(/^sha256[:-]/, '');
          // Newer Ollama names blobs sha256-<hex>; older ones sha256:<hex>.
          const blob = [join(root, 'blobs', `sha256-${hex}`), join(root, 'blobs', `sha256:${hex}`)].find((p) => existsSync(p)) ?? join(root, 'blobs', `sha256-${hex}`);
          const notes: string[] = [];
          if (layers.some((l) => l.mediaType === OLLAMA_ADAPTER_LAYER)) notes.push('has a LoRA adapter layer, which Cachet does not apply');
          if (layers.some((l) => l.mediaType === OLLAMA_PROJECTOR_LAYER)) notes.push('has a vision projector, which Cachet ignores');
          out.push({
            path: blob,
            source: 'ollama',
            displayName,
            ...(notes.length ? { notes } : {}),
            ...(existsSync(blob) ? {} : {
              problem: {
                kind: 'missing-blob' as const,
                message: `Ollama model ${displayName}: blob ${basename(blob)} is missing`,
                hint: `Run \`ollama pull ${displayName}\` again, or remove it with \`ollama rm ${displayName}\`.`,
              },
            }),
          });
        }
      }
    }
  }
  return out;
}

export function lmStudioDirs(o: SourceOptions = {}): string[] {
  const home = o.home ?? homedir();
  return [join(home, '.lmstudio', 'models'), join(home, '.cache', 'lm-studio', 'models')];
}

export function lmStudioCandidates(root: string, depth = 4): ModelCandidate[] {
  return fileCandidates(findGgufFiles(root, depth), 'lmstudio', (f) => relative(root, f).split(sep).join('/'));
}

export function huggingFaceHubDir(o: SourceOptions = {}): string {
  const env = o.env ?? process.env;
  if (env.HF_HUB_CACHE) return env.HF_HUB_CACHE;
  return join(env.HF_HOME ?? join(o.home ?? homedir(), '.cache', 'huggingface'), 'hub');
}

export function huggingFaceCandidates(hub: string, depth = 4): ModelCandidate[] {
  const out: ModelCandidate[] = [];
  for (const repo of list(hub)) {
    if (!repo.startsWith('models--')) continue;
    const id = repo.slice('models--'.length).split('--').join('/');
    const snapshots = join(hub, repo, 'snapshots');
    for (const rev of list(snapshots)) {
      const dir = join(snapshots, rev);
      out.push(...fileCandidates(findGgufFiles(dir, depth), 'huggingface', (f) => `${id}/${relative(dir, f).split(sep).join('/')}`));
    }
  }
  return out;
}

export function configuredCandidates(paths: string[], depth = 4): ModelCandidate[] {
  const out: ModelCandidate[] = [];
  for (const p of paths) {
    if (isDir(p)) out.push(...fileCandidates(findGgufFiles(p, depth), 'configured', (f) => relative(p, f).split(sep).join('/') || basename(f)));
    else out.push({ path: p, source: 'configured', displayName: basename(p) });
  }
  return out;
}

/**
 * Every candidate from every source, configured paths first; the same file reached twice (a link,
 * two HF revisions sharing a blob) is listed once, under the first source that found it.
 */
export function findCandidates(o: SourceOptions = {}): ModelCandidate[] {
  const depth = o.depth ?? 4;
  const all: ModelCandidate[] = [
    ...configuredCandidates(o.paths ?? [], depth),
    ...[...new Set(ollamaDirs(o))].flatMap((d) => ollamaCandidates(d)),
    ...lmStudioDirs(o).flatMap((d) => lmStudioCandidates(d, depth)),
    ...huggingFaceCandidates(huggingFaceHubDir(o), depth),
  ];
  const seen = new Set<string>();
  const out: ModelCandidate[] = [];
  for (const c of all) {
    let key = c.path;
    try {
      key = realpathSync(c.path);
    } catch {
      // missing file: keep its own path as the key
    }
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(c);
  }
  return out;
}
