/**
 * A real single-node Docker Swarm for the tests, apart from the engine the other tests use: a
 * second engine (test/helpers/engine.ts) advertising two stand-in GPUs as Swarm generic resources
 * (`NVIDIA-GPU=<uuid>`, the uuids test/fake-gpu's nvidia-smi prints), `swarm init` on loopback,
 * and Debian's docker-registry on loopback, which the base image reaches the swarm's engine
 * through, as it would reach other nodes. `stop()` leaves the swarm and removes it all.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import Docker from "dockerode";
import { freePort, run, startTestEngine, stopProcess, waitFor } from "./engine.js";

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

/** Starts the swarm; `baseImages` (tags on the main engine) reach its engine through the registry. */
export async function startTestSwarm(baseImages: string[]): Promise<TestSwarm> {
  if (!existsSync(REGISTRY_BIN)) throw new Error(`${REGISTRY_BIN} is missing: the swarm tests need Debian's docker-registry (apt-get install docker-registry)`);
  // swarm init makes a docker_gwbridge interface on the host: removed again unless it was there.
  const gwbridgeBefore = existsSync("/sys/class/net/docker_gwbridge");
  const engine = await startTestEngine(STAND_IN_GPUS.flatMap((uuid) => ["--node-generic-resource", `NVIDIA-GPU=${uuid}`]));
  const { dir, cli } = engine;
  let registryProcess: ChildProcess | null = null;
  engine.onStopped(async () => {
    if (!gwbridgeBefore && existsSync("/sys/class/net/docker_gwbridge")) await run("ip", ["link", "delete", "docker_gwbridge"]).catch(() => undefined);
  });
  engine.onStopped(async () => {
    if (registryProcess) await stopProcess(registryProcess);
  });
  engine.onStop(async () => {
    await cli("swarm", "leave", "--force").catch(() => undefined);
  });
  try {
    const registryPort = await freePort();
    const registry = `127.0.0.1:${registryPort}`;
    writeFileSync(
      join(dir, "registry.yml"),
      `version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: ${dir}/registry\nhttp:\n  addr: ${registry}\n`,
    );
    registryProcess = spawn(REGISTRY_BIN, ["serve", join(dir, "registry.yml")], { stdio: "ignore" });
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
    return { socket: engine.socket, docker: engine.docker, registry, nodeId, cli, stop: engine.stop };
  } catch (err) {
    await engine.stop();
    throw err;
  }
}
