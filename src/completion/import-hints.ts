// Which files next to the current one it imports, without parsing each language: a sibling (or
// parent-folder) file counts when its name without extension is a whole word on an import-looking
// line of the file's head (import / from / require / include / use / mod). Pure.
//
// Only a hint for which files to send as repository-context candidates: the engine resolves the
// imports exactly (engine/context repo-context.ts) and boosts the files that really are imported.

const IMPORT_LINE = /^\s*(?:import\b|from\s+\S+\s+import\b|export\s.*\bfrom\b|#\s*include\b|use\b|mod\b|require\b|(?:const|let|var)\s.*\brequire\s*\()/;

/** The lines of `head` that look like imports. */
export function importLines(head: string): string[] {
  return head.split('\n').filter((l) => IMPORT_LINE.test(l));
}

/**
 * The paths among `paths` (files near the current one, any form ending in the file name) whose
 * base name the head's import lines mention as a word: `./util`, `from util import`, `"util.h"`.
 */
export function importedFiles(head: string, paths: string[]): string[] {
  const words = new Set<string>();
  for (const line of importLines(head)) {
    for (const m of line.matchAll(/[A-Za-z_$][\w$-]*/g)) words.add(m[0]);
  }
  if (words.size === 0) return [];
  return paths.filter((p) => {
    const name = p.slice(p.lastIndexOf('/') + 1);
    const dot = name.indexOf('.');
    const base = dot > 0 ? name.slice(0, dot) : name;
    // index/mod/__init__ files are imported by their folder's name, which this does not see.
    return base.length > 0 && words.has(base) && !['import', 'from', 'use', 'mod', 'require', 'include', 'export'].includes(base);
  });
}
