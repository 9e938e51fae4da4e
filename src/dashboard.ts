// The dashboard webview panel: polls engine metrics once a second while visible and posts them
// (with the extension's own completion counters) to media/dashboard.js.

import * as vscode from 'vscode';
import type { MetricsSnapshot } from '../engine/protocol';
import { dashboardHtml, makeNonce } from './dashboard-html';
import { chunkCacheRows } from './dashboard-rows';
import type { EngineLink } from './engine-link';

export interface SessionCounters {
  requests: number;
  cacheHits: number;
  joined: number;
  cancelled: number;
  accepted: number;
}

export class Dashboard implements vscode.Disposable {
  private panel: vscode.WebviewPanel | undefined;
  private timer: ReturnType<typeof setInterval> | undefined;
  private last: MetricsSnapshot | undefined;
  private subs: vscode.Disposable[] = [];

  constructor(
    private extensionUri: vscode.Uri,
    private engine: EngineLink,
    private counters: () => SessionCounters,
  ) {
    this.subs.push(
      engine.onMetrics((m) => {
        this.last = m;
        this.post();
      }),
    );
  }

  get visible(): boolean {
    return this.panel !== undefined;
  }

  show(): void {
    if (this.panel) {
      this.panel.reveal();
      return;
    }
    const media = vscode.Uri.joinPath(this.extensionUri, 'media');
    const panel = vscode.window.createWebviewPanel('cachet.dashboard', 'Cachet Dashboard', vscode.ViewColumn.Beside, {
      enableScripts: true,
      localResourceRoots: [media],
      retainContextWhenHidden: false,
    });
    const w = panel.webview;
    w.html = dashboardHtml({
      cspSource: w.cspSource,
      nonce: makeNonce(),
      scriptUri: w.asWebviewUri(vscode.Uri.joinPath(media, 'dashboard.js')).toString(),
      styleUri: w.asWebviewUri(vscode.Uri.joinPath(media, 'dashboard.css')).toString(),
    });
    w.onDidReceiveMessage((msg: { type?: string }) => {
      if (msg?.type === 'ready') this.post();
    });
    panel.onDidDispose(() => {
      this.panel = undefined;
      if (this.timer) clearInterval(this.timer);
      this.timer = undefined;
    });
    this.panel = panel;
    this.timer = setInterval(() => {
      if (this.panel?.visible) this.engine.requestMetrics();
    }, 1000);
    this.engine.requestMetrics();
  }

  private post(): void {
    if (!this.panel) return;
    const st = this.engine.state;
    void this.panel.webview.postMessage({
      type: 'metrics',
      snapshot: this.last,
      chunks: chunkCacheRows(this.last?.kv.chunks),
      session: this.counters(),
      state: st.kind === 'error' ? `Engine error: ${st.error.message}` : `Engine ${st.kind}.`,
    });
  }

  dispose(): void {
    if (this.timer) clearInterval(this.timer);
    this.panel?.dispose();
    for (const s of this.subs) s.dispose();
  }
}
