// Printing: one JSON object per command with --json, readable text otherwise. Errors go to stderr.

import { CachetError } from '../errors';

export interface Io {
  out: (text: string) => void;
  err: (text: string) => void;
}

export const processIo: Io = {
  out: (t) => process.stdout.write(t.endsWith('\n') ? t : t + '\n'),
  err: (t) => process.stderr.write(t.endsWith('\n') ? t : t + '\n'),
};

export function printJson(io: Io, value: unknown): void {
  io.out(JSON.stringify(value, null, 2));
}

/** Thrown for bad command lines: prints usage, exit code 1. */
export class UsageError extends Error {
  constructor(message: string, readonly command?: string) {
    super(message);
  }
}

export const EXIT_OK = 0;
export const EXIT_USAGE = 1;
export const EXIT_CACHET_ERROR = 2;
export const EXIT_INTERNAL = 3;

export function reportError(io: Io, err: unknown, json: boolean): number {
  if (err instanceof CachetError) {
    if (json) io.err(JSON.stringify({ error: { name: err.name, message: err.message, hint: err.hint } }));
    else io.err(`error: ${err.message}\nhint: ${err.hint}`);
    return EXIT_CACHET_ERROR;
  }
  const e = err as Error;
  if (json) io.err(JSON.stringify({ error: { name: e?.name ?? 'Error', message: e?.message ?? String(err), hint: 'Unexpected error: please report it with the command line.' } }));
  else io.err(`internal error: ${e?.stack ?? String(err)}\nhint: this is a bug in Cachet; please report it with the command line.`);
  return EXIT_INTERNAL;
}

export function ms(x: number): string {
  return x < 10 ? x.toFixed(2) : x < 100 ? x.toFixed(1) : x.toFixed(0);
}
