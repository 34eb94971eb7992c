import type { Command } from "commander";
import type { GpuStatusView, GpuView, GpuWaitView } from "../../protocol/api.js";
import { makeContext } from "../context.js";
import { ago, table } from "../output.js";
import type { Runner } from "../runner.js";

type GpusAnswer = GpuStatusView & { gpus: GpuView[]; waiting: GpuWaitView[] };

export const PASSTHROUGH_TEXT: Record<NonNullable<GpuStatusView["passthrough"]>, string> = {
  "device-requests": "Docker device requests (NVIDIA container toolkit)",
  "device-nodes": "device nodes + driver libraries mounted read-only (no toolkit)",
  swarm: "Swarm generic resources (NVIDIA-GPU) reserved on the node; NVIDIA's runtime there maps them",
};

/** One line for `daemon status`: how many GPUs, and how containers get them (or why there are none). */
export function gpuSummary(s: GpuStatusView): string {
  if (!s.count) return `none (${s.problem ?? "no NVIDIA GPUs"})`;
  return `${s.count} (${s.held} held), driver ${s.driver_version ?? "?"}, passthrough: ${PASSTHROUGH_TEXT[s.passthrough!]}`;
}

function human(a: GpusAnswer): string {
  if (!a.count) return `no GPUs: ${a.problem ?? "nvidia-smi lists none"}`;
  const gpus = table(
    ["GPU", "NAME", "MEMORY", "UUID", "HELD BY"],
    a.gpus.map((g) => [
      String(g.index),
      g.name,
      `${Math.round(g.memory_mib / 1024)} GiB`,
      g.uuid,
      g.holder ? `${g.holder.app}.${g.holder.function} (${g.holder.container_id})` : "-",
    ]),
  );
  const lines = [gpus, "", `passthrough: ${PASSTHROUGH_TEXT[a.passthrough!]}`];
  if (a.waiting.length) {
    lines.push("", table(["WAITING FOR A GPU", "GPU", "QUEUED", "SINCE"], a.waiting.map((w) => [`${w.app}.${w.function}`, w.gpu.join(" | "), String(w.queued), ago(w.since)])));
  }
  return lines.join("\n");
}

export function registerGpus(program: Command, run: Runner): void {
  program
    .command("gpus")
    .description("list the machine's GPUs, who holds each, and the functions waiting for one")
    .option("--refresh", "read the GPUs again (nvidia-smi) before listing")
    .action(run<{ refresh?: boolean }>(async (o) => {
      const { out, client } = makeContext(o);
      const a = await client.transport.json<GpusAnswer>("GET", `/v1/gpus${o.refresh ? "?refresh=1" : ""}`);
      client.close();
      out.result(a, () => human(a));
    }));
}
