import Docker from "dockerode";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { pack } from "tar-fs";
import { containerCreateOptions } from "./container-spec.js";
import { EngineWatch, isUnreachable } from "./engine-watch.js";
import type { Logger } from "../logger.js";
import { silentLogger } from "../logger.js";
import {
  BuildFailedError,
  EngineUnreachableError,
  Labels,
  type BuildProgress,
  type ContainerExit,
  type ContainerLaunch,
  type ContainerRuntime,
  type EngineInfo,
  type ImagePlan,
  type NodeInfo,
  type OwnedContainer,
} from "./types.js";

// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;]*[A-Za-z]/g;

function statusOf(err: unknown): number | undefined {
  return (err as { statusCode?: number })?.statusCode;
}

export class DockerRuntime implements ContainerRuntime {
  private readonly docker: Docker;
  private readonly imageEnvs = new Map<string, Promise<string[]>>();

  /** Follows the engine's events: the daemon notices an engine restart by itself. */
  readonly engine: EngineWatch;

  constructor(opts: { socketPath?: string; log?: Logger } = {}) {
    this.docker = new Docker({ socketPath: opts.socketPath ?? process.env.DOCKER_SOCKET ?? "/var/run/docker.sock" });
    this.engine = new EngineWatch(this.docker, { type: ["container"], label: [Labels.daemon] }, opts.log ?? silentLogger);
  }

  /** Checks the engine answers, and starts following it. */
  async ping(): Promise<void> {
    try {
      await this.docker.ping();
      await this.engine.start();
    } catch (err) {
      throw new Error(
        `no Docker engine answers at ${(this.docker.modem as { socketPath?: string }).socketPath}: ${(err as Error).message}. ` +
          `Start it (scripts/lib/ensure-docker.sh does this on Debian) and try again.`,
      );
    }
  }

  async imageExists(tag: string): Promise<boolean> {
    return (await this.imageId(tag)) !== null;
  }

  async imageId(ref: string): Promise<string | null> {
    try {
      const info = await this.docker.getImage(ref).inspect();
      return info.Id;
    } catch (err) {
      if (statusOf(err) === 404) return null;
      throw err;
    }
  }

