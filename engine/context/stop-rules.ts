// When a completion ends, and what of it to keep. Rules (peers: llama.cpp n_indent, Continue's
// stream filters, Tabby/Copilot indentation scope):
// - stop tokens: end-of-generation and every FIM/repo token (a model that emits <|file_sep|> has
//   finished the file);
// - stop strings, even when split across tokens;
// - max lines;
// - end of block by indentation;
// - never repeat what is already after the cursor: a line equal to the next non-blank suffix line
//   ends the completion, and a tail equal to the rest of the cursor line is trimmed.
// Text is released one line at a time, so a line that a later rule drops was never shown.

import type { PromptTokenizer } from './fim-formats';

/** Token ids that end a FIM completion: EOG plus every FIM/repo special token. */
export function fimStopTokenCheck(tokenizer: Pick<PromptTokenizer, 'fim' | 'isEog'>): (id: number) => boolean {
  const ids = new Set<number>();
  const fim = tokenizer.fim;
  if (fim) {
    for (const id of [fim.prefix, fim.suffix, fim.middle, fim.pad, fim.repoName, fim.fileSep]) {
      if (id !== undefined) ids.add(id);
    }
  }
  return (id) => ids.has(id) || tokenizer.isEog(id);
}

export interface StopRuleOptions {
  stopStrings?: string[];
  /** Most lines the completion may have (the cursor line counts as one). */
  maxLines?: number;
  /** Text before the cursor: its last line gives the indentation the block rule uses. */
  prefix?: string;
  /** Text after the cursor: for the no-duplicate rules. */
  suffix?: string;
  /** End the completion when the code returns to (or above) the cursor line's indentation. */
  stopAtBlockEnd?: boolean;
  /** One line only when text follows the cursor on its line (llama.vscode, Copilot). Default true. */
  singleLineMidLine?: boolean;
  /**
   * Indentation the user already typed but the prompt left out (splitTypedIndent): removed from
   * the start of the completion (as much of it as the completion repeats).
   */
  typedIndent?: string;
}

export type StopReason = 'stop-string' | 'max-lines' | 'block-end' | 'suffix-repeat';

export interface PushResult {
  /** Newly released text (may be ''). */
  text: string;
  /** True once the completion is over; further pushes are ignored. */
  stop: boolean;
}

const CLOSER = /^\s*([}\])]|end\b|fi\b|done\b|esac\b|<\/)/;

function indentOf(line: string): number {
  let n = 0;
  while (n < line.length && (line[n] === ' ' || line[n] === '\t')) n++;
  return n;
}

export class StopRules {
  private readonly stopStrings: string[];
  private maxLines: number;
  private readonly baseIndent: number;
  private readonly blockRule: boolean;
  private readonly nextSuffixLine: string | undefined;
  private readonly restOfLine: string;
  private readonly typedIndent: string;
  private pending = '';
  private lineIndex = 0;
  private released = '';
  private bodyIndent: number | undefined;
  private done = false;
  reason: StopReason | undefined;

  constructor(options: StopRuleOptions = {}) {
    this.stopStrings = (options.stopStrings ?? []).filter((s) => s.length > 0);
    this.maxLines = options.maxLines ?? Infinity;
    const prefix = options.prefix ?? '';
    const cursorLine = prefix.slice(prefix.lastIndexOf('\n') + 1);
    this.baseIndent = indentOf(cursorLine);
    this.typedIndent = options.typedIndent ?? '';
    this.blockRule = options.stopAtBlockEnd ?? false;
    const suffix = options.suffix ?? '';
    const nl = suffix.indexOf('\n');
    this.restOfLine = (nl < 0 ? suffix : suffix.slice(0, nl)).trimEnd();
    if ((options.singleLineMidLine ?? true) && this.restOfLine.trim() !== '') this.maxLines = Math.min(this.maxLines, 1);
    const following = nl < 0 ? [] : suffix.slice(nl + 1).split('\n');
    this.nextSuffixLine = following.find((l) => l.trim() !== '')?.trim();
  }

  /** The text released so far. */
  get text(): string {
    return this.released;
  }

  get stopped(): boolean {
    return this.done;
  }

