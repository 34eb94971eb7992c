/**
 * The machine's GPUs and who holds them. Reads the inventory at start and on demand, decides
 * the passthrough mode, hands whole GPUs to containers (allocation is the pure core's) and takes
 * them back when containers go, and says how each container gets its GPUs.
 */
import type { GpuView, GpuStatusView } from "../../protocol/api.js";
import { allocateGpus, describeInventory, everSatisfiable, parseGpuRequest, type Gpu, type GpuRequest } from "../core/gpu.js";
import type { ContainerRuntime, GpuAccess } from "../docker/types.js";
import { procBusId, type HostGpus } from "../host/nvidia.js";
import type { Logger } from "../logger.js";
import { ServiceError, ServiceErrorCode } from "./errors.js";

/** How containers get GPUs: on one machine Docker device requests or device nodes; in a Swarm cluster generic resources. */
export type GpuPassthrough = "device-requests" | "device-nodes" | "swarm";
/** "auto": device requests when the engine has NVIDIA's runtime, else device nodes. */
export type GpuPassthroughSetting = "auto" | Exclude<GpuPassthrough, "swarm">;

/** Where the driver's files appear in a container without the toolkit (as NVIDIA's images expect). */
export const NVIDIA_LIB_DIR_IN_CONTAINER = "/usr/local/nvidia/lib64";
export const NVIDIA_BIN_DIR_IN_CONTAINER = "/usr/local/nvidia/bin";
const PROC_GPUS_IN_CONTAINER = "/proc/driver/nvidia/gpus";

export interface GpuOwner {
  app: string;
  function: string;
  containerId: string;
}

export interface GpuBrokerDeps {
  /** Where GPUs come from: this machine's driver, or the cluster's nodes (swarm: true). */
  host: { read(): Promise<HostGpus> };
  runtime: Pick<ContainerRuntime, "engineInfo">;
  passthrough: GpuPassthroughSetting;
  /** A Swarm cluster: GPUs are nodes' generic resources, reserved by count on one node. */
  swarm?: boolean;
  log: Logger;
}

const EMPTY: HostGpus = { gpus: [], problem: "not read yet", driverVersion: null, controlNodes: [], libraries: [], smiPath: null, devDir: "/dev" };

export class GpuBroker {
  private host: HostGpus = EMPTY;
  private mode: GpuPassthrough | null = null;
  private readonly holdings = new Map<string, { owner: GpuOwner; gpus: Gpu[] }>();
  private readonly releaseListeners: Array<() => void> = [];
  /** Cluster nodes' names, by id (for views). */
  private nodeNames = new Map<string, string>();

  constructor(private readonly d: GpuBrokerDeps) {}

  /** Reads the GPUs and the engine's runtimes again. Holdings stay as they are. */
  async refresh(): Promise<void> {
    const [host, engine] = await Promise.all([this.d.host.read(), this.d.runtime.engineInfo()]);
    this.host = host;
    this.nodeNames = new Map(host.nodes?.map((n) => [n.id, n.hostname]) ?? []);
    const nvidiaRuntime = engine.runtimes.includes("nvidia");
    this.mode =
      host.gpus.length === 0 ? null : this.d.swarm ? "swarm" : this.d.passthrough === "auto" ? (nvidiaRuntime ? "device-requests" : "device-nodes") : this.d.passthrough;
    if (host.problem) this.d.log.info("no GPUs", { why: host.problem });
    else this.d.log.info("GPUs", { count: host.gpus.length, passthrough: this.mode, driver: host.driverVersion });
    this.releaseListeners.forEach((l) => l());
  }

  /** Called after GPUs come back (a container went, or a refresh found more). */
  onRelease(listener: () => void): void {
    this.releaseListeners.push(listener);
  }

  /** Throws when no alternative of `gpu` can ever be met here, naming the request and the GPUs. */
  async check(fn: string, gpu: readonly string[]): Promise<void> {
    if (everSatisfiable(this.host.gpus, gpu.map(parseGpuRequest))) return;
    await this.refresh(); // a GPU added or a driver loaded since the start
    if (everSatisfiable(this.host.gpus, gpu.map(parseGpuRequest))) return;
    throw new ServiceError(ServiceErrorCode.gpuUnavailable, `function ${fn} asks for gpu ${this.unmet(gpu)}`);
  }

