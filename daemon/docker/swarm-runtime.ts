/**
 * `--backend swarm`: containers run as Swarm services (one replica each) on any node that fits,
 * behind the same port as the one-machine backend. Images are built on the manager, as on one
 * machine, then the app's code is copied into an image of its own and pushed to the registry
 * the nodes share (`--registry`; a single-node swarm needs none). One poller follows every task:
 * a task's end, or its node going down, ends the container's wait.
 */
import Docker from "dockerode";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { basename, join, relative, sep } from "node:path";
import { createHash } from "node:crypto";
import type { Logger } from "../logger.js";
import { CODE_DIR_IN_CONTAINER } from "./image-plan.js";
import { demux, type DockerRuntime } from "./docker-runtime.js";
import { GPU_RESOURCE_KIND, serviceCreateOptions } from "./service-spec.js";
import {
  Labels,
  type BuildProgress,
  type ContainerExit,
  type ContainerLaunch,
  type ContainerRuntime,
  type EngineHealth,
  type EngineInfo,
  type ImagePlan,
  type NodeInfo,
  type OwnedContainer,
} from "./types.js";

/** Node label naming the type of its GPUs, as nvidia-smi names it ("NVIDIA A100-SXM4-80GB"). */
export const GPU_TYPE_LABEL = "gantry.gpu";
const POLL_MS = 1000;
const TERMINAL_TASK_STATES = new Set(["complete", "failed", "shutdown", "rejected", "orphaned", "remove"]);

export interface SwarmOptions {
  socketPath: string;
  /** HOST:PORT of the registry the nodes pull from; null: the image stays on the manager (one node). */
  registry: string | null;
  /** The network tasks join (one that reaches the daemon's advertised address). */
  network: string;
  log: Logger;
  /** How often tasks are looked at (tests make it short). */
  pollMs?: number;
}

interface Watch {
  resolve: (exit: ContainerExit) => void;
  node: string | null;
}

function statusOf(err: unknown): number | undefined {
  return (err as { statusCode?: number })?.statusCode;
}

export class SwarmRuntime implements ContainerRuntime {
  private readonly docker: Docker;
  /** Images pushed (or being pushed) to the registry, by local tag: the ref nodes pull. */
  private readonly pushed = new Map<string, Promise<string>>();
  private readonly watches = new Map<string, Watch>();
  private poller: NodeJS.Timeout | null = null;
  private polling = false;

  constructor(
    private readonly local: DockerRuntime,
    private readonly o: SwarmOptions,
  ) {
    this.docker = new Docker({ socketPath: o.socketPath });
  }

  async ping(): Promise<void> {
    await this.local.ping();
    const info = (await this.docker.info()) as { Swarm?: { LocalNodeState?: string; ControlAvailable?: boolean } };
    if (info.Swarm?.LocalNodeState !== "active" || !info.Swarm.ControlAvailable) {
      throw new Error(
        `--backend swarm needs a Swarm manager, and this Docker engine is ${info.Swarm?.LocalNodeState === "active" ? "a worker" : "in no swarm"}: ` +
          `run docker swarm init (or start gantry on a manager)`,
      );
    }
    if (this.o.network !== "host") await this.ensureNetwork();
  }

  /** The overlay network tasks join, made when missing (attachable, so the manager's containers may join it too). */
  private async ensureNetwork(): Promise<void> {
    const found = await this.docker.listNetworks({ filters: { name: [this.o.network] } });
    if (found.some((n) => n.Name === this.o.network)) return;
    await this.docker.createNetwork({ Name: this.o.network, Driver: "overlay", Attachable: true, Labels: { "gantry.network": "tasks" } });
    this.o.log.info("created the overlay network tasks join", { network: this.o.network });
  }

  engineInfo(): Promise<EngineInfo> {
    return this.local.engineInfo();
  }
  /** The manager's engine: the one gantry drives the swarm through. */
  get engine(): EngineHealth {
    return this.local.engine;
  }
  close(): void {
    this.local.close();
  }
  imageExists(tag: string): Promise<boolean> {
    return this.local.imageExists(tag);
  }
  imageId(ref: string): Promise<string | null> {
    return this.local.imageId(ref);
  }
  buildImage(plan: ImagePlan, onProgress: (p: BuildProgress) => void): Promise<void> {
    return this.local.buildImage(plan, onProgress);
  }

