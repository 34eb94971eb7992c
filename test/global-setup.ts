import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";

/** Checks what the Docker-backed tests need, once, with a message that says how to get it. */
export default function setup(): void {
  const root = join(import.meta.dirname, "..");
  if (!existsSync(join(root, "runtime-images/node/dist/agent.cjs")) || !existsSync(join(root, "dist/cli/main.js"))) {
    execFileSync(process.execPath, [join(root, "scripts/build.mjs")], { stdio: "inherit" });
  }
  try {
    execFileSync("docker", ["image", "inspect", "gantry/base-node:2"], { stdio: "ignore" });
  } catch {
    throw new Error("Docker is not running or the base image gantry/base-node:2 is missing: run bash scripts/setup.sh (or npm test)");
  }
}
