import { spawn } from "node:child_process";
import { closeSync, mkdirSync, openSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { createSecureContext } from "node:tls";
import type { Command } from "commander";
import { isAlive } from "../../daemon/lock.js";
import { DaemonNotRunningError, GantryError } from "../../sdk/errors.js";
import { gantryHome } from "../../sdk/transport.js";
import { makeContext, type GlobalOptions } from "../context.js";
import { readPemFile, readTokenFile } from "../credentials.js";
import { UsageError } from "../exit-codes.js";
import type { Runner } from "../runner.js";
import type { GpuStatusView } from "../../protocol/api.js";
import { gpuSummary } from "./gpus.js";

interface StartOptions {
  foreground?: boolean;
  verbose?: boolean;
  httpPort?: string;
  httpHost?: string;
  /** Refused: it would show in ps. */
  token?: string;
  tokenFile?: string;
  tlsCert?: string;
  tlsKey?: string;
  allowedHost?: string[];
  allowedOrigin?: string[];
  webPort?: string;
  containerNetwork?: string;
  gpuPassthrough?: string;
  backend?: string;
  registry?: string;
  advertiseAddr?: string;
  swarmNetwork?: string;
  buildTimeout?: string;
  history?: string;
  durability?: string;
  volumeDriver?: string;
  volumeDriverOpt?: string[];
  logMaxSize?: string;
  logMaxFiles?: string;
}

type Health = {
  pid: number;
  home: string;
  http: string | null;
  /** The web endpoints' base URL (their own origin), when the daemon serves them on TCP. */
  web?: string | null;
  version: string;
  queued: number;
  containers: number;
  gpu: GpuStatusView;
  backend: "docker" | "swarm";
  agents?: string;
  registry?: string | null;
};

/** --build-timeout (or GANTRY_BUILD_TIMEOUT): seconds, 10 s to 24 h; undefined leaves the default (30 minutes). */
function buildTimeoutOption(raw: string | undefined): number | undefined {
  const value = raw ?? process.env.GANTRY_BUILD_TIMEOUT;
  if (value === undefined || value === "") return undefined;
  const n = Number(value);
  const what = raw !== undefined ? "--build-timeout" : "GANTRY_BUILD_TIMEOUT";
  if (!Number.isFinite(n) || n < 1 || n > 24 * 3600) throw new UsageError(`${what} must be a number of seconds from 1 to 86400, got ${JSON.stringify(value)}`);
  return n * 1000;
}

/** --durability (or GANTRY_DURABILITY): full or relaxed; undefined leaves the default (full). */
async function durabilityOption(raw: string | undefined): Promise<"full" | "relaxed" | undefined> {
  const { parseDurability } = await import("../../daemon/config.js");
  try {
    return raw !== undefined ? parseDurability(raw, "--durability") : parseDurability(process.env.GANTRY_DURABILITY, "GANTRY_DURABILITY");
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** --history (or GANTRY_HISTORY_DAYS): days finished calls are kept; undefined leaves the default (7). */
async function historyOption(raw: string | undefined): Promise<number | undefined> {
  const { parseHistoryDays } = await import("../../daemon/config.js");
  try {
    return raw !== undefined ? parseHistoryDays(raw, "--history") : parseHistoryDays(process.env.GANTRY_HISTORY_DAYS, "GANTRY_HISTORY_DAYS");
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

function parsePort(raw: string | undefined, flag = "--http-port"): number | null {
  if (raw === undefined) return null;
  const n = Number(raw);
  if (raw.trim() === "" || !Number.isInteger(n) || n < 0 || n > 65535) throw new UsageError(`${flag} must be a port number from 0 to 65535, got ${JSON.stringify(raw)}`);
  return n;
}

/** --log-max-size MiB and --log-max-files N (or GANTRY_LOG_MAX_SIZE / _FILES): app log rotation; undefined leaves the defaults (50 MiB × 5). */
async function logOptions(o: StartOptions): Promise<{ logMaxBytes?: number; logMaxFiles?: number }> {
  const { parseLogMaxSize, parseLogMaxFiles } = await import("../../daemon/config.js");
  try {
    return {
      logMaxBytes: o.logMaxSize !== undefined ? parseLogMaxSize(o.logMaxSize, "--log-max-size") : parseLogMaxSize(process.env.GANTRY_LOG_MAX_SIZE, "GANTRY_LOG_MAX_SIZE"),
      logMaxFiles: o.logMaxFiles !== undefined ? parseLogMaxFiles(o.logMaxFiles, "--log-max-files") : parseLogMaxFiles(process.env.GANTRY_LOG_MAX_FILES, "GANTRY_LOG_MAX_FILES"),
    };
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** Collects a repeatable option's values. */
const collect = (value: string, previous: string[] = []) => [...previous, value];

const listEnv = (raw: string | undefined) => (raw ?? "").split(",").map((s) => s.trim()).filter(Boolean);

/** HOST or HOST:PORT (IPv6 in brackets), as a Host header names it; lower case. */
function parseAllowedHost(raw: string, what: string): string {
  if (!/^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(?::\d{1,5})?$/.test(raw)) {
    throw new UsageError(`${what} must be a host name or address, with a port or not (HOST or HOST:PORT, IPv6 in brackets), got ${JSON.stringify(raw)}`);
  }
  return raw.toLowerCase();
}

/** scheme://host[:port] as a browser's Origin header says it (no path, query or user); normalized. */
function parseAllowedOrigin(raw: string, what: string): string {
  const bad = () => new UsageError(`${what} must be an origin, scheme://HOST[:PORT] with no path (e.g. https://app.example.com), got ${JSON.stringify(raw)}`);
  if (!/^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#@]+\/?$/.test(raw)) throw bad();
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw bad();
  }
  if ((u.protocol !== "http:" && u.protocol !== "https:") || !u.hostname) throw bad();
  return u.origin;
}

/** The token, TLS, listeners and allowlists of `daemon start`, checked before any daemon starts. */
async function accessOptions(o: StartOptions) {
  const { checkToken, LOOPBACK_HOSTS } = await import("../../daemon/config.js");
  if (o.token !== undefined) {
    throw new UsageError(
      "--token is refused: a token on the command line shows in ps to every user of this machine. " +
        "Set GANTRY_TOKEN, or put the token in a file only you can read (chmod 600 FILE) and pass --token-file FILE",
    );
  }
  let token: string | null = null;
  let source = "";
  if (o.tokenFile) {
    token = readTokenFile(o.tokenFile);
    source = `--token-file ${o.tokenFile}`;
  } else if (process.env.GANTRY_TOKEN) {
    token = process.env.GANTRY_TOKEN;
    source = "GANTRY_TOKEN";
  }
  try {
    checkToken(token, source);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const httpPort = parsePort(o.httpPort);
  const httpHost = o.httpHost ?? "127.0.0.1";
  if (httpPort !== null && !LOOPBACK_HOSTS.includes(httpHost) && !token) {
    const home = gantryHome();
    const file = join(home, "token");
    throw new UsageError(
      `--http-host ${httpHost} listens beyond loopback, where whoever reaches the port could run code here, so the daemon needs a token ` +
        `(16 characters or more). Make one and start with it: ` +
        `mkdir -p ${home} && (umask 077; openssl rand -hex 32 > ${file}) && gantry daemon start --http-host ${httpHost} --http-port ${httpPort} --token-file ${file} ` +
        `(or set GANTRY_TOKEN); clients then send it with GANTRY_TOKEN or --token-file`,
    );
  }

  let tls: { certPath: string; keyPath: string } | undefined;
  if (o.tlsCert !== undefined || o.tlsKey !== undefined) {
    if (o.tlsKey === undefined) throw new UsageError("--tls-cert needs --tls-key FILE too (the certificate's private key, PEM)");
    if (o.tlsCert === undefined) throw new UsageError("--tls-key needs --tls-cert FILE too (the certificate it is the key of, PEM)");
    if (httpPort === null) throw new UsageError("--tls-cert and --tls-key serve HTTPS on the TCP port: add --http-port PORT");
    tls = { certPath: resolve(o.tlsCert), keyPath: resolve(o.tlsKey) };
    const cert = readPemFile(tls.certPath, "--tls-cert");
    const key = readPemFile(tls.keyPath, "--tls-key");
    try {
      createSecureContext({ cert, key });
    } catch (err) {
      throw new UsageError(`--tls-cert ${o.tlsCert} and --tls-key ${o.tlsKey} must be a PEM certificate and its private key: ${(err as Error).message}`);
    }
  }

  const webPort = parsePort(o.webPort, "--web-port");
  if (webPort !== null && httpPort === null) throw new UsageError("--web-port serves web endpoints on TCP beside the API: add --http-port PORT");
  if (webPort !== null && webPort !== 0 && webPort === httpPort) throw new UsageError(`--web-port must differ from --http-port (web endpoints get an origin of their own), both are ${webPort}`);

  const hostFlags = (o.allowedHost ?? []).map((h) => parseAllowedHost(h, "--allowed-host"));
  const envHosts = listEnv(process.env.GANTRY_ALLOWED_HOSTS).map((h) => parseAllowedHost(h, "GANTRY_ALLOWED_HOSTS"));
  const originFlags = (o.allowedOrigin ?? []).map((x) => parseAllowedOrigin(x, "--allowed-origin"));
  const envOrigins = listEnv(process.env.GANTRY_ALLOWED_ORIGINS).map((x) => parseAllowedOrigin(x, "GANTRY_ALLOWED_ORIGINS"));
  return {
    token,
    httpPort,
    tls,
    webPort,
    hostFlags,
    originFlags,
    /** For makeConfig: undefined leaves its defaults (the variables). */
    allowedHosts: hostFlags.length ? [...new Set([...envHosts, ...hostFlags])] : undefined,
    allowedOrigins: originFlags.length ? [...new Set([...envOrigins, ...originFlags])] : undefined,
  };
}

async function health(opts: GlobalOptions): Promise<Health | null> {
  const { client } = makeContext(opts);
  try {
    return await client.transport.json<Health>("GET", "/v1/health");
  } catch (err) {
    if (err instanceof DaemonNotRunningError) return null;
    throw err;
  } finally {
    client.close();
  }
}

/** --gpu-passthrough (or GANTRY_GPU_PASSTHROUGH), checked before any daemon starts. */
async function passthroughOption(o: StartOptions) {
  const { parsePassthrough } = await import("../../daemon/config.js");
  try {
    return parsePassthrough(o.gpuPassthrough ?? process.env.GANTRY_GPU_PASSTHROUGH);
  } catch (err) {
    throw new UsageError(`--gpu-passthrough: ${(err as Error).message}`);
  }
}

/** --backend, --registry, --advertise-addr and --swarm-network (or their GANTRY_ variables), checked before any daemon starts. */
async function clusterOptions(o: StartOptions) {
  const { parseBackend, parseHostPort, parseVolumeDriver, DEFAULT_AGENT_PORT } = await import("../../daemon/config.js");
  let backend: "docker" | "swarm";
  try {
    backend = parseBackend(o.backend ?? process.env.GANTRY_BACKEND);
  } catch (err) {
    throw new UsageError(`--backend: ${(err as Error).message}`);
  }
  const registry = o.registry ?? process.env.GANTRY_REGISTRY;
  const advertise = o.advertiseAddr ?? process.env.GANTRY_ADVERTISE_ADDR;
  if (backend === "docker" && (o.registry || o.advertiseAddr || o.swarmNetwork || o.volumeDriver || o.volumeDriverOpt?.length)) {
    throw new UsageError(`--registry, --advertise-addr, --swarm-network and --volume-driver are for --backend swarm`);
  }
  let volumeDriver: ReturnType<typeof parseVolumeDriver> | undefined;
  try {
    volumeDriver = parseVolumeDriver(o.volumeDriver, o.volumeDriverOpt) ?? undefined;
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (registry !== undefined && !/^[A-Za-z0-9.-]+(:\d{1,5})?$/.test(registry)) throw new UsageError(`--registry must be HOST:PORT, got ${JSON.stringify(registry)}`);
  let advertiseAddr: { host: string; port: number } | undefined;
  try {
    advertiseAddr = advertise ? parseHostPort(advertise, "--advertise-addr", DEFAULT_AGENT_PORT) : undefined;
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  return { backend, registry: registry || undefined, advertiseAddr, swarmNetwork: o.swarmNetwork, volumeDriver };
}

async function runForeground(o: StartOptions): Promise<void> {
  if (o.containerNetwork && o.containerNetwork !== "none") throw new UsageError(`--container-network takes only "none"`);
  // Loaded here so that other verbs do not pay for the daemon's modules (SQLite, Docker client).
  const { makeConfig } = await import("../../daemon/config.js");
  const access = await accessOptions(o);
  const gpuPassthrough = await passthroughOption(o);
  const cluster = await clusterOptions(o);
  const { startDaemon } = await import("../../daemon/daemon.js");
  const cfg = makeConfig({
    home: gantryHome(),
    httpPort: access.httpPort,
    httpHost: o.httpHost,
    token: access.token,
    tls: access.tls ?? null,
    webPort: access.webPort,
    allowedHosts: access.allowedHosts,
    allowedOrigins: access.allowedOrigins,
    forceNetwork: o.containerNetwork === "none" ? "none" : null,
    gpuPassthrough,
    buildTimeoutMs: buildTimeoutOption(o.buildTimeout),
    historyMs: await historyOption(o.history),
    durability: await durabilityOption(o.durability),
    ...(await logOptions(o)),
    ...cluster,
  });
  try {
    const daemon = await startDaemon(cfg).catch((err: Error) => {
      // What stops a start (a taken port, a refused setting) is said in one line; --verbose adds where.
      if (o.verbose) process.stderr.write(`${err.stack}\n`);
      throw new GantryError(`the daemon did not start: ${err.message}`, "start_failed");
    });
    const onSignal = () => void daemon.stop();
    process.once("SIGTERM", onSignal);
    process.once("SIGINT", onSignal);
    await daemon.stopped;
  } finally {
    // Stopped, or failed to start: nothing is left to serve, so nothing may keep the process alive.
    setTimeout(() => process.exit(), 1000).unref();
  }
}

async function startBackground(o: StartOptions & GlobalOptions): Promise<void> {
  const g = o;
  // Checked first: a refused --token must not reach even the health check.
  const access = await accessOptions(o);
  const { out } = makeContext(g);
  const running = await health(g);
  if (running) throw new GantryError(`a gantry daemon is already running (pid ${running.pid}) on ${running.home}; stop it with: gantry daemon stop`, "already_running");
  await passthroughOption(o);
  await clusterOptions(o);
  await logOptions(o);
  buildTimeoutOption(o.buildTimeout);
  await historyOption(o.history);
  await durabilityOption(o.durability);
  const home = gantryHome();
  const logDir = join(home, "logs");
  mkdirSync(logDir, { recursive: true, mode: 0o700 });
  const logPath = join(logDir, "daemon.log");
  const logFd = openSync(logPath, "a", 0o600);
  const args = [process.argv[1]!, "daemon", "start", "--foreground"];
  if (access.httpPort !== null) args.push("--http-port", String(access.httpPort));
  if (o.httpHost) args.push("--http-host", o.httpHost);
  // The token goes to the child in its environment (GANTRY_TOKEN), never in its argv (ps shows that).
  if (access.tls) args.push("--tls-cert", access.tls.certPath, "--tls-key", access.tls.keyPath);
  if (access.webPort !== null) args.push("--web-port", String(access.webPort));
  for (const h of access.hostFlags) args.push("--allowed-host", h);
  for (const origin of access.originFlags) args.push("--allowed-origin", origin);
  if (o.containerNetwork) args.push("--container-network", o.containerNetwork);
  if (o.gpuPassthrough) args.push("--gpu-passthrough", o.gpuPassthrough);
  if (o.backend) args.push("--backend", o.backend);
  if (o.registry) args.push("--registry", o.registry);
  if (o.advertiseAddr) args.push("--advertise-addr", o.advertiseAddr);
  if (o.swarmNetwork) args.push("--swarm-network", o.swarmNetwork);
  if (o.volumeDriver) args.push("--volume-driver", o.volumeDriver);
  for (const opt of o.volumeDriverOpt ?? []) args.push("--volume-driver-opt", opt);
  if (o.logMaxSize) args.push("--log-max-size", o.logMaxSize);
  if (o.logMaxFiles) args.push("--log-max-files", o.logMaxFiles);
  if (o.buildTimeout) args.push("--build-timeout", o.buildTimeout);
  if (o.history) args.push("--history", o.history);
  if (o.durability) args.push("--durability", o.durability);
  const child = spawn(process.execPath, args, {
    detached: true,
    stdio: ["ignore", logFd, logFd],
    env: { ...process.env, GANTRY_HOME: home, ...(access.token ? { GANTRY_TOKEN: access.token } : {}) },
  });
  closeSync(logFd);
  let exited: number | null = null;
  child.once("exit", (code) => (exited = code ?? 1));
  child.unref();
  const deadline = Date.now() + 60_000;
  for (;;) {
    const h = await health(g);
    if (h) {
      out.result({ started: true, ...h, log: logPath }, () =>
        `gantry daemon started (pid ${h.pid})\n  home:   ${h.home}\n  socket: ${join(h.home, "gantry.sock")}\n  http:   ${h.http ?? "off"}\n` +
          (h.web ? `  web:    ${h.web}\n` : "") +
          `  log:    ${logPath}`,
      );
      return;
    }
    if (exited !== null || Date.now() > deadline) {
      const tail = readFileSync(logPath, "utf8").trimEnd().split("\n").slice(-15).join("\n");
      throw new GantryError(
        `the daemon ${exited !== null ? `exited (code ${exited})` : "did not answer within 60 s"} during start; last lines of ${logPath}:\n${tail}`,
      );
    }
    await sleep(100);
  }
}

export function registerDaemon(program: Command, run: Runner): void {
  const daemon = program.command("daemon").description("start, stop and inspect the gantry daemon");
  daemon
    .command("start")
    .description("start the daemon in the background (returns once it answers)")
    .option("--foreground", "run in this process until stopped")
    .option("--http-port <port>", "also serve the HTTP API on TCP (0 picks a free port)")
    .option("--http-host <host>", "TCP address to listen on (default 127.0.0.1; beyond loopback needs a token)")
    .option("--token-file <file>", "require the bearer token in FILE on TCP (yours alone: chmod 600; 16 characters or more), or set GANTRY_TOKEN")
    .option("--token <token>", "refused: it would show in ps; use GANTRY_TOKEN or --token-file")
    .option("--tls-cert <file>", "serve HTTPS and WSS on TCP with this PEM certificate (with --tls-key)")
    .option("--tls-key <file>", "the PEM private key of --tls-cert")
    .option("--web-port <port>", "serve web endpoints on this TCP port, an origin of their own (default: next to --http-port)")
    .option("--allowed-host <host>", "also answer TCP requests naming this Host (HOST or HOST:PORT; repeatable; or GANTRY_ALLOWED_HOSTS)", collect)
    .option("--allowed-origin <origin>", "also take writes and WebSockets from pages of this origin (scheme://host[:port]; repeatable; or GANTRY_ALLOWED_ORIGINS)", collect)
    .option("--container-network <none>", "force every container onto network none")
    .option("--gpu-passthrough <mode>", "auto (default), device-requests (NVIDIA toolkit) or device-nodes (or GANTRY_GPU_PASSTHROUGH)")
    .option("--backend <kind>", "docker (default: containers on this machine) or swarm (services across the Swarm this engine manages)")
    .option("--registry <host:port>", "swarm: push images here for the nodes to pull (a single-node swarm needs none)")
    .option("--advertise-addr <host[:port]>", "swarm: where agents on the nodes dial the daemon (default: this node's swarm address, port 8701)")
    .option("--swarm-network <name>", "swarm: the network tasks join (default gantry, an attachable overlay made when missing)")
    .option("--volume-driver <name>", "swarm: mount volumes on every node through this Docker volume driver (e.g. local, with NFS options)")
    .option("--volume-driver-opt <key=value>", "swarm: an option of --volume-driver, {name} standing for the volume (repeatable; e.g. device=:/srv/gantry/volumes/{name})", collect)
    .option("--log-max-size <MiB>", "rotate an app's log file before it passes this size (default 50; or GANTRY_LOG_MAX_SIZE)")
    .option("--log-max-files <n>", "log files kept per app, the current one included (default 5; or GANTRY_LOG_MAX_FILES)")
    .option("--build-timeout <seconds>", "stop an image build that runs longer (default 1800; or GANTRY_BUILD_TIMEOUT)")
    .option("--history <days>", "delete finished calls, their attempts and items this many days after they finish (default 7; or GANTRY_HISTORY_DAYS)")
    .option("--durability <full|relaxed>", "acknowledge a call or result once it is on disk (full, the default) or once committed, synced within 50 ms (relaxed: a power cut can lose that window; or GANTRY_DURABILITY)")
    .action(run<StartOptions>(async (o) => {
      if (o.foreground) await runForeground(o);
      else await startBackground(o);
    }));
  daemon
    .command("stop")
    .description("stop the daemon: running calls get --grace to finish, then containers stop; calls stay stored")
    .option("--grace <seconds>", "how long running calls may finish first", "30")
    .action(run<{ grace: string }>(async (g) => {
      const { out, client } = makeContext(g);
      const grace = Number(g.grace);
      if (!Number.isFinite(grace) || grace < 0 || grace > 3600) throw new UsageError(`--grace must be a number of seconds from 0 to 3600, got ${JSON.stringify(g.grace)}`);
      const h = await health(g);
      if (!h) {
        out.result({ stopped: false, running: false }, () => "no gantry daemon is running");
        return;
      }
      await client.transport.json("POST", "/v1/daemon/stop", { grace_s: grace });
      client.close();
      const limit = grace + 60;
      const deadline = Date.now() + limit * 1000;
      while (isAlive(h.pid) && Date.now() < deadline) await sleep(100);
      if (isAlive(h.pid)) throw new GantryError(`the daemon (pid ${h.pid}) did not stop within ${limit} s`);
      out.result({ stopped: true, pid: h.pid }, () => `gantry daemon stopped (pid ${h.pid})`);
    }));
  daemon
    .command("status")
    .description("show whether the daemon runs, and its queue and containers")
    .action(run(async (g) => {
      const { out } = makeContext(g);
      const h = await health(g);
      if (!h) throw new DaemonNotRunningError(`no gantry daemon is running on ${gantryHome()}; start it with: gantry daemon start`);
      out.result(h, () =>
        `gantry daemon ${h.version} running (pid ${h.pid})\n  home:       ${h.home}\n  http:       ${h.http ?? "off"}\n` +
          (h.web ? `  web:        ${h.web}\n` : "") +
          `  backend:    ${h.backend === "swarm" ? `swarm (agents dial ${h.agents}, registry ${h.registry ?? "none"})` : "docker (this machine)"}\n` +
          `  queued:     ${h.queued}\n  containers: ${h.containers}\n  gpus:       ${gpuSummary(h.gpu)}`,
      );
    }));
}