  /** The image with the app's code in it (built once per runtime image and code), as nodes pull it. */
  private async codeImage(l: ContainerLaunch): Promise<string> {
    const baseId = (await this.local.imageId(l.image)) ?? l.image;
    const hash = createHash("sha256").update(baseId).update("\0").update(basename(l.codeDir)).digest("hex").slice(0, 24);
    const tag = `gantry/code:${hash}`;
    let ref = this.pushed.get(tag);
    if (!ref) {
      ref = (async () => {
        if (!(await this.local.imageExists(tag))) await this.local.buildImage(codePlan(tag, l.image, l.codeDir), () => undefined);
        return this.o.registry ? this.push(tag) : tag;
      })();
      ref.catch(() => this.pushed.delete(tag));
      this.pushed.set(tag, ref);
    }
    return ref;
  }

  /** Tags a local image for the registry and pushes it; resolves with the ref nodes pull. */
  private async push(tag: string): Promise<string> {
    const [repo, version] = tag.split(":") as [string, string];
    const ref = `${this.o.registry}/${repo}:${version}`;
    await this.docker.getImage(tag).tag({ repo: `${this.o.registry}/${repo}`, tag: version });
    // The engine wants an X-Registry-Auth header even for a registry without accounts.
    const stream = (await this.docker.getImage(ref).push({ authconfig: { serveraddress: this.o.registry! } } as object)) as NodeJS.ReadableStream;
    let failure: string | null = null;
    await new Promise<void>((resolve, reject) =>
      this.docker.modem.followProgress(
        stream,
        (err) => (err ? reject(err) : resolve()),
        (ev: { error?: string }) => {
          if (ev.error) failure = ev.error;
        },
      ),
    );
    if (failure) throw new Error(`pushing ${ref} to the registry ${this.o.registry} failed: ${failure}`);
    this.o.log.info("pushed image", { image: ref });
    return ref;
  }

  async start(l: ContainerLaunch): Promise<string> {
    const image = await this.codeImage(l);
    try {
      const service = (await this.docker.createService(serviceCreateOptions(l, { image, network: this.o.network }))) as { id?: string; ID?: string };
      const id = service.id ?? service.ID;
      if (!id) throw new Error("the engine returned no service id");
      return id;
    } catch (err) {
      throw new Error(`creating a Swarm service for ${l.app}.${l.function} failed: ${(err as Error).message}`);
    }
  }

  waitExit(serviceId: string): Promise<ContainerExit> {
    return new Promise((resolve) => {
      this.watches.set(serviceId, { resolve, node: null });
      this.schedulePoll();
    });
  }

  private schedulePoll(): void {
    if (this.poller || this.watches.size === 0) return;
    this.poller = setTimeout(() => {
      this.poller = null;
      void this.poll().finally(() => this.schedulePoll());
    }, this.o.pollMs ?? POLL_MS);
    this.poller.unref();
  }

  /** Looks at every watched service's task: ended, or on a node that is down, ends the wait. */
  private async poll(): Promise<void> {
    if (this.polling || this.watches.size === 0) return;
    this.polling = true;
    try {
      const [tasks, nodes] = await Promise.all([
        this.docker.listTasks() as Promise<SwarmTask[]>,
        this.docker.listNodes() as Promise<SwarmNode[]>,
      ]);
      const nodeById = new Map(nodes.map((n) => [n.ID, n]));
      const latest = new Map<string, SwarmTask>();
      for (const t of tasks) {
        const prev = latest.get(t.ServiceID);
        if (!prev || (t.Version?.Index ?? 0) > (prev.Version?.Index ?? 0)) latest.set(t.ServiceID, t);
      }
      for (const [serviceId, w] of this.watches) {
        const task = latest.get(serviceId);
        if (!task) {
          if (!(await this.serviceExists(serviceId))) this.end(serviceId, { code: -1, vanished: true, why: "its Swarm service is gone" });
          continue;
        }
        const node = task.NodeID ? nodeById.get(task.NodeID) : undefined;
        if (node) w.node = node.Description?.Hostname ?? node.ID;
        const state = task.Status?.State ?? "";
        if (TERMINAL_TASK_STATES.has(state)) {
          const err = task.Status?.Err ? `: ${task.Status.Err}` : "";
          this.end(serviceId, { code: task.Status?.ContainerStatus?.ExitCode ?? -1, why: `its Swarm task ended (${state}${err})` });
        } else if (node && node.Status?.State === "down" && task.NodeID) {
          this.end(serviceId, { code: -1, vanished: true, why: `its node ${w.node} is down` });
        }
      }
    } catch (err) {
      this.o.log.warn("looking at Swarm tasks failed", { err: (err as Error).message });
    } finally {
      this.polling = false;
    }
  }

