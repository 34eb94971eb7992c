import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    projects: [
      {
        // The pure core and the store: fakes and real SQLite files, no Docker.
        // Some bundle app files or write real files: room for a machine busy with other work.
        test: { name: "unit", include: ["test/unit/**/*.test.ts"], testTimeout: 20_000 },
      },
      {
        // A real Docker engine, daemon, HTTP clients and the CLI binary. They share one engine on
        // a 2-core machine: one file at a time.
        test: {
          name: "docker",
          include: ["test/integration/**/*.test.ts", "test/e2e/**/*.test.ts", "test/browser/**/*.test.ts"],
          globalSetup: ["test/global-setup.ts"],
          fileParallelism: false,
          testTimeout: 60_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
});
