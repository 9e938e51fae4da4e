// End-to-end test: the packaged .vsix in a real VS Code (code-server), driven by headless Chromium.
// Started by test/e2e/run.sh, which provides CACHET_E2E_CODE_SERVER, CACHET_E2E_NODE, CACHET_E2E_OUT
// and out/e2e/cachet.vsix. Prints one line per check and `e2e: N passed, M failed` at the end.
// Screenshots go to $CACHET_E2E_OUT/screenshots.

import { spawn, execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const OUT = process.env.CACHET_E2E_OUT ?? join(ROOT, 'out', 'e2e');
const CODE_SERVER = process.env.CACHET_E2E_CODE_SERVER;
const NODE24 = process.env.CACHET_E2E_NODE;
const VSIX = join(OUT, 'cachet.vsix');
const SHOTS = join(OUT, 'screenshots');
const BACKEND = process.env.CACHET_E2E_BACKEND ?? 'auto';
const t0 = Date.now();

if (!CODE_SERVER || !NODE24) throw new Error('run test/e2e/run.sh (it installs code-server and Node 24)');
if (!existsSync(VSIX)) throw new Error(`${VSIX} missing: run test/e2e/run.sh`);

let passed = 0;
let failed = 0;
const results = [];
async function check(name, fn) {
  const start = Date.now();
  try {
    const note = await fn();
    passed++;
    results.push({ name, ok: true, ms: Date.now() - start, note });
    console.log(`ok   ${name}${note ? ` (${note})` : ''} [${Date.now() - start} ms]`);
  } catch (err) {
    failed++;
    results.push({ name, ok: false, ms: Date.now() - start, error: String(err?.message ?? err) });
    console.log(`FAIL ${name}: ${String(err?.message ?? err).split('\n')[0]}`);
    await shot(`fail-${name.replace(/\W+/g, '-')}`).catch(() => undefined);
  }
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const nbsp = (s) => s.replace(/\u00a0/g, ' ');

// ---- fresh profile, workspace and model
const run = join(OUT, 'run');
rmSync(run, { recursive: true, force: true });
rmSync(SHOTS, { recursive: true, force: true });
const extDir = join(run, 'extensions');
const userData = join(run, 'user-data');
const workspace = join(run, 'workspace');
mkdirSync(join(userData, 'User'), { recursive: true });
mkdirSync(SHOTS, { recursive: true });
cpSync(join(ROOT, 'test', 'e2e', 'fixture'), workspace, { recursive: true });

// CACHET_E2E_MODEL=generated forces the generated model even when an embedded one is shipped.
const embedded = process.env.CACHET_E2E_MODEL !== 'generated' && existsSync(join(ROOT, 'models')) && readdirSync(join(ROOT, 'models')).some((f) => /^cachet-tiny.*\.gguf$/.test(f));
// A folder listed in cachet.modelSearchPaths: a generated random-weight model (the configured model
// when no embedded one is shipped) and a file that is not a GGUF, which Select Model must show as
// unloadable with its reason.
const searchDir = join(run, 'more-models');
mkdirSync(searchDir, { recursive: true });
const generated = join(searchDir, 'tiny-qwen2-random.gguf');
{
  const bundle = join(run, 'make-model.cjs');
  execFileSync(join(ROOT, 'node_modules', '.bin', 'esbuild'), [join(ROOT, 'test', 'e2e', 'make-model.ts'), '--bundle', '--platform=node', '--format=cjs', `--outfile=${bundle}`, '--log-level=warning']);
  execFileSync(process.execPath, [bundle, generated]);
}
writeFileSync(join(searchDir, 'half-downloaded.gguf'), 'not a GGUF: the download stopped here');
const modelPath = embedded ? '' : generated;
const settings = {
  'workbench.startupEditor': 'none',
  'workbench.tips.enabled': false,
  'security.workspace.trust.enabled': false,
  'telemetry.telemetryLevel': 'off',
  'extensions.autoUpdate': false,
  'extensions.autoCheckUpdates': false,
  'editor.inlineSuggest.enabled': true,
  'editor.quickSuggestions': { other: false, comments: false, strings: false },
  'editor.suggestOnTriggerCharacters': false,
  'editor.autoClosingBrackets': 'never',
  'editor.autoClosingQuotes': 'never',
  'editor.autoIndent': 'none',
  'chat.disableAIFeatures': true,
  'workbench.secondarySideBar.defaultVisibility': 'hidden',
  'cachet.backend': BACKEND,
  'cachet.threads': 2,
  'cachet.completion.debounceMs': 50,
  'cachet.completion.maxTokens': 24,
  'cachet.completion.maxLines': 3,
  'cachet.modelSearchPaths': [searchDir],
  ...(modelPath ? { 'cachet.modelPath': modelPath } : {}),
};
writeFileSync(join(userData, 'User', 'settings.json'), JSON.stringify(settings, null, 2));
// code-server's extension host is "remote": machine-scoped settings (cachet.modelPath) come from
// the Machine settings file, not the user's.
mkdirSync(join(userData, 'Machine'), { recursive: true });
writeFileSync(join(userData, 'Machine', 'settings.json'), JSON.stringify(settings, null, 2));
// The extension contributes these commands; each must run from the palette without an error.
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
const contributed = pkg.contributes.commands;

const env = { ...process.env, PATH: `${dirname(NODE24)}:${process.env.PATH}`, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp' };
delete env.NODE_OPTIONS;
delete env.VSCODE_IPC_HOOK_CLI;

let server;
let browser;
let page;
const shot = async (name) => {
  if (page) await page.screenshot({ path: join(SHOTS, `${String(results.length).padStart(2, '0')}-${name}.png`) });
};

/** Screenshots for the README: fixed names, no failure-order prefix; `target` crops to an element. */
const readmeShot = async (name, target) => {
  const path = join(SHOTS, `readme-${name}.png`);
  if (target) await target.screenshot({ path });
  else await page.screenshot({ path });
  return path;
};

function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => res(p));
    });
    s.on('error', rej);
  });
}

