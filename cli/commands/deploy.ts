import type { Command } from "commander";
import type { DeployEvent } from "../../protocol/api.js";
import { GantryError } from "../../sdk/errors.js";
import { makeContext } from "../context.js";
import type { Runner } from "../runner.js";

function bar(step: number, total: number, width = 12): string {
  const done = total ? Math.round((step / total) * width) : 0;
  return `[${"█".repeat(done)}${"░".repeat(width - done)}]`;
}

export function registerDeploy(program: Command, run: Runner): void {
  program
    .command("deploy")
    .argument("<file>", "app file: .ts, .mts, .js or .mjs")
    .description("bundle an app, build its images (with progress) and register its functions")
    .action(run(async (g, file) => {
      const { out, client } = makeContext(g);
      const started = Date.now();
      out.progress(`bundling ${file} …`);
      const { bundleApp } = await import("../bundle-app.js"); // esbuild loads only for deploys
      const app = await bundleApp(file!);
      out.note(`✓ bundled ${file}: app ${app.app}, ${app.functions.length} function(s), ${(app.bundle.length / 1024).toFixed(1)} KiB`);
      let done: Extract<DeployEvent, { type: "done" }> | null = null;
      let failure: Extract<DeployEvent, { type: "error" }> | null = null;
      const buildStart = new Map<string, number>();
      let stepText = "";
      /** The build's latest output lines, shown when it fails. */
      const recent: string[] = [];
      try {
        await client.transport.stream("POST", "/v1/apps/deploy", { app: app.app, functions: app.functions, bundle: app.bundle, source: file }, (line) => {
          const e = line as DeployEvent;
          switch (e.type) {
            case "image":
              if (e.status === "cached") out.note(`✓ image ${e.image} unchanged (${e.functions.join(", ")})`);
              else if (e.status === "building") {
                buildStart.set(e.image, Date.now());
                out.progress(`building image ${e.image} for ${e.functions.join(", ")} …`);
              } else out.note(`✓ built image ${e.image} in ${((Date.now() - buildStart.get(e.image)!) / 1000).toFixed(1)} s`);
              break;
            case "build": {
              const line = e.line.trim();
              const step = /^Step \d+\/\d+ : (.*)$/.exec(line);
              if (step) {
                stepText = step[1]!;
                if (!process.stderr.isTTY) out.note(`  [${e.step}/${e.total}] ${stepText}`);
              } else if (line && !/^(---> |Removing intermediate container|Successfully (built|tagged))/.test(line)) {
                recent.push(line);
                if (recent.length > 30) recent.shift();
              }
              if (process.stderr.isTTY) {
                const latest = step ? "" : recent.at(-1) ?? "";
                out.progress(`building ${e.image.slice(0, 26)} ${bar(e.step, e.total)} ${e.step}/${e.total} ${stepText}${latest ? ` · ${latest}` : ""}`);
              }
              break;
            }
            case "log":
              out.note(e.line);
              break;
            case "done":
              done = e;
              break;
            case "error":
              failure = e;
              break;
          }
        });
      } finally {
        out.endProgress();
        client.close();
      }
      if (failure && recent.length && !out.json) out.note(`last build output:\n${recent.map((l) => `  ${l}`).join("\n")}`);
      if (failure) throw new GantryError(`deploy of ${app.app} failed: ${(failure as { error: { message: string } }).error.message}`, "deploy_failed");
      if (!done) throw new GantryError(`the daemon ended the deploy of ${app.app} without an answer; see its log`);
      const d = done as Extract<DeployEvent, { type: "done" }>;
      const secs = ((Date.now() - started) / 1000).toFixed(1);
      out.result(d, () =>
        `✓ deployed app ${d.app} in ${secs} s (${d.built.length} image(s) built, ${d.cached.length} unchanged)\n` +
          d.functions
            .map((f) => {
              const gpu = f.gpu ? `, gpu ${f.gpu.join(" or ")}` : "";
              return `  ${f.name}  (max ${f.max_containers} containers × ${f.max_inputs} inputs, timeout ${f.timeout_s} s, retries ${f.retries}${gpu})`;
            })
            .join("\n"),
      );
    }));
}
