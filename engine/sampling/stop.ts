// Stop conditions for generation: stop token ids, and stop strings matched across streamed text
// pieces (a stop string can arrive split over several tokens, so text that might begin one is held
// back until it is decided).

export interface StopResult {
  /** Text safe to show now (never contains a stop string or part of one being matched). */
  text: string;
  /** A stop string was found; `text` ends right before it. */
  stopped: boolean;
  /** Which stop string matched. */
  matched?: string;
}

export class StopStrings {
  private pending = '';
  private done = false;

  constructor(readonly stops: readonly string[]) {
    this.stops = stops.filter((s) => s.length > 0);
  }

  /** Feeds the next decoded piece. After a stop, further pieces are ignored. */
  push(piece: string): StopResult {
    if (this.done) return { text: '', stopped: true };
    this.pending += piece;
    // Earliest full match wins.
    let at = -1;
    let matched: string | undefined;
    for (const s of this.stops) {
      const i = this.pending.indexOf(s);
      if (i !== -1 && (at === -1 || i < at)) {
        at = i;
        matched = s;
      }
    }
    if (matched !== undefined) {
      const text = this.pending.slice(0, at);
      this.pending = '';
      this.done = true;
      return { text, stopped: true, matched };
    }
    // Hold back the longest tail that is a prefix of some stop string.
    let hold = 0;
    for (const s of this.stops) {
      for (let k = Math.min(s.length - 1, this.pending.length); k > hold; k--) {
        if (this.pending.endsWith(s.slice(0, k))) {
          hold = k;
          break;
        }
      }
    }
    const text = this.pending.slice(0, this.pending.length - hold);
    this.pending = this.pending.slice(this.pending.length - hold);
    return { text, stopped: false };
  }

  /** End of generation: whatever was held back is real text. */
  flush(): string {
    const text = this.done ? '' : this.pending;
    this.pending = '';
    return text;
  }
}

/** True when `token` ends generation (end-of-generation ids and caller-given stop ids). */
export function isStopToken(token: number, stopTokens: ReadonlySet<number> | readonly number[]): boolean {
  return Array.isArray(stopTokens) ? stopTokens.includes(token) : (stopTokens as ReadonlySet<number>).has(token);
}
