import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    // Node 20 lacks Promise.withResolvers, which libp2p uses; the CLI loads the same file first.
    setupFiles: ['src/polyfills.ts'],
    // Two cores: container tests contend for CPU, so files run two at a time at most.
    pool: 'forks',
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
