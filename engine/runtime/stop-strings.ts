// Streams generated text while holding back anything that might be the start of a stop string,
// so a stop string is never emitted (not even in part).

export class StopStringFilter {
  private text = '';
  private emitted = 0;
  private readonly stops: string[];
  /** Set once a stop string was found; the text before it has been emitted. */
  stopped: string | undefined;

  constructor(stops: readonly string[] | undefined) {
    this.stops = (stops ?? []).filter((s) => s.length > 0);
  }

  /** Adds text; returns the part that is now safe to emit. */
  push(piece: string): string {
    if (this.stopped !== undefined) return '';
    this.text += piece;
    let cut = -1;
    for (const stop of this.stops) {
      // Emitted text never holds the start of a stop string, so search from the emitted boundary.
      const idx = this.text.indexOf(stop, this.emitted);
      if (idx >= 0 && (cut < 0 || idx < cut)) { cut = idx; this.stopped = stop; }
    }
    if (cut >= 0) return this.take(cut);
    return this.take(this.text.length - this.heldBack());
  }

  /** Emits everything held back (generation ended for another reason). */
  flush(): string {
    if (this.stopped !== undefined) return '';
    return this.take(this.text.length);
  }

  /** Everything emitted so far. */
  get output(): string {
    return this.text.slice(0, this.emitted);
  }

  private take(end: number): string {
    const out = this.text.slice(this.emitted, end);
    this.emitted = end;
    return out;
  }

  /** Length of the longest suffix of the pending text that is a proper prefix of some stop string. */
  private heldBack(): number {
    let hold = 0;
    const pending = this.text.length - this.emitted;
    for (const stop of this.stops) {
      for (let k = Math.min(stop.length - 1, pending); k > hold; k--) {
        if (this.text.endsWith(stop.slice(0, k))) { hold = k; break; }
      }
    }
    return hold;
  }
}
