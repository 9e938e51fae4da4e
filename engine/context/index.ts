// engine/context: FIM prompt assembly per model family, repository context selection, stop rules.
export * from './fim-formats';
export * from './fim-prompt';
export * from './windows';
export * from './stop-rules';
export * from './repo-context';
export * from './assemble';
