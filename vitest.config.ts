import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/_global_setup.ts"],
    testTimeout: 120_000,
    hookTimeout: 180_000,
    // CLI tests spawn many processes; two cores want few files at once
    fileParallelism: true,
    maxWorkers: 2,
    reporters: ["default", "./test/_summary_reporter.ts"],
  },
});