  push(piece: string): PushResult {
    if (this.done) return { text: '', stop: true };
    this.pending += piece;
    const before = this.released.length;
    for (const s of this.stopStrings) {
      const at = this.pending.indexOf(s);
      if (at >= 0) {
        this.pending = this.pending.slice(0, at);
        this.reason = 'stop-string';
        this.finishInternal();
        return { text: this.released.slice(before), stop: true };
      }
    }
    let nl: number;
    while (!this.done && (nl = this.pending.indexOf('\n')) >= 0) {
      // Hold the line while what follows its newline may still grow into a "\n..." stop string.
      const after = this.pending.slice(nl);
      if (this.stopStrings.some((s) => s.length > after.length && s.startsWith(after))) break;
      const line = this.pending.slice(0, nl);
      this.pending = this.pending.slice(nl + 1);
      this.acceptLine(line, true);
    }
    if (this.done) return { text: this.released.slice(before), stop: true };
    return { text: this.released.slice(before), stop: false };
  }

  /** Ends the completion (EOG, token limit): releases the last partial line after the rules. */
  finish(): string {
    if (this.done) return '';
    const before = this.released.length;
    this.finishInternal();
    return this.released.slice(before);
  }

  private finishInternal(): void {
    if (this.done) return;
    // Lines held back for a possible "\n..." stop string are complete lines after all.
    const lines = this.pending.split('\n');
    this.pending = '';
    for (let i = 0; i < lines.length - 1 && !this.done; i++) this.acceptLine(lines[i]!, true);
    if (this.done) return;
    let last = lines[lines.length - 1]!;
    if (last !== '' || this.lineIndex === 0) {
      if (this.restOfLine !== '' && last.endsWith(this.restOfLine)) {
        last = last.slice(0, last.length - this.restOfLine.length);
      }
      if (last !== '') this.acceptLine(last, false);
    }
    this.done = true;
  }

  private acceptLine(line: string, complete: boolean): void {
    const k = this.lineIndex;
    if (k > 0 && line.trim() !== '') {
      if (k >= this.maxLines) return this.stop('max-lines');
      if (this.nextSuffixLine !== undefined && line.trim() === this.nextSuffixLine) return this.stop('suffix-repeat');
      if (this.blockRule) {
        const indent = indentOf(line);
        if (this.bodyIndent === undefined) this.bodyIndent = indent;
        const openedBlock = this.bodyIndent > this.baseIndent;
        if (openedBlock && indent <= this.baseIndent) {
          if (indent === this.baseIndent && CLOSER.test(line)) {
            this.release(k, line);
            this.lineIndex++;
          }
          return this.stop('block-end');
        }
        if (!openedBlock && indent < this.baseIndent) return this.stop('block-end');
      }
    } else if (k > 0 && k >= this.maxLines) {
      return this.stop('max-lines');
    }
    const last = complete && this.lineIndex + 1 >= this.maxLines;
    if (last && this.restOfLine !== '' && line.endsWith(this.restOfLine)) line = line.slice(0, line.length - this.restOfLine.length);
    this.release(k, line);
    this.lineIndex++;
    if (last) {
      // The line limit is reached: nothing more can be released.
      this.stop('max-lines');
    }
  }

  private release(k: number, line: string): void {
    if (k === 0 && this.typedIndent !== '') {
      let n = 0;
      while (n < this.typedIndent.length && n < line.length && line[n] === this.typedIndent[n]) n++;
      line = line.slice(n);
    }
    this.released += k === 0 ? line : '\n' + line;
  }

  private stop(reason: StopReason): void {
    this.reason ??= reason;
    this.pending = '';
    this.done = true;
  }
}

/**
 * One-shot form for a finished completion: applies every rule to `text` and returns what to show.
 */
export function applyStopRules(text: string, options: StopRuleOptions): { text: string; reason: StopReason | undefined } {
  const rules = new StopRules(options);
  rules.push(text);
  rules.finish();
  return { text: rules.text, reason: rules.reason };
}

/**
 * Trim a completion's tail that repeats the start of the text after the cursor: the rest of the
 * cursor line (e.g. the closing ")" already there), or whole lines equal to the suffix's next lines.
 */
export function trimSuffixOverlap(completion: string, suffix: string): string {
  let out = completion;
  const suffixLines = suffix.split('\n');
  const rest = suffixLines[0]!.trimEnd();
  if (rest !== '' && out.trimEnd().endsWith(rest)) {
    out = out.trimEnd();
    out = out.slice(0, out.length - rest.length);
    return out;
  }
  // Whole trailing lines that equal the suffix's following lines.
  const following = suffixLines.slice(1).map((l) => l.trimEnd());
  const lines = out.split('\n');
  for (let n = Math.min(following.length, lines.length - 1); n > 0; n--) {
    const tail = lines.slice(lines.length - n).map((l) => l.trimEnd());
    if (tail.every((l, i) => l === following[i]) && tail.some((l) => l.trim() !== '')) {
      return lines.slice(0, lines.length - n).join('\n');
    }
  }
  return out;
}
