// Cachet extension entry: cheap activation (no engine work; the engine worker starts on the first
// completion or command that needs it), settings, provider, commands, status bar, dashboard.

import * as vscode from 'vscode';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { readSettings, engineSettingsKey, serverSettingsKey, type CachetSettings } from './config';
import { CompletionSession, type CompletionBackend, type SessionEvent } from './completion/session';
import { CachetInlineProvider } from './completion/provider';
import { EngineLink, EngineFailure, loadSettingsFor, type EngineState } from './engine-link';
import { RemoteBackend } from './remote-backend';
import { CachetStatusBar } from './status-bar';
import { Dashboard, type SessionCounters } from './dashboard';
import { LocalServer } from './local-server';
import { embeddedModel, selectModel, type SettingsTarget, settingsTarget } from './models';
import { EditTracker, type OpenFile } from './completion/open-files';
import { ImportedFileCache } from './completion/imported-files';

/** Files the current file imports are read for context up to this size. */
const MAX_IMPORTED_FILE_BYTES = 200_000;

export const COMMANDS = {
  accept: 'cachet.acceptSuggestion',
  acceptWord: 'cachet.acceptNextWord',
  acceptLine: 'cachet.acceptNextLine',
  trigger: 'cachet.triggerCompletion',
  toggle: 'cachet.toggleCompletions',
  selectModel: 'cachet.selectModel',
  dashboard: 'cachet.showDashboard',
  clearCaches: 'cachet.clearCaches',
  restart: 'cachet.restartEngine',
  logs: 'cachet.showLogs',
  status: 'cachet.showStatus',
  accepted: 'cachet.onAccepted',
} as const;

let teardown: (() => Promise<void>) | undefined;

