/**
 * The dispatcher's service-layer tests run without Docker: a launcher whose containers are
 * entries the test readies (`h.onReady()`) and ends (`h.onGone(...)`), whose agent connection
 * records what it is sent; a GPU broker on a machine with no GPUs; a real call store in a temp
 * folder; and a Dispatcher over them.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { DaemonToAgent } from "../../protocol/agent-messages.js";
import type { FunctionSpec, Runtime } from "../../protocol/function-spec.js";
import { silentLogger } from "../../daemon/logger.js";
import { openDatabase, type Db } from "../../daemon/store/database.js";
import { GroupCommit, type GroupCommitOptions } from "../../daemon/store/group-commit.js";
import { CallStore } from "../../daemon/store/call-store.js";
import { Dispatcher } from "../../daemon/service/dispatcher.js";
import { EventBus } from "../../daemon/service/event-bus.js";
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

/** A real call store (SQLite, group commit) in a fresh temp folder; `close()` closes it and removes the folder. */
export function tempCallStore(prefix: string, opts: GroupCommitOptions = {}): { db: Db; calls: CallStore; close(): void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const db = openDatabase(join(dir, "gantry.db"));
  const calls = new CallStore(db, new GroupCommit(db, undefined, opts));
  return {
    db,
    calls,
    close() {
      db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A Dispatcher over `calls` with a fake launcher, `spec` deployed as app "a" (its module "m"). */
export async function fakeDispatcher(
  calls: CallStore,
  spec: FunctionSpec,
  opts: { runtime?: Runtime; cancelGraceMs?: number } = {},
): Promise<{ dispatcher: Dispatcher; fake: ReturnType<typeof fakeLauncher> }> {
  const fake = fakeLauncher();
  const grace = opts.cancelGraceMs === undefined ? {} : { cancelGraceMs: opts.cancelGraceMs };
  const dispatcher = new Dispatcher({ calls, launcher: fake.launcher, gpus: await noGpus(), bus: new EventBus(), log: silentLogger, maxQueuedPerFunction: 1000, maxBodyBytes: 1 << 20, ...grace });
  dispatcher.applyDeployment("a", [{ app: "a", spec, image: "img", bundleDir: "/b", revision: "r1", runtime: opts.runtime ?? "node", module: "m" }]);
  return { dispatcher, fake };
}
