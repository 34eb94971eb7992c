/** GET /v1/nodes: the machines containers run on (this one, or the Swarm cluster's nodes) and their load. */
import type { NodeView } from "../../protocol/api.js";
import type { ContainerRuntime } from "../docker/types.js";
import type { Dispatcher } from "../service/dispatcher.js";
import type { GpuBroker } from "../service/gpu-broker.js";
import type { Router } from "./http-kit.js";

export interface NodeRouteDeps {
  runtime: Pick<ContainerRuntime, "nodes" | "nodeOf">;
  dispatcher: Dispatcher;
  gpus: GpuBroker;
}

export function registerNodeRoutes(r: Router, d: NodeRouteDeps): void {
  r.on("GET", "/v1/nodes", async () => {
    const nodes = await d.runtime.nodes();
    const held = new Map(d.gpus.view().map((g) => [g.uuid, g.holder]));
    const load = new Map<string, { containers: number; busy: number; slots: number }>();
    for (const { pool, c } of d.dispatcher.containers()) {
      // On one machine every container is on it; in a cluster, on the node Swarm placed it on.
      const where = nodes.length === 1 && nodes[0]!.role === "local" ? nodes[0]!.hostname : c.dockerId ? d.runtime.nodeOf(c.dockerId) : null;
      if (!where) continue;
      const l = load.get(where) ?? { containers: 0, busy: 0, slots: 0 };
      l.containers++;
      l.busy += c.leases.size;
      l.slots += pool.spec.maxInputs;
      load.set(where, l);
    }
    const local = nodes.length === 1 && nodes[0]!.role === "local";
    const body: NodeView[] = nodes.map((n) => {
      const l = load.get(n.hostname) ?? { containers: 0, busy: 0, slots: 0 };
      const gpus = local ? d.gpus.view().map((g) => ({ uuid: g.uuid, type: g.name, holder: g.holder })) : n.gpus.map((g) => ({ ...g, holder: held.get(g.uuid) ?? null }));
      return {
        id: n.id,
        hostname: n.hostname,
        role: n.role,
        state: n.state,
        availability: n.availability,
        cpus: n.cpus,
        memory_mib: Math.round(n.memoryBytes / 1024 / 1024),
        gpus,
        labels: n.labels,
        containers: l.containers,
        busy_slots: l.busy,
        slots: l.slots,
      };
    });
    return { status: 200, body: { nodes: body } };
  });
}
