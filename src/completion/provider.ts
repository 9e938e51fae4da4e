// Inline completions for every language: turns the editor state into a CompletionQuery for the
// session (pure logic in session.ts / postprocess.ts / context-window.ts) and the answer into
// ghost text. When the session answered with the first line only, the provider re-triggers
// inline suggestions once the whole completion is ready (it then comes from the cache).

import * as vscode from 'vscode';
import { contextWindow } from './context-window';
import type { CompletionSession } from './session';
import { openFileChunks, type OpenFile } from './open-files';
import type { CachetSettings } from '../config';

export interface ProviderHooks {
  settings(): CachetSettings;
  /** Completions are on (global toggle). */
  enabled(): boolean;
  onError(err: unknown): void;
  /** Other open files, for context chunks (optional). */
  openFiles?(): OpenFile[];
}

export class CachetInlineProvider implements vscode.InlineCompletionItemProvider {
  constructor(
    private session: CompletionSession,
    private hooks: ProviderHooks,
  ) {}

  async provideInlineCompletionItems(
    document: vscode.TextDocument,
    position: vscode.Position,
    context: vscode.InlineCompletionContext,
    token: vscode.CancellationToken,
  ): Promise<vscode.InlineCompletionItem[] | undefined> {
    const s = this.hooks.settings();
    if (!this.hooks.enabled() || s.completion.disabledLanguages.includes(document.languageId)) return undefined;
    // While the suggest widget is open, its selection is the user's choice: stay out of the way.
    if (context.selectedCompletionInfo) return undefined;

    const text = document.getText();
    const offset = document.offsetAt(position);
    const w = contextWindow(text, offset, { contextTokens: s.completion.contextTokens });
    const tabSize = vscode.window.activeTextEditor?.options.tabSize;
    const folder = vscode.workspace.getWorkspaceFolder(document.uri);
    const filePath = folder ? vscode.workspace.asRelativePath(document.uri, false) : document.uri.fsPath;

    const chunks = this.hooks.openFiles ? openFileChunks(this.hooks.openFiles(), { uri: document.uri.toString(), languageId: document.languageId }, s.completion.openFilesContextTokens) : [];

    let answer;
    try {
      answer = await this.session.complete(
        {
          doc: document.uri.toString(),
          offset: w.offset,
          prefix: w.prefix,
          suffix: w.suffix,
          fim: { prefix: w.prefix, suffix: w.suffix, filePath, languageId: document.languageId, repoName: folder?.name, ...(chunks.length ? { chunks } : {}) },
          post: {
            linePrefix: w.linePrefix,
            lineSuffix: w.lineSuffix,
            suffix: w.suffix,
            maxLines: s.completion.maxLines,
            tabSize: typeof tabSize === 'number' ? tabSize : 4,
          },
        },
        token,
      );
    } catch (err) {
      this.hooks.onError(err);
      return undefined;
    }
    if (!answer || token.isCancellationRequested) return undefined;

    const version = document.version;
    if (answer.source !== 'cache') {
      void answer.full.then((full) => {
        // Show the longer completion if the cursor has not moved since.
        const ed = vscode.window.activeTextEditor;
        if (full.length > answer.text.length && ed?.document === document && document.version === version && ed.selection.active.isEqual(position)) {
          void vscode.commands.executeCommand('editor.action.inlineSuggest.trigger');
        }
      });
    }
    return [new vscode.InlineCompletionItem(answer.text, new vscode.Range(position, position))];
  }
}
