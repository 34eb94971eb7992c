import type { Command } from "commander";
import type { ContainerView, NodeView } from "../../protocol/api.js";
import { makeContext } from "../context.js";
import { ago, table } from "../output.js";
import type { Runner } from "../runner.js";

interface AppRow {
  name: string;
  state: string;
  deployed_at: string;
  source: string | null;
  functions: string[];
  endpoints: Array<{ function: string; url: string }>;
}

export function registerApps(program: Command, run: Runner): void {
  const apps = program.command("apps").description("list and stop deployed apps");
  apps
    .command("ls")
    .description("list deployed apps and their functions")
    .action(run(async (g) => {
      const { out, client } = makeContext(g);
      const res = await client.transport.json<{ apps: AppRow[] }>("GET", "/v1/apps");
      client.close();
      out.result(res.apps, () => {
        const apps = table(["APP", "STATE", "FUNCTIONS", "DEPLOYED"], res.apps.map((a) => [a.name, a.state, a.functions.join(", "), ago(a.deployed_at)]));
        if (!apps) return "no apps deployed";
        const endpoints = res.apps.flatMap((a) => a.endpoints.map((e) => [`${a.name}.${e.function}`, e.url]));
        return endpoints.length ? `${apps}\n\n${table(["WEB ENDPOINT", "URL"], endpoints)}` : apps;
      });
    }));
  apps
    .command("stop")
    .argument("<app>")
    .description("stop an app: its queued calls are cancelled, its containers stop")
    .action(run(async (g, app) => {
      const { out, client } = makeContext(g);
      const res = await client.transport.json("POST", `/v1/apps/${encodeURIComponent(app!)}/stop`);
      client.close();
      out.result(res, () => `stopped app ${app}`);
    }));

  const containers = program.command("containers").description("list the daemon's containers");
  containers
    .command("ls")
    .description("list running containers with their busy slots and GPUs")
    .action(run(async (g) => {
      const { out, client } = makeContext(g);
      const res = await client.transport.json<{ containers: ContainerView[] }>("GET", "/v1/containers");
      client.close();
      // A node column where containers run across a cluster.
      const cluster = res.containers.some((c) => c.node !== null);
      out.result(res.containers, () =>
        table(
          ["CONTAINER", cluster ? "SERVICE" : "DOCKER ID", "APP", "FUNCTION", "STATE", "SLOTS", "GPUS", ...(cluster ? ["NODE"] : []), "STARTED"],
          res.containers.map((c) => [
            c.id,
            (c.docker_id ?? "-").slice(0, 12),
            c.app,
            c.variant ? `${c.function}(${c.variant})` : c.function,
            c.state,
            `${c.active_calls}/${c.max_inputs}`,
            c.gpus.length ? c.gpus.map((g) => g.index).join(",") : "-",
            ...(cluster ? [c.node ?? "(placing)"] : []),
            ago(c.started_at),
          ]),
        ) || "no containers",
      );
    }));

  program
    .command("nodes")
    .description("list the machines containers run on (this one, or the Swarm cluster's nodes), their GPUs and load")
    .action(run(async (g) => {
      const { out, client } = makeContext(g);
      const res = await client.transport.json<{ nodes: NodeView[] }>("GET", "/v1/nodes");
      client.close();
      out.result(res.nodes, () =>
        table(
          ["NODE", "ROLE", "STATE", "CPUS", "MEMORY", "GPUS", "CONTAINERS", "SLOTS BUSY"],
          res.nodes.map((n) => [
            n.hostname,
            n.role,
            n.availability === "active" ? n.state : `${n.state} (${n.availability})`,
            String(Math.round(n.cpus * 10) / 10),
            `${Math.round(n.memory_mib / 1024)} GiB`,
            n.gpus.length ? `${n.gpus.filter((x) => x.holder).length}/${n.gpus.length} held${n.gpus[0]!.type ? ` (${n.gpus[0]!.type})` : ""}` : "-",
            String(n.containers),
            `${n.busy_slots}/${n.slots}`,
          ]),
        ),
      );
    }));
}
