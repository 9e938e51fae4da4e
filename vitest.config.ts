import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    exclude: ['**/node_modules/**', 'test/e2e/**'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Two cores here and in CI: native addons (Dawn, llama.cpp, ORT) run one file at a time per fork.
    pool: 'forks',
    maxWorkers: 2,
  },
});
