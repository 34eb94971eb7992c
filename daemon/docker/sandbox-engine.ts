/**
 * What sandboxes need of Docker beyond running a container (issue 24): the main process attached
 * before it starts (its stdin held open), commands exec'd into a running container, stdio
 * demultiplexed, terminals resized, an exec's process tree killed. On this machine's engine only.
 */
import { readdirSync, readFileSync } from "node:fs";
import { PassThrough, type Readable, type Writable } from "node:stream";
import type Docker from "dockerode";
import { needsOwnFolder, sandboxCreateOptions, type SandboxLaunch } from "./sandbox-spec.js";
import { Labels } from "./types.js";

/** One running process's stdio and its end. */
export interface AttachedProcess {
  stdout: Readable;
  /** Empty with a terminal (its output is all on stdout). */
  stderr: Readable;
  /** Ending it closes the process's stdin (EOF). */
  stdin: Writable;
  resize(cols: number, rows: number): Promise<void>;
  /** The exit code once it ended (-1 when the engine cannot say). */
  exited: Promise<number>;
}

export interface ExecOptions {
  command: string[];
  workdir: string | null;
  env: Record<string, string>;
  user: string;
  pty: boolean;
}

export interface RunningExec {
  proc: AttachedProcess;
  /** Kills the exec's process and what it started. */
  kill(): Promise<void>;
}

export interface SandboxEngine {
  start(l: SandboxLaunch): Promise<{ dockerId: string; main: AttachedProcess; oomKilled(): Promise<boolean> }>;
  exec(dockerId: string, e: ExecOptions): Promise<RunningExec>;
}

const statusOf = (err: unknown) => (err as { statusCode?: number }).statusCode;

export class DockerSandboxEngine implements SandboxEngine {
  constructor(private readonly docker: Docker) {}

  async start(l: SandboxLaunch): Promise<{ dockerId: string; main: AttachedProcess; oomKilled(): Promise<boolean> }> {
    const imageEnv = l.gpu?.mode === "device-nodes" ? ((await this.docker.getImage(l.image).inspect()).Config?.Env ?? []) : [];
    const workdirTmpfs = needsOwnFolder(l) && !(await this.imageHas(l.image, l.workdir!, l.daemonId));
    const container = await this.docker.createContainer(sandboxCreateOptions({ ...l, workdirTmpfs }, imageEnv));
    try {
      // Attached before it starts, so that no output is missed; stdin stays open until the daemon ends it.
      const stream = (await container.attach({ stream: true, stdin: true, stdout: true, stderr: true, hijack: true })) as unknown as NodeJS.ReadWriteStream;
      const io = this.split(stream, l.pty);
      await container.start();
      const exited = container.wait().then(
        (r: { StatusCode: number }) => r.StatusCode,
        () => -1,
      );
      const main: AttachedProcess = { ...io, exited, resize: (cols, rows) => container.resize({ w: cols, h: rows }).then(() => undefined) };
      const oomKilled = async () => ((await container.inspect().catch(() => null))?.State as { OOMKilled?: boolean } | undefined)?.OOMKilled === true;
      return { dockerId: container.id, main, oomKilled };
    } catch (err) {
      await container.remove({ force: true }).catch(() => undefined);
      throw err;
    }
  }

  /**
   * Whether the image has `path`: Docker's archive HEAD on a probe container created (never
   * started) without a working folder, since creating one makes its working folder.
   */
  private async imageHas(image: string, path: string, daemonId: string): Promise<boolean> {
    const probe = await this.docker.createContainer({ Image: image, Entrypoint: [], Cmd: ["true"], WorkingDir: "/", NetworkDisabled: true, Labels: { [Labels.daemon]: daemonId } });
    try {
      await probe.infoArchive({ path });
      return true;
    } catch (err) {
      if (statusOf(err) === 404) return false;
      throw err;
    } finally {
      await probe.remove({ force: true }).catch(() => undefined);
    }
  }

