// Keystroke-to-ghost-text latency over a scripted editing session, through the same code the
// extension runs: CompletionSession (debounce, cancel on every keystroke, join of the in-flight
// request, type-through cache, stop rules; src/completion) on EngineLink (src/engine-link.ts: the
// engine in a worker thread through EngineClient and engine/protocol), with the extension's default
// settings (debounce 150 ms, maxTokens 128, maxLines 16, contextTokens 2048, contextLength 8192,
// threads auto) and the embedded model.
//
// A real source file is typed from an empty document, one keystroke per character; Enter also
// inserts the next line's indentation (as the editor's auto-indent does). Pauses come from a seeded
// RNG: 30-120 ms between characters, 300-800 ms after a line, divided by --speed. As VS Code does,
// every keystroke cancels the previous provider call and asks again.
// Per keystroke: what was shown (fresh engine request, joined in-flight request, type-through
// cache, nothing) and when. Per engine request: superseded by a keystroke or not, prompt tokens
// reused from the prefix cache vs prefilled (the engine's timings).
//
// Run from the repository root:
//   npx esbuild bench/keystroke.ts --bundle --platform=node --packages=external --loader:.wgsl=text \
//     --outfile=bench/tmp/keystroke.js && node bench/tmp/keystroke.js [--backend onnx] [--speed 1] \
//     [--max-seconds 170] [--file test/oracle/node_modules/minimist/index.js] [--seed 1] [--out FILE]
// Writes (merging per backend) bench/results/keystroke-cpu.json.

import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type { BackendChoice, FinishReason, MetricsSnapshot, Timings } from '../engine/protocol';
import { SeededRng } from '../engine/sampling';
import { contextWindow } from '../src/completion/context-window';
import { CompletionSession, type CancelToken, type CompletionBackend, type CompletionQuery } from '../src/completion/session';
import { EngineLink } from '../src/engine-link';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}

const root = process.cwd();
const backend = arg('backend', 'onnx') as BackendChoice;
const speed = Number(arg('speed', '1'));
const maxSeconds = Number(arg('max-seconds', '170'));
const seed = Number(arg('seed', '1'));
const filePath = resolve(root, arg('file', 'test/oracle/node_modules/minimist/index.js'));
const fileLabel = arg('file-label', 'minimist@1.2.8/index.js (MIT)');
const modelPath = resolve(root, arg('model', 'models/cachet-tiny.Q8_0.gguf'));
const outPath = resolve(root, arg('out', 'bench/results/keystroke-cpu.json'));
const workerArg = arg('worker', '');

// The extension's defaults (src/config.ts).
const SETTINGS = { debounceMs: 150, maxTokens: 128, maxLines: 16, contextTokens: 2048, contextLength: 8192, threads: 0 };

/** A VS Code CancellationTokenSource stand-in. */
class TokenSource {
  private listeners = new Set<() => void>();
  cancelled = false;
  readonly token: CancelToken = {
    isCancellationRequested: false,
    onCancellationRequested: (l: () => void) => {
      this.listeners.add(l);
      return { dispose: () => this.listeners.delete(l) };
    },
  };
  cancel(): void {
    if (this.cancelled) return;
    this.cancelled = true;
    (this.token as { isCancellationRequested: boolean }).isCancellationRequested = true;
    for (const l of [...this.listeners]) l();
  }
}

interface Keystroke {
  index: number;
  atMs: number;
  line: number;
  outcome?: 'engine' | 'joined' | 'cache' | 'superseded' | 'empty' | 'error';
  latencyMs?: number;
  shown?: string;
  /** Characters of the shown text that the user then typed. */
  agreed?: number;
  /** A cache answer from the text so far of a request that had not finished. */
  partialHit?: boolean;
}

interface EngineRequest {
  keystroke: number;
  startMs: number;
  firstTextMs?: number;
  endMs?: number;
  reason?: FinishReason | 'error';
  timings?: Timings;
  cancelCalled?: boolean;
  superseded?: boolean;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;
function pct(values: number[], q: number): number {
  if (values.length === 0) return NaN;
  const s = values.slice().sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
}

/** Keystrokes: one per character; Enter takes the next line's indentation with it. */
function keystrokes(text: string): { insert: string; line: number }[] {
  const out: { insert: string; line: number }[] = [];
  let line = 1;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (ch === '\n') {
      let j = i + 1;
      while (j < text.length && (text[j] === ' ' || text[j] === '\t')) j++;
      out.push({ insert: text.slice(i, j), line });
      line++;
      i = j - 1;
    } else out.push({ insert: ch, line });
  }
  return out;
}

