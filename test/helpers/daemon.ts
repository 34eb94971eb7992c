import Docker from "dockerode";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { bundleApp } from "../../cli/bundle-app.js";
import { readPythonApp } from "../../cli/python-app.js";
import { makeConfig, type DaemonConfig } from "../../daemon/config.js";
import { startDaemon, type RunningDaemon } from "../../daemon/daemon.js";
import { silentLogger } from "../../daemon/logger.js";
import type { DeployEvent } from "../../protocol/api.js";
import { GantryClient } from "../../sdk/client.js";

export const docker = new Docker({ socketPath: "/var/run/docker.sock" });
export const fixture = (name: string) => join(import.meta.dirname, "..", "fixtures", "apps", name);
/** A Python fixture app: test/fixtures/py/<folder>/<file>. */
export const pyFixture = (path: string) => join(import.meta.dirname, "..", "fixtures", "py", path);
export const exampleApp = join(import.meta.dirname, "..", "..", "examples", "job-queue", "app.ts");
/** Modal's job-queue guide, its two files with only the imports changed: examples/job-queue-py/<file>. */
export const guideFile = (file: string) => join(import.meta.dirname, "..", "..", "examples", "job-queue-py", file);

export interface TestDaemon {
  home: string;
  daemon: RunningDaemon;
  client: GantryClient;
  baseUrl: string;
  /** Where web endpoints are served: their own port, another origin than the API's. */
  webUrl: string;
  /** Stops this daemon (the home stays) so a test can start another on it. */
  stop(opts?: { graceMs?: number }): Promise<void>;
  /** Stops and starts again on the same home; `more` changes the configuration from now on. */
  restart(more?: Partial<DaemonConfig>): Promise<void>;
  /** Stops and removes the home. */
  dispose(): Promise<void>;
}

/** A real daemon (real Docker, real SQLite) in a fresh temp GANTRY_HOME; containers get no network. */
export async function startTestDaemon(overrides: Partial<DaemonConfig> = {}): Promise<TestDaemon> {
  const home = overrides.home ?? mkdtempSync(join(tmpdir(), "gt-"));
  const cfg = () => makeConfig({ home, httpPort: 0, forceNetwork: "none", ...overrides });
  const t: TestDaemon = {
    home,
    daemon: await startDaemon(cfg(), { log: process.env.GANTRY_TEST_LOG ? undefined : silentLogger }),
    client: null as unknown as GantryClient,
    baseUrl: "",
    webUrl: "",
    async stop(opts) {
      t.client.close();
      await t.daemon.stop(opts);
    },
    async restart(more = {}) {
      Object.assign(overrides, more);
      await t.stop();
      t.daemon = await startDaemon(cfg(), { log: silentLogger });
      wire();
    },
    async dispose() {
      await t.stop({ graceMs: 0 });
      if (!overrides.home) rmSync(home, { recursive: true, force: true });
    },
  };
  const wire = () => {
    t.client = new GantryClient({ socketPath: join(home, "gantry.sock") });
    t.baseUrl = `${overrides.tls ? "https" : "http"}://127.0.0.1:${t.daemon.tcpPort}`;
    t.webUrl = t.daemon.webUrl ?? "";
  };
  wire();
  return t;
}

/** Deploys an app file (TypeScript or Python) the way `gantry deploy` does; returns every event of the stream. */
export async function deploy(t: TestDaemon, file: string): Promise<DeployEvent[]> {
  const events = await deployEvents(t, file);
  const last = events.at(-1);
  if (last?.type !== "done") throw new Error(`deploy of ${file} failed: ${JSON.stringify(last)}`);
  return events;
}

/** Deploys an app file and returns every event, a failed deploy's error event last. */
export async function deployEvents(t: TestDaemon, file: string): Promise<DeployEvent[]> {
  let body: Record<string, unknown>;
  if (file.endsWith(".py")) {
    const app = await readPythonApp(file);
    body = { app: app.app, runtime: "python", functions: app.functions, files: app.files, module: app.module, assets: app.assets };
  } else {
    const app = await bundleApp(file);
    body = { app: app.app, functions: app.functions, bundle: app.bundle, assets: app.assets };
  }
  const events: DeployEvent[] = [];
  await t.client.transport.stream("POST", "/v1/apps/deploy", body, (e) => events.push(e as DeployEvent));
  return events;
}

/** The Docker containers this daemon owns for one function, as Docker sees them. */
export async function containersOf(t: TestDaemon, fn: string): Promise<Docker.ContainerInfo[]> {
  return docker.listContainers({
    all: true,
    filters: { label: [`gantry.daemon=${t.daemon.daemonId}`, `gantry.function=${fn}`] },
  });
}
