// The inline provider with a minimal stand-in for the `vscode` module: what it sends to the
// session (windows, path, language), when it stays silent, errors, and the re-offer once the
// whole completion is ready after a first-line answer.
import { describe, expect, it, vi } from 'vitest';

const executed: string[] = [];
const editorState: { active: unknown } = { active: undefined };
/**
 * The editor's inline suggestion as VS Code keeps it (workbench inlineCompletionsModel, code-server
 * 4.139): `hide` clears it; an explicit `trigger` asks the providers again but keeps the item it
 * shows in front (preserveCurrentCompletion), and the front item stays selected.
 */
const ui: { shown: string | undefined; refetch?: () => Promise<string[]> } = { shown: undefined };
vi.mock('vscode', () => {
  class Position {
    constructor(readonly line: number, readonly character: number) {}
    isEqual(o: Position) {
      return o.line === this.line && o.character === this.character;
    }
  }
  class Range {
    constructor(readonly start: Position, readonly end: Position) {}
  }
  class InlineCompletionItem {
    command?: unknown;
    constructor(readonly insertText: string, readonly range: Range) {}
  }
  return {
    Position,
    Range,
    InlineCompletionItem,
    window: {
      get activeTextEditor() {
        return editorState.active;
      },
    },
    workspace: {
      getWorkspaceFolder: () => ({ name: 'proj' }),
      asRelativePath: () => 'src/a.py',
    },
    commands: {
      executeCommand: async (id: string) => {
        executed.push(id);
        if (id === 'editor.action.inlineSuggest.hide') ui.shown = undefined;
        if (id === 'editor.action.inlineSuggest.trigger' && ui.refetch) {
          const fresh = await ui.refetch();
          const list = ui.shown !== undefined ? [ui.shown, ...fresh.filter((t) => t !== ui.shown)] : fresh;
          ui.shown = list[0];
        }
      },
    },
  };
});

const vscode = await import('vscode');
const { CachetInlineProvider } = await import('../../src/completion/provider');
const { CompletionSession } = await import('../../src/completion/session');
import type { CompletionBackend } from '../../src/completion/session';
import type { FimInput } from '../../engine/protocol';
import type { CachetSettings } from '../../src/config';

const settings: CachetSettings = {
  modelPath: '', modelSearchPaths: [], backend: 'auto', contextLength: 8192, threads: 0,
  completion: { enabled: true, disabledLanguages: ['markdown'], debounceMs: 0, maxTokens: 32, maxLines: 5, contextTokens: 1000, openFilesContextTokens: 100 },
  kvCache: { chunkReuse: 'off', chunkBlendRatio: 0.15 }, server: { enabled: false, port: 8012 }, remote: { url: '', model: '' },
};

function doc(text: string, languageId = 'python') {
  return {
    uri: { toString: () => 'file:///proj/src/a.py', fsPath: '/proj/src/a.py' },
    languageId,
    version: 1,
    getText: () => text,
    offsetAt: (p: { line: number; character: number }) => {
      const lines = text.split('\n');
      let o = 0;
      for (let i = 0; i < p.line; i++) o += lines[i].length + 1;
      return o + p.character;
    },
  };
}

class Backend implements CompletionBackend {
  inputs: FimInput[] = [];
  script: string[] = [];
  fail?: Error;
  /** Each chunk (and the end) in its own timer tick, as from the worker. */
  stepped = false;
  start(input: FimInput, _o: unknown, sink: Parameters<CompletionBackend['start']>[2]) {
    this.inputs.push(input);
    if (this.stepped) {
      const steps = [...this.script.map((t) => () => sink.onText(t)), () => sink.onDone('eog')];
      const next = () => {
        steps.shift()?.();
        if (steps.length) setTimeout(next, 0);
      };
      setTimeout(next, 0);
      return { cancel() {} };
    }
    setTimeout(() => {
      if (this.fail) return sink.onError(this.fail);
      for (const t of this.script) sink.onText(t);
      sink.onDone('eog');
    }, 0);
    return { cancel() {} };
  }
}

const token = { isCancellationRequested: false, onCancellationRequested: () => ({ dispose() {} }) };
const ctx = { triggerKind: 0, selectedCompletionInfo: undefined };

