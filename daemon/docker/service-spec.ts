/**
 * The Swarm service for one container launch (`--backend swarm`): one service with one replica
 * per gantry container, so that the scaler still picks which container stops. Pure, so that the
 * hardening and the GPU reservation are checked without a cluster. The app's code is in the image
 * (nodes cannot mount the daemon's folders) and the agent dials the daemon over TCP.
 */
import type Docker from "dockerode";
import { CONTAINER_LOG_OPTIONS, PIDS_LIMIT } from "./container-spec.js";
import { Labels, type ContainerLaunch } from "./types.js";

/** Swarm's name for the generic resource NVIDIA GPUs are advertised as (`NVIDIA-GPU=<uuid>`). */
export const GPU_RESOURCE_KIND = "NVIDIA-GPU";
/** How long a task has to stop before it is killed (its agent finishes in-flight work first). */
const STOP_GRACE_NS = 5e9;
const TMP_BYTES = 256 * 1024 * 1024;

export interface ServicePlacement {
  /** The image holding the function's runtime and its code, as the nodes pull it. */
  image: string;
  /** The network tasks join: one that reaches the daemon's advertised address. */
  network: string;
}

/**
 * Hardening of a Swarm task, next to a plain container's (container-spec.ts). The same: the
 * configured uid:gid (never root; daemon/host/container-user.ts), a read-only root, every
 * capability dropped, a pids limit, a tmpfs /tmp, cpu and memory limits. What Swarm's API 1.41
 * (Docker 20.10, the engine tested here) cannot say, so tasks lack it:
 * - no-new-privileges: 1.41's ContainerSpec.Privileges holds only CredentialSpec and
 *   SELinuxContext. `Privileges.NoNewPrivileges` is sent anyway: later engines, whose API has it,
 *   honour it; 1.41 drops it (so a setuid binary in the image could still gain its owner's ids).
 * - MemorySwap: only a memory limit, so where a node has swap a task may use as much again of it
 *   (Docker's default) before it is killed for memory.
 * - the uid check: it reads the manager's accounts only; each node's own /etc/passwd is not seen,
 *   so a node with an account of that uid lets it read its tasks' environment.
 * A task has no socket folder to protect: its agent dials the daemon over TCP with its token.
 */
/**
 * A volume in a task: through the shared driver, a Docker volume each node makes on first use
 * (NoCopy: the image's files at the mount point are not copied into it); without one, a bind of the
 * folder, on a one-node cluster only (the deploy refuses volumes beyond).
 */
function volumeMount(v: NonNullable<ContainerLaunch["volumes"]>[number]): Docker.MountSettings {
  if (!v.driver) return { Type: "bind" as const, Source: v.hostPath, Target: v.path, ReadOnly: v.readOnly };
  return {
    Type: "volume" as const,
    Source: v.driver.volume,
    Target: v.path,
    ReadOnly: v.readOnly,
    VolumeOptions: { NoCopy: true, Labels: { "gantry.volume": v.driver.volume }, DriverConfig: { Name: v.driver.name, Options: v.driver.options } },
  };
}

export function serviceCreateOptions(l: ContainerLaunch, p: ServicePlacement): Docker.CreateServiceOptions {
  if (l.socketDir) throw new Error("a Swarm task cannot mount the agent's unix socket: its agent dials the daemon over TCP");
  const labels = { [Labels.daemon]: l.daemonId, [Labels.app]: l.app, [Labels.function]: l.function, [Labels.container]: l.containerId };
  const gpu = l.gpu;
  if (gpu && gpu.mode !== "swarm") throw new Error(`GPUs reach a Swarm task as generic resources, not as ${gpu.mode}`);
  const nano = l.cpu ? Math.round(l.cpu * 1e9) : undefined;
  const memory = l.memoryMiB ? l.memoryMiB * 1024 * 1024 : undefined;
  return {
    Name: `gantry-${l.app}-${l.function}-${l.containerId}`.slice(0, 63).replace(/-+$/, ""),
    Labels: labels,
    TaskTemplate: {
      ContainerSpec: {
        Image: p.image,
        Env: Object.entries(l.env).map(([k, v]) => `${k}=${v}`),
        User: l.user,
        // The image's WORKDIR (/tmp, or its workdir() step), as on the Docker backend.
        Labels: labels,
        ReadOnly: true,
        Mounts: [
          { Type: "tmpfs", Source: "", Target: "/tmp", TmpfsOptions: { SizeBytes: TMP_BYTES, Mode: 0o1777 } },
          ...(l.volumes ?? []).map(volumeMount),
        ],
        // Not in Docker's types yet (API 1.41 has it): every capability dropped, as on one machine.
        ...({ CapabilityDrop: ["ALL"] } as object),
        // Not in API 1.41 (dropped there, see above); honoured by engines whose API has it.
        Privileges: { NoNewPrivileges: true } as Docker.Privileges,
        StopGracePeriod: STOP_GRACE_NS,
      },
      Resources: {
        Limits: { NanoCPUs: nano, MemoryBytes: memory, ...({ Pids: PIDS_LIMIT } as object) },
        // Reserved too, so Swarm places the task only on a node with room for it.
        Reservations: {
          NanoCPUs: nano,
          MemoryBytes: memory,
          // The Engine API wraps each in DiscreteResourceSpec (dockerode's types leave the wrapper out).
          ...(gpu ? ({ GenericResources: [{ DiscreteResourceSpec: { Kind: GPU_RESOURCE_KIND, Value: gpu.count } }] } as object) : {}),
        },
      },
      RestartPolicy: { Condition: "none" },
      // Docker's copy of the task's output, bounded on its node as a plain container's is.
      LogDriver: { Name: "json-file", Options: { ...CONTAINER_LOG_OPTIONS } },
      Placement: gpu ? { Constraints: [`node.id==${gpu.node}`] } : {},
      Networks: [{ Target: p.network }],
    },
    Mode: { Replicated: { Replicas: 1 } },
  };
}
