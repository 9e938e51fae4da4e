// Speculative decoding without a draft model: prompt lookup (n-gram) drafting.
//
// Code completion copies a lot: identifiers, call patterns, whole lines from the file or from
// neighbouring files. Find the latest earlier occurrence of the last n generated tokens in the
// prompt (or in extra workspace text) and propose the tokens that followed it. The target model
// checks all drafts in one forward pass (logits for every position); under greedy sampling the
// output is identical to plain decoding, only fewer sequential steps are needed.

export interface NgramDraftOptions {
  /** Longest n-gram tried first; shorter ones down to minNgram are tried next. */
  ngram: number;
  minNgram?: number;
  maxDraft: number;
}

/**
 * Proposes up to maxDraft tokens continuing `history`. Searches `history` itself (latest match
 * first, the trailing n-gram excluded), then each extra source.
 */
export function draftNgram(
  history: ArrayLike<number>,
  extraSources: readonly ArrayLike<number>[],
  options: NgramDraftOptions,
): number[] {
  const { maxDraft } = options;
  const minNgram = Math.max(1, options.minNgram ?? 1);
  if (maxDraft <= 0) return [];
  const h = history.length;
  for (let n = Math.min(options.ngram, h - 1); n >= minNgram; n--) {
    const tailStart = h - n;
    // The history itself, latest occurrence first; the match must end before the tail starts.
    for (let start = tailStart - 1; start >= 0; start--) {
      if (matchesAt(history, start, history, tailStart, n)) {
        const from = start + n;
        const end = Math.min(from + maxDraft, h);
        if (end > from) return copyRange(history, from, end);
      }
    }
    for (const src of extraSources) {
      for (let start = src.length - n - 1; start >= 0; start--) {
        if (matchesAt(src, start, history, tailStart, n)) {
          const from = start + n;
          return copyRange(src, from, Math.min(from + maxDraft, src.length));
        }
      }
    }
  }
  return [];
}

function matchesAt(a: ArrayLike<number>, aStart: number, b: ArrayLike<number>, bStart: number, n: number): boolean {
  for (let i = 0; i < n; i++) if (a[aStart + i] !== b[bStart + i]) return false;
  return true;
}

function copyRange(a: ArrayLike<number>, from: number, to: number): number[] {
  const out: number[] = [];
  for (let i = from; i < to; i++) out.push(a[i]);
  return out;
}

/** Running acceptance statistics. */
export class SpeculativeStats {
  drafted = 0;
  accepted = 0;
  steps = 0;
  get acceptanceRate(): number {
    return this.drafted === 0 ? 0 : this.accepted / this.drafted;
  }
}

/**
 * What prompt-lookup drafting would achieve on a known greedy output, step by step exactly as the
 * scheduler drafts and verifies (history grows by accepted drafts + 1 per step). Lets a bench
 * measure acceptance from plain greedy runs, and tests check the scheduler against it.
 */
export function simulateSpeculative(
  prompt: ArrayLike<number>,
  /** The greedy output, ending with the end-of-generation token when that is how it ended. */
  output: ArrayLike<number>,
  /** maxTokens: the request's limit (drafts never run past it). */
  options: NgramDraftOptions & { maxTokens: number; extraSources?: readonly ArrayLike<number>[] },
): { drafted: number; accepted: number; steps: number } {
  const history = Array.from(prompt);
  let drafted = 0;
  let accepted = 0;
  let steps = 0;
  // The first output token comes from the prefill; each later step feeds the pending token.
  let produced = output.length > 0 ? 1 : 0;
  if (produced) history.push(output[0]);
  while (produced < output.length) {
    const room = Math.min(options.maxDraft, options.maxTokens - produced - 1);
    const draft = room > 0 ? draftNgram(history, options.extraSources ?? [], { ...options, maxDraft: room }) : [];
    let ok = 0;
    while (ok < draft.length && draft[ok] === output[produced + ok]) ok++;
    drafted += draft.length;
    accepted += ok;
    steps++;
    const advance = ok + 1;
    for (let i = 0; i < advance; i++) history.push(output[produced + i]);
    produced += advance;
  }
  return { drafted, accepted, steps };
}
