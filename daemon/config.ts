import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { MAX_HISTORY_DAYS } from "../protocol/prune.js";
import { SANDBOX_LIMITS } from "../protocol/sandboxes.js";
import type { GpuPassthroughSetting } from "./service/gpu-broker.js";
import type { Durability } from "./store/group-commit.js";
import type { VolumeDriver } from "./service/volumes.js";

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
  /** Required on TCP when set; always required when listening beyond loopback; 16 characters at least. */
  token: string | null;
  /** Host names (HOST or HOST:PORT) TCP requests may name beyond loopback's (DNS rebinding: issue 15). */
  allowedHosts: string[];
  /** Origins (scheme://host[:port]) beside the daemon's own that may write and open WebSockets. */
  allowedOrigins: string[];
  /** TCP port web endpoints are served on (their own origin); null: next to httpPort (0 when it is 0). */
  webPort: number | null;
  /** HTTPS and WSS on the TCP listeners instead of plain HTTP (PEM files). */
  tls: { certPath: string; keyPath: string } | null;
  /** The uid:gid functions run as: one no host account has (checked at start). */
  containerUid: number;
  containerGid: number;
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
  /** Sandboxes running at once (GANTRY_MAX_SANDBOXES); past it a create answers 422 naming the limit. */
  maxSandboxes: number;
  /** Bytes kept of each stream of a sandbox's process (SANDBOX_LIMITS.outputBytes; tests lower it). */
  sandboxOutputBytes: number;
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
  /** The longest an image build may run before it is stopped (--build-timeout; default 30 minutes). */
  buildTimeoutMs: number;
  /** Swarm: how often agents are pinged; three unanswered in a row and the container counts as gone. */
  agentPingMs: number;
  /**
   * Swarm: a Docker volume driver every node can mount volumes through (an NFS export with the
   * local driver, say): each gantry volume becomes a Docker volume with these options, `{name}` in
   * them replaced by the volume's name. The same storage must be mounted at $GANTRY_HOME/volumes on
   * this machine. Null: volumes are folders on this machine, refused on a cluster of several nodes.
   */
  volumeDriver: VolumeDriver | null;
  /** How long an ephemeral app (gantry serve, app.run()) lives past its client's last heartbeat. */
  ephemeralAppTtlMs: number;
  /**
   * When a write is acknowledged (--durability, GANTRY_DURABILITY): "full" (the default) once it is
   * on disk; "relaxed" once committed, the log synced within 50 ms (a power cut can lose that window).
   */
  durability: Durability;
  /** Finished calls (their attempts, items, keys) are deleted this long after they finish (--history days, GANTRY_HISTORY_DAYS; default 7 days). */
  historyMs: number;
  /** An app's log file is rotated before it passes this (--log-max-size MiB, GANTRY_LOG_MAX_SIZE; default 50 MiB). */
  logMaxBytes: number;
  /** Log files kept per app, the current one included (--log-max-files, GANTRY_LOG_MAX_FILES; default 5). */
  logMaxFiles: number;
  /** How often containers of this daemon that it does not know are looked for and removed (daemon/service/leftovers.ts). */
  leftoverSweepMs: number;
  /** An unknown container is removed only once it has been seen unknown for this long (one being created is not known yet). */
  leftoverMarginMs: number;
  /** How long an input asked to stop (cancelled, timed out) may take before its container is replaced (GANTRY_CANCEL_GRACE, s). */
  cancelGraceMs: number;
}


/**
 * --volume-driver NAME with --volume-driver-opt KEY=VALUE (repeatable), as `docker volume create
 * -d NAME -o KEY=VALUE`. An option must carry `{name}`, or every volume would be the same storage.
 */
export function parseVolumeDriver(name: string | undefined, opts: readonly string[] = []): VolumeDriver | null {
  if (name === undefined || name === "") {
    if (opts.length) throw new Error(`--volume-driver-opt needs --volume-driver (the Docker volume driver, e.g. local)`);
    return null;
  }
  if (!/^[A-Za-z0-9][A-Za-z0-9_.\/:-]{0,127}$/.test(name)) throw new Error(`--volume-driver ${JSON.stringify(name)} is not a Docker volume driver name`);
  const options: Record<string, string> = {};
  for (const o of opts) {
    const at = o.indexOf("=");
    if (at <= 0) throw new Error(`--volume-driver-opt must be KEY=VALUE (as docker volume create -o), got ${JSON.stringify(o)}`);
    options[o.slice(0, at)] = o.slice(at + 1);
  }
  if (!Object.values(options).some((v) => v.includes("{name}"))) {
    throw new Error(`--volume-driver-opt: no option holds {name} (e.g. device=:/srv/gantry/volumes/{name}), so every gantry volume would share one storage`);
  }
  return { name, options };
}

