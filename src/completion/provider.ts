// Inline completions for every language: turns the editor state into a CompletionQuery for the
// session (pure logic in session.ts / postprocess.ts / context-window.ts) and the answer into
// ghost text. When the session answered with part of the completion (the first line, or the
// text so far of a request still streaming), the provider re-offers the whole completion once it
// is ready (it then comes from the cache).
//
// Re-offering is hide + trigger, not trigger alone: VS Code's explicit trigger keeps the item it
// shows (inlineCompletionsModel sets preserveCurrentCompletion; createStateWithAppliedResults puts
// the preserved item first and index 0 stays selected), so a bare trigger fetched the whole
// completion and went on showing the first line. A trigger after a result that came from an
// explicit request at the same position and version does not even fetch (UpdateRequest.satisfies).

import * as vscode from 'vscode';
import { contextWindow } from './context-window';
import type { CompletionSession } from './session';
import { contextCandidates, headOf, type OpenFile } from './open-files';
import type { CachetSettings } from '../config';

export interface ProviderHooks {
  settings(): CachetSettings;
  /** Completions are on (global toggle). */
  enabled(): boolean;
  onError(err: unknown): void;
  /** Candidates for repository context (optional): open files with focus and edit times, and
   *  files `document` imports that are not open. */
  openFiles?(document: vscode.TextDocument): OpenFile[];
}

/** How much of the current file's start is sent for its imports. */
const CURRENT_HEAD_CHARS = 8000;

/** Replace the shown inline suggestion with a fresh one from the providers (see the header). */
export async function reofferInlineSuggestion(): Promise<void> {
  await vscode.commands.executeCommand('editor.action.inlineSuggest.hide');
  await vscode.commands.executeCommand('editor.action.inlineSuggest.trigger');
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

    // Repository context: the engine picks chunks from these files (imports, recent edits, similarity).
    const budget = s.completion.openFilesContextTokens;
    const candidates = budget > 0 && this.hooks.openFiles ? contextCandidates(this.hooks.openFiles(document), { uri: document.uri.toString() }) : [];
    // The file's imports are at its top; send the head when the prefix window starts below it.
    const windowStart = w.offset - w.prefix.length;
    const repoContext = candidates.length ? { candidates, tokenBudget: budget, ...(windowStart > 0 ? { currentHead: headOf(text, CURRENT_HEAD_CHARS) } : {}) } : undefined;

    // The answer is for this version of the document; a re-offer only makes sense while it holds.
    const version = document.version;
    let answer;
    try {
      answer = await this.session.complete(
        {
          doc: document.uri.toString(),
          offset: w.offset,
          prefix: w.prefix,
          suffix: w.suffix,
          fim: { prefix: w.prefix, suffix: w.suffix, filePath, languageId: document.languageId, repoName: folder?.name, ...(repoContext ? { repoContext } : {}) },
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

    const shown = answer.text;
    void answer.full.then((full) => {
      // Show the whole completion if it differs from what is shown and the cursor has not moved.
      if (full.length === 0 || full === shown) return;
      const ed = vscode.window.activeTextEditor;
      if (ed?.document === document && document.version === version && ed.selection.active.isEqual(position)) {
        void reofferInlineSuggestion().catch(() => undefined);
      }
    });
    return [new vscode.InlineCompletionItem(answer.text, new vscode.Range(position, position))];
  }
}
