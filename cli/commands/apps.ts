import type { Command } from "commander";
import type { ContainerView, NodeView, RollbackView, VersionView } from "../../protocol/api.js";
import { UsageError } from "../exit-codes.js";
import { makeContext } from "../context.js";
import { ago, table } from "../output.js";
import type { Runner } from "../runner.js";

interface AppRow {
  name: string;
  state: string;
  ephemeral?: boolean;
  deployed_at: string;
  source: string | null;
  functions: string[];
  endpoints: Array<{ function: string; url: string }>;
  schedules: Array<{ function: string; schedule: string; next_run_at: string | null }>;
}

/** A version as typed: 3 or v3. */
export function parseVersionArg(raw: string): number {
  const m = /^v?(\d{1,9})$/i.exec(raw.trim());
  const n = m ? Number(m[1]) : NaN;
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`VERSION must be a version number like 3 or v3 (see gantry app history APP), got ${JSON.stringify(raw)}`);
  return n;
}

/** `gantry app history`'s table: newest first, the version served marked. */
export function historyTable(versions: readonly VersionView[], now = Date.now()): string {
  return table(
    ["VERSION", "DEPLOYED", "FUNCTIONS", "CHANGES"],
    versions.map((v) => [
      `v${v.version}${v.current ? " (current)" : ""}`,
      ago(v.deployed_at, now),
      v.functions.map((f) => f.name).join(", ") || "-",
      v.changes.join("; "),
    ]),
  );
}

export function registerApps(program: Command, run: Runner): void {
  const apps = program.command("apps").alias("app").description("list and stop deployed apps, see their versions and roll back");
  apps
    .command("ls")
    .description("list deployed apps and their functions")
    .action(run(async (g) => {
      const { out, client } = makeContext(g);
      const res = await client.transport.json<{ apps: AppRow[] }>("GET", "/v1/apps");
      client.close();
      out.result(res.apps, () => {
        const apps = table(["APP", "STATE", "FUNCTIONS", "DEPLOYED"], res.apps.map((a) => [a.name, a.ephemeral && a.state === "deployed" ? "deployed (ephemeral)" : a.state, a.functions.join(", "), ago(a.deployed_at)]));
        if (!apps) return "no apps deployed";
        const endpoints = res.apps.flatMap((a) => a.endpoints.map((e) => [`${a.name}.${e.function}`, e.url]));
        const schedules = res.apps.flatMap((a) => (a.schedules ?? []).map((s) => [`${a.name}.${s.function}`, s.schedule, s.next_run_at ? new Date(s.next_run_at).toISOString().replace(".000Z", "Z") : "-"]));
        return [apps, endpoints.length ? table(["WEB ENDPOINT", "URL"], endpoints) : "", schedules.length ? table(["SCHEDULED", "SCHEDULE", "NEXT RUN"], schedules) : ""].filter(Boolean).join("\n\n");
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
  apps
    .command("history")
    .argument("<app>")
    .description("list the app's versions, newest first: every deploy and rollback, what changed, the one served marked")
    .action(run(async (g, app) => {
      const { out, client } = makeContext(g);
      const res = await client.transport.json<{ versions: VersionView[] }>("GET", `/v1/apps/${encodeURIComponent(app!)}/versions`);
      client.close();
      out.result(res.versions, () => historyTable(res.versions) || `app ${app} has no recorded versions`);
    }));
  apps
    .command("rollback")
    .argument("<app>")
    .argument("[version]", "the version to serve again (3 or v3); by default the one before the current")
    .description("serve an earlier version of the app again, without building (its images must still exist); recorded as a new version")
    .action(run(async (g, app, version) => {
      const body = version === undefined ? {} : { version: parseVersionArg(version) };
      const { out, client } = makeContext(g);
      const res = await client.transport.json<RollbackView>("POST", `/v1/apps/${encodeURIComponent(app!)}/rollback`, body);
      client.close();
      out.result(res, () =>
        [
          `rolled ${app} back to v${res.rollback_to}: it serves v${res.version.version} now`,
          "",
          table(["FUNCTION", "IMAGE", "CODE"], res.version.functions.map((f) => [f.name, f.image, f.bundle_hash.slice(0, 12)])) || "(no functions)",
        ].join("\n"),
      );
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
            `${c.active_calls}/${c.max_inputs}${c.prefetched?.length ? ` +${c.prefetched.length}` : ""}`,
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