export const DEFAULT_AGENT_PORT = 8701;
/**
 * The uid and gid functions run as by default: fixed, and in no range a distribution hands out
 * (Debian: 1000–59999 people, 60000–64999 packages, 65536+ unused; systemd DynamicUser 61184–65519;
 * subordinate ids for rootless containers from 100000). Checked against the host at start.
 */
export const DEFAULT_CONTAINER_ID = 99000;

/** A comma-separated variable as a list (empty entries dropped). */
function listEnv(raw: string | undefined): string[] {
  return (raw ?? "").split(",").map((s) => s.trim()).filter(Boolean);
}

/** The shortest token the daemon takes: shorter ones are guessed too quickly. */
export const MIN_TOKEN_LENGTH = 16;

/**
 * Refuses a token under MIN_TOKEN_LENGTH characters (issue 15), naming where it came from
 * (`source`: "GANTRY_TOKEN", "--token-file /path", …) and how to make a good one. No token is fine
 * (the caller decides whether one is needed); an empty one is refused.
 */
export function checkToken(token: string | null | undefined, source: string): void {
  if (token === null || token === undefined) return;
  if (token.length < MIN_TOKEN_LENGTH) {
    throw new Error(
      `the token from ${source} is ${token.length} character${token.length === 1 ? "" : "s"} long; ` +
        `gantry takes tokens of ${MIN_TOKEN_LENGTH} characters or more (a short one is guessed quickly): make one with: openssl rand -hex 32`,
    );
  }
}

/** Host names and addresses that stay on this machine (listening on them needs no token). */
export const LOOPBACK_HOSTS: readonly string[] = ["127.0.0.1", "::1", "localhost"];

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
    allowedHosts: listEnv(process.env.GANTRY_ALLOWED_HOSTS),
    allowedOrigins: listEnv(process.env.GANTRY_ALLOWED_ORIGINS),
    webPort: null,
    tls: null,
    containerUid: parseContainerId(process.env.GANTRY_CONTAINER_UID, "GANTRY_CONTAINER_UID") ?? DEFAULT_CONTAINER_ID,
    // The gid defaults to the uid given (or 99000).
    containerGid:
      parseContainerId(process.env.GANTRY_CONTAINER_GID, "GANTRY_CONTAINER_GID") ??
      parseContainerId(process.env.GANTRY_CONTAINER_UID, "GANTRY_CONTAINER_UID") ??
      DEFAULT_CONTAINER_ID,
    forceNetwork: null,
    nodeBaseImage: process.env.GANTRY_NODE_BASE_IMAGE || "gantry/base-node:2",
    pythonBaseImage: process.env.GANTRY_PYTHON_BASE_IMAGE || "gantry/base-python:2",
    runtimeImagesDir: join(root, "runtime-images"),
    pythonPackageDir: join(root, "python", "gantry"),
    dashboardDir: join(root, "dashboard", "dist"),
    maxBodyBytes: 8 * 1024 * 1024,
    maxBatchBodyBytes: 32 * 1024 * 1024,
    deployBodyBytes: 64 * 1024 * 1024,
    maxQueuedPerFunction: 100_000,
    maxSandboxes: parseMaxSandboxes(process.env.GANTRY_MAX_SANDBOXES) ?? 100,
    sandboxOutputBytes: SANDBOX_LIMITS.outputBytes,
    maxWaitSeconds: 60,
    dockerSocket: process.env.DOCKER_SOCKET || "/var/run/docker.sock",
    nvidiaSmi: process.env.GANTRY_NVIDIA_SMI || "nvidia-smi",
    gpuPassthrough: parsePassthrough(process.env.GANTRY_GPU_PASSTHROUGH),
    backend: parseBackend(process.env.GANTRY_BACKEND),
    registry: process.env.GANTRY_REGISTRY || null,
    advertiseAddr: process.env.GANTRY_ADVERTISE_ADDR ? parseHostPort(process.env.GANTRY_ADVERTISE_ADDR, "GANTRY_ADVERTISE_ADDR", DEFAULT_AGENT_PORT) : null,
    swarmNetwork: process.env.GANTRY_SWARM_NETWORK || "gantry",
    agentPingMs: 10_000,
    buildTimeoutMs: 30 * 60_000,
    volumeDriver: null,
    ephemeralAppTtlMs: parseTtlSeconds(process.env.GANTRY_EPHEMERAL_APP_TTL, "GANTRY_EPHEMERAL_APP_TTL") ?? 60_000,
    historyMs: parseHistoryDays(process.env.GANTRY_HISTORY_DAYS, "GANTRY_HISTORY_DAYS") ?? 7 * 24 * 3600 * 1000,
    durability: parseDurability(process.env.GANTRY_DURABILITY, "GANTRY_DURABILITY") ?? "full",
    logMaxBytes: parseLogMaxSize(process.env.GANTRY_LOG_MAX_SIZE, "GANTRY_LOG_MAX_SIZE") ?? 50 * 1024 * 1024,
    logMaxFiles: parseLogMaxFiles(process.env.GANTRY_LOG_MAX_FILES, "GANTRY_LOG_MAX_FILES") ?? 5,
    leftoverSweepMs: 60_000,
    leftoverMarginMs: 60_000,
    cancelGraceMs: parseTtlSeconds(process.env.GANTRY_CANCEL_GRACE, "GANTRY_CANCEL_GRACE") ?? 30_000,
  };
  const cfg = { ...base, ...stripUndefined(overrides), home };
  return cfg;
}

