// Pieces of the FIM quality bench that are plain functions (tested in test/bench): the metrics the
// training run used (training/train.py: exact match and edit similarity of the first generated
// line, copy-previous-line baseline), HumanEval reading, and held-out single-line holes cut from
// source files the way train.py's heldout_line_tasks cuts them.

import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join, relative } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { SeededRng } from '../engine/sampling';

export interface LineTask {
  id: string;
  /** File name the prompt says (language hint for the model). */
  filePath: string;
  prefix: string;
  /** The hole: one whole line, without its newline. */
  want: string;
  suffix: string;
}

/** 1 - Levenshtein(a, b) / max(len): train.py's edit_sim, over code points like Python strings. */
export function editSimilarity(a: string, b: string): number {
  const x = Array.from(a);
  const y = Array.from(b);
  if (x.length === 0 && y.length === 0) return 1;
  let prev = Array.from({ length: y.length + 1 }, (_, j) => j);
  for (let i = 1; i <= x.length; i++) {
    const cur = [i];
    for (let j = 1; j <= y.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (x[i - 1] === y[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return 1 - prev[y.length]! / Math.max(x.length, y.length);
}

/** Last line of the prefix (Python's prefix.splitlines()[-1]): the copy-previous-line baseline. */
export function previousLine(prefix: string): string {
  const lines = prefix.split(/\r\n|\r|\n/);
  if (lines.length > 1 && lines[lines.length - 1] === '') lines.pop();
  return lines[lines.length - 1] ?? '';
}

/** What the completion would show for a single-line hole: its first line. */
export function firstLine(text: string): string {
  const nl = text.indexOf('\n');
  return nl < 0 ? text : text.slice(0, nl);
}

export interface LineScore {
  exact: boolean;
  editSim: number;
}

/** train.py compares rstripped strings. */
export function scoreLine(got: string, want: string): LineScore {
  const g = got.trimEnd();
  const w = want.trimEnd();
  return { exact: g === w, editSim: editSimilarity(g, w) };
}

interface HumanEvalRow { task_id: string; prompt: string; suffix: string; canonical_solution: string }

/** HumanEval-SingleLineInfilling (gzip JSONL) as line tasks, or undefined when the file is absent. */
export function readHumanEval(path: string): LineTask[] | undefined {
  if (!existsSync(path)) return undefined;
  const rows = gunzipSync(readFileSync(path)).toString('utf8').split('\n').filter((l) => l.trim() !== '');
  return rows.map((l) => {
    const r = JSON.parse(l) as HumanEvalRow;
    return { id: r.task_id, filePath: 'solution.py', prefix: r.prompt, want: r.canonical_solution.replace(/[\r\n]+$/, ''), suffix: r.suffix };
  });
}

/** `count` tasks spread evenly over `all` (consecutive HumanEval tasks share one problem). */
export function spread<T>(all: T[], count: number): T[] {
  if (count >= all.length) return all.slice();
  const out: T[] = [];
  for (let i = 0; i < count; i++) out.push(all[Math.floor((i * all.length) / count)]!);
  return out;
}

// The model's special-token text, removed from sources as train.py's SPECIAL_TEXT does.
const SPECIAL_TEXT = /<｜(fim▁hole|fim▁begin|fim▁end|begin▁of▁sentence|end▁of▁sentence)｜>/g;
const SOURCE_EXT = /\.(js|mjs|cjs|ts|mts|cts)$/;

/**
 * Source files under `dirs` that collect_js.py would have taken (JS/TS, not minified: average line
 * <= 200 chars, >= 200 bytes; no .d.ts, no nested node_modules), sorted by path.
 */
export function listSources(dirs: string[], minBytes = 2000): { path: string; text: string }[] {
  const out: { path: string; text: string }[] = [];
  const walk = (root: string, dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const p = join(dir, name);
      const st = statSync(p);
      if (st.isDirectory()) {
        if (name !== 'node_modules') walk(root, p);
      } else if (SOURCE_EXT.test(name) && !name.endsWith('.d.ts') && !name.includes('.min.') && st.size >= minBytes && st.size < 2_000_000) {
        const text = readFileSync(p, 'utf8');
        const lines = text.split('\n').length;
        if (text.length / lines <= 200) out.push({ path: join(packageLabel(root), relative(root, p)), text });
      }
    }
  };
  for (const d of dirs) if (existsSync(d)) walk(d, d);
  return out;
}

/** "node_modules/a/b" -> "a/b" (the package and folder), else the folder's name. */
function packageLabel(dir: string): string {
  const at = dir.lastIndexOf('node_modules/');
  return at >= 0 ? dir.slice(at + 'node_modules/'.length) : basename(dir);
}

/**
 * train.py's heldout_line_tasks: a random file, a random line i in [1, lines-2] with >= 3
 * non-blank characters; prefix = lines before it, suffix = lines after it.
 */
export function cutLineTasks(files: { path: string; text: string }[], seed: number, count: number): LineTask[] {
  const rng = new SeededRng(seed);
  const pick = (n: number) => Math.min(n - 1, Math.floor(rng.next() * n));
  const tasks: LineTask[] = [];
  const seen = new Set<string>();
  for (let tries = 0; tasks.length < count && tries < count * 20 && files.length > 0; tries++) {
    const f = files[pick(files.length)]!;
    const lines = f.text.replace(SPECIAL_TEXT, '').split(/(?<=\n)/);
    if (lines.length < 5) continue;
    const i = 1 + pick(lines.length - 2);
    const line = lines[i]!;
    if (line.trim().length < 3 || !line.endsWith('\n')) continue;
    const id = `${f.path}:${i + 1}`;
    if (seen.has(id)) continue;
    seen.add(id);
    tasks.push({ id, filePath: f.path, prefix: lines.slice(0, i).join(''), want: line.replace(/\r?\n$/, ''), suffix: lines.slice(i + 1).join('') });
  }
  return tasks;
}
