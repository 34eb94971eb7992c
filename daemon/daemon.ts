/**
 * Wires the daemon together with plain constructor arguments: store, container runtime,
 * dispatcher, deployer and API server. `startDaemon` returns once the API answers.
 */
import { randomBytes } from "node:crypto";
import { chmodSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import type http from "node:http";
import { Access } from "./api/access.js";
import { DashboardFiles } from "./api/dashboard.js";
import { buildRouter, containerRouter } from "./api/routes.js";
import { WebGateway } from "./api/web-gateway.js";
import { EventStream } from "./api/event-stream.js";
import { RequestGuard } from "./api/request-guard.js";
import { ApiServer, answer, route } from "./api/server.js";
import { checkToken, type DaemonConfig } from "./config.js";
import { makeId } from "./core/ids.js";
import { makeBackend } from "./backend.js";
import type { ContainerRuntime } from "./docker/types.js";
import { acquirePidLock } from "./lock.js";
import { consoleLogger, type Logger } from "./logger.js";
import { AppLogs } from "./service/app-logs.js";
import { LeftoverSweep } from "./service/leftovers.js";
import { ContainerLauncher } from "./service/container-launcher.js";
import { checkContainerUser } from "./host/container-user.js";
import { AppLifecycle } from "./service/app-lifecycle.js";
import { Deployer, deployedFunction } from "./service/deployer.js";
import { Dispatcher } from "./service/dispatcher.js";
import { GpuBroker } from "./service/gpu-broker.js";
import { EventBus } from "./service/event-bus.js";
import { Waiters } from "./service/waiters.js";
import { Secrets } from "./service/secrets.js";
import { SecretStore } from "./store/secret-store.js";
import { Volumes } from "./service/volumes.js";
import { VolumeStore } from "./store/volume-store.js";
import { VersionStore } from "./store/version-store.js";
import { VolumeFiles } from "./host/volume-files.js";
import { Dicts } from "./service/dicts.js";
import { Schedules } from "./service/schedules.js";
import { ScheduleStore } from "./store/schedule-store.js";
import { Queues } from "./service/queues.js";
import { DictStore, QueueStore } from "./store/dq-store.js";
import { Sessions } from "./service/sessions.js";
import { Sandboxes } from "./service/sandboxes.js";
import { SandboxStore } from "./store/sandbox-store.js";
import { SandboxAttach } from "./api/sandbox-attach.js";
import { parseGpuRequest } from "./core/gpu.js";
import type { FunctionSpec } from "../protocol/function-spec.js";
import { History } from "./service/history.js";
import { Metrics } from "./service/metrics.js";
import { readGpuUsage } from "./host/nvidia.js";
import { SessionStore } from "./store/session-store.js";
import { VERSION } from "../protocol/version.js";
import { AppStore } from "./store/app-store.js";
import { CallStore } from "./store/call-store.js";
import { openDatabase } from "./store/database.js";
import { GroupCommit } from "./store/group-commit.js";
import { ServiceError, ServiceErrorCode } from "./service/errors.js";

const EXPIRY_SWEEP_MS = 1000;
/** How long a stop lets running calls finish, unless told otherwise. */
export const DEFAULT_STOP_GRACE_MS = 30_000;

export interface RunningDaemon {
  config: DaemonConfig;
  daemonId: string;
  tcpPort: number | null;
  /** The API's and the web endpoints' base URLs on TCP (null without --http-port). */
  httpUrl: string | null;
  webUrl: string | null;
  /** Resolves once the daemon has stopped (by stop() or POST /v1/daemon/stop). */
  stopped: Promise<void>;
  /** Stops taking calls, lets running ones finish for up to graceMs, then stops everything. */
  stop(opts?: { graceMs?: number }): Promise<void>;
}

export async function startDaemon(cfg: DaemonConfig, opts: { log?: Logger; runtime?: ContainerRuntime } = {}): Promise<RunningDaemon> {
  const log = opts.log ?? consoleLogger();
  checkToken(cfg.token, "the daemon's configuration (GANTRY_TOKEN or --token-file)");
  const containerUser = checkContainerUser(cfg); // before anything changes: a uid a host account has refuses the start
  mkdirSync(cfg.home, { recursive: true, mode: 0o700 });
  chmodSync(cfg.home, 0o700);
  for (const dir of [cfg.logsDir, cfg.appsDir]) mkdirSync(dir, { recursive: true, mode: 0o700 });
  const releaseLock = acquirePidLock(cfg.pidPath);
  const cleanups: Array<() => unknown> = [releaseLock];
  const cleanup = async () => {
    for (const fn of cleanups.splice(0).reverse()) {
      try {
        await fn();
      } catch (err) {
        log.error("shutdown step failed", { err: (err as Error).message });
      }
    }
  };

  try {
    const backend = await makeBackend(cfg, log, opts.runtime);
    const runtime = backend.runtime;
    cleanups.push(() => runtime.close()); // ping starts following the engine's events
    await runtime.ping();

    const db = openDatabase(cfg.dbPath);
    const commit = new GroupCommit(db, (full, err) =>
      full
        ? log.error("the disk is full: new calls are refused (507), results wait in memory until there is room", { err: err?.message })
        : log.info("the disk has room again: held results are committed, new calls are taken"),
      {
        durability: cfg.durability,
        onSyncError: (err) => log.error("syncing the database's log to disk failed: acknowledgments wait until a sync succeeds", { err: err.message }),
      },
    );
    if (cfg.durability === "relaxed") log.warn("durability relaxed: writes are acknowledged once committed; a power cut can lose the last 50 ms of them (a daemon crash loses nothing)");
    cleanups.push(() => db.close(), () => commit.close());
    const calls = new CallStore(db, commit);
    const apps = new AppStore(db);
    let daemonId = apps.getMeta("daemon_id");
    if (!daemonId) {
      daemonId = makeId("gd", Date.now(), (n) => randomBytes(n), 8);
      apps.setMeta("daemon_id", daemonId);
    }

    // Containers of an earlier run of this daemon are removed: their calls are requeued below.
    const leftovers = await runtime.listOwned(daemonId);
    await Promise.all(leftovers.map((c) => runtime.remove(c.dockerId)));
    if (leftovers.length) log.info("removed leftover containers", { count: leftovers.length });
    rmSync(cfg.agentSocketsDir, { recursive: true, force: true });
    mkdirSync(cfg.agentSocketsDir, { recursive: true, mode: 0o711 });

    const gpus = new GpuBroker({
      host: backend.gpuHost,
      runtime,
      passthrough: cfg.gpuPassthrough,
      swarm: backend.kind === "swarm",
      log,
    });
    await gpus.refresh();

    const bus = new EventBus();
    const waiters = new Waiters(bus);
    const appLogs = new AppLogs(`${cfg.logsDir}/apps`, bus, log, { maxBytes: cfg.logMaxBytes, maxFiles: cfg.logMaxFiles });
    cleanups.push(() => appLogs.close());
    // What agents dial (a cluster's TCP listener): up before any container starts, closed after they are gone.
    await backend.listen();
    cleanups.push(() => backend.close());
    /** Serves code in containers calling other functions (set once the routes exist). */
    let containerApi: http.RequestListener | null = null;
    // Secrets live in files of their own ($GANTRY_HOME/secrets, 0700/0600), not in the database.
    const secrets = new Secrets({
      store: await SecretStore.open(`${cfg.home}/secrets`, log),
      apps,
      roll: (name): string[] => dispatcher.rollSecretUsers(name),
      log,
    });
    // Volumes: a folder each under $GANTRY_HOME/volumes, owned by the functions' uid; records in the database.
    const volumes = new Volumes({
      store: new VolumeStore(db),
      files: new VolumeFiles(`${cfg.home}/volumes`, containerUser.socketOwner),
      apps,
      log,
      driver: backend.kind === "swarm" ? cfg.volumeDriver : null,
      mountProblem: async () => {
        if (backend.kind !== "swarm" || cfg.volumeDriver) return null;
        const nodes = await runtime.nodes();
        return nodes.length > 1 ? `this Swarm cluster has ${nodes.length} nodes and a volume's folder is on one of them only: gantry mounts volumes on one machine (or a one-node cluster) unless the daemon is started with a shared --volume-driver (an NFS export, say: see README)` : null;
      },
    });
    volumes.start();
    cleanups.push(() => volumes.stop());
    // Dicts and Queues: in the database, written through the group commit like calls.
    const dicts = new Dicts({ store: new DictStore(db, commit), log });
    dicts.objects.start();
    const queues = new Queues({ store: new QueueStore(db, commit), log });
    queues.start();
    cleanups.push(() => dicts.objects.stop(), () => queues.close());
    const launcher = new ContainerLauncher({
      runtime,
      agents: backend.agents((req, res) => containerApi?.(req, res)),
      bus,
      log,
      daemonId,
      agentSocketsDir: cfg.agentSocketsDir,
      containerUser,
      forceNetwork: cfg.forceNetwork,
      secretEnv: (names): Record<string, string> => secrets.envFor(names),
      volumeBinds: (spec) => volumes.binds(spec),
    });
    const dispatcher = new Dispatcher({
      calls,
      launcher,
      gpus,
      bus,
      log,
      maxQueuedPerFunction: cfg.maxQueuedPerFunction,
      maxBodyBytes: cfg.maxBodyBytes,
      cancelGraceMs: cfg.cancelGraceMs,
    });
    cleanups.push(() => dispatcher.shutdown());
    // Metrics (issue 23): from the bus's events and what runs now, in memory; GPU use from nvidia-smi on this machine.
    const metrics = new Metrics({
      bus,
      calls,
      live: dispatcher,
      functions: () => {
        const deployedApps = new Set(apps.listApps().filter((a) => a.state === "deployed").map((a) => a.name));
        return apps.listFunctions().filter((f) => deployedApps.has(f.app)).map((f) => ({ app: f.app, function: f.name }));
      },
      gpus,
      dicts,
      queues,
      gpuUsage: backend.kind === "docker" ? () => readGpuUsage(cfg.nvidiaSmi) : null,
      log,
    });
    metrics.start();
    cleanups.push(() => metrics.stop());
    // Schedules: the next run of each scheduled function is stored; runs are calls marked scheduled.
    const schedules = new Schedules({
      store: new ScheduleStore(db),
      submit: (app, fn) => dispatcher.submit(app, fn, { args: [], kwargs: null, scheduled: true }),
      isQueued: (id) => dispatcher.isQueued(id),
      isServing: (app) => apps.listApps().some((a) => a.name === app && a.state === "deployed"),
      log,
    });
    cleanups.push(() => schedules.stop());
    // Sandboxes (issue 24): started on demand, recorded in the database, output in files under $GANTRY_HOME/sandboxes.
    const sandboxes: Sandboxes = new Sandboxes({
      store: new SandboxStore(db),
      engine: backend.sandboxEngine,
      unsupported: backend.sandboxesUnsupported,
      dir: `${cfg.home}/sandboxes`,
      daemonId,
      user: { uid: containerUser.uid, gid: containerUser.gid },
      forceNetwork: cfg.forceNetwork,
      buildImage: (runtime, image, assets, emit) => deployer.sandboxImage(runtime, image, assets, emit),
      functionImage: (app, fn) => {
        const deployedApp = apps.listApps().find((a) => a.name === app && a.state === "deployed");
        const f = deployedApp && apps.listFunctions().find((r) => r.app === app && r.name === fn);
        if (!f) throw new ServiceError(ServiceErrorCode.notFound, `no deployed function ${app}.${fn}`);
        return { image: f.image, volumes: f.spec.volumes ?? [], secrets: f.spec.secrets ?? [], env: f.spec.env ?? {} };
      },
      volumeBinds: async (app, mounts) => {
        const spec = { name: "sandbox", volumes: mounts } as FunctionSpec;
        await volumes.prepare(app, [spec]);
        return volumes.binds(spec);
      },
      secretEnv: (names) => secrets.envFor(names),
      secretExists: (name) => secrets.exists(name),
      gpus: gpuLeases(gpus),
      runtime,
      maxRunning: cfg.maxSandboxes,
      outputBytes: cfg.sandboxOutputBytes,
      historyMs: cfg.historyMs,
      log,
    });
    sandboxes.start();
    cleanups.push(() => sandboxes.close());
    const lifecycle = new AppLifecycle({
      apps,
      dispatcher: { stopApp: (app) => (sandboxes.stopApp(app), dispatcher.stopApp(app)) },
      log,
      ttlMs: cfg.ephemeralAppTtlMs,
    });
    const deployer = new Deployer({
      expiryFor: (ephemeral) => lifecycle.expiryFor(ephemeral),
      runtime,
      apps,
      dispatcher,
      gpus,
      log,
      webBase: () => webBase(),
      appsDir: cfg.appsDir,
      baseImages: { node: cfg.nodeBaseImage, python: cfg.pythonBaseImage },
      layers: { runtimeImagesDir: cfg.runtimeImagesDir, pythonPackageDir: cfg.pythonPackageDir },
      cluster: backend.kind === "swarm",
      secrets,
      volumes,
      schedules,
      versions: new VersionStore(db),
      buildTimeoutMs: cfg.buildTimeoutMs,
      onImageBuild: (b) => metrics.imageBuilt(b),
    });

    const known = apps.listApps();
    for (const a of known) if (a.state === "stopped") dispatcher.stopApp(a.name);
    const deployed = new Set(known.filter((a) => a.state === "deployed").map((a) => a.name));
    const fns = apps.listFunctions().filter((f) => deployed.has(f.app));
    for (const app of deployed) {
      dispatcher.applyDeployment(app, fns.filter((f) => f.app === app).map((f) => deployedFunction(f, cfg.appsDir)));
    }
    const recovered = await dispatcher.recover();
    // Schedules as stored: a run missed while the daemon was down happens now, once.
    for (const app of deployed) schedules.apply(app, fns.filter((f) => f.app === app).map((f) => f.spec));
    schedules.start();
    lifecycle.start();
    cleanups.push(() => lifecycle.close());

    const sweep = setInterval(() => {
      calls.expireResults(Date.now()).catch((err) => log.warn("expiry sweep failed", { err: (err as Error).message }));
    }, EXPIRY_SWEEP_MS);
    sweep.unref();
    cleanups.push(() => clearInterval(sweep));
    // Containers with this daemon's label that it no longer tracks (a removal that failed): removed while it runs, not only at start.
    const leftoverSweep = new LeftoverSweep({
      runtime,
      daemonId,
      known: () => [...dispatcher.containers().map(({ c }) => c.id), ...sandboxes.containerIds()],
      intervalMs: cfg.leftoverSweepMs,
      marginMs: cfg.leftoverMarginMs,
      log,
    });
    leftoverSweep.start();
    cleanups.push(() => leftoverSweep.close());
    // Finished calls past the history window are deleted in batches, and the file shrinks after.
    const history = new History({ store: calls.history, windowMs: cfg.historyMs, log });
    history.start();
    cleanups.push(() => history.stop());

    let resolveStopped!: () => void;
    const stopped = new Promise<void>((r) => (resolveStopped = r));
    let stopping: Promise<void> | null = null;
    const stop = (opts: { graceMs?: number } = {}) => {
      stopping ??= (async () => {
        const graceMs = opts.graceMs ?? DEFAULT_STOP_GRACE_MS;
        log.info("stopping", { grace_ms: graceMs });
        await dispatcher.drain(graceMs);
        await cleanup();
        log.info("stopped");
        resolveStopped();
      })();
      return stopping;
    };

    const startedAt = new Date().toISOString();
    // Dashboard sessions live in the database; a new token ends every one of them.
    const sessions = new Sessions({ store: new SessionStore(db), token: cfg.token, log });
    sessions.start();
    cleanups.push(() => sessions.stop());
    const access = new Access({ token: cfg.token, sessions });
    const router = buildRouter({
      access,
      runtime,
      calls,
      apps,
      dispatcher,
      deployer,
      lifecycle,
      gpus,
      waiters,
      logs: appLogs,
      bus,
      secrets,
      volumes,
      dicts,
      queues,
      schedules,
      sandboxes,
      history,
      metrics,
      maxBodyBytes: cfg.maxBodyBytes,
      deployBodyBytes: cfg.deployBodyBytes,
      maxWaitSeconds: cfg.maxWaitSeconds,
      maxBatchBodyBytes: cfg.maxBatchBodyBytes,
      health: () => ({
        ok: true,
        version: VERSION,
        pid: process.pid,
        home: cfg.home,
        daemon_id: daemonId,
        started_at: startedAt,
        http: server.httpUrl,
        web: server.webUrl,
        ...dispatcher.stats(),
        ...backend.describe(),
        gpu: gpus.status(),
        // What is wrong and not the functions' fault: a full disk, an engine that does not answer.
        disk_full: commit.fullSinceMs === null ? null : { since: new Date(commit.fullSinceMs).toISOString(), folder: commit.folder, held_writes: commit.heldWrites },
        engine_down: runtime.engine.down === null ? null : { since: new Date(runtime.engine.down.sinceMs).toISOString(), reason: runtime.engine.down.reason },
        durability: cfg.durability,
      }),
      requestStop: (graceMs) => void stop({ graceMs }),
      webBase: () => webBase(),
    });
    const forContainers = containerRouter(router);
    containerApi = (req, res) => void answer(req, res, log, () => route(forContainers, req, res, false));
    const server = new ApiServer({
      router,
      log,
      socketPath: cfg.socketPath,
      httpHost: cfg.httpHost,
      httpPort: cfg.httpPort,
      webPort: cfg.webPort,
      tls: cfg.tls ? readTls(cfg.tls) : null,
      access,
      // The Swarm advertise address is this machine's name to the cluster: the API answers to it too.
      guard: new RequestGuard({ allowedHosts: [...cfg.allowedHosts, ...(cfg.advertiseAddr ? [cfg.advertiseAddr.host] : [])], allowedOrigins: cfg.allowedOrigins }),
      dashboard: new DashboardFiles(cfg.dashboardDir),
      web: new WebGateway({ web: dispatcher.web, token: cfg.token, access, maxBodyBytes: cfg.maxBodyBytes }),
    });
    const webBase = () => server.webUrl;
    await server.listen();
    const events = new EventStream(bus, access);
    server.onUpgrade(events.upgrade);
    server.onUpgrade(new SandboxAttach(sandboxes, access).upgrade);
    cleanups.push(() => server.close(), () => events.close());
    log.info("daemon ready", {
      home: cfg.home,
      socket: cfg.socketPath,
      http: server.httpUrl ?? "off",
      web: server.webUrl ?? "off",
      requeued: recovered.requeued,
      failed: recovered.failed,
    });
    return { config: cfg, daemonId, tcpPort: server.tcpPort, httpUrl: server.httpUrl, webUrl: server.webUrl, stopped, stop };
  } catch (err) {
    await cleanup();
    throw err;
  }
}

/** GPUs for sandboxes: taken from the broker, waiting for a release while none fit. */
function gpuLeases(gpus: GpuBroker) {
  const waiting = new Set<() => void>();
  gpus.onRelease(() => {
    for (const w of [...waiting]) w();
  });
  return {
    check: (what: string, gpu: readonly string[]) => gpus.check(what, gpu),
    release: (owner: string) => gpus.release(owner),
    take: async (owner: string, app: string, gpu: string, signal: AbortSignal) => {
      for (;;) {
        if (signal.aborted) return null;
        const got = gpus.acquire({ app, function: `sandbox ${owner}`, containerId: owner }, [parseGpuRequest(gpu)]);
        if (got) return (({ gpu: access, env }) => ({ access, env }))(gpus.access(got));
        await new Promise<void>((resolve) => {
          const wake = () => {
            waiting.delete(wake);
            signal.removeEventListener("abort", wake);
            resolve();
          };
          waiting.add(wake);
          signal.addEventListener("abort", wake);
        });
      }
    },
  };
}

/** The TLS certificate and key, read once at start; an unreadable one fails the start naming it. */
function readTls(tls: { certPath: string; keyPath: string }): { cert: Buffer; key: Buffer } {
  const read = (path: string, what: string) => {
    try {
      return readFileSync(path);
    } catch (err) {
      throw new Error(`cannot read the TLS ${what} ${path}: ${(err as Error).message}`);
    }
  };
  return { cert: read(tls.certPath, "certificate (--tls-cert)"), key: read(tls.keyPath, "key (--tls-key)") };
}