async function stopServer() {
  if (server && server.exitCode === null) {
    // code-server spawns children (extension host, ...): kill its whole process group.
    try {
      process.kill(-server.pid, 'SIGTERM');
    } catch {}
    await Promise.race([new Promise((r) => server.once('exit', r)), sleep(5000)]);
    try {
      process.kill(-server.pid, 'SIGKILL');
    } catch {}
  }
}

async function palette(title) {
  // F1 opens the command palette; one retry covers a focus change eating the first key.
  for (let attempt = 0; ; attempt++) {
    try {
      await page.keyboard.press('Escape');
      await page.keyboard.press('F1');
      const input = page.locator('.quick-input-widget input');
      await input.waitFor({ state: 'visible', timeout: 10_000 });
      await input.fill(`>${title}`, { timeout: 10_000 });
      const row = page.locator('.quick-input-list .monaco-list-row', { hasText: title }).first();
      await row.waitFor({ state: 'visible', timeout: 10_000 });
      await page.keyboard.press('Enter');
      return;
    } catch (err) {
      if (attempt >= 1) throw err;
      await page.keyboard.press('Escape');
      await page.locator('.monaco-workbench').click({ position: { x: 700, y: 300 } }).catch(() => undefined);
    }
  }
}

async function statusText() {
  const item = page.locator('.statusbar-item', { hasText: 'Cachet' }).first();
  return nbsp((await item.innerText({ timeout: 5000 })).trim());
}

async function toasts() {
  const items = page.locator('.notifications-toasts .notification-list-item');
  const n = await items.count();
  const out = [];
  for (let i = 0; i < n; i++) {
    const it = items.nth(i);
    const msg = await it.locator('.notification-list-item-message').innerText().catch(() => '');
    const isError = (await it.locator('.codicon-error').count()) > 0;
    out.push({ msg: nbsp(msg), isError });
  }
  return out;
}

