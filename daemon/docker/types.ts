/**
 * The narrow port the daemon uses to run containers. It speaks gantry's words (image plan,
 * container launch) and never leaks dockerode types. `DockerRuntime` runs containers on this
 * machine; `SwarmRuntime` runs each as a Swarm service across a cluster.
 */
export interface ImagePlan {
  /** Final tag, derived from a hash of everything that goes into the image. */
  tag: string;
  dockerfile: string;
  /** Extra files of the build context, by path (folders are made as needed). */
  files: Record<string, Buffer | string>;
  /** File modes other than 0o644, by path. */
  modes?: Record<string, number>;
  /** Build arguments (the host's index settings and proxies). */
  buildArgs?: Record<string, string>;
  /** The longest the build may take before it is stopped; none when absent. */
  timeoutMs?: number;
}

/** A build that failed or overran: the Dockerfile step it was at, and the build's last lines. */
export class BuildFailedError extends Error {
  constructor(
    message: string,
    readonly step: number,
    readonly total: number,
    readonly lastLines: string[],
    readonly timedOut = false,
  ) {
    super(message);
    this.name = "BuildFailedError";
  }
}

export interface BuildProgress {
  step: number;
  total: number;
  line: string;
}

export interface ContainerLaunch {
  /** gantry's id of the container (`ct-…`), also its label. */
  containerId: string;
  daemonId: string;
  app: string;
  function: string;
  image: string;
  env: Record<string, string>;
  /** Host folder holding the agent socket, mounted at /run/gantry; null: the agent dials the daemon over TCP. */
  socketDir: string | null;
  /** Host folder holding the app's code: mounted read-only on one machine, copied into an image for a cluster. */
  codeDir: string;
  network: "bridge" | "none";
  user: string;
  cpu: number | null;
  memoryMiB: number | null;
  /** The container's GPUs and how they reach it; null: no GPU at all. */
  gpu: GpuAccess | null;
  /** Folders to mount; with `driver`, a Swarm task mounts that Docker volume instead (the shared storage the folder is on). */
  volumes?: Array<{ hostPath: string; path: string; readOnly: boolean; driver?: { volume: string; name: string; options: Record<string, string> } }>;
}

/** How a container gets its GPUs (DESIGN 1.9), chosen by the daemon per machine. */
export type GpuAccess =
  /** A Swarm cluster: `count` NVIDIA-GPU generic resources on that node (NVIDIA's runtime there maps them). */
  | { mode: "swarm"; count: number; node: string }
  /** NVIDIA's container toolkit: Docker's DeviceRequests naming the GPUs by UUID. */
  | { mode: "device-requests"; deviceIds: string[] }
  /** No toolkit: the device nodes, plus the driver's libraries and nvidia-smi mounted read-only. */
  | {
      mode: "device-nodes";
      /** Host device nodes; each appears at the same path in the container. */
      devices: string[];
      /** Files mounted read-only: host path → path in the container. */
      files: Array<{ host: string; container: string }>;
      /** Prepended to the image's LD_LIBRARY_PATH and PATH. */
      libraryDir: string;
      binDir: string;
      /** Paths hidden in the container: other GPUs' entries under /proc/driver/nvidia/gpus. */
      hiddenPaths: string[];
    };

export interface EngineInfo {
  version: string;
  /** OCI runtimes the engine knows ("runc", "nvidia", …). */
  runtimes: string[];
  /** The machine's name, cores and memory (the manager's, in a cluster). */
  name: string;
  cpus: number;
  memoryBytes: number;
}

/** How a container ended: its exit code, and why when the engine says more (a node went away). */
export interface ContainerExit {
  code: number;
  /** The kernel killed it for passing its memory limit (Docker's State.OOMKilled). */
  oomKilled?: boolean;
  /** The container no longer exists (removed behind gantry's back, or its node is gone). */
  vanished?: boolean;
  why?: string;
}

/** Whether the engine answers; the daemon follows it (an engine restart is noticed by itself). */
export interface EngineHealth {
  /** null while the engine answers; else since when it has not, and why. */
  readonly down: { sinceMs: number; reason: string } | null;
  /** Resolves once the engine answers (at once when it does). */
  whenUp(): Promise<void>;
  /** Hears the engine go down (false) and come back (true); returns a function that stops listening. */
  onChange(listener: (up: boolean) => void): () => void;
}

/** A call to the engine failed because the engine did not answer (not because it refused). */
export class EngineUnreachableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "EngineUnreachableError";
  }
}

/** One machine that runs containers: this one, or a node of the cluster. */
export interface NodeInfo {
  id: string;
  hostname: string;
  /** "manager" or "worker" in a cluster; "local" for this machine. */
  role: "manager" | "worker" | "local";
  /** "ready", "down", "unknown", … (the cluster's word); "ready" for this machine. */
  state: string;
  /** "active", "pause" or "drain" in a cluster; "active" for this machine. */
  availability: string;
  cpus: number;
  memoryBytes: number;
  /** The GPUs it advertises (Swarm generic resources NVIDIA-GPU), with the type its label names. */
  gpus: Array<{ uuid: string; type: string | null }>;
  labels: Record<string, string>;
}

export interface OwnedContainer {
  dockerId: string;
  containerId: string;
  app: string;
  function: string;
  running: boolean;
}

export interface ContainerRuntime {
  /** Throws a readable error when no engine answers. */
  ping(): Promise<void>;
  engineInfo(): Promise<EngineInfo>;
  imageExists(tag: string): Promise<boolean>;
  /** Id of a local image, or null when absent. */
  imageId(ref: string): Promise<string | null>;
  buildImage(plan: ImagePlan, onProgress: (p: BuildProgress) => void): Promise<void>;
  /** Creates and starts a container; resolves with the engine's id. */
  start(launch: ContainerLaunch): Promise<string>;
  /**
   * Resolves once the container stops (or, in a cluster, its node is gone). Throws
   * EngineUnreachableError when the engine stops answering meanwhile: wait for `engine` and ask again.
   */
  waitExit(dockerId: string): Promise<ContainerExit>;
  /** Whether the engine answers. */
  readonly engine: EngineHealth;
  /** Stops following the engine. */
  close(): void;
  kill(dockerId: string): Promise<void>;
  stop(dockerId: string, graceSeconds: number): Promise<void>;
  /** Removes the container; a container already gone counts as removed. */
  remove(dockerId: string): Promise<void>;
  logsTail(dockerId: string, lines: number): Promise<string>;
  listOwned(daemonId: string): Promise<OwnedContainer[]>;
  /** The machines containers run on: this one, or the cluster's nodes. */
  nodes(): Promise<NodeInfo[]>;
  /** The node a container runs on, once known (a cluster); null on one machine. */
  nodeOf(dockerId: string): string | null;
}

export const Labels = {
  daemon: "gantry.daemon",
  app: "gantry.app",
  function: "gantry.function",
  container: "gantry.container",
} as const;