  async exec(dockerId: string, e: ExecOptions): Promise<RunningExec> {
    const container = this.docker.getContainer(dockerId);
    const exec = await container.exec({
      Cmd: e.command,
      AttachStdin: true,
      AttachStdout: true,
      AttachStderr: true,
      Tty: e.pty,
      Env: Object.entries(e.env).map(([k, v]) => `${k}=${v}`),
      User: e.user,
      ...(e.workdir ? { WorkingDir: e.workdir } : {}),
    });
    const stream = (await exec.start({ hijack: true, stdin: true, Tty: e.pty })) as unknown as NodeJS.ReadWriteStream;
    const io = this.split(stream, e.pty);
    const ended = new Promise<void>((resolve) => {
      stream.once("end", resolve);
      stream.once("close", resolve);
      stream.once("error", () => resolve());
    });
    const exited = ended.then(() => exitCodeOf(exec));
    const proc: AttachedProcess = { ...io, exited, resize: (cols, rows) => exec.resize({ w: cols, h: rows }).then(() => undefined) };
    const kill = async () => {
      const info = await exec.inspect().catch(() => null);
      if (info?.Running && info.Pid) killTree(info.Pid);
    };
    return { proc, kill };
  }

  /** stdout and stderr apart (Docker's 8-byte frames) unless there is a terminal; stdin is the stream's write side. */
  private split(stream: NodeJS.ReadWriteStream, pty: boolean): Pick<AttachedProcess, "stdout" | "stderr" | "stdin"> {
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    if (pty) {
      stream.pipe(stdout);
      stderr.end();
    } else {
      demux(stream, stdout, stderr);
    }
    stream.on("error", () => undefined);
    return { stdout, stderr, stdin: stream as unknown as Writable };
  }
}

/**
 * Docker's multiplexed stdio (8-byte frame headers: stream, 0, 0, 0, length) split into stdout
 * and stderr, pausing the engine's stream while either holds too much unread: a flood waits for
 * the files, it never piles up in the daemon's memory (docker-modem's demuxStream ignores that).
 */
function demux(stream: NodeJS.ReadWriteStream, stdout: PassThrough, stderr: PassThrough): void {
  let pending: Buffer = Buffer.alloc(0);
  const source = stream as unknown as Readable;
  source.on("data", (chunk: Buffer) => {
    pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    let full = false;
    while (pending.length >= 8) {
      const size = pending.readUInt32BE(4);
      if (pending.length < 8 + size) break;
      const target = pending[0] === 2 ? stderr : stdout;
      if (!target.write(pending.subarray(8, 8 + size))) full = true;
      pending = pending.subarray(8 + size);
    }
    if (full) {
      source.pause();
      const resume = () => {
        if (stdout.writableNeedDrain || stderr.writableNeedDrain) return;
        stdout.off("drain", resume);
        stderr.off("drain", resume);
        source.resume();
      };
      stdout.on("drain", resume);
      stderr.on("drain", resume);
    }
  });
  const end = () => {
    stdout.end();
    stderr.end();
  };
  source.once("end", end);
  source.once("close", end);
}

/** The exec's exit code: the engine may take a moment to record it after its stream ends. */
async function exitCodeOf(exec: Docker.Exec): Promise<number> {
  for (let i = 0; i < 100; i++) {
    const info = await exec.inspect().catch((err) => (statusOf(err) === 404 ? null : undefined));
    if (info === null) return -1;
    if (info && !info.Running && info.ExitCode !== null && info.ExitCode !== undefined) return info.ExitCode;
    await new Promise((r) => setTimeout(r, Math.min(10 * (i + 1), 100)));
  }
  return -1;
}

/** SIGKILL to a host process and its descendants (an exec's pid is a host pid on this machine). */
function killTree(pid: number): void {
  const children = new Map<number, number[]>();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(name));
      children.set(ppid, list);
    } catch {
      // gone meanwhile
    }
  }
  const tree: number[] = [];
  const walk = (p: number) => {
    tree.push(p);
    for (const c of children.get(p) ?? []) walk(c);
  };
  walk(pid);
  for (const p of tree) {
    try {
      process.kill(p, "SIGKILL");
    } catch {
      // already gone
    }
  }
}
