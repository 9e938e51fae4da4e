// LRU cache of finished completions with type-through: when the user types the first characters
// of a shown completion, the rest is served from here instead of asking the model again. Pure.
//
// An entry remembers the cursor offset, the last KEY_CHARS of text before the cursor and the
// first KEY_CHARS after it. A later request at offset + k hits when its text before the cursor
// ends with (prefix tail + the first k characters of the completion) and the text after the
// cursor is unchanged: the answer is the completion minus those k characters.
//
// A request still streaming puts its complete lines so far as a *partial* entry (tagged with the
// request), replaced by the whole completion when it ends; a request cancelled midway leaves its
// partial entry behind. Callers that only want whole completions skip partial entries.

export const KEY_CHARS = 512;

export interface CacheKey {
  /** Absolute cursor offset in the document. */
  offset: number;
  /** Text before the cursor (at least its last KEY_CHARS characters). */
  prefix: string;
  /** Text after the cursor (at least its first KEY_CHARS characters). */
  suffix: string;
  /** Document identity (uri); entries of other documents never match. */
  doc: string;
}

interface Entry {
  doc: string;
  offset: number;
  prefixTail: string;
  suffixHead: string;
  completion: string;
  partial: boolean;
  tag?: object;
}

export interface CacheHit {
  /** The part of the cached completion not typed yet. */
  text: string;
  /** How many characters of it the user already typed. */
  typed: number;
  /** The entry is the text so far of a request that had not finished when it was stored. */
  partial: boolean;
  /** What the entry was stored with (the session's request, for partial entries). */
  tag?: object;
}

export class CompletionCache {
  private entries: Entry[] = [];
  hits = 0;
  misses = 0;

  constructor(private readonly capacity = 100) {}

  get size(): number {
    return this.entries.length;
  }

  /** Store (or replace) the completion for `key`; `partial` marks a request's text so far. */
  put(key: CacheKey, completion: string, opts: { partial?: boolean; tag?: object } = {}): void {
    if (completion.length === 0) return this.delete(key);
    const entry: Entry = { ...entryKey(key), completion, partial: opts.partial ?? false, tag: opts.tag };
    this.entries = this.entries.filter((e) => !sameKey(e, entry));
    this.entries.push(entry);
    if (this.entries.length > this.capacity) this.entries.shift();
  }

  /** Forget the entry stored for exactly `key`, if any. */
  delete(key: CacheKey): void {
    const k = entryKey(key);
    this.entries = this.entries.filter((e) => !sameKey(e, k));
  }

  get(key: CacheKey, opts: { partial?: boolean } = {}): CacheHit | undefined {
    const partialOk = opts.partial ?? true;
    for (let i = this.entries.length - 1; i >= 0; i--) {
      const e = this.entries[i];
      const typed = key.offset - e.offset;
      if (e.doc !== key.doc || typed < 0 || typed >= e.completion.length || (e.partial && !partialOk)) continue;
      if (key.suffix.slice(0, KEY_CHARS) !== e.suffixHead) continue;
      if (!key.prefix.endsWith(e.prefixTail + e.completion.slice(0, typed))) continue;
      // Most recently used goes last.
      this.entries.splice(i, 1);
      this.entries.push(e);
      this.hits++;
      return { text: e.completion.slice(typed), typed, partial: e.partial, ...(e.tag ? { tag: e.tag } : {}) };
    }
    this.misses++;
    return undefined;
  }

  clear(): void {
    this.entries = [];
    this.hits = 0;
    this.misses = 0;
  }
}

type EntryKey = Pick<Entry, 'doc' | 'offset' | 'prefixTail' | 'suffixHead'>;

function entryKey(key: CacheKey): EntryKey {
  return { doc: key.doc, offset: key.offset, prefixTail: key.prefix.slice(-KEY_CHARS), suffixHead: key.suffix.slice(0, KEY_CHARS) };
}

function sameKey(a: EntryKey, b: EntryKey): boolean {
  return a.doc === b.doc && a.offset === b.offset && a.prefixTail === b.prefixTail && a.suffixHead === b.suffixHead;
}
