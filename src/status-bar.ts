// Status bar item: idle / loading (progress %) / thinking / tokens/s / cache-hit / off / error.
// Clicking it toggles completions. The text is computed by a pure function (status-text.ts).

import * as vscode from 'vscode';
import { statusText, type StatusInput } from './status-text';

export class CachetStatusBar implements vscode.Disposable {
  private item: vscode.StatusBarItem;
  private input: StatusInput = { engine: 'stopped', enabled: true };
  private flashTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(toggleCommand: string) {
    this.item = vscode.window.createStatusBarItem('cachet.status', vscode.StatusBarAlignment.Right, 100);
    this.item.name = 'Cachet';
    this.item.command = toggleCommand;
    this.render();
    this.item.show();
  }

  update(patch: Partial<StatusInput>): void {
    this.input = { ...this.input, ...patch };
    this.render();
  }

  /** Show a transient state (e.g. a cache hit) for `ms`, then return to the current one. */
  flash(patch: Partial<StatusInput>, ms = 1500): void {
    this.update(patch);
    if (this.flashTimer) clearTimeout(this.flashTimer);
    this.flashTimer = setTimeout(() => this.update({ activity: undefined }), ms);
  }

  private render(): void {
    const s = statusText(this.input);
    this.item.text = s.text;
    this.item.tooltip = s.tooltip;
    this.item.backgroundColor = s.error ? new vscode.ThemeColor('statusBarItem.errorBackground') : undefined;
  }

  dispose(): void {
    if (this.flashTimer) clearTimeout(this.flashTimer);
    this.item.dispose();
  }
}