async function buildWorker(): Promise<string> {
  if (workerArg) return resolve(root, workerArg);
  const esbuild = await import('esbuild');
  const tmp = resolve(root, 'bench/tmp');
  mkdirSync(tmp, { recursive: true });
  const workerPath = join(tmp, 'keystroke-worker.js');
  await esbuild.build({
    entryPoints: [resolve(root, 'engine/runtime/worker.ts')], outfile: workerPath, bundle: true, platform: 'node',
    target: 'node20', format: 'cjs', external: ['vscode', 'webgpu', 'onnxruntime-node', 'node-llama-cpp'],
    loader: { '.wgsl': 'text' }, logLevel: 'error',
  });
  return workerPath;
}

async function main(): Promise<void> {
  if (!existsSync(filePath) || !existsSync(modelPath)) {
    console.log(`SKIP: needs ${filePath} and ${modelPath}`);
    return;
  }
  const source = readFileSync(filePath, 'utf8');
  const workerPath = await buildWorker();
  const log: string[] = [];
  const link = new EngineLink(workerPath, () => ({ modelPath, backend, contextLength: SETTINGS.contextLength, threads: SETTINGS.threads }), (l) => log.push(l));
  const tLoad = performance.now();
  const model = await link.ensureReady();
  const loadMs = performance.now() - tLoad;

  const t0 = performance.now();
  const now = () => performance.now() - t0;
  const requests: EngineRequest[] = [];
  let current = -1;
  // The extension's backend, wrapped to see every request's end and timings (cancelled ones too).
  const recording: CompletionBackend = {
    start(input, opts, sink) {
      const rec: EngineRequest = { keystroke: current, startMs: now() };
      requests.push(rec);
      const h = link.start(input, opts, {
        onText: (t) => { rec.firstTextMs ??= now(); sink.onText(t); },
        onDone: (reason, timings) => { rec.reason = reason; rec.timings = timings; rec.endMs = now(); sink.onDone(reason, timings); },
        onError: (err) => { rec.reason = 'error'; rec.endMs = now(); sink.onError(err); },
      });
      return { cancel: () => { rec.cancelCalled = true; h.cancel(); } };
    },
  };
  const session = new CompletionSession(recording, { debounceMs: SETTINGS.debounceMs, maxTokens: SETTINGS.maxTokens, streamFirstLine: true });
  // cancelPending() (a newer keystroke, or an orphan left unjoined) says 'cancel'; a stop rule does not.
  session.onEvent((e) => {
    if (e.kind === 'cache-hit' && typed[current]) typed[current]!.partialHit = e.partial;
    if (e.kind === 'cancel') {
      const r = requests.findLast((x) => x.cancelCalled && !x.superseded);
      if (r) r.superseded = true;
    }
  });

  const rng = new SeededRng(seed);
  const keys = keystrokes(source);
  const typed: Keystroke[] = [];
  const pendingAnswers: Promise<void>[] = [];
  let doc = '';
  let previous: TokenSource | undefined;
  const load0 = loadavg();
  // The box is shared: sample the 1-minute load while typing (what `uptime` shows).
  const loadSamples: number[] = [];
  const loadTimer = setInterval(() => loadSamples.push(loadavg()[0]!), 5000);
  for (let k = 0; k < keys.length; k++) {
    if (now() > maxSeconds * 1000) break;
    const key = keys[k]!;
    doc += key.insert;
    current = k;
    previous?.cancel();
    const src = new TokenSource();
    previous = src;
    const ks: Keystroke = { index: k, atMs: now(), line: key.line };
    typed.push(ks);
    const w = contextWindow(doc, doc.length, { contextTokens: SETTINGS.contextTokens });
    const q: CompletionQuery = {
      doc: 'file:///bench/index.js', offset: w.offset, prefix: w.prefix, suffix: w.suffix,
      fim: { prefix: w.prefix, suffix: w.suffix, filePath: 'index.js', languageId: 'javascript', repoName: 'bench' },
      post: { linePrefix: w.linePrefix, lineSuffix: w.lineSuffix, suffix: w.suffix, maxLines: SETTINGS.maxLines, tabSize: 2 },
    };
    const upcoming = source.slice(doc.length, doc.length + 400);
    pendingAnswers.push(session.complete(q, src.token).then(
      (a) => {
        if (!a) { ks.outcome = src.cancelled ? 'superseded' : 'empty'; return; }
        ks.outcome = a.source;
        ks.latencyMs = now() - ks.atMs;
        ks.shown = a.text;
        let n = 0;
        while (n < a.text.length && a.text[n] === upcoming[n]) n++;
        ks.agreed = n;
      },
      () => { ks.outcome = 'error'; },
    ));
    const next = keys[k + 1];
    if (!next) break;
    const gap = key.insert.startsWith('\n') ? 300 + 500 * rng.next() : 30 + 90 * rng.next();
    await sleep(gap / speed);
  }
  const typingS = now() / 1000;
  const load1 = loadavg();
  clearInterval(loadTimer);
  // Let the last request finish as if the user paused, then collect the engine's metrics.
  await Promise.race([Promise.all(pendingAnswers), sleep(60_000)]);
  const settleUntil = now() + 60_000;
  while (requests.some((r) => r.reason === undefined) && now() < settleUntil) await sleep(100);
  const metrics = await new Promise<MetricsSnapshot | undefined>((ok) => {
    const sub = link.onMetrics((m) => { sub.dispose(); ok(m); });
    link.requestMetrics();
    setTimeout(() => ok(undefined), 10_000).unref();
  });
  session.dispose();
  await link.dispose();

  // ---- summary
  const count = (o: Keystroke['outcome']) => typed.filter((k) => k.outcome === o).length;
  const shown = typed.filter((k) => k.outcome === 'engine' || k.outcome === 'joined' || k.outcome === 'cache');
  const fresh = typed.filter((k) => k.outcome === 'engine');
  const joined = typed.filter((k) => k.outcome === 'joined');
  const cached = typed.filter((k) => k.outcome === 'cache');
  const lat = (ks: Keystroke[]) => ({ n: ks.length, p50: round(pct(ks.map((k) => k.latencyMs!), 0.5), 0), p95: round(pct(ks.map((k) => k.latencyMs!), 0.95), 0) });
  const withTimings = requests.filter((r) => r.timings && r.timings.promptTokens > 0);
  const sum = (f: (r: EngineRequest) => number) => withTimings.reduce((a, r) => a + f(r), 0);
  const first = requests[0];
  const firstShown = first ? typed.find((k) => k.outcome === 'engine' && k.index === first.keystroke) : undefined;
  const laterFresh = fresh.filter((k) => k !== firstShown);
  const superseded = requests.filter((r) => r.superseded).length;
  // Superseded before anything of it was shown (the user typed on while it computed).
  const shownKeys = new Set(typed.filter((k) => k.outcome === 'engine' || k.outcome === 'joined').map((k) => k.index));
  const supersededUnseen = requests.filter((r, i) => {
    if (!r.superseded) return false;
    const end = requests[i + 1]?.keystroke ?? Infinity;
    for (const k of shownKeys) if (k >= r.keystroke && k < end) return false;
    return true;
  }).length;
  const stoppedByRule = requests.filter((r) => r.cancelCalled && !r.superseded).length;
  const result = {
    date: new Date().toISOString(),
    machine: { cpus: cpus().length, cpu: cpus()[0]?.model ?? 'unknown', node: process.version, loadavgStart: load0.map((x) => round(x, 2)), loadavgEnd: load1.map((x) => round(x, 2)), load1mWhileTyping: loadSamples.length ? { mean: round(loadSamples.reduce((a, b) => a + b, 0) / loadSamples.length, 2), max: round(Math.max(...loadSamples), 2), samples: loadSamples.length } : undefined },
    path: 'EngineLink -> EngineClient -> worker thread (engine/runtime/worker.ts), as the extension',
    model: { name: model.name, weights: model.weightType, backend: model.backend, contextLength: model.contextLength, loadMs: round(loadMs, 0) },
    settings: { ...SETTINGS, streamFirstLine: true, speed, maxSeconds, seed, pauses: 'char 30-120 ms, end of line 300-800 ms, / speed' },
    file: { label: fileLabel, lines: source.split('\n').length, chars: source.length },
    typed: { keystrokes: typed.length, of: keys.length, lines: typed.length ? typed[typed.length - 1]!.line : 0, seconds: round(typingS, 1) },
    keystrokes: {
      shownFromEngine: fresh.length, shownFromJoinedRequest: joined.length, shownFromTypeThroughCache: cached.length,
      // Of those: the text so far of a request still streaming (or cancelled midway).
      shownFromUnfinishedRequestText: cached.filter((k) => k.partialHit).length,
      superseded: count('superseded'), empty: count('empty'), errors: count('error'),
      shownPct: round((100 * shown.length) / Math.max(1, typed.length)),
      servedFromCachePctOfShown: round((100 * cached.length) / Math.max(1, shown.length)),
      shownAgreeingWithNextTyped: shown.filter((k) => (k.agreed ?? 0) >= Math.min(3, k.shown!.length)).length,
    },
    timeToFirstVisibleMs: {
      engineAndJoined: lat([...fresh, ...joined]),
      engine: lat(fresh),
      joined: lat(joined),
      cache: lat(cached),
      all: lat(shown),
    },
    engineRequests: {
      started: requests.length,
      supersededByKeystroke: superseded,
      supersededPct: round((100 * superseded) / Math.max(1, requests.length)),
      supersededBeforeShown: supersededUnseen,
      supersededBeforeShownPct: round((100 * supersededUnseen) / Math.max(1, requests.length)),
      stoppedByStopRule: stoppedByRule,
      finished: requests.filter((r) => !r.cancelCalled && r.reason !== 'error').length,
      reasons: Object.fromEntries([...new Set(requests.map((r) => r.reason ?? 'unfinished'))].map((x) => [x, requests.filter((r) => (r.reason ?? 'unfinished') === x).length])),
      ttftP50Ms: round(pct(withTimings.filter((r) => r.timings!.ttftMs >= 0).map((r) => r.timings!.ttftMs), 0.5), 0),
      promptTokens: sum((r) => r.timings!.promptTokens),
      cachedTokens: sum((r) => r.timings!.cachedTokens),
      prefilledTokens: sum((r) => r.timings!.prefillTokens),
      prefixReusePct: round((100 * sum((r) => r.timings!.cachedTokens)) / Math.max(1, sum((r) => r.timings!.promptTokens))),
      // Requests cancelled during prefill never place all their prompt: reuse among tokens placed.
      prefixReusePctOfPlaced: round((100 * sum((r) => r.timings!.cachedTokens)) / Math.max(1, sum((r) => r.timings!.cachedTokens + r.timings!.prefillTokens))),
      requestsWithPrefixHitPct: round((100 * withTimings.filter((r) => r.timings!.cachedTokens > 0).length) / Math.max(1, withTimings.length)),
      engineKvHitRate: metrics ? round(metrics.kv.hitRate, 3) : undefined,
    },
    coldVsWarm: {
      cold: first ? { keystroke: first.keystroke, shownAfterMs: firstShown ? round(firstShown.latencyMs!, 0) : null, ttftMs: first.timings ? round(first.timings.ttftMs, 0) : null, prefilled: first.timings?.prefillTokens, reason: first.reason } : null,
      // The first request is cancelled more often than not (the user types on): also the first shown.
      firstShown: fresh[0] ? { keystroke: fresh[0].index, ms: round(fresh[0].latencyMs!, 0), requestsBefore: requests.filter((r) => r.keystroke < fresh[0]!.index).length } : null,
      warmEngine: lat(laterFresh),
      warmEngineAfterFirstShown: lat(fresh.slice(1)),
    },
    engineMetrics: metrics ? { requests: metrics.requests, tokens: metrics.tokens, kv: metrics.kv, latency: metrics.latency, scheduler: metrics.scheduler } : undefined,
    samples: typed.filter((k) => k.shown).slice(0, 12).map((k) => ({ keystroke: k.index, line: k.line, from: k.outcome, ms: round(k.latencyMs!, 0), shown: k.shown!.slice(0, 80), agreed: k.agreed })),
  };
  console.log(JSON.stringify(result, null, 1));

  const t = result.timeToFirstVisibleMs;
  console.log([
    '',
    `| backend | keystrokes (lines) | shown | superseded | from cache (of shown) | first visible p50 / p95 (engine+joined) | cache p50 | engine requests | cancelled before shown | prefix reuse | first shown (cold) |`,
    '|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|',
    `| ${model.backend} | ${result.typed.keystrokes} (${result.typed.lines}) | ${result.keystrokes.shownPct}% | ${round((100 * count('superseded')) / Math.max(1, typed.length))}% | ${result.keystrokes.servedFromCachePctOfShown}% | ${t.engineAndJoined.p50} / ${t.engineAndJoined.p95} ms (n=${t.engineAndJoined.n}) | ${t.cache.p50} ms | ${requests.length} | ${result.engineRequests.supersededBeforeShownPct}% | ${result.engineRequests.prefixReusePct}% tokens, ${result.engineRequests.requestsWithPrefixHitPct}% requests | ${result.coldVsWarm.firstShown ? result.coldVsWarm.firstShown.ms + ' ms' : 'none'} |`,
  ].join('\n'));

  const all = existsSync(outPath) ? JSON.parse(readFileSync(outPath, 'utf8')) as { runs?: Record<string, unknown> } : {};
  const merged = { bench: 'keystroke', runs: { ...(all.runs ?? {}), [`${model.backend}${arg('tag', '') ? '-' + arg('tag', '') : ''}`]: result } };
  mkdirSync(dirname(outPath), { recursive: true });
  writeFileSync(outPath, JSON.stringify(merged, null, 1) + '\n');
  console.log(`wrote ${outPath}`);
}

main().then(() => process.exit(0), (err) => {
  console.error(err);
  process.exit(1);
});
