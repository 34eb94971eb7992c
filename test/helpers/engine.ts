/**
 * A second, real Docker engine for tests that must do to an engine what the shared one must not
 * suffer: restart it, make it a Swarm node. It has its own folders, socket and bridge (and no
 * iptables rules, so it leaves the main engine's docker0 and rules alone). `restart()` stops
 * dockerd as a system shutdown would and starts it again on the same folders; `stop()` removes it all.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import Docker from "dockerode";

export const run = promisify(execFile);

export interface TestEngine {
  /** The engine's socket (the daemon under test drives it). */
  socket: string;
  docker: Docker;
  /** A folder of its own, removed by stop(). */
  dir: string;
  /** `docker` against this engine. */
  cli(...args: string[]): Promise<string>;
  /** Copies images from the main engine (docker save | docker load). */
  loadImages(tags: string[]): Promise<void>;
  /** Stops dockerd (SIGTERM: it stops its containers first) and starts it again; resolves once it answers. */
  restart(): Promise<void>;
  /** Resolves once dockerd has stopped (for a test that then waits for it to come back). */
  stopEngine(): Promise<void>;
  startEngine(): Promise<void>;
  /** Stops dockerd (and anything `onStop` adds) and removes the folders and the bridge. */
  stop(): Promise<void>;
  /** Runs before dockerd is stopped for good (a swarm leaves, a registry stops). */
  onStop(fn: () => Promise<void>): void;
  /** Runs once dockerd has stopped for good (interfaces it made are removed). */
  onStopped(fn: () => Promise<void>): void;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > until) throw new Error(`${what} did not happen within ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export function stopProcess(p: ChildProcess, timeoutMs = 30_000): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => p.kill("SIGKILL"), timeoutMs);
    p.once("exit", () => {
      clearTimeout(timer);
      resolve();
    });
    p.kill("SIGTERM");
  });
}

/** Starts a second engine; `dockerdArgs` are added to its command line. */
export async function startTestEngine(dockerdArgs: string[] = []): Promise<TestEngine> {
  const dir = mkdtempSync(join(tmpdir(), "gsw-"));
  // A bridge of its own: with --bridge none, dockerd would delete the host's docker0 (the main engine's).
  const suffix = randomBytes(3).toString("hex");
  const bridge = `gsw${suffix}`;
  const subnet = `10.231.${parseInt(suffix.slice(0, 2), 16)}`;
  const socket = join(dir, "docker.sock");
  const cli = async (...args: string[]) => (await run("docker", ["-H", `unix://${socket}`, ...args], { maxBuffer: 16 * 1024 * 1024 })).stdout.trim();
  const beforeStop: Array<() => Promise<void>> = [];
  const afterStop: Array<() => Promise<void>> = [];
  let dockerd: ChildProcess | null = null;
  let dockerdLog = "";

  const startEngine = async () => {
    const p = spawn(
      "dockerd",
      [
        "--data-root", join(dir, "data"),
        "--exec-root", join(dir, "exec"),
        "--pidfile", join(dir, "docker.pid"),
        "-H", `unix://${socket}`,
        "--bridge", bridge,
        "--iptables=false",
        "--ip-masq=false",
        ...dockerdArgs,
      ],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    p.stderr!.on("data", (c: Buffer) => (dockerdLog = (dockerdLog + c.toString()).slice(-4000)));
    dockerd = p;
    await waitFor("the test engine answering", async () => existsSync(socket) && (await cli("version", "--format", "{{.Server.Version}}")).length > 0).catch((err) => {
      throw new Error(`${(err as Error).message}; dockerd said:\n${dockerdLog}`);
    });
  };
  const stopEngine = async () => {
    if (dockerd) await stopProcess(dockerd);
    dockerd = null;
  };
  const stop = async () => {
    for (const fn of beforeStop.reverse()) await fn().catch(() => undefined);
    await stopEngine();
    for (const fn of afterStop) await fn().catch(() => undefined);
    await run("ip", ["link", "delete", bridge]).catch(() => undefined);
    await run("sh", ["-c", `grep -o ' ${dir}[^ ]*' /proc/mounts | sort -r | xargs -r -n1 umount -l`]).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await run("ip", ["link", "add", "name", bridge, "type", "bridge"]);
    await run("ip", ["addr", "add", `${subnet}.1/24`, "dev", bridge]);
    await run("ip", ["link", "set", bridge, "up"]);
    await startEngine();
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    socket,
    docker: new Docker({ socketPath: socket }),
    dir,
    cli,
    async loadImages(tags) {
      await run("sh", ["-c", `docker save ${tags.join(" ")} | docker -H unix://${socket} load -q`], { maxBuffer: 16 * 1024 * 1024 });
    },
    async restart() {
      await stopEngine();
      await startEngine();
    },
    stopEngine,
    startEngine,
    stop,
    onStop: (fn) => beforeStop.push(fn),
    onStopped: (fn) => afterStop.push(fn),
  };
}