  async buildImage(plan: ImagePlan, onProgress: (p: BuildProgress) => void): Promise<void> {
    const dir = await mkdtemp(join(tmpdir(), "gantry-build-"));
    try {
      await writeFile(join(dir, "Dockerfile"), plan.dockerfile);
      for (const [name, content] of Object.entries(plan.files)) {
        await mkdir(dirname(join(dir, name)), { recursive: true });
        await writeFile(join(dir, name), content, { mode: plan.modes?.[name] ?? 0o644 });
      }
      const context = pack(dir) as unknown as NodeJS.ReadableStream;
      const options = { t: plan.tag, rm: true, forcerm: true, ...(plan.buildArgs && Object.keys(plan.buildArgs).length ? { buildargs: plan.buildArgs } : {}) };
      const stream: NodeJS.ReadableStream = await this.docker.buildImage(context, options);
      await this.followBuild(plan, stream, onProgress);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  /** Follows a build's output: progress by step, its last lines kept for a failure, stopped past plan.timeoutMs. */
  private async followBuild(plan: ImagePlan, stream: NodeJS.ReadableStream, onProgress: (p: BuildProgress) => void): Promise<void> {
    let step = 0;
    let total = 0;
    let failure: string | null = null;
    const last: string[] = [];
    let timer: NodeJS.Timeout | undefined;
    const overran = new Promise<"timeout">((resolve) => {
      if (plan.timeoutMs) timer = setTimeout(() => resolve("timeout"), plan.timeoutMs);
    });
    const finished = new Promise<void>((resolve, reject) => {
      this.docker.modem.followProgress(
        stream,
        (err) => (err ? reject(err) : resolve()),
        (ev: { stream?: string; error?: string; status?: string }) => {
          if (ev.error) failure = ev.error;
          // Docker colours a step's stderr with ANSI codes; progress lines carry carriage returns.
          const text = (ev.stream ?? ev.status ?? "").replace(ANSI, "").replace(/\r/g, "").replace(/\s+$/, "");
          if (!text) return;
          const m = /^Step (\d+)\/(\d+) : /.exec(text);
          if (m) {
            step = Number(m[1]);
            total = Number(m[2]);
          }
          for (const line of text.split("\n")) {
            if (!line.trim()) continue;
            if (!m && !/^ ---> |^Removing intermediate container /.test(line)) last.push(line);
            if (last.length > 40) last.shift();
            onProgress({ step, total, line });
          }
        },
      );
    });
    try {
      const outcome = await Promise.race([finished, overran]);
      if (outcome === "timeout") {
        // Closing the connection cancels the build: the engine stops the step's container and removes it (forcerm).
        (stream as unknown as { destroy?: () => void }).destroy?.();
        throw new BuildFailedError(`the build of ${plan.tag} ran past its limit of ${Math.round(plan.timeoutMs! / 1000)} s and was stopped`, step, total, last, true);
      }
    } finally {
      clearTimeout(timer);
    }
    if (failure) throw new BuildFailedError(`building image ${plan.tag} failed: ${String(failure).trim()}`, step, total, last);
  }

  async engineInfo(): Promise<EngineInfo> {
    const info = (await this.docker.info()) as { ServerVersion?: string; Runtimes?: Record<string, unknown>; Name?: string; NCPU?: number; MemTotal?: number };
    return {
      version: info.ServerVersion ?? "unknown",
      runtimes: Object.keys(info.Runtimes ?? {}),
      name: info.Name ?? "localhost",
      cpus: info.NCPU ?? 0,
      memoryBytes: info.MemTotal ?? 0,
    };
  }

  /** Config.Env of an image, read once per tag (function images are tagged by content). */
  private imageEnv(ref: string): Promise<string[]> {
    let env = this.imageEnvs.get(ref);
    if (!env) {
      env = this.docker
        .getImage(ref)
        .inspect()
        .then((i) => i.Config?.Env ?? []);
      env.catch(() => this.imageEnvs.delete(ref));
      this.imageEnvs.set(ref, env);
    }
    return env;
  }

  async start(l: ContainerLaunch): Promise<string> {
    let container: Docker.Container;
    try {
      const imageEnv = l.gpu?.mode === "device-nodes" ? await this.imageEnv(l.image) : [];
      container = await this.docker.createContainer(containerCreateOptions(l, imageEnv));
    } catch (err) {
      throw this.unreachable(err);
    }
    try {
      await container.start();
    } catch (err) {
      await this.remove(container.id).catch(() => undefined);
      if (isUnreachable(err)) throw this.unreachable(err);
      throw new Error(`starting a container for ${l.app}.${l.function} failed: ${(err as Error).message}`);
    }
    return container.id;
  }

  async waitExit(dockerId: string): Promise<ContainerExit> {
    try {
      const container = this.docker.getContainer(dockerId);
      const res = (await container.wait()) as { StatusCode: number };
      const state = (await container.inspect()).State as { OOMKilled?: boolean } | undefined;
      return { code: res.StatusCode, ...(state?.OOMKilled ? { oomKilled: true } : {}) };
    } catch (err) {
      if (statusOf(err) === 404) return { code: -1, vanished: true, why: "the container is gone: something other than gantry removed it" };
      throw this.unreachable(err);
    }
  }

  /** An error of a call the engine did not answer becomes EngineUnreachableError (and the engine is down). */
  private unreachable(err: unknown): unknown {
    if (!isUnreachable(err)) return err;
    this.engine.noteFailure(err);
    return new EngineUnreachableError(`the Docker engine does not answer: ${(err as Error).message}`);
  }

  close(): void {
    this.engine.close();
  }

  async kill(dockerId: string): Promise<void> {
    try {
      await this.docker.getContainer(dockerId).kill();
    } catch (err) {
      const s = statusOf(err);
      if (s !== 404 && s !== 409 && s !== 304) throw err;
    }
  }

  async stop(dockerId: string, graceSeconds: number): Promise<void> {
    try {
      await this.docker.getContainer(dockerId).stop({ t: graceSeconds });
    } catch (err) {
      const s = statusOf(err);
      if (s !== 404 && s !== 304) throw err;
    }
  }

  async remove(dockerId: string): Promise<void> {
    try {
      await this.docker.getContainer(dockerId).remove({ force: true, v: true });
    } catch (err) {
      const s = statusOf(err);
      if (s !== 404 && s !== 409) throw this.unreachable(err); // 409: removal already in progress
    }
  }

  async logsTail(dockerId: string, lines: number): Promise<string> {
    try {
      const buf = (await this.docker
        .getContainer(dockerId)
        .logs({ stdout: true, stderr: true, tail: lines, follow: false })) as unknown as Buffer;
      return demux(buf);
    } catch {
      return "";
    }
  }

  /** This machine, as the one node containers run on (its GPUs are the GPU broker's to tell). */
  async nodes(): Promise<NodeInfo[]> {
    const e = await this.engineInfo();
    return [{ id: "local", hostname: e.name, role: "local", state: "ready", availability: "active", cpus: e.cpus, memoryBytes: e.memoryBytes, gpus: [], labels: {} }];
  }

  nodeOf(): string | null {
    return null;
  }

  async listOwned(daemonId: string): Promise<OwnedContainer[]> {
    const list = await this.docker.listContainers({ all: true, filters: { label: [`${Labels.daemon}=${daemonId}`] } });
    return list.map((c) => ({
      dockerId: c.Id,
      containerId: c.Labels[Labels.container] ?? "",
      app: c.Labels[Labels.app] ?? "",
      function: c.Labels[Labels.function] ?? "",
      running: c.State === "running",
    }));
  }
}

/** Docker multiplexes stdout/stderr frames (8-byte headers) when the container has no TTY. */
export function demux(buf: Buffer): string {
  const out: Buffer[] = [];
  let i = 0;
  while (i + 8 <= buf.length && (buf[i] === 1 || buf[i] === 2) && buf[i + 1] === 0) {
    const len = buf.readUInt32BE(i + 4);
    out.push(buf.subarray(i + 8, i + 8 + len));
    i += 8 + len;
  }
  return i === 0 ? buf.toString("utf8") : Buffer.concat(out).toString("utf8");
}
