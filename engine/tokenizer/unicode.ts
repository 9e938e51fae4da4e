// Code point classes and byte helpers shared by the pre-tokenizers and the BPE byte mapping.
// Classes come from llama.cpp's own table (unicode-data.ts), not from the JS engine, so a
// code point is a letter here exactly when llama.cpp thinks it is.

import { UNICODE_RANGES_FLAGS, UNICODE_WHITESPACE } from './unicode-data';

export const CPT_UNDEFINED = 0x0001;
export const CPT_NUMBER = 0x0002; // \p{N}
export const CPT_LETTER = 0x0004; // \p{L}
export const CPT_SEPARATOR = 0x0008; // \p{Z}
export const CPT_ACCENT_MARK = 0x0010; // \p{M}
export const CPT_PUNCTUATION = 0x0020; // \p{P}
export const CPT_SYMBOL = 0x0040; // \p{S}
export const CPT_CONTROL = 0x0080; // \p{C}
export const CPT_MASK_CATEGORIES = 0x00ff;
export const CPT_WHITESPACE = 0x0100; // \s as llama.cpp defines it

const MAX_CODEPOINTS = 0x110000;
let flagTable: Uint16Array | undefined;

function buildFlagTable(): Uint16Array {
  const table = new Uint16Array(MAX_CODEPOINTS);
  const r = UNICODE_RANGES_FLAGS;
  for (let i = 0; i + 3 < r.length; i += 2) table.fill(r[i + 1]!, r[i]!, r[i + 2]!);
  for (const cpt of UNICODE_WHITESPACE) table[cpt]! |= CPT_WHITESPACE;
  return table;
}

/** The flag table, indexed by code point (built once, 2 MiB). */
export function codepointFlagTable(): Uint16Array {
  return (flagTable ??= buildFlagTable());
}

export function codepointFlags(cpt: number): number {
  return cpt < MAX_CODEPOINTS ? codepointFlagTable()[cpt]! : CPT_UNDEFINED;
}

/**
 * Code points of a JS string. Lone surrogates become U+FFFD, as llama.cpp does for invalid
 * UTF-8 (and as TextEncoder encodes them). `starts[i]` is the UTF-16 index where code point i
 * begins; `starts[n]` is the string length, so code point ranges map back to slices.
 */
export function toCodepoints(text: string): { cpts: Uint32Array; starts: Uint32Array } {
  const n = text.length;
  const cpts = new Uint32Array(n);
  const starts = new Uint32Array(n + 1);
  let count = 0;
  for (let i = 0; i < n; ) {
    const c = text.charCodeAt(i);
    starts[count] = i;
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < n) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        cpts[count++] = ((c - 0xd800) << 10) + (d - 0xdc00) + 0x10000;
        i += 2;
        continue;
      }
    }
    cpts[count++] = c >= 0xd800 && c <= 0xdfff ? 0xfffd : c;
    i += 1;
  }
  starts[count] = n;
  return { cpts: cpts.subarray(0, count), starts: starts.subarray(0, count + 1) };
}

const encoder = new TextEncoder();
export function utf8Bytes(text: string): Uint8Array {
  return encoder.encode(text);
}

// GPT-2 byte <-> unicode table: printable bytes map to themselves, the rest to U+0100 upwards,
// so every byte string is a printable string (openai/gpt-2 encoder.py bytes_to_unicode).
export const BYTE_TO_UNICODE: readonly string[] = (() => {
  const table: string[] = new Array(256);
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  let n = 0;
  for (let b = 0; b < 256; b++) table[b] = String.fromCharCode(printable(b) ? b : 256 + n++);
  return table;
})();

export const UNICODE_TO_BYTE: ReadonlyMap<number, number> = new Map(
  BYTE_TO_UNICODE.map((ch, b) => [ch.charCodeAt(0), b] as [number, number]),
);

/** Number of bytes of the UTF-8 sequence that starts with `byte` (1 for continuation bytes). */
export function utf8SequenceLength(byte: number): number {
  if (byte < 0xc0) return 1;
  if (byte < 0xe0) return 2;
  if (byte < 0xf0) return 3;
  return 4;
}
