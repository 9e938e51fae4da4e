import { describe, expect, it } from 'vitest';
import { dashboardHtml, makeNonce } from '../../src/dashboard-html';

describe('dashboardHtml', () => {
  const html = dashboardHtml({ cspSource: 'vscode-webview://x', nonce: 'N0NCE', scriptUri: 'vscode-webview://x/dashboard.js', styleUri: 'vscode-webview://x/dashboard.css' });

  it('has a strict CSP: no default sources, scripts only with the nonce', () => {
    const csp = /content="([^"]+)"/.exec(html)![1];
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'nonce-N0NCE'");
    expect(csp).toContain('style-src vscode-webview://x');
    expect(csp).not.toContain('unsafe-inline');
    expect(csp).not.toContain('unsafe-eval');
  });

  it('loads exactly one script, with the nonce, and has no inline script or handlers', () => {
    const scripts = html.match(/<script[^>]*>/g) ?? [];
    expect(scripts).toEqual(['<script nonce="N0NCE" src="vscode-webview://x/dashboard.js">']);
    expect(html).toMatch(/<script[^>]*><\/script>/);
    expect(html).not.toMatch(/\son[a-z]+=/i);
  });

  it('has the metric sections the script fills', () => {
    for (const id of ['memory', 'kv', 'chunks', 'reuse', 'latency', 'requests', 'session', 'kv-bar', 'history', 'notes']) expect(html).toContain(`id="${id}"`);
  });

  it('has the chunk cache card hidden until the engine reports chunk metrics', () => {
    expect(html).toMatch(/<div class="card" id="chunks-card" hidden>.*id="chunks"/);
  });

  it('makes 32-character alphanumeric nonces that differ', () => {
    const a = makeNonce();
    expect(a).toMatch(/^[A-Za-z0-9]{32}$/);
    expect(makeNonce()).not.toBe(a);
  });
});