/** The extension's completion counters, from the Cachet: Show Status message. */
async function sessionCounters() {
  await clearToasts();
  await palette('Cachet: Show Status');
  const msg = page.locator('.notification-list-item-message', { hasText: 'cache hits' }).first();
  await msg.waitFor({ timeout: 10_000 });
  const t = nbsp(await msg.innerText());
  await clearToasts();
  const n = (re) => Number(re.exec(t)?.[1] ?? NaN);
  return { requests: n(/(\d+) requests/), cacheHits: n(/(\d+) cache hits/), joined: n(/(\d+) joined/) };
}

async function clearToasts() {
  await page.keyboard.press('Escape');
  const close = page.locator('.notifications-toasts .codicon-notifications-clear, .notifications-toasts .codicon-close');
  for (let i = 0; i < 10 && (await close.count()) > 0; i++) await close.first().click({ timeout: 1000 }).catch(() => undefined);
}

async function ghostText(timeout = 60_000) {
  const ghost = page.locator('.ghost-text-decoration, .ghost-text-decoration-preview, .ghost-text');
  await ghost.first().waitFor({ state: 'visible', timeout });
  const parts = await ghost.allInnerTexts();
  return nbsp(parts.join('\n'));
}

/**
 * Ghost text once it has stopped changing: the first line shows while the rest streams, and the
 * whole completion is then re-offered (hidden and shown again); an accept key pressed in that
 * instant finds nothing to accept. Waits until the text is the same over 3 polls 250 ms apart.
 */
async function settledGhostText(timeout = 60_000) {
  let last = await ghostText(timeout);
  let same = 0;
  const end = Date.now() + 15_000;
  while (same < 3 && Date.now() < end) {
    await sleep(250);
    const now = await ghostText(timeout).catch(() => '');
    same = now && now === last ? same + 1 : 0;
    last = now || last;
  }
  return ghostText(timeout);
}

/** Cursor position from the status bar ("Ln 15, Col 21"). */
async function cursor() {
  const t = nbsp(await page.locator('.statusbar-item', { hasText: /Ln \d+, Col \d+/ }).first().innerText());
  const m = /Ln (\d+), Col (\d+)/.exec(t);
  if (!m) throw new Error(`no cursor position in ${t}`);
  return { line: Number(m[1]), col: Number(m[2]) };
}

async function cursorMoved(before, timeout = 5000) {
  for (let t = 0; t < timeout; t += 100) {
    const now = await cursor();
    if (now.line !== before.line || now.col !== before.col) return now;
    await sleep(100);
  }
  throw new Error(`cursor stayed at Ln ${before.line}, Col ${before.col}`);
}

async function editorText() {
  return nbsp(await page.locator('.monaco-editor .view-lines').first().innerText());
}

/** Put the cursor at the end of the file on a fresh top-level line and type `text`. */
async function typeAtEnd(text) {
  await page.locator('.monaco-editor .view-lines').first().click();
  await page.keyboard.press('Control+End');
  await page.keyboard.press('Enter');
  await page.keyboard.type(text, { delay: 25 });
}

