/**
 * The Docker create options of a sandbox's container (issue 24). Pure, like container-spec.ts,
 * whose hardening it shares: a uid no host account has, no capabilities, no-new-privileges, a
 * read-only root, pids and memory limits. The writable places are /tmp and the work folder
 * (tmpfs, counted in the memory limit) and the volumes it mounts. Its main process is attached
 * (stdin open) so that the daemon holds its stdio; the image's ENTRYPOINT (gantry's agent in
 * function images) is replaced by the sandbox's own command.
 */
import type Docker from "dockerode";
import { CONTAINER_LOG_OPTIONS, gpuEnv, gpuHostConfig, PIDS_LIMIT } from "./container-spec.js";
import { Labels, type GpuAccess } from "./types.js";

/** A sandbox's memory limit when it asks for none (MiB): a flood of allocations ends it, not the host. */
export const DEFAULT_SANDBOX_MEMORY_MIB = 1024;
/** The writable folders' sizes (tmpfs: counted in the memory limit). */
export const SANDBOX_TMP_SIZE = "512m";
export const SANDBOX_DEFAULT_WORKDIR = "/tmp";
/** What a sandbox with no command runs: it stays up until its timeout or terminate(). */
export const KEEP_ALIVE_COMMAND = ["sleep", "infinity"];

export const SandboxLabels = { sandbox: "gantry.sandbox" } as const;

export interface SandboxLaunch {
  id: string;
  daemonId: string;
  app: string;
  image: string;
  command: string[];
  env: Record<string, string>;
  workdir: string | null;
  user: { uid: number; gid: number };
  network: "bridge" | "none";
  cpu: number | null;
  memoryMiB: number | null;
  pty: boolean;
  volumes: Array<{ hostPath: string; path: string; readOnly: boolean }>;
  gpu: GpuAccess | null;
  /** The work folder is not in the image: give it a writable tmpfs (the engine finds out). */
  workdirTmpfs?: boolean;
}

/** Whether the work folder is outside the writable places, so that the image may lack it. */
export function needsOwnFolder(l: Pick<SandboxLaunch, "workdir" | "volumes">): boolean {
  const workdir = l.workdir ?? SANDBOX_DEFAULT_WORKDIR;
  return !insideOf(workdir, "/tmp") && !l.volumes.some((v) => insideOf(workdir, v.path));
}

const insideOf = (path: string, dir: string) => path === dir || path.startsWith(dir.endsWith("/") ? dir : `${dir}/`);

/** `imageEnv` (the image's Config.Env) is read for GPUs in device-nodes mode only, as for functions. */
export function sandboxCreateOptions(l: SandboxLaunch, imageEnv: readonly string[] = []): Docker.ContainerCreateOptions {
  const memory = (l.memoryMiB ?? DEFAULT_SANDBOX_MEMORY_MIB) * 1024 * 1024;
  const owner = `uid=${l.user.uid},gid=${l.user.gid}`;
  const tmpfs: Record<string, string> = { "/tmp": `rw,nosuid,nodev,size=${SANDBOX_TMP_SIZE},mode=1777` };
  const workdir = l.workdir ?? SANDBOX_DEFAULT_WORKDIR;
  // A work folder the image does not have (outside /tmp and the volumes) gets a tmpfs, the sandbox's user owning it;
  // one the image has is left as the image made it (its files stay visible; the root is read-only).
  if (l.workdirTmpfs && needsOwnFolder(l)) tmpfs[workdir] = `rw,nosuid,nodev,size=${SANDBOX_TMP_SIZE},mode=0755,${owner}`;
  return {
    name: `gantry-sb-${l.app}-${l.id}`.slice(0, 120),
    Image: l.image,
    Entrypoint: [],
    Cmd: l.command.length ? l.command : KEEP_ALIVE_COMMAND,
    Env: Object.entries({ HOME: "/tmp", ...l.env, ...gpuEnv(l.gpu, imageEnv) }).map(([k, v]) => `${k}=${v}`),
    User: `${l.user.uid}:${l.user.gid}`,
    WorkingDir: workdir,
    Tty: l.pty,
    OpenStdin: true,
    StdinOnce: true,
    AttachStdin: true,
    AttachStdout: true,
    AttachStderr: true,
    Labels: { [Labels.daemon]: l.daemonId, [Labels.app]: l.app, [Labels.function]: "", [Labels.container]: l.id, [SandboxLabels.sandbox]: l.id },
    HostConfig: {
      Binds: l.volumes.map((v) => `${v.hostPath}:${v.path}${v.readOnly ? ":ro" : ""}`),
      NetworkMode: l.network,
      CapDrop: ["ALL"],
      SecurityOpt: ["no-new-privileges"],
      PidsLimit: PIDS_LIMIT,
      ReadonlyRootfs: true,
      Tmpfs: tmpfs,
      NanoCpus: l.cpu ? Math.round(l.cpu * 1e9) : undefined,
      Memory: memory,
      MemorySwap: memory,
      // The daemon keeps the output (bounded); Docker's own copy is bounded too.
      LogConfig: { Type: "json-file", Config: { ...CONTAINER_LOG_OPTIONS } },
      Init: true,
      ...gpuHostConfig(l.gpu),
    },
  };
}
