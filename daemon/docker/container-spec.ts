/**
 * The Docker create options for one container launch. Pure, so that hardening and both GPU
 * passthrough modes are checked without an engine; `DockerRuntime.start` sends what this returns.
 */
import type Docker from "dockerode";
import { AGENT_SOCKET_DIR_IN_CONTAINER } from "../../protocol/agent-messages.js";
import { CODE_DIR_IN_CONTAINER } from "./image-plan.js";
import { Labels, type ContainerLaunch, type GpuAccess } from "./types.js";

/** Docker's own masked paths (moby's defaults); a container's list replaces them, so they come first. */
export const DOCKER_MASKED_PATHS = [
  "/proc/asound",
  "/proc/acpi",
  "/proc/kcore",
  "/proc/keys",
  "/proc/latency_stats",
  "/proc/timer_list",
  "/proc/timer_stats",
  "/proc/sched_debug",
  "/proc/scsi",
  "/sys/firmware",
];
const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
export const PIDS_LIMIT = 512;
/**
 * Docker's own copy of a container's output (`docker logs`; gantry keeps its own app logs): at most
 * 3 files of 10 MB, so a chatty function cannot fill the engine's disk. Swarm tasks get the same.
 */
export const CONTAINER_LOG_OPTIONS: Record<string, string> = { "max-size": "10m", "max-file": "3" };

/** The image's own value of an environment variable ("" when unset). */
function imageValue(imageEnv: readonly string[], name: string): string {
  const entry = imageEnv.find((e) => e.startsWith(`${name}=`));
  return entry ? entry.slice(name.length + 1) : "";
}

const prepend = (dir: string, rest: string) => (rest ? `${dir}:${rest}` : dir);

/** Environment a GPU container needs on top of the launch's own (device-nodes mode finds the driver's files). */
export function gpuEnv(gpu: GpuAccess | null, imageEnv: readonly string[]): Record<string, string> {
  if (gpu?.mode !== "device-nodes") return {};
  return {
    LD_LIBRARY_PATH: prepend(gpu.libraryDir, imageValue(imageEnv, "LD_LIBRARY_PATH")),
    PATH: prepend(gpu.binDir, imageValue(imageEnv, "PATH") || DEFAULT_PATH),
  };
}

export function gpuHostConfig(gpu: GpuAccess | null): Partial<Docker.HostConfig> {
  if (!gpu) return {};
  switch (gpu.mode) {
    case "device-requests":
      return { DeviceRequests: [{ Driver: "nvidia", DeviceIDs: gpu.deviceIds, Capabilities: [["gpu"]] }] };
    case "device-nodes":
      return {
        Devices: gpu.devices.map((d) => ({ PathOnHost: d, PathInContainer: d, CgroupPermissions: "rw" })),
        MaskedPaths: [...DOCKER_MASKED_PATHS, ...gpu.hiddenPaths],
      };
    case "swarm":
      throw new Error("a Swarm GPU reservation cannot run as a plain container (--backend swarm runs it as a service)");
  }
}

/**
 * `imageEnv` is the image's Config.Env, read only for GPU containers in device-nodes mode, whose
 * LD_LIBRARY_PATH and PATH gain the driver's folders in front of the image's own.
 */
export function containerCreateOptions(l: ContainerLaunch, imageEnv: readonly string[] = []): Docker.ContainerCreateOptions {
  const env = { ...l.env, ...gpuEnv(l.gpu, imageEnv) };
  const files = l.gpu?.mode === "device-nodes" ? l.gpu.files.map((f) => `${f.host}:${f.container}:ro`) : [];
  const volumes = (l.volumes ?? []).map((v) => `${v.hostPath}:${v.path}${v.readOnly ? ":ro" : ""}`);
  return {
    name: `gantry-${l.app}-${l.function}-${l.containerId}`.slice(0, 120),
    Image: l.image,
    Env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
    User: l.user,
    // The image's WORKDIR: /tmp (a tmpfs) from gantry's runtime layer, or the image's workdir() step.
    Labels: {
      [Labels.daemon]: l.daemonId,
      [Labels.app]: l.app,
      [Labels.function]: l.function,
      [Labels.container]: l.containerId,
    },
    HostConfig: {
      // The socket folder read-only too (a unix socket on a read-only mount still connects): the function cannot write there.
      Binds: [...(l.socketDir ? [`${l.socketDir}:${AGENT_SOCKET_DIR_IN_CONTAINER}:ro`] : []), `${l.codeDir}:${CODE_DIR_IN_CONTAINER}:ro`, ...files, ...volumes],
      NetworkMode: l.network,
      CapDrop: ["ALL"],
      SecurityOpt: ["no-new-privileges"],
      PidsLimit: PIDS_LIMIT,
      ReadonlyRootfs: true,
      Tmpfs: { "/tmp": "rw,nosuid,nodev,size=256m" },
      NanoCpus: l.cpu ? Math.round(l.cpu * 1e9) : undefined,
      Memory: l.memoryMiB ? l.memoryMiB * 1024 * 1024 : undefined,
      // No swap beyond it: the limit is the memory the function gets, and passing it is an OOM kill.
      MemorySwap: l.memoryMiB ? l.memoryMiB * 1024 * 1024 : undefined,
      LogConfig: { Type: "json-file", Config: { ...CONTAINER_LOG_OPTIONS } },
      ...gpuHostConfig(l.gpu),
    },
  };
}
