// Typed errors: each names the cause and a hint the user can act on. The extension shows `hint`.

export class CachetError extends Error {
  readonly hint: string;
  constructor(message: string, hint: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.hint = hint;
  }
}

/** A GGUF file that cannot be read: names the file and the problem. */
export class GgufError extends CachetError {
  readonly file: string;
  constructor(file: string, problem: string, hint: string, options?: { cause?: unknown }) {
    super(`${file}: ${problem}`, hint, options);
    this.file = file;
  }
}

export class ModelNotSupportedError extends CachetError {}
export class ContextOverflowError extends CachetError {}
export class OutOfMemoryError extends CachetError {}
export class BackendUnavailableError extends CachetError {}
export class CancelledError extends CachetError {
  constructor(message = 'cancelled') {
    super(message, 'The request was cancelled; nothing to do.');
  }
}