describe('CachetInlineProvider', () => {
  it('sends prefix, suffix, relative path, language and repo name; answers with the completion at the cursor', async () => {
    const be = new Backend();
    be.script = ['a + b', '\n'];
    const p = new CachetInlineProvider(new CompletionSession(be, { debounceMs: 0, maxTokens: 32, streamFirstLine: true }), { settings: () => settings, enabled: () => true, onError: () => undefined });
    const d = doc('def add(a, b):\n    return \n\nprint(1)\n');
    const pos = new vscode.Position(1, 11);
    const items = (await p.provideInlineCompletionItems(d as never, pos as never, ctx as never, token as never)) as unknown as { insertText: string; range: { start: unknown } }[];
    expect(be.inputs[0]).toEqual({ prefix: 'def add(a, b):\n    return ', suffix: '\n\nprint(1)\n', filePath: 'src/a.py', languageId: 'python', repoName: 'proj' });
    expect(items).toHaveLength(1);
    expect(items[0].insertText).toBe('a + b');
    expect(items[0].range.start).toBe(pos);
  });

  it('sends the other open files as repository-context candidates within the budget, with the file head when the window misses it', async () => {
    const be = new Backend();
    be.script = ['1'];
    const p = new CachetInlineProvider(new CompletionSession(be, { debounceMs: 0, maxTokens: 32, streamFirstLine: true }), {
      settings: () => settings,
      enabled: () => true,
      onError: () => undefined,
      openFiles: () => [
        { uri: 'file:///proj/src/a.py', path: 'src/a.py', text: 'x = ', languageId: 'python', lastActive: 5 },
        { uri: 'file:///proj/src/util.py', path: 'src/util.py', text: 'def helper():\n    return 2\n', languageId: 'python', lastActive: 3 },
      ],
    });
    await p.provideInlineCompletionItems(doc('x = ') as never, new vscode.Position(0, 4) as never, ctx as never, token as never);
    expect(be.inputs[0].chunks).toBeUndefined();
    expect(be.inputs[0].repoContext).toEqual({
      candidates: [{ filePath: 'src/util.py', text: 'def helper():\n    return 2\n', languageId: 'python', sources: ['open'] }],
      tokenBudget: 100,
    });
    // A prefix window that starts below the top of the file: the head goes along for the imports.
    const long = 'import util\n' + 'x = 1\n'.repeat(2000) + 'y = ';
    const lines = long.split('\n');
    await p.provideInlineCompletionItems(doc(long) as never, new vscode.Position(lines.length - 1, 4) as never, ctx as never, token as never);
    const rc = be.inputs[1].repoContext!;
    expect(be.inputs[1].prefix.startsWith('import util')).toBe(false);
    expect(rc.currentHead!.startsWith('import util\nx = 1\n')).toBe(true);
  });

  it('stays silent when off, for disabled languages and while the suggest widget has a selection', async () => {
    const be = new Backend();
    be.script = ['x'];
    const session = new CompletionSession(be, { debounceMs: 0, maxTokens: 32, streamFirstLine: true });
    const pos = new vscode.Position(0, 4);
    let on = false;
    const p = new CachetInlineProvider(session, { settings: () => settings, enabled: () => on, onError: () => undefined });
    expect(await p.provideInlineCompletionItems(doc('x = ') as never, pos as never, ctx as never, token as never)).toBeUndefined();
    on = true;
    expect(await p.provideInlineCompletionItems(doc('x = ', 'markdown') as never, pos as never, ctx as never, token as never)).toBeUndefined();
    expect(await p.provideInlineCompletionItems(doc('x = ') as never, pos as never, { ...ctx, selectedCompletionInfo: {} } as never, token as never)).toBeUndefined();
    expect(be.inputs).toHaveLength(0);
  });

  it('hands engine errors to onError and shows nothing', async () => {
    const be = new Backend();
    be.fail = new Error('model file not found');
    const errors: unknown[] = [];
    const p = new CachetInlineProvider(new CompletionSession(be, { debounceMs: 0, maxTokens: 32, streamFirstLine: true }), { settings: () => settings, enabled: () => true, onError: (e) => errors.push(e) });
    const r = await p.provideInlineCompletionItems(doc('x = ') as never, new vscode.Position(0, 4) as never, ctx as never, token as never);
    expect(r).toBeUndefined();
    expect((errors[0] as Error).message).toBe('model file not found');
  });

  it('re-offers the whole completion once it is ready, replacing the first line shown', async () => {
    executed.length = 0;
    const d = doc('def f(x):\n');
    const pos = new vscode.Position(0, 9);
    editorState.active = { document: d, selection: { active: pos }, options: { tabSize: 4 } };
    const be = new Backend();
    be.script = ['\n    y = x\n', '    return y\n'];
    be.stepped = true;
    const p = new CachetInlineProvider(new CompletionSession(be, { debounceMs: 0, maxTokens: 32, streamFirstLine: true }), { settings: () => settings, enabled: () => true, onError: () => undefined });
    const provide = async () => ((await p.provideInlineCompletionItems(d as never, pos as never, ctx as never, token as never)) as unknown as { insertText: string }[] | undefined)?.map((i) => i.insertText) ?? [];
    ui.refetch = provide;
    const first = await provide();
    expect(first).toEqual(['\n    y = x']);
    ui.shown = first[0];
    await new Promise((r) => setTimeout(r, 10));
    // The re-query is served from the cache with the whole completion, and the editor shows it.
    expect(ui.shown).toBe('\n    y = x\n    return y');
    expect(executed).toEqual(['editor.action.inlineSuggest.hide', 'editor.action.inlineSuggest.trigger']);
    expect(be.inputs).toHaveLength(1);
    editorState.active = undefined;
    ui.refetch = undefined;
  });

  it('does not re-offer once the cursor moved', async () => {
    executed.length = 0;
    const d = doc('def f(x):\n');
    const pos = new vscode.Position(0, 9);
    const be = new Backend();
    be.script = ['\n    y = x', '\n    return y\n'];
    const p = new CachetInlineProvider(new CompletionSession(be, { debounceMs: 0, maxTokens: 32, streamFirstLine: true }), { settings: () => settings, enabled: () => true, onError: () => undefined });
    editorState.active = { document: d, selection: { active: new vscode.Position(0, 3) }, options: { tabSize: 4 } };
    await p.provideInlineCompletionItems(d as never, pos as never, ctx as never, token as never);
    await new Promise((r) => setTimeout(r, 10));
    expect(executed).toEqual([]);
    editorState.active = undefined;
  });
});