try {
  await check('install the vsix into a fresh profile', async () => {
    const out = execFileSync(CODE_SERVER, ['--install-extension', VSIX, '--extensions-dir', extDir, '--user-data-dir', userData], { env, encoding: 'utf8' });
    if (!/successfully installed/i.test(out)) throw new Error(out);
    const dirs = readdirSync(extDir).filter((d) => d.startsWith('cachet.cachet'));
    if (dirs.length !== 1) throw new Error(`installed folders: ${readdirSync(extDir)}`);
    return dirs[0];
  });

  const port = await freePort();
  server = spawn(
    CODE_SERVER,
    ['--auth', 'none', '--bind-addr', `127.0.0.1:${port}`, '--disable-telemetry', '--disable-update-check', '--disable-workspace-trust', '--extensions-dir', extDir, '--user-data-dir', userData, workspace],
    { env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let serverLog = '';
  server.stdout.on('data', (d) => (serverLog += d));
  server.stderr.on('data', (d) => (serverLog += d));
  for (let i = 0; i < 100 && !/HTTP server listening/.test(serverLog); i++) await sleep(200);
  if (!/HTTP server listening/.test(serverLog)) throw new Error(`code-server did not start:\n${serverLog}`);

  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
  page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  await page.goto(`http://127.0.0.1:${port}/?folder=${encodeURIComponent(workspace)}`);

  await check('workbench loads and the extension activates (status bar item)', async () => {
    await page.locator('.monaco-workbench').waitFor({ timeout: 60_000 });
    await page.locator('.statusbar-item', { hasText: 'Cachet' }).first().waitFor({ timeout: 60_000 });
    await shot('activated');
    return await statusText();
  });

  await check('activation time is reported by Cachet: Show Status', async () => {
    await clearToasts();
    await palette('Cachet: Show Status');
    const msg = page.locator('.notification-list-item-message', { hasText: 'activated in' }).first();
    await msg.waitFor({ timeout: 15_000 });
    const m = /activated in ([\d.]+) ms/.exec(nbsp(await msg.innerText()));
    if (!m) throw new Error('no activation time');
    return `activation ${m[1]} ms`;
  });

  await check('open a file and see ghost text while typing', async () => {
    await clearToasts();
    // util.js is opened first so main.py's requests carry it as a repository-context candidate.
    await page.keyboard.press('Control+P');
    await page.locator('.quick-input-widget input').waitFor({ state: 'visible' });
    await page.locator('.quick-input-widget input').fill('util.js');
    await page.locator('.quick-input-list .monaco-list-row', { hasText: 'util.js' }).first().waitFor();
    await page.keyboard.press('Enter');
    await page.locator('.monaco-editor .view-lines', { hasText: 'clamp' }).first().waitFor({ timeout: 20_000 });
    await page.keyboard.press('Control+P');
    const input = page.locator('.quick-input-widget input');
    await input.waitFor({ state: 'visible' });
    await input.fill('main.py');
    await page.locator('.quick-input-list .monaco-list-row', { hasText: 'main.py' }).first().waitFor();
    await page.keyboard.press('Enter');
    await page.locator('.monaco-editor .view-lines', { hasText: 'def mean' }).first().waitFor({ timeout: 20_000 });
    const t = Date.now();
    await typeAtEnd('result = mean(');
    const ghost = await ghostText(120_000);
    await shot('ghost-text');
    await page.mouse.move(5, 5); // no hover widget over the editor
    await readmeShot('ghost-text', page.locator('.part.editor'));

    return `${JSON.stringify(ghost.slice(0, 40))} after ${Date.now() - t} ms`;
  });

  await check('the status bar shows the engine state after a completion', async () => {
    const s = await statusText();
    if (!/Cachet: (idle|[\d.]+ tok\/s|cache hit|thinking)/.test(s)) throw new Error(`status: ${s}`);
    return s;
  });

  await check('Tab accepts the ghost text into the document', async () => {
    const ghost = await settledGhostText(30_000);
    const first = nbsp(await page.locator('.ghost-text-decoration').first().innerText());
    const before = await cursor();
    await page.keyboard.press('Tab');
    const after = await cursorMoved(before);
    // A one-line suggestion may render as several ghost parts around existing text ("values, " + "0" + ")").
    const whole = ghost.replace(/\n/g, '');
    if (after.line === before.line && after.col - before.col !== first.length && after.col - before.col !== whole.length) throw new Error(`cursor moved ${after.col - before.col} columns for ${JSON.stringify(ghost)}`);
    if ((await page.locator('.ghost-text-decoration').count()) > 0 && !(await editorText()).includes(first.trim())) throw new Error('ghost text still shown, not in the document');
    if (first.trim() && !(await editorText()).includes(first.trim())) throw new Error(`accepted text ${JSON.stringify(first)} not in the editor`);
    await shot('accepted');
    return `accepted ${JSON.stringify(ghost.slice(0, 30))}: Ln ${before.line} Col ${before.col} -> Ln ${after.line} Col ${after.col}`;
  });

  await check('accept next word (Ctrl+Right) takes part of the suggestion', async () => {
    await typeAtEnd('value = add(');
    const ghost = await settledGhostText(60_000);
    const before = await cursor();
    await page.keyboard.press('Control+ArrowRight');
    const after = await cursorMoved(before);
    const moved = after.line === before.line ? after.col - before.col : Infinity;
    if (!(moved > 0)) throw new Error(`cursor did not advance: ${JSON.stringify(before)} -> ${JSON.stringify(after)}`);
    await shot('accept-word');
    return `ghost ${JSON.stringify(ghost.slice(0, 30))}, took ${moved} characters`;
  });

  await check('accept next line (Shift+Tab) takes the first line of the suggestion', async () => {
    await page.keyboard.press('Escape');
    await typeAtEnd('x = ');
    const ghost = await settledGhostText(60_000);
    const before = await cursor();
    await page.keyboard.press('Shift+Tab');
    const after = await cursorMoved(before);
    await shot('accept-line');
    return `ghost ${JSON.stringify(ghost.slice(0, 30))}: Col ${before.col} -> Ln ${after.line} Col ${after.col}`;
  });

  await check('typing the start of a shown suggestion reuses it (no new model request)', async () => {
    await page.keyboard.press('Escape');
    await typeAtEnd('y = mean(');
    await ghostText(60_000);
    const first = nbsp(await page.locator('.ghost-text-decoration').first().innerText());
    if (!first) throw new Error('no inline ghost text on the cursor line');
    const before = await sessionCounters();
    await page.keyboard.type(first.slice(0, 1), { delay: 50 });
    await sleep(1000);
    const after = await sessionCounters();
    const reused = after.cacheHits - before.cacheHits + (after.joined - before.joined);
    if (after.requests !== before.requests) throw new Error(`a new model request started: ${JSON.stringify(before)} -> ${JSON.stringify(after)}`);
    if (reused < 1) throw new Error(`neither a cache hit nor a join: ${JSON.stringify(before)} -> ${JSON.stringify(after)}`);
    await shot('type-through');
    return `typed ${JSON.stringify(first.slice(0, 1))}: cache hits +${after.cacheHits - before.cacheHits}, joined +${after.joined - before.joined}`;
  });

  await check('a function body is suggested after its signature', async () => {
    await page.keyboard.press('Escape');
    await page.keyboard.press('Control+P');
    const input = page.locator('.quick-input-widget input');
    await input.waitFor({ state: 'visible' });
    await input.fill('stats.py');
    await page.locator('.quick-input-list .monaco-list-row', { hasText: 'stats.py' }).first().waitFor();
    await page.keyboard.press('Enter');
    await page.locator('.monaco-editor .view-lines', { hasText: 'def variance' }).first().waitFor({ timeout: 20_000 });
    await clearToasts(); // before typing: clearToasts presses Escape, which would hide the ghost text
    await typeAtEnd('');
    await page.keyboard.press('Enter');
    // One edit (as a paste): the request sees the whole new line and its indentation.
    await page.keyboard.insertText('def sample_variance(values):\n    ');
    await ghostText(60_000);
    await page.mouse.move(5, 5); // no hover widget over the editor
    // The first line streams in first; the whole suggestion replaces it when generation ends.
    let ghost = '';
    for (let stable = 0, i = 0; stable < 3 && i < 40; i++) {
      await sleep(500);
      const now = await ghostText(5_000);
      stable = now === ghost ? stable + 1 : 0;
      ghost = now;
    }
    await readmeShot('ghost-text-body', page.locator('.part.editor'));
    await page.keyboard.press('Escape');
    // A multi-line completion must end up shown whole, not only its first line (the re-offer).
    const ends = [...findLogs(join(userData, 'logs')).map((f) => readFileSync(f, 'utf8')).join('\n').matchAll(/completion: (?:eog|stop|length), \d+ chars shown.*; starts (".*")$/gm)];
    const last = ends.length ? JSON.parse(ends[ends.length - 1][1]) : '';
    const second = last.split('\n').slice(1).join('').replace(/\s+/g, '').slice(0, 12);
    if (second && !ghost.replace(/\s+/g, '').includes(second)) throw new Error(`only part of a multi-line completion is shown: ${JSON.stringify(ghost.slice(0, 80))} for ${JSON.stringify(last)}`);
    return `${JSON.stringify(ghost.slice(0, 60))}${second ? ' (multi-line, shown whole)' : ''}`;
  });

  await check('Select Model lists the bundled model first, details per model, unloadable files with the reason', async () => {
    await page.keyboard.press('Escape');
    await clearToasts();
    await palette('Cachet: Select Model');
    const list = page.locator('.quick-input-list');
    await list.locator('.monaco-list-row', { hasText: 'half-downloaded.gguf' }).first().waitFor({ timeout: 60_000 });
    const rows = await list.locator('.monaco-list-row').allInnerTexts();
    const flat = rows.map((r) => nbsp(r).replace(/\s+/g, ' '));
    await page.mouse.move(5, 5);
    await page.locator('.notifications-toasts .notification-list-item').first().waitFor({ state: 'hidden', timeout: 2000 }).catch(() => undefined);
    await readmeShot('select-model', page.locator('.quick-input-widget'));
    await page.keyboard.press('Escape');
    if (embedded && !/Cachet-Tiny \(bundled\).*small demo model · 35M Q8_0 · llama · context 1024 · FIM/.test(flat[0])) throw new Error(`first row: ${flat[0]}`);
    const gen = flat.find((r) => r.includes('tiny-qwen2-random.gguf'));
    if (!gen || !/F32 · qwen2 · context 2048 · FIM · path/.test(gen) || !/fits|tight/.test(gen)) throw new Error(`generated model row: ${gen}`);
    const broken = flat.find((r) => r.includes('half-downloaded.gguf'));
    if (!broken || !/cannot load/.test(broken) || !/bad magic|not a GGUF|magic/i.test(broken)) throw new Error(`unloadable row: ${broken}`);
    return `${flat.length} rows; ${broken.slice(0, 100)}`;
  });

  await check('the dashboard shows live engine metrics', async () => {
    await palette('Cachet: Show Dashboard');
    const frame = page.frameLocator('iframe.webview').frameLocator('iframe');
    await frame.locator('#reuse dd').first().waitFor({ timeout: 15_000 });
    await sleep(1500); // one more metrics poll
    const txt = await frame.locator('body').innerText();
    await shot('dashboard-metrics');
    await clearToasts();
    await page.mouse.move(5, 5);
    await readmeShot('dashboard', page.locator('iframe.webview').first());
    if (!/prefix hit rate/.test(txt) || !/slots used/.test(txt)) throw new Error(txt.slice(0, 200));
    // After three completions the engine has computed prompt tokens and generated some.
    const computed = Number((/tokens computed\s*([\d,]+)/.exec(txt)?.[1] ?? '0').replace(/,/g, ''));
    const generated = Number((/tokens generated\s*([\d,]+)/.exec(txt)?.[1] ?? '0').replace(/,/g, ''));
    if (!(computed > 0 && generated > 0)) throw new Error(`no engine activity in the dashboard: computed ${computed}, generated ${generated}`);
    const flat = txt.replace(/\s+/g, ' ');
    return ['prefix hit rate', 'tokens reused', 'tokens computed', 'KV'].map((k) => new RegExp(`${k} ([\\d.,]+ ?(%|MiB)?)`).exec(flat)?.[0]).filter(Boolean).join(', ');
  });

  await check('clicking the status bar item toggles completions', async () => {
    const item = page.locator('.statusbar-item', { hasText: 'Cachet' }).first();
    await item.click();
    await page.locator('.statusbar-item', { hasText: 'Cachet: off' }).first().waitFor({ timeout: 5000 });
    await item.click();
    await page.locator('.statusbar-item', { hasText: /Cachet:\s(idle|[\d.]+\stok\/s|cache\shit)/ }).first().waitFor({ timeout: 5000 });
    await sleep(1500); // the setting write and its change event must not flip it back
    await clearToasts();
    const s = await statusText();
    if (/off/.test(s)) throw new Error(`completions went back off: ${s}`);
    return s;
  });

  for (const c of contributed) {
    const title = `${c.category}: ${c.title}`;
    await check(`command "${title}" runs without error`, async () => {
      await clearToasts();
      await palette(title);
      await sleep(c.command === 'cachet.restartEngine' ? 3000 : 800);
      if (c.command === 'cachet.selectModel') {
        // A quick pick of discovered models opens; it lists the configured or embedded one.
        const rows = page.locator('.quick-input-list .monaco-list-row');
        await rows.first().waitFor({ timeout: 10_000 });
        const txt = nbsp(await page.locator('.quick-input-list').innerText());
        await shot('select-model');
        await page.keyboard.press('Escape');
        if (!/\.gguf/.test(txt)) throw new Error(`no model listed: ${txt}`);
      }
      if (c.command === 'cachet.showDashboard') {
        await page.locator('.tab', { hasText: 'Cachet Dashboard' }).first().waitFor({ timeout: 10_000 });
        await sleep(1500);
        await shot('dashboard');
      }
      if (c.command === 'cachet.showLogs') {
        // The Output view scrolls to its end: any of the extension's log lines will do (\s: the
        // editor renders spaces as U+00A0, which a regex must allow).
        await page.locator('.monaco-editor .view-lines', { hasText: /Cachet\s+activated\s+in|model\s+ready|completion:\s/ }).first().waitFor({ timeout: 10_000 });
        await shot('logs');
      }
      const errs = (await toasts()).filter((t) => t.isError || /not found|failed/i.test(t.msg));
      if (errs.length) throw new Error(errs.map((e) => e.msg).join(' | '));
      if (c.command === 'cachet.toggleCompletions') {
        const s = await statusText();
        if (!/off/.test(s)) throw new Error(`after toggle: ${s}`);
        await palette(title); // back on
        await sleep(500);
        const s2 = await statusText();
        if (/off/.test(s2)) throw new Error(`after second toggle: ${s2}`);
      }
      return undefined;
    });
  }


  await check('a broken model path shows the engine error with its hint and a Select Model action', async () => {
    await clearToasts();
    const broken = { ...settings, 'cachet.modelPath': join(run, 'missing-model.gguf') };
    writeFileSync(join(userData, 'Machine', 'settings.json'), JSON.stringify(broken, null, 2));
    writeFileSync(join(userData, 'User', 'settings.json'), JSON.stringify(broken, null, 2));
    await sleep(2000); // settings file watcher -> engine stops; the next completion restarts it
    await typeAtEnd('z = ');
    const toast = page.locator('.notifications-toasts .notification-list-item', { hasText: 'missing-model.gguf' }).first();
    await toast.waitFor({ timeout: 60_000 });
    const msg = nbsp(await toast.locator('.notification-list-item-message').innerText());
    const buttons = nbsp(await toast.locator('.monaco-button').allInnerTexts().then((b) => b.join('|')));
    await shot('model-error');
    if (!/Select Model/.test(buttons)) throw new Error(`actions: ${buttons}`);
    if (!/—/.test(msg)) throw new Error(`no hint in: ${msg}`);
    const s = await statusText();
    if (!/error/.test(s)) throw new Error(`status: ${s}`);
    return `${msg.slice(0, 120)} [${buttons}]`;
  });

  await check('deactivating the extension (window reload ends its extension host, as disabling does) shuts the engine worker down', async () => {
    // The worker is a worker_thread inside the extension host: deactivate() must end it. The
    // broken-model check above left a worker running (started, model load failed).
    await clearToasts();
    await palette('Developer: Reload Window');
    await sleep(2000);
    await page.locator('.statusbar-item', { hasText: 'Cachet' }).first().waitFor({ timeout: 60_000 });
    for (let i = 0; i < 40; i++) {
      // The old host's log ends with its deactivation (the host exits right after, so a later
      // "deactivated" line may not reach the file).
      const logs = findLogs(join(userData, 'logs')).map((f) => readFileSync(f, 'utf8')).join('\n');
      const at = logs.indexOf('deactivating: stopping the engine');
      if (at >= 0) {
        const after = logs.slice(at).split('\n').slice(0, 3).join('\n');
        if (/engine worker did not stop/.test(after)) throw new Error(after);
        if (/engine worker stopped/.test(after)) {
          const hostLog = findFiles(join(userData, 'logs'), /remoteexthost\.log$/).map((f) => readFileSync(f, 'utf8')).join('\n');
          const exit = /Extension host with pid \d+ exiting with code \d+/.exec(hostLog)?.[0] ?? 'host exit not logged';
          return `${after.split('\n').map((l) => l.replace(/^\[[^\]]*\] /, '')).filter((l) => /deactivat|worker/.test(l)).join(' | ')}; ${exit}`;
        }
      }
      await sleep(500);
    }
    throw new Error('no deactivation lines in the Cachet log');
  });
} catch (err) {
  failed++;
  console.log(`FAIL harness: ${err?.stack ?? err}`);
  await shot('harness-error').catch(() => undefined);
} finally {
  await browser?.close().catch(() => undefined);
  await stopServer();
}

// Keep the extension's Output channel ("Cachet") with the artifacts.
function findFiles(dir, re) {
  let out = [];
  try {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) out = out.concat(findFiles(p, re));
      else if (re.test(e.name)) out.push(p);
    }
  } catch {}
  return out;
}
function findLogs(dir) {
  return findFiles(dir, /Cachet\.log$/);
}
for (const [i, f] of findLogs(join(userData, 'logs')).entries()) cpSync(f, join(OUT, i ? `cachet-${i}.log` : 'cachet.log'));
// The Output channel shows what each request carried: main.py's requests include util.js as a context file.
{
  const logPath = join(OUT, 'cachet.log');
  // Every Cachet log (one per extension host session).
  const log = findLogs(join(userData, 'logs')).map((f) => readFileSync(f, 'utf8')).join('\n');
  const withChunks = (log.match(/request at offset \d+ \(\d+ chars of context, [1-9]\d* context files\)/g) ?? []).length;
  if (withChunks > 0) {
    passed++;
    console.log(`ok   requests carry repository-context files (${withChunks} requests, from the Cachet log)`);
  } else {
    failed++;
    console.log(`FAIL requests carry repository-context files: none in ${logPath}`);
  }
}
writeFileSync(join(OUT, 'results.json'), JSON.stringify({ passed, failed, seconds: (Date.now() - t0) / 1000, results }, null, 2));
console.log(`e2e: ${passed} passed, ${failed} failed (${((Date.now() - t0) / 1000).toFixed(1)} s; screenshots in ${SHOTS})`);
process.exit(failed ? 1 : 0);
