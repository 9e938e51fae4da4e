// The dashboard webview's HTML: a strict CSP (no inline script, scripts only with the nonce, styles
// only from the extension's media folder), data arrives by postMessage. Pure, unit-tested.

export interface DashboardHtmlInput {
  /** webview.cspSource */
  cspSource: string;
  nonce: string;
  scriptUri: string;
  styleUri: string;
}

export function dashboardHtml(i: DashboardHtmlInput): string {
  const csp = [
    "default-src 'none'",
    `img-src ${i.cspSource} data:`,
    `style-src ${i.cspSource}`,
    `script-src 'nonce-${i.nonce}'`,
  ].join('; ');
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link rel="stylesheet" href="${i.styleUri}">
<title>Cachet Dashboard</title>
</head>
<body>
<h1>Cachet</h1>
<p id="model" class="muted">Engine not started.</p>
<section class="grid">
  <div class="card"><h2>Memory</h2><dl id="memory"></dl></div>
  <div class="card"><h2>KV cache</h2><div class="bar"><div id="kv-bar"></div></div><dl id="kv"></dl></div>
  <div class="card" id="chunks-card" hidden><h2>Chunk cache</h2><dl id="chunks"></dl></div>
  <div class="card"><h2>Prefix reuse</h2><dl id="reuse"></dl></div>
  <div class="card"><h2>Latency</h2><dl id="latency"></dl></div>
  <div class="card"><h2>Requests</h2><dl id="requests"></dl></div>
  <div class="card"><h2>Completions (extension)</h2><dl id="session"></dl></div>
</section>
<h2>History</h2>
<canvas id="history" width="640" height="120" aria-label="KV slots used and tokens per second over time"></canvas>
<ul id="notes" class="muted"></ul>
<script nonce="${i.nonce}" src="${i.scriptUri}"></script>
</body>
</html>`;
}

export function makeNonce(random: () => number = Math.random): string {
  const chars = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  let s = '';
  for (let i = 0; i < 32; i++) s += chars[Math.floor(random() * chars.length)];
  return s;
}
