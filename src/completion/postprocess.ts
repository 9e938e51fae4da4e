// Stop rules and clean-up of raw model output before it becomes ghost text. Pure.
//
// Rules, applied to the stream so far (each one may end generation early):
// - mid-line (non-blank text after the cursor): one line only, and a tail that repeats the text
//   after the cursor is dropped, so accepting never duplicates it;
// - at most `maxLines` lines;
// - indentation: a later line indented less than the cursor line ends the block (as llama.cpp's
//   n_indent, Tabby and Copilot do);
// - a line that repeats the next non-blank line below the cursor ends the completion;
// - trailing whitespace and blank lines are dropped from a finished completion.

import { indentWidth } from './context-window';

export interface PostprocessContext {
  linePrefix: string;
  lineSuffix: string;
  /** Text after the cursor (the suffix window). */
  suffix: string;
  maxLines: number;
  tabSize?: number;
}

export interface Postprocessed {
  /** The text to show. */
  text: string;
  /** A rule cut the text: no more tokens are needed. */
  stop: boolean;
}

export function isMidLine(ctx: Pick<PostprocessContext, 'lineSuffix'>): boolean {
  return ctx.lineSuffix.trim().length > 0;
}

/** First non-blank line of the suffix below the cursor line, trimmed ('' if none). */
export function nextLineBelow(suffix: string): string {
  const lines = suffix.split('\n');
  for (let i = 1; i < lines.length; i++) {
    const t = lines[i].trim();
    if (t.length > 0) return t;
  }
  return '';
}

/**
 * Apply the stop rules to `raw` (the whole generated text so far). With `final` false, the last
 * line may still be growing, so it is kept as is unless a rule already cuts before it.
 */
export function postprocess(raw: string, ctx: PostprocessContext, final: boolean): Postprocessed {
  const tab = ctx.tabSize ?? 4;
  // The editor treats a lone CR as a line break too; count lines the way it will show them.
  let text = raw.replace(/\r\n?/g, '\n');
  let stop = false;

  if (isMidLine(ctx)) {
    const nl = text.indexOf('\n');
    if (nl !== -1) {
      text = text.slice(0, nl);
      stop = true;
    }
    if (stop || final) text = dropSuffixOverlap(text, ctx.lineSuffix);
    return finish(text, stop, stop || final);
  }

  const lines = text.split('\n');
  const baseIndent = indentWidth(ctx.linePrefix, tab);
  const below = nextLineBelow(ctx.suffix);
  const firstStartsLine = ctx.linePrefix.trim().length === 0;
  let keep = lines.length;
  for (let i = 0; i < lines.length; i++) {
    const complete = i < lines.length - 1 || final;
    const line = lines[i];
    const startsLine = i > 0 || firstStartsLine;
    if (i >= ctx.maxLines) {
      keep = i;
      stop = true;
      break;
    }
    if (!complete) break;
    if (i > 0 && line.trim().length > 0 && indentWidth(line, tab) < baseIndent) {
      keep = i;
      stop = true;
      break;
    }
    if (startsLine && below.length > 0 && line.trim() === below) {
      keep = i;
      stop = true;
      break;
    }
  }
  text = lines.slice(0, keep).join('\n');
  return finish(text, stop, stop || final);
}

/** Remove the end of `text` that equals the (trimmed) text after the cursor on the same line. */
export function dropSuffixOverlap(text: string, lineSuffix: string): string {
  const s = lineSuffix.trimEnd();
  if (s.length === 0) return text;
  const t = text.trimEnd();
  if (t.endsWith(s)) return t.slice(0, t.length - s.length);
  return text;
}

function finish(text: string, stop: boolean, done: boolean): Postprocessed {
  if (done) {
    // Trailing blank lines and spaces are noise in ghost text; a whitespace-only result is nothing.
    text = text.replace(/[ \t]+$/gm, '').replace(/\n+$/, '');
    if (text.trim().length === 0) text = '';
  }
  return { text, stop };
}

/**
 * The complete lines of a growing stream: everything before its last newline, tidied as a
 * finished completion is (trailing spaces and blank lines dropped), or undefined while no line
 * with content is complete. This is what can be shown before generation ends.
 */
export function readyLines(text: string): string | undefined {
  const nl = text.lastIndexOf('\n');
  if (nl === -1) return undefined;
  const ready = text.slice(0, nl).replace(/[ \t]+$/gm, '').replace(/\n+$/, '');
  return ready.trim().length > 0 ? ready : undefined;
}
