import { defineConfig } from 'vitest/config';

// Tests run the real engine, TVM and libtorch: generous timeouts, files in sequence (2 cores).
export default defineConfig({
  test: {
    fileParallelism: false,
    projects: [
      { test: { name: 'node', include: ['test/node/**/*.test.ts'], testTimeout: 600_000, hookTimeout: 600_000, fileParallelism: false } },
      { test: { name: 'e2e', include: ['test/e2e/**/*.test.ts'], testTimeout: 900_000, hookTimeout: 600_000, fileParallelism: false } },
    ],
  },
});
