// Builds gantry: TypeScript to dist/ (daemon, CLI, SDK), the node agent into one file that
// runs on Node.js >= 18 inside runtime images (ws and zod bundled in), and the dashboard
// (dashboard/, Preact compiled by Vite) into dashboard/dist, which the daemon serves at /.
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
const { build: viteBuild } = await import("vite");
await viteBuild({ configFile: join(root, "dashboard/vite.config.mjs") });
console.error("built dist/, runtime-images/node/dist/agent.cjs and dashboard/dist/");
