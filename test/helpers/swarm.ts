/**
 * A real single-node Docker Swarm for the tests, apart from the engine the other tests use: a
 * second dockerd with its own folders, socket and bridge (and no iptables rules, so it leaves the
 * main engine's docker0 and rules alone), advertising two stand-in GPUs as Swarm generic resources
 * (`NVIDIA-GPU=<uuid>`, the uuids test/fake-gpu's nvidia-smi prints), `swarm init` on loopback,
 * and Debian's docker-registry on loopback, which the base image reaches the swarm's engine
 * through, as it would reach other nodes. `stop()` leaves the swarm and removes it all.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import Docker from "dockerode";

const run = promisify(execFile);
export const STAND_IN_GPUS = ["GPU-00000000-1111-2222-3333-000000000000", "GPU-00000000-1111-2222-3333-000000000001"];
export const STAND_IN_GPU_TYPE = "NVIDIA A100-SXM4-80GB";
const REGISTRY_BIN = "/usr/bin/docker-registry";

export interface TestSwarm {
  /** The swarm engine's socket (the daemon under test drives it). */
  socket: string;
  docker: Docker;
  /** HOST:PORT of the registry. */
  registry: string;
  nodeId: string;
  /** `docker` against the swarm engine. */
  cli(...args: string[]): Promise<string>;
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > until) throw new Error(`${what} did not happen within ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function stopProcess(p: ChildProcess, timeoutMs = 30_000): Promise<void> {
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

/** Starts the swarm; `baseImages` (tags on the main engine) reach its engine through the registry. */
export async function startTestSwarm(baseImages: string[]): Promise<TestSwarm> {
  if (!existsSync(REGISTRY_BIN)) throw new Error(`${REGISTRY_BIN} is missing: the swarm tests need Debian's docker-registry (apt-get install docker-registry)`);
  const dir = mkdtempSync(join(tmpdir(), "gsw-"));
  // A bridge of its own: with --bridge none, dockerd would delete the host's docker0 (the main engine's).
  const suffix = randomBytes(3).toString("hex");
  const bridge = `gsw${suffix}`;
  const subnet = `10.231.${parseInt(suffix.slice(0, 2), 16)}`;
  // swarm init makes a docker_gwbridge interface on the host: removed again unless it was there.
  const gwbridgeBefore = existsSync("/sys/class/net/docker_gwbridge");
  const socket = join(dir, "docker.sock");
  const procs: ChildProcess[] = [];
  const cli = async (...args: string[]) => (await run("docker", ["-H", `unix://${socket}`, ...args], { maxBuffer: 16 * 1024 * 1024 })).stdout.trim();
  let left = false;
  const stop = async () => {
    if (!left) {
      left = true;
      await cli("swarm", "leave", "--force").catch(() => undefined);
    }
    for (const p of procs.reverse()) await stopProcess(p);
    if (!gwbridgeBefore && existsSync("/sys/class/net/docker_gwbridge")) await run("ip", ["link", "delete", "docker_gwbridge"]).catch(() => undefined);
    await run("ip", ["link", "delete", bridge]).catch(() => undefined);
    await run("sh", ["-c", `grep -o ' ${dir}[^ ]*' /proc/mounts | sort -r | xargs -r -n1 umount -l`]).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const registryPort = await freePort();
    const registry = `127.0.0.1:${registryPort}`;
    writeFileSync(
      join(dir, "registry.yml"),
      `version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: ${dir}/registry\nhttp:\n  addr: ${registry}\n`,
    );
    procs.push(spawn(REGISTRY_BIN, ["serve", join(dir, "registry.yml")], { stdio: "ignore" }));
    await run("ip", ["link", "add", "name", bridge, "type", "bridge"]);
    await run("ip", ["addr", "add", `${subnet}.1/24`, "dev", bridge]);
    await run("ip", ["link", "set", bridge, "up"]);
    const dockerd = spawn(
      "dockerd",
      [
        "--data-root", join(dir, "data"),
        "--exec-root", join(dir, "exec"),
        "--pidfile", join(dir, "docker.pid"),
        "-H", `unix://${socket}`,
        "--bridge", bridge,
        "--iptables=false",
        "--ip-masq=false",
        ...STAND_IN_GPUS.flatMap((uuid) => ["--node-generic-resource", `NVIDIA-GPU=${uuid}`]),
      ],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    let dockerdLog = "";
    dockerd.stderr!.on("data", (c: Buffer) => (dockerdLog = (dockerdLog + c.toString()).slice(-4000)));
    procs.push(dockerd);
    await waitFor("the swarm's engine answering", async () => existsSync(socket) && (await cli("version", "--format", "{{.Server.Version}}")).length > 0).catch((err) => {
      throw new Error(`${(err as Error).message}; dockerd said:\n${dockerdLog}`);
    });
    await waitFor("the registry answering", async () => (await fetch(`http://${registry}/v2/`)).ok);
    const swarmPort = await freePort();
    await cli("swarm", "init", "--advertise-addr", "127.0.0.1", "--listen-addr", `127.0.0.1:${swarmPort}`);
    const nodeId = await cli("node", "inspect", "self", "--format", "{{.ID}}");
    await cli("node", "update", "--label-add", `gantry.gpu=${STAND_IN_GPU_TYPE}`, nodeId);
    for (const tag of baseImages) {
      const ref = `${registry}/${tag}`;
      await run("docker", ["tag", tag, ref]);
      await run("docker", ["push", ref], { maxBuffer: 16 * 1024 * 1024 });
      await run("docker", ["rmi", ref]);
      await cli("pull", ref);
      await cli("tag", ref, tag);
    }
    return { socket, docker: new Docker({ socketPath: socket }), registry, nodeId, cli, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
