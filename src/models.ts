// "Cachet: Select Model": the quick pick's rows and the choose -> fit check -> persist flow.
// Finding and inspecting models is the engine's job (engine/discovery, through the protocol's
// discoverModels/checkFit); this file only turns its answers into UI. No vscode import: the
// extension passes a small UI surface, so tests drive the whole flow.

import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { DiscoveredModelInfo, FitInfo, ModelProblemInfo } from '../engine/protocol';

/** The model shipped inside the extension (models/cachet-tiny*.gguf), if present. */
export function embeddedModel(extensionPath: string): string | undefined {
  const dir = join(extensionPath, 'models');
  if (!existsSync(dir)) return undefined;
  const files = readdirSync(dir).filter((f) => /^cachet-tiny.*\.gguf$/i.test(f)).sort();
  return files.length ? join(dir, files[0]) : undefined;
}

export const SOURCE_LABELS: Record<DiscoveredModelInfo['source'], string> = {
  ollama: 'Ollama',
  lmstudio: 'LM Studio',
  huggingface: 'Hugging Face',
  configured: 'path',
};

export interface ModelPickItem {
  label: string;
  description?: string;
  detail?: string;
  /** Empty for the "browse" row. */
  path: string;
  model?: DiscoveredModelInfo;
  bundled?: boolean;
}

export function formatSize(bytes: number): string {
  if (bytes >= 1024 ** 3) return `${(bytes / 1024 ** 3).toFixed(1)} GiB`;
  if (bytes >= 1024 ** 2) return `${(bytes / 1024 ** 2).toFixed(0)} MiB`;
  return `${Math.ceil(bytes / 1024)} KiB`;
}

/** '1.5B Q4_K_M · qwen2 · context 32768 · FIM · Ollama' (size and quantization first: they decide fit). */
export function describeModel(m: DiscoveredModelInfo, source: string | undefined): string {
  const size = [m.sizeLabel, m.quantization].filter(Boolean).join(' ');
  const parts = [size || formatSize(m.bytes)];
  if (m.arch) parts.push(m.arch);
  if (m.contextLength) parts.push(`context ${m.contextLength}`);
  if (m.fim !== undefined) parts.push(m.fim ? 'FIM' : 'no FIM');
  if (source) parts.push(source);
  return parts.join(' · ');
}

/** The model family when it says more than the architecture ('Qwen2.5 Coder'), else ''. */
function family(m: DiscoveredModelInfo | undefined): string {
  return m?.family && m.family.toLowerCase() !== m.arch?.toLowerCase() ? m.family : '';
}

function fitNote(fit: FitInfo | undefined): string {
  if (!fit) return '';
  if (fit.verdict === 'too-big') return `$(warning) does not fit at ${fit.contextLength} tokens (${formatSize(fit.totalBytes)} > ${formatSize(fit.budgetBytes)})`;
  return `${fit.verdict} (${formatSize(fit.totalBytes)} of ${formatSize(fit.budgetBytes)} at ${fit.contextLength} tokens)`;
}

/** A problem message without the file path it usually starts with (the row shows the name). */
function problemText(m: DiscoveredModelInfo, p: ModelProblemInfo): string {
  const message = p.message.startsWith(`${m.path}: `) ? p.message.slice(m.path.length + 2) : p.message;
  return `${message} — ${p.hint}`;
}

const joinDetail = (...parts: (string | undefined)[]) => parts.filter(Boolean).join(' · ');

/**
 * Quick pick rows: the bundled Cachet-Tiny first (a small demo model), then every discovered
 * model; unloadable ones carry $(warning) and the reason; a "browse" row last.
 */
export function modelPickItems(models: DiscoveredModelInfo[], o: { bundledPath?: string; currentPath?: string; workspaceFiles?: string[] }): ModelPickItem[] {
  const ws = new Set(o.workspaceFiles ?? []);
  const items: ModelPickItem[] = [];
  const current = (p: string) => (p === o.currentPath ? '$(check) ' : '');
  if (o.bundledPath) {
    const m = models.find((x) => x.path === o.bundledPath);
    items.push({
      label: `${current(o.bundledPath)}Cachet-Tiny (bundled)`,
      description: `small demo model${m ? ` · ${describeModel(m, undefined)}` : ''}`,
      detail: joinDetail(m && !m.loadable && m.problem ? problemText(m, m.problem) : fitNote(m?.fit), 'ships with Cachet; pick a real code model for useful completions'),
      path: o.bundledPath,
      model: m,
      bundled: true,
    });
  }
  for (const m of models) {
    if (m.path === o.bundledPath) continue;
    const source = ws.has(m.path) ? 'workspace' : SOURCE_LABELS[m.source];
    if (!m.loadable) {
      items.push({
        label: `$(warning) ${m.displayName}`,
        description: `cannot load · ${describeModel(m, source)}`,
        detail: m.problem ? problemText(m, m.problem) : m.path,
        path: m.path,
        model: m,
      });
      continue;
    }
    items.push({
      label: `${current(m.path)}${m.displayName}`,
      description: describeModel(m, source),
      detail: joinDetail(family(m), fitNote(m.fit), ...(m.notes ?? []), m.path),
      path: m.path,
      model: m,
    });
  }
  items.push({ label: '$(folder-opened) Browse for a .gguf file…', path: '' });
  return items;
}