export function activate(context: vscode.ExtensionContext): { activationMs: number; engine: EngineLink } {
  const t0 = performance.now();
  const out = vscode.window.createOutputChannel('Cachet');
  const log = (line: string) => out.appendLine(`[${new Date().toISOString().slice(11, 23)}] ${line}`);
  let settings = readSettings();
  let enabled = settings.completion.enabled;
  const counters: SessionCounters = { requests: 0, cacheHits: 0, joined: 0, cancelled: 0, accepted: 0 };

  const modelPath = (s: CachetSettings) => s.modelPath || embeddedModel(context.extensionPath) || '';
  const engine = new EngineLink(
    join(context.extensionPath, 'dist', 'worker.js'),
    () => loadSettingsFor(settings, modelPath(settings), context.globalStorageUri ? join(context.globalStorageUri.fsPath, 'kv-cache') : undefined),
    log,
  );
  const backendFor = (s: CachetSettings): CompletionBackend => (s.remote.url ? new RemoteBackend(s.remote.url, s.remote.model) : engine);
  const session = new CompletionSession(backendFor(settings), {
    debounceMs: settings.completion.debounceMs,
    maxTokens: settings.completion.maxTokens,
    streamFirstLine: true,
  });
  const status = new CachetStatusBar(COMMANDS.toggle);
  const dashboard = new Dashboard(context.extensionUri, engine, () => ({ ...counters, cacheHits: session.cache.hits }));
  const server = new LocalServer(log);

  // ---- errors: shown once per message per 30 s, with the engine's hint and an action.
  const lastShown = new Map<string, number>();
  const showError = (err: unknown, always = false) => {
    const f = err instanceof EngineFailure ? err : undefined;
    const message = f ? f.message : err instanceof Error ? err.message : String(err);
    if (f?.errorName === 'CancelledError') return;
    const now = Date.now();
    if (!always && (lastShown.get(message) ?? 0) > now - 30_000) return;
    lastShown.set(message, now);
    log(`error: ${message}${f ? ` (hint: ${f.hint})` : ''}`);
    const modelProblem = !f || /NoModel|Gguf|ModelNotSupported|ENOENT/.test(f.errorName + message);
    const actions = modelProblem ? ['Select Model', 'Show Logs'] : ['Restart Engine', 'Show Logs'];
    void vscode.window.showErrorMessage(`Cachet: ${message}${f?.hint ? ` — ${f.hint}` : ''}`, ...actions).then((pick) => {
      if (pick === 'Select Model') void vscode.commands.executeCommand(COMMANDS.selectModel);
      else if (pick === 'Restart Engine') void vscode.commands.executeCommand(COMMANDS.restart);
      else if (pick === 'Show Logs') out.show(true);
    });
  };

  // ---- status bar follows the engine and the session.
  const onEngineState = (s: EngineState) => {
    if (settings.remote.url) return;
    switch (s.kind) {
      case 'ready':
        status.update({ engine: 'ready', modelName: s.model.name, backend: s.model.backend, errorMessage: undefined });
        break;
      case 'loading':
        status.update({ engine: 'loading', progress: s.fraction });
        break;
      case 'error':
        status.update({ engine: 'error', errorMessage: s.error.message, activity: undefined });
        break;
      default:
        status.update({ engine: s.kind });
    }
  };
  context.subscriptions.push(
    engine.onState(onEngineState),
    engine.onWarning((w) => {
      if (w.code === 'backend-fallback' || w.code === 'backend-lost') void vscode.window.showWarningMessage(`Cachet: ${w.message}${w.hint ? ` — ${w.hint}` : ''}`);
    }),
    session.onEvent((e) => {
      log(sessionLogLine(e));
      if (e.kind === 'start') {
        counters.requests++;
        status.update({ activity: 'thinking' });
      } else if (e.kind === 'end') {
        if (e.timings && e.timings.generatedTokens > 0) {
          status.update({ activity: { tokensPerSecond: e.timings.tokensPerSecond, cachedTokens: e.timings.cachedTokens, promptTokens: e.timings.promptTokens } });
        } else status.update({ activity: undefined });
      } else if (e.kind === 'cache-hit') status.flash({ activity: 'cache-hit' });
      else if (e.kind === 'joined') counters.joined++;
      else if (e.kind === 'cancel') {
        counters.cancelled++;
        status.update({ activity: undefined });
      }
    }),
  );
  status.update({ enabled, engine: settings.remote.url ? 'remote' : 'stopped' });

  // ---- provider (open files are repository-context candidates; remember when each editor was
  // last focused and each document last edited)
  const lastActive = new Map<string, number>();
  const edits = new EditTracker();
  const markActive = (ed: vscode.TextEditor | undefined) => {
    if (ed) lastActive.set(ed.document.uri.toString(), Date.now());
  };
  const isCodeDoc = (d: vscode.TextDocument) => d.uri.scheme === 'file' || d.uri.scheme === 'untitled' || d.uri.scheme === 'vscode-remote';
  markActive(vscode.window.activeTextEditor);
  context.subscriptions.push(
    vscode.window.onDidChangeActiveTextEditor(markActive),
    vscode.workspace.onDidChangeTextDocument((e) => {
      if (e.contentChanges.length > 0 && isCodeDoc(e.document)) edits.edited(e.document.uri.toString(), Date.now());
    }),
    vscode.workspace.onDidCloseTextDocument((d) => edits.forget(d.uri.toString())),
  );
  // Files the current file imports that are not open, read in the background (imported-files.ts).
  const importedCache = new ImportedFileCache({
    list: async (dir) => {
      const base = vscode.Uri.parse(dir);
      const entries = await vscode.workspace.fs.readDirectory(base);
      return entries.filter(([, type]) => type === vscode.FileType.File).map(([name]) => vscode.Uri.joinPath(base, name).toString());
    },
    read: async (path) => {
      const uri = vscode.Uri.parse(path);
      if ((await vscode.workspace.fs.stat(uri)).size > MAX_IMPORTED_FILE_BYTES) return undefined;
      return new TextDecoder('utf-8', { fatal: true }).decode(await vscode.workspace.fs.readFile(uri));
    },
  });
  const openFiles = (current: vscode.TextDocument): OpenFile[] => {
    const open: OpenFile[] = vscode.workspace.textDocuments
      // Very long documents (logs, generated code) are not worth copying on every request.
      .filter((d) => isCodeDoc(d) && !d.isClosed && d.lineCount <= 50_000)
      .map((d) => {
        const uri = d.uri.toString();
        const editedAt = edits.get(uri);
        return {
          uri,
          path: vscode.workspace.asRelativePath(d.uri, false),
          text: d.getText(),
          languageId: d.languageId,
          lastActive: lastActive.get(uri) ?? 0,
          ...(editedAt !== undefined ? { editedAt } : {}),
        };
      });
    if (!isCodeDoc(current)) return open;
    const isOpen = new Set(open.map((f) => f.uri));
    const head = current.getText(new vscode.Range(0, 0, 200, 0));
    const imported = importedCache
      .get(current.uri.toString(), head)
      .filter((f) => !isOpen.has(f.path))
      .map((f) => ({ uri: f.path, path: vscode.workspace.asRelativePath(vscode.Uri.parse(f.path), false), text: f.text, languageId: '', lastActive: 0, imported: true }));
    return [...open, ...imported];
  };
  const provider = new CachetInlineProvider(session, {
    settings: () => settings,
    enabled: () => enabled,
    onError: showError,
    openFiles: (doc) => (settings.completion.openFilesContextTokens > 0 ? openFiles(doc) : []),
  });
  const providerWithAccept: vscode.InlineCompletionItemProvider = {
    provideInlineCompletionItems: async (doc, pos, ctx, token) => {
      const items = await provider.provideInlineCompletionItems(doc, pos, ctx, token);
      for (const it of items ?? []) it.command = { title: 'accepted', command: COMMANDS.accepted };
      return items;
    },
  };
  context.subscriptions.push(vscode.languages.registerInlineCompletionItemProvider({ pattern: '**' }, providerWithAccept));

  // ---- commands
  const reg = (id: string, fn: (...args: unknown[]) => unknown) => context.subscriptions.push(vscode.commands.registerCommand(id, fn));
  reg(COMMANDS.accept, () => vscode.commands.executeCommand('editor.action.inlineSuggest.commit'));
  reg(COMMANDS.acceptWord, () => vscode.commands.executeCommand('editor.action.inlineSuggest.acceptNextWord'));
  reg(COMMANDS.acceptLine, () => vscode.commands.executeCommand('editor.action.inlineSuggest.acceptNextLine'));
  reg(COMMANDS.trigger, () => vscode.commands.executeCommand('editor.action.inlineSuggest.trigger'));
  reg(COMMANDS.accepted, () => {
    counters.accepted++;
  });
  // Toggles flip at once; the setting follows. While writes are in flight, configuration events
  // (which may describe an older write) must not flip the state back.
  let togglesInFlight = 0;
  reg(COMMANDS.toggle, async () => {
    enabled = !enabled;
    const now = enabled;
    if (!enabled) session.cancelPending();
    status.update({ enabled });
    togglesInFlight++;
    try {
      await vscode.workspace.getConfiguration('cachet').update('completion.enabled', now, vscode.ConfigurationTarget.Global);
    } finally {
      togglesInFlight--;
    }
    void vscode.window.showInformationMessage(`Cachet completions ${now ? 'on' : 'off'}.`);
  });
  reg(COMMANDS.selectModel, async () => {
    const ws = vscode.workspace.workspaceFolders?.length
      ? (await vscode.workspace.findFiles('**/*.gguf', '**/node_modules/**', 20)).map((u) => u.fsPath)
      : [];
    const bundledPath = embeddedModel(context.extensionPath);
    const paths = [...new Set([...(bundledPath ? [bundledPath] : []), ...(settings.modelPath ? [settings.modelPath] : []), ...settings.modelSearchPaths, ...ws])];
    const config = () => vscode.workspace.getConfiguration('cachet');
    const toTarget = (t: SettingsTarget) => (t === 'workspace' ? vscode.ConfigurationTarget.Workspace : vscode.ConfigurationTarget.Global);
    try {
      const result = await selectModel(
        {
          discover: () =>
            Promise.resolve(
              vscode.window.withProgress({ location: vscode.ProgressLocation.Window, title: 'Cachet: looking for models' }, () =>
                engine.discoverModels({ paths, contextLength: settings.contextLength }),
              ),
            ),
          checkFit: (p) => engine.checkFit(p, settings.contextLength),
          pick: (items) =>
            Promise.resolve(vscode.window.showQuickPick(items, { title: 'Cachet: Select Model', placeHolder: 'A GGUF model for completions', matchOnDescription: true, matchOnDetail: true })),
          browse: async () => {
            const uris = await vscode.window.showOpenDialog({ canSelectMany: false, filters: { 'GGUF models': ['gguf'] }, title: 'Select a GGUF model' });
            return uris?.[0]?.fsPath;
          },
          warn: (message, actions) => Promise.resolve(vscode.window.showWarningMessage(`Cachet: ${message}`, { modal: true }, ...actions)),
          error: (message) => {
            log(message);
            void vscode.window.showErrorMessage(message);
          },
          update: (key, value, target) => Promise.resolve(config().update(key, value, toTarget(target))),
          target: (key) => settingsTarget(config().inspect(key)),
        },
        { bundledPath, currentPath: modelPath(settings), workspaceFiles: ws },
      );
      if (result.kind === 'selected') log(`model selected: ${result.path}${result.contextLength ? ` (context ${result.contextLength})` : ''}`);
      // The configuration listener restarts the engine with the new model.
    } catch (err) {
      showError(err, true);
    }
  });
  reg(COMMANDS.dashboard, () => dashboard.show());
  reg(COMMANDS.clearCaches, async () => {
    session.cache.clear();
    try {
      await engine.clearCache();
      void vscode.window.showInformationMessage('Cachet: caches cleared.');
    } catch (err) {
      showError(err, true);
    }
  });
  reg(COMMANDS.restart, async () => {
    session.cancelPending();
    session.cache.clear();
    try {
      const m = await vscode.window.withProgress({ location: vscode.ProgressLocation.Window, title: 'Cachet: restarting engine' }, () => engine.restart());
      void vscode.window.showInformationMessage(`Cachet: engine ready (${m.name} on ${m.backend}).`);
    } catch (err) {
      showError(err, true);
    }
  });
  reg(COMMANDS.logs, () => out.show(true));
  reg(COMMANDS.status, () => {
    const s = engine.state;
    const text =
      s.kind === 'ready'
        ? `${s.model.name} on ${s.model.backend}, context ${s.model.contextLength}`
        : s.kind === 'error'
          ? `error: ${s.error.message}`
          : s.kind;
    const c = { ...counters, cacheHits: session.cache.hits };
    void vscode.window.showInformationMessage(
      `Cachet: ${enabled ? 'on' : 'off'}; engine ${text}; activated in ${activationMs.toFixed(1)} ms; ` +
        `completions: ${c.requests} requests, ${c.cacheHits} cache hits, ${c.joined} joined, ${c.cancelled} cancelled, ${c.accepted} accepted.`,
    );
    return { enabled, engine: s.kind, activationMs, ...c };
  });

  // ---- settings changes
  const applyServer = () => {
    const mp = modelPath(settings);
    if (settings.server.enabled && mp && existsSync(join(context.extensionPath, 'dist', 'cli.js'))) {
      server.start({ cliPath: join(context.extensionPath, 'dist', 'cli.js'), port: settings.server.port, modelPath: mp, backend: settings.backend, threads: settings.threads, contextLength: settings.contextLength });
    } else server.stop();
  };
  context.subscriptions.push(
    vscode.workspace.onDidChangeConfiguration((e) => {
      if (!e.affectsConfiguration('cachet')) return;
      const before = settings;
      settings = readSettings();
      if (togglesInFlight === 0) enabled = settings.completion.enabled;
      session.setOptions({ debounceMs: settings.completion.debounceMs, maxTokens: settings.completion.maxTokens });
      if (before.remote.url !== settings.remote.url || before.remote.model !== settings.remote.model) {
        session.setBackend(backendFor(settings));
        status.update({ engine: settings.remote.url ? 'remote' : engine.state.kind === 'ready' ? 'ready' : 'stopped' });
      }
      if (engineSettingsKey(before) !== engineSettingsKey(settings)) {
        session.cancelPending();
        session.cache.clear();
        log('engine settings changed: restarting on next use');
        void engine.stop();
      }
      if (serverSettingsKey(before) !== serverSettingsKey(settings)) applyServer();
      status.update({ enabled });
    }),
  );
  if (settings.server.enabled) applyServer();

  teardown = async () => {
    session.dispose();
    server.stop();
    dashboard.dispose();
    status.dispose();
    log('deactivating: stopping the engine');
    await engine.dispose();
    log('deactivated');
    out.dispose();
  };
  const activationMs = performance.now() - t0;
  log(`Cachet activated in ${activationMs.toFixed(1)} ms (model: ${modelPath(settings) || 'none'}; backend ${settings.backend})`);
  void vscode.commands.executeCommand('setContext', 'cachet.activated', true);
  return { activationMs, engine };
}

/** One Output-channel line per completion event (what "Cachet: Show Logs" shows). */
function sessionLogLine(e: SessionEvent): string {
  switch (e.kind) {
    case 'start':
      return `completion: request at offset ${e.offset} (${e.promptChars} chars of context, ${e.contextFiles} context files)`;
    case 'joined':
      return `completion: joined the in-flight request (${e.typed} chars typed since)`;
    case 'cache-hit':
      return `completion: cache hit (${e.typed} chars typed since${e.partial ? '; text so far of an unfinished request' : ''})`;
    case 'cancel':
      return 'completion: cancelled';
    case 'end': {
      const t = e.timings;
      const timing = t ? `, first token ${t.ttftMs.toFixed(0)} ms, ${t.tokensPerSecond.toFixed(1)} tok/s, ${t.cachedTokens}/${t.promptTokens} prompt tokens reused` : '';
      return `completion: ${e.reason}, ${e.text.length} chars shown${timing}; starts ${JSON.stringify(e.text.slice(0, 60))}`;
    }
  }
}

export async function deactivate(): Promise<void> {
  const t = teardown;
  teardown = undefined;
  await t?.();
}