  /** "\"H100:2\", but this machine has …": why a request can never be met here. */
  unmet(gpu: readonly string[]): string {
    const asked = gpu.map((g) => JSON.stringify(g)).join(" or ");
    const has = this.host.gpus.length ? `it has ${describeInventory(this.host.gpus)}` : `it has no NVIDIA GPUs (${this.host.problem})`;
    return `${asked}, which no GPU of this machine can meet: ${has}`;
  }

  everSatisfiable(requests: readonly GpuRequest[]): boolean {
    return everSatisfiable(this.host.gpus, requests);
  }

  get inventory(): readonly Gpu[] {
    return this.host.gpus;
  }

  /** UUIDs held by containers now. */
  held(): Set<string> {
    const s = new Set<string>();
    for (const h of this.holdings.values()) for (const g of h.gpus) s.add(g.uuid);
    return s;
  }

  /** Takes GPUs for a container about to start; null when none fit now. */
  acquire(owner: GpuOwner, requests: readonly GpuRequest[]): Gpu[] | null {
    const a = allocateGpus(this.host.gpus, this.held(), requests);
    if (!a.ok) return null;
    this.holdings.set(owner.containerId, { owner, gpus: a.gpus });
    return a.gpus;
  }

  /** Gives a container's GPUs back; a container without GPUs changes nothing. */
  release(containerId: string): void {
    if (!this.holdings.delete(containerId)) return;
    this.releaseListeners.forEach((l) => l());
  }

  /** What a container needs to see exactly these GPUs (and env saying which they are). */
  access(gpus: readonly Gpu[]): { gpu: GpuAccess; env: Record<string, string> } {
    // In a cluster Swarm picks which of the node's GPUs (NVIDIA's runtime there reads its choice).
    if (this.mode === "swarm") return { gpu: { mode: "swarm", count: gpus.length, node: gpus[0]!.node! }, env: {} };
    const env = { NVIDIA_VISIBLE_DEVICES: gpus.map((g) => g.uuid).join(",") };
    if (this.mode === "device-requests") return { gpu: { mode: "device-requests", deviceIds: gpus.map((g) => g.uuid) }, env };
    const mine = new Set(gpus.map((g) => g.uuid));
    const h = this.host;
    return {
      gpu: {
        mode: "device-nodes",
        devices: [...gpus.map((g) => `${h.devDir}/nvidia${g.minor}`), ...h.controlNodes],
        files: [
          ...h.libraries.map((l) => ({ host: l.path, container: `${NVIDIA_LIB_DIR_IN_CONTAINER}/${l.name}` })),
          ...(h.smiPath ? [{ host: h.smiPath, container: `${NVIDIA_BIN_DIR_IN_CONTAINER}/nvidia-smi` }] : []),
        ],
        libraryDir: NVIDIA_LIB_DIR_IN_CONTAINER,
        binDir: NVIDIA_BIN_DIR_IN_CONTAINER,
        hiddenPaths: h.gpus.filter((g) => !mine.has(g.uuid) && g.busId).map((g) => `${PROC_GPUS_IN_CONTAINER}/${procBusId(g.busId!)}`),
      },
      env,
    };
  }

  status(): GpuStatusView {
    return {
      count: this.host.gpus.length,
      passthrough: this.mode,
      driver_version: this.host.driverVersion,
      problem: this.host.problem,
      held: this.held().size,
    };
  }

  view(): GpuView[] {
    const holder = new Map<string, GpuOwner>();
    for (const h of this.holdings.values()) for (const g of h.gpus) holder.set(g.uuid, h.owner);
    return this.host.gpus.map((g) => {
      const o = holder.get(g.uuid);
      return {
        index: g.index,
        uuid: g.uuid,
        name: g.name,
        memory_mib: g.memoryMiB,
        device: g.node ? `${this.nodeNames.get(g.node) ?? g.node}` : `/dev/nvidia${g.minor}`,
        node: g.node ? (this.nodeNames.get(g.node) ?? g.node) : null,
        holder: o ? { app: o.app, function: o.function, container_id: o.containerId } : null,
      };
    });
  }
}
