import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { GpuPassthroughSetting } from "./service/gpu-broker.js";

export interface DaemonConfig {
  home: string;
  socketPath: string;
  dbPath: string;
  pidPath: string;
  logsDir: string;
  appsDir: string;
  /** Per-container agent socket folders live here (kept short: unix socket paths max 107 bytes). */
  agentSocketsDir: string;
  httpHost: string;
  /** TCP port for the HTTP API; null: unix socket only. 0 picks a free port. */
  httpPort: number | null;
  /** Required on TCP when set; always required when listening beyond loopback. */
  token: string | null;
  /** Forces every container onto this network (tests use "none"). */
  forceNetwork: "none" | null;
  nodeBaseImage: string;
  pythonBaseImage: string;
  /** runtime-images/ and python/gantry/ of the package: the runtime layers come from them. */
  runtimeImagesDir: string;
  pythonPackageDir: string;
  /** The built dashboard (dashboard/dist): served at / on the daemon's listeners. */
  dashboardDir: string;
  /** Largest request body (a call's input, or a batch). Deploys get deployBodyBytes. */
  maxBodyBytes: number;
  /** Largest batch request (many calls' inputs, or many call IDs). */
  maxBatchBodyBytes: number;
  deployBodyBytes: number;
  /** Queued calls a function may hold; beyond that submit answers 429. */
  maxQueuedPerFunction: number;
  /** Longest ?wait= / ?timeout= a request may hold the connection, seconds. */
  maxWaitSeconds: number;
  dockerSocket: string;
  /** nvidia-smi, looked up on PATH unless a path; the GPU inventory comes from it. */
  nvidiaSmi: string;
  /** How containers get GPUs: "auto" picks device requests when the engine has NVIDIA's runtime. */
  gpuPassthrough: GpuPassthroughSetting;
  /** Where containers run: this machine's engine ("docker"), or a Swarm cluster it manages ("swarm"). */
  backend: "docker" | "swarm";
  /** Swarm: the registry (HOST:PORT) images are pushed to and nodes pull from; null: none (one node). */
  registry: string | null;
  /** Swarm: where agents dial the daemon (HOST:PORT; port 0 picks one); null: the node's swarm address, port 8701. */
  advertiseAddr: { host: string; port: number } | null;
  /** Swarm: the network tasks join (created as an attachable overlay when missing; "host" for loopback tests). */
  swarmNetwork: string;
  /** Swarm: how often agents are pinged; three unanswered in a row and the container counts as gone. */
  agentPingMs: number;
}

export const DEFAULT_AGENT_PORT = 8701;

/** HOST[:PORT] (IPv6 in brackets) as given to --advertise-addr. */
export function parseHostPort(raw: string, what: string, defaultPort: number): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+))(?::(\d{1,5}))?$/.exec(raw.trim());
  const port = m?.[3] === undefined ? defaultPort : Number(m[3]);
  if (!m || port > 65535) throw new Error(`${what} must be HOST or HOST:PORT (a port from 0 to 65535), got ${JSON.stringify(raw)}`);
  return { host: m[1] ?? m[2]!, port };
}

export function parseBackend(raw: string | undefined): "docker" | "swarm" {
  if (!raw || raw === "docker") return "docker";
  if (raw === "swarm") return "swarm";
  throw new Error(`backend ${JSON.stringify(raw)} is not one of docker, swarm`);
}

/** The package root, found from this file in both source (daemon/) and built (dist/daemon/) layouts. */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    if (existsSync(join(dir, "package.json")) && existsSync(join(dir, "runtime-images"))) return dir;
    dir = dirname(dir);
  }
  throw new Error("cannot find gantry's package root (package.json beside runtime-images/)");
}

export function defaultHome(): string {
  return resolve(process.env.GANTRY_HOME || join(homedir(), ".gantry"));
}

export function makeConfig(overrides: Partial<DaemonConfig> & { home?: string } = {}): DaemonConfig {
  const home = resolve(overrides.home ?? defaultHome());
  const root = packageRoot();
  const base: DaemonConfig = {
    home,
    socketPath: join(home, "gantry.sock"),
    dbPath: join(home, "gantry.db"),
    pidPath: join(home, "daemon.pid"),
    logsDir: join(home, "logs"),
    appsDir: join(home, "apps"),
    agentSocketsDir: join(home, "run"),
    httpHost: "127.0.0.1",
    httpPort: null,
    token: process.env.GANTRY_TOKEN || null,
    forceNetwork: null,
    nodeBaseImage: process.env.GANTRY_NODE_BASE_IMAGE || "gantry/base-node:1",
    pythonBaseImage: process.env.GANTRY_PYTHON_BASE_IMAGE || "gantry/base-python:1",
    runtimeImagesDir: join(root, "runtime-images"),
    pythonPackageDir: join(root, "python", "gantry"),
    dashboardDir: join(root, "dashboard", "dist"),
    maxBodyBytes: 8 * 1024 * 1024,
    maxBatchBodyBytes: 32 * 1024 * 1024,
    deployBodyBytes: 64 * 1024 * 1024,
    maxQueuedPerFunction: 100_000,
    maxWaitSeconds: 60,
    dockerSocket: process.env.DOCKER_SOCKET || "/var/run/docker.sock",
    nvidiaSmi: process.env.GANTRY_NVIDIA_SMI || "nvidia-smi",
    gpuPassthrough: parsePassthrough(process.env.GANTRY_GPU_PASSTHROUGH),
    backend: parseBackend(process.env.GANTRY_BACKEND),
    registry: process.env.GANTRY_REGISTRY || null,
    advertiseAddr: process.env.GANTRY_ADVERTISE_ADDR ? parseHostPort(process.env.GANTRY_ADVERTISE_ADDR, "GANTRY_ADVERTISE_ADDR", DEFAULT_AGENT_PORT) : null,
    swarmNetwork: process.env.GANTRY_SWARM_NETWORK || "gantry",
    agentPingMs: 10_000,
  };
  const cfg = { ...base, ...stripUndefined(overrides), home };
  return cfg;
}

const PASSTHROUGH: readonly GpuPassthroughSetting[] = ["auto", "device-requests", "device-nodes"];

export function parsePassthrough(raw: string | undefined): GpuPassthroughSetting {
  if (!raw) return "auto";
  if (!(PASSTHROUGH as readonly string[]).includes(raw)) {
    throw new Error(`GPU passthrough ${JSON.stringify(raw)} is not one of ${PASSTHROUGH.join(", ")}`);
  }
  return raw as GpuPassthroughSetting;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
