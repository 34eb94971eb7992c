#!/usr/bin/env node
// The gantry CLI. The TypeScript sources are compiled to dist/ by `npm run build`.
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const main = fileURLToPath(new URL("../dist/cli/main.js", import.meta.url));
if (!existsSync(main)) {
  process.stderr.write(`gantry is not built (${main} is missing): run npm run build in ${fileURLToPath(new URL("..", import.meta.url))}\n`);
  process.exit(1);
}
await import(main);
