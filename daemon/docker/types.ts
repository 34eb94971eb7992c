/**
 * The narrow port the daemon uses to run containers. It speaks gantry's words (image plan,
 * container launch) and never leaks dockerode types; `DockerRuntime` is its one implementation.
 */
export interface ImagePlan {
  /** Final tag, derived from a hash of everything that goes into the image. */
  tag: string;
  dockerfile: string;
  /** Extra files of the build context, by path (folders are made as needed). */
  files: Record<string, Buffer | string>;
  /** File modes other than 0o644, by path. */
  modes?: Record<string, number>;
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
  /** Host folder holding the agent socket, mounted at /run/gantry. */
  socketDir: string;
  /** Host folder holding the app bundle, mounted read-only. */
  codeDir: string;
  network: "bridge" | "none";
  user: string;
  cpu: number | null;
  memoryMiB: number | null;
  /** The container's GPUs and how they reach it; null: no GPU at all. */
  gpu: GpuAccess | null;
}

/** How a container gets its GPUs (DESIGN 1.9), chosen by the daemon per machine. */
export type GpuAccess =
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
  /** Resolves with the exit code once the container stops. */
  waitExit(dockerId: string): Promise<number>;
  kill(dockerId: string): Promise<void>;
  stop(dockerId: string, graceSeconds: number): Promise<void>;
  /** Removes the container; a container already gone counts as removed. */
  remove(dockerId: string): Promise<void>;
  logsTail(dockerId: string, lines: number): Promise<string>;
  listOwned(daemonId: string): Promise<OwnedContainer[]>;
}

export const Labels = {
  daemon: "gantry.daemon",
  app: "gantry.app",
  function: "gantry.function",
  container: "gantry.container",
} as const;