  private end(serviceId: string, exit: ContainerExit): void {
    const w = this.watches.get(serviceId);
    if (!w) return;
    this.watches.delete(serviceId);
    w.resolve(exit);
  }

  private async serviceExists(id: string): Promise<boolean> {
    try {
      await this.docker.getService(id).inspect();
      return true;
    } catch (err) {
      if (statusOf(err) === 404) return false;
      throw err;
    }
  }

  nodeOf(serviceId: string): string | null {
    return this.watches.get(serviceId)?.node ?? null;
  }

  /** A service stops its task with SIGTERM, then SIGKILL after its grace period: kill, stop and remove are one. */
  async remove(serviceId: string): Promise<void> {
    try {
      await this.docker.getService(serviceId).remove();
    } catch (err) {
      if (statusOf(err) !== 404) throw err;
    }
  }
  kill(serviceId: string): Promise<void> {
    return this.remove(serviceId);
  }
  stop(serviceId: string): Promise<void> {
    return this.remove(serviceId);
  }

  async logsTail(serviceId: string, lines: number): Promise<string> {
    try {
      const buf = (await this.docker.getService(serviceId).logs({ stdout: true, stderr: true, tail: lines, follow: false })) as unknown as Buffer;
      return demux(buf);
    } catch {
      return "";
    }
  }

  async listOwned(daemonId: string): Promise<OwnedContainer[]> {
    const list = (await this.docker.listServices({ filters: { label: [`${Labels.daemon}=${daemonId}`] } })) as Array<{ ID: string; Spec?: { Labels?: Record<string, string> } }>;
    return list.map((s) => ({
      dockerId: s.ID,
      containerId: s.Spec?.Labels?.[Labels.container] ?? "",
      app: s.Spec?.Labels?.[Labels.app] ?? "",
      function: s.Spec?.Labels?.[Labels.function] ?? "",
      running: true,
    }));
  }

  async nodes(): Promise<NodeInfo[]> {
    const nodes = (await this.docker.listNodes()) as SwarmNode[];
    return nodes.map((n) => {
      const labels = n.Spec?.Labels ?? {};
      const res = n.Description?.Resources;
      return {
        id: n.ID,
        hostname: n.Description?.Hostname ?? n.ID,
        role: n.Spec?.Role === "manager" ? "manager" : "worker",
        state: n.Status?.State ?? "unknown",
        availability: n.Spec?.Availability ?? "active",
        cpus: (res?.NanoCPUs ?? 0) / 1e9,
        memoryBytes: res?.MemoryBytes ?? 0,
        gpus: (res?.GenericResources ?? [])
          .filter((g) => g.NamedResourceSpec?.Kind === GPU_RESOURCE_KIND)
          .map((g) => ({ uuid: g.NamedResourceSpec!.Value, type: labels[GPU_TYPE_LABEL] ?? null })),
        labels,
      };
    });
  }
}

/** The image of one app revision: the runtime image plus the app's code where the agent loads it. */
function codePlan(tag: string, base: string, codeDir: string): ImagePlan {
  const files: Record<string, Buffer> = {};
  const modes: Record<string, number> = {};
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      const st = statSync(path);
      if (st.isDirectory()) walk(path);
      else if (st.isFile()) {
        const rel = `app/${relative(codeDir, path).split(sep).join("/")}`;
        files[rel] = readFileSync(path);
        modes[rel] = st.mode & 0o111 ? 0o755 : 0o644;
      }
    }
  };
  walk(codeDir);
  return { tag, dockerfile: `FROM ${base}\nCOPY app/ ${CODE_DIR_IN_CONTAINER}/\n`, files, modes };
}

interface SwarmTask {
  ID: string;
  ServiceID: string;
  NodeID?: string;
  Version?: { Index?: number };
  Status?: { State?: string; Err?: string; ContainerStatus?: { ExitCode?: number } };
  GenericResources?: Array<{ NamedResourceSpec?: { Kind: string; Value: string } }>;
}

interface SwarmNode {
  ID: string;
  Spec?: { Role?: string; Availability?: string; Labels?: Record<string, string> };
  Status?: { State?: string };
  Description?: {
    Hostname?: string;
    Resources?: { NanoCPUs?: number; MemoryBytes?: number; GenericResources?: Array<{ NamedResourceSpec?: { Kind: string; Value: string } }> };
  };
}
