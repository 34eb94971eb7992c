/**
 * The dispatcher's service-layer tests run without Docker: a launcher whose containers are
 * entries the test readies (`h.onReady()`) and ends (`h.onGone(...)`), whose agent connection
 * records what it is sent; and a GPU broker on a machine with no GPUs.
 */
import type { DaemonToAgent } from "../../protocol/agent-messages.js";
import { silentLogger } from "../../daemon/logger.js";
import type { ContainerLauncher, LaunchHandlers } from "../../daemon/service/container-launcher.js";
import { GpuBroker } from "../../daemon/service/gpu-broker.js";
import type { ContainerEntry, FunctionPool } from "../../daemon/service/pool.js";

export interface FakeContainer {
  pool: FunctionPool;
  c: ContainerEntry;
  h: LaunchHandlers;
  /** The parameter set its pool gives it (a class's). */
  params: unknown;
  /** What the daemon sent its agent. */
  sent: DaemonToAgent[];
  /** Why gantry stopped or killed it, once it did. */
  killed: string | null;
}

export function fakeLauncher(): { launcher: ContainerLauncher; launched: FakeContainer[] } {
  const launched: FakeContainer[] = [];
  let n = 0;
  const end = (c: ContainerEntry, why: string) => {
    const l = launched.find((x) => x.c === c);
    if (!l) return;
    l.killed = why;
    l.h.onGone({ kind: "stopped", reason: why }, false);
  };
  const launcher = {
    engineUp: true,
    onEngineChange: () => undefined,
    newContainerId: () => `ct-${++n}`,
    launch(pool: FunctionPool, l: { id: string }, h: LaunchHandlers): ContainerEntry {
      const sent: DaemonToAgent[] = [];
      const c: ContainerEntry = {
        id: l.id, dockerId: null, state: "starting", revision: pool.revision, leases: new Map(), stopping: new Map(), requests: new Map(), idleSinceMs: null,
        lastUsedMs: Date.now(), startedAtMs: Date.now(), endpoint: null, conn: { send: (m: DaemonToAgent) => sent.push(m), close: () => undefined } as never,
        startupTimer: null, exitReason: null, initError: null, created: Promise.resolve(null), gpus: [],
      };
      launched.push({ pool, c, h, params: pool.params(), sent, killed: null });
      return c;
    },
    stop: (_p: FunctionPool, c: ContainerEntry, why: string) => end(c, why),
    kill: (_p: FunctionPool, c: ContainerEntry, why: string) => end(c, why),
    stopNow: async () => undefined,
  };
  return { launcher: launcher as unknown as ContainerLauncher, launched };
}

/** A GPU broker of a machine without GPUs, ready. */
export async function noGpus(): Promise<GpuBroker> {
  const gpus = new GpuBroker({
    host: { read: async () => ({ gpus: [], problem: "no GPUs in this test", driverVersion: null, controlNodes: [], libraries: [], smiPath: null, devDir: "/dev" }) },
    runtime: { engineInfo: async () => ({ version: "20.10", runtimes: ["runc"], name: "t", cpus: 2, memoryBytes: 2 ** 34 }) },
    passthrough: "auto",
    log: silentLogger,
  });
  await gpus.refresh();
  return gpus;
}
