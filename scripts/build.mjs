// Builds gantry: TypeScript to dist/ (daemon, CLI, SDK), and the node agent into one file that
// runs on Node.js >= 18 inside runtime images (ws and zod bundled in).
import { build } from "esbuild";
import { execFileSync } from "node:child_process";
import { rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
rmSync(join(root, "dist"), { recursive: true, force: true });
execFileSync(process.execPath, [join(root, "node_modules/typescript/bin/tsc"), "-p", join(root, "tsconfig.json")], { stdio: "inherit" });
await build({
  entryPoints: [join(root, "runtime-images/node/agent.ts")],
  outfile: join(root, "runtime-images/node/dist/agent.cjs"),
  bundle: true,
  platform: "node",
  format: "cjs",
  target: "node18",
  external: ["bufferutil", "utf-8-validate"],
  logLevel: "warning",
});
console.error("built dist/ and runtime-images/node/dist/agent.cjs");