/** What the user is told before loading a model that does not fit, and the choices offered. */
export function fitWarning(name: string, fit: FitInfo): { message: string; actions: string[]; contextAction?: { label: string; contextLength: number } } {
  const message =
    `${name} needs about ${formatSize(fit.totalBytes)} at ${fit.contextLength} tokens but about ${formatSize(fit.budgetBytes)} is free. ` +
    (fit.suggestions.join(' ') || 'Choose a smaller model or quantization.');
  const contextAction = fit.maxContext >= 256 && fit.maxContext < fit.contextLength ? { label: `Use context ${fit.maxContext}`, contextLength: fit.maxContext } : undefined;
  return { message, actions: [...(contextAction ? [contextAction.label] : []), 'Load anyway'], contextAction };
}

/** Where the choice is written: the workspace when the workspace already sets it, else global. */
export type SettingsTarget = 'global' | 'workspace';
export function settingsTarget(inspect: { workspaceValue?: unknown; workspaceFolderValue?: unknown } | undefined): SettingsTarget {
  return inspect && (inspect.workspaceValue !== undefined || inspect.workspaceFolderValue !== undefined) ? 'workspace' : 'global';
}

/** The parts of VS Code (and the engine) the flow needs. */
export interface SelectModelUi {
  discover(): Promise<DiscoveredModelInfo[]>;
  checkFit(path: string): Promise<{ fit?: FitInfo; problem?: ModelProblemInfo }>;
  pick(items: ModelPickItem[]): Promise<ModelPickItem | undefined>;
  browse(): Promise<string | undefined>;
  /** Modal warning; resolves with the chosen action or undefined (cancel). */
  warn(message: string, actions: string[]): Promise<string | undefined>;
  error(message: string): void;
  /** Writes cachet.<key> where `target` says. */
  update(key: 'modelPath' | 'contextLength', value: string | number, target: SettingsTarget): Promise<void>;
  target(key: 'modelPath' | 'contextLength'): SettingsTarget;
}

export type SelectModelResult =
  | { kind: 'cancelled' }
  | { kind: 'unloadable'; path: string; problem?: ModelProblemInfo }
  | { kind: 'selected'; path: string; contextLength?: number };

/** The whole "Cachet: Select Model" command: list, choose, check the fit, persist. */
export async function selectModel(ui: SelectModelUi, o: { bundledPath?: string; currentPath?: string; workspaceFiles?: string[] }): Promise<SelectModelResult> {
  const models = await ui.discover();
  const chosen = await ui.pick(modelPickItems(models, o));
  if (!chosen) return { kind: 'cancelled' };
  let path = chosen.path;
  let name = chosen.model?.displayName ?? chosen.label;
  let fit = chosen.model?.fit;
  let problem = chosen.model && !chosen.model.loadable ? chosen.model.problem ?? { kind: 'unreadable', message: `${path} cannot be loaded`, hint: 'Choose another model.' } : undefined;
  if (!path) {
    const browsed = await ui.browse();
    if (!browsed) return { kind: 'cancelled' };
    path = browsed;
    name = browsed.split(/[\\/]/).pop() ?? browsed;
    const r = await ui.checkFit(path);
    fit = r.fit;
    problem = r.problem;
  }
  if (problem) {
    ui.error(`Cachet: ${name} cannot be loaded: ${problem.message} — ${problem.hint}`);
    return { kind: 'unloadable', path, problem };
  }
  let contextLength: number | undefined;
  if (fit?.verdict === 'too-big') {
    const w = fitWarning(name, fit);
    const action = await ui.warn(w.message, w.actions);
    if (!action) return { kind: 'cancelled' };
    if (w.contextAction && action === w.contextAction.label) contextLength = w.contextAction.contextLength;
  }
  // The bundled model is the default: store '' so the setting survives extension updates.
  await ui.update('modelPath', path === o.bundledPath ? '' : path, ui.target('modelPath'));
  if (contextLength !== undefined) await ui.update('contextLength', contextLength, ui.target('contextLength'));
  return { kind: 'selected', path, ...(contextLength !== undefined ? { contextLength } : {}) };
}