/** --durability / GANTRY_DURABILITY: "full" or "relaxed"; undefined when unset. */
export function parseDurability(raw: string | undefined, name: string): Durability | undefined {
  if (raw === undefined || raw.trim() === "") return undefined;
  if (raw === "full" || raw === "relaxed") return raw;
  throw new Error(`${name}=${JSON.stringify(raw)}: give full (a write is acknowledged once on disk, the default) or relaxed (once committed; a power cut can lose the last 50 ms)`);
}

/** --history / GANTRY_HISTORY_DAYS: days (fractions too) above 0 and at most 36500, as milliseconds; undefined when unset. */
export function parseHistoryDays(raw: string | undefined, name: string): number | undefined {
  if (raw === undefined || raw.trim() === "") return undefined;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0 || n > MAX_HISTORY_DAYS) throw new Error(`${name}=${JSON.stringify(raw)}: give the days finished calls are kept, a number above 0 and at most ${MAX_HISTORY_DAYS} (e.g. 7)`);
  return Math.round(n * 24 * 3600 * 1000);
}

/** GANTRY_EPHEMERAL_APP_TTL: seconds from 1 to 3600, as milliseconds; undefined when unset. */
export function parseTtlSeconds(raw: string | undefined, name: string): number | undefined {
  if (raw === undefined || raw.trim() === "") return undefined;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 1 || n > 3600) throw new Error(`${name}=${JSON.stringify(raw)}: give a number of seconds from 1 to 3600`);
  return Math.round(n * 1000);
}

/** --log-max-size / GANTRY_LOG_MAX_SIZE: MiB, a whole number from 1 to 102400, as bytes; undefined when unset. */
export function parseLogMaxSize(raw: string | undefined, name: string): number | undefined {
  if (raw === undefined || raw.trim() === "") return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 102_400) throw new Error(`${name}=${JSON.stringify(raw)}: give an app log file's largest size in MiB, a whole number from 1 to 102400`);
  return n * 1024 * 1024;
}

/** --log-max-files / GANTRY_LOG_MAX_FILES: files kept per app (the current one included), 1 to 1000; undefined when unset. */
export function parseLogMaxFiles(raw: string | undefined, name: string): number | undefined {
  if (raw === undefined || raw.trim() === "") return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 1000) throw new Error(`${name}=${JSON.stringify(raw)}: give how many log files to keep per app, a whole number from 1 to 1000`);
  return n;
}

export function parseMaxSandboxes(raw: string | undefined): number | undefined {
  if (raw === undefined || raw.trim() === "") return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 10_000) throw new Error(`GANTRY_MAX_SANDBOXES=${JSON.stringify(raw)}: give how many sandboxes may run at once, a whole number from 1 to 10000`);
  return n;
}

/** GANTRY_CONTAINER_UID / _GID: a whole number (what it may be is checked at start: daemon/host/container-user.ts). */
export function parseContainerId(raw: string | undefined, name: string): number | undefined {
  if (raw === undefined || raw.trim() === "") return undefined;
  if (!/^\d+$/.test(raw.trim())) throw new Error(`${name}=${JSON.stringify(raw)} is not a uid/gid: give a whole number, e.g. ${DEFAULT_CONTAINER_ID}`);
  return Number(raw.trim());
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
