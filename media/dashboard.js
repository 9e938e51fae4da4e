// Cachet dashboard webview: renders metrics snapshots the extension posts ({type:'metrics'}).
// No network, no inline handlers; talks to the extension only through postMessage.
(function () {
  const vscode = acquireVsCodeApi();
  const history = [];
  const MAX = 120;

  const mib = (b) => (b / 1048576).toFixed(1) + ' MiB';
  const pct = (x) => (100 * x).toFixed(1) + '%';
  const num = (x) => (x === undefined || x === null ? '–' : Number(x).toLocaleString());

  function fill(id, rows) {
    const dl = document.getElementById(id);
    dl.replaceChildren();
    for (const [k, v] of rows) {
      const dt = document.createElement('dt');
      dt.textContent = k;
      const dd = document.createElement('dd');
      dd.textContent = v;
      dl.append(dt, dd);
    }
  }

  function render(msg) {
    const m = msg.snapshot;
    const sess = msg.session || {};
    document.getElementById('model').textContent = m && m.model
      ? `${m.model.name} (${m.model.arch}) on ${m.model.backend}, context ${num(m.model.contextLength)} tokens`
      : msg.state || 'Engine not started.';
    if (m) {
      fill('memory', [
        ['weights', mib(m.memory.weightsBytes)],
        ['KV', mib(m.memory.kvBytes)],
        ['scratch', mib(m.memory.scratchBytes)],
        ['worker heap', mib(m.memory.heapUsedBytes)],
        ['process RSS', mib(m.memory.rssBytes)],
      ]);
      // The bar counts slots held by live sequences and by the prefix cache (reusable KV).
      const used = m.kv.slotsTotal ? Math.min(1, (m.kv.slotsUsed + m.kv.slotsCached) / m.kv.slotsTotal) : 0;
      document.getElementById('kv-bar').style.width = pct(used);
      fill('kv', [
        ['slots used', `${num(m.kv.slotsUsed)} / ${num(m.kv.slotsTotal)}`],
        ['held by prefix cache', num(m.kv.slotsCached)],
        ['evictions', num(m.kv.evictions)],
      ]);
      // Rows come from the extension (src/dashboard-rows.ts); absent when chunk reuse is off.
      document.getElementById('chunks-card').hidden = !msg.chunks;
      if (msg.chunks) fill('chunks', msg.chunks);
      const reusable = m.tokens.cached + m.tokens.prefilled;
      fill('reuse', [
        ['prefix hit rate', pct(m.kv.hitRate)],
        ['tokens reused', num(m.tokens.cached)],
        ['tokens computed', num(m.tokens.prefilled)],
        ['reuse share', reusable ? pct(m.tokens.cached / reusable) : '–'],
        ['tokens generated', num(m.tokens.generated)],
        ['draft acceptance', m.speculative.drafted ? pct(m.speculative.acceptanceRate) : '–'],
      ]);
      fill('latency', [
        ['first token p50', m.latency.ttftP50Ms.toFixed(0) + ' ms'],
        ['first token p99', m.latency.ttftP99Ms.toFixed(0) + ' ms'],
        ['last first token', m.latency.lastTtftMs.toFixed(0) + ' ms'],
        ['last decode speed', m.latency.lastTokensPerSecond.toFixed(1) + ' tok/s'],
      ]);
      fill('requests', [
        ['active', num(m.requests.active)],
        ['queued', num(m.requests.queued)],
        ['completed', num(m.requests.completed)],
        ['cancelled', num(m.requests.cancelled)],
        ['failed', num(m.requests.failed)],
      ]);
      const notes = document.getElementById('notes');
      notes.replaceChildren(...m.notes.map((n) => { const li = document.createElement('li'); li.textContent = n; return li; }));
      history.push({ used, tps: m.latency.lastTokensPerSecond });
      if (history.length > MAX) history.shift();
      draw();
    }
    fill('session', [
      ['requests', num(sess.requests)],
      ['cache hits (type-through)', num(sess.cacheHits)],
      ['joined in-flight', num(sess.joined)],
      ['cancelled', num(sess.cancelled)],
      ['accepted', num(sess.accepted)],
    ]);
  }

  function draw() {
    const c = document.getElementById('history');
    const g = c.getContext('2d');
    g.clearRect(0, 0, c.width, c.height);
    const maxTps = Math.max(1, ...history.map((h) => h.tps));
    const line = (f, color) => {
      g.strokeStyle = color;
      g.beginPath();
      history.forEach((h, i) => {
        const x = (i / (MAX - 1)) * c.width;
        const y = c.height - 4 - f(h) * (c.height - 8);
        if (i === 0) g.moveTo(x, y); else g.lineTo(x, y);
      });
      g.stroke();
    };
    line((h) => h.used, '#0a84ff');
    line((h) => h.tps / maxTps, '#2ea043');
  }

  window.addEventListener('message', (e) => {
    if (e.data && e.data.type === 'metrics') render(e.data);
  });
  vscode.postMessage({ type: 'ready' });
})();
