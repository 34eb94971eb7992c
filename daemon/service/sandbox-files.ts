/**
 * Files inside a running sandbox (issue 24: `sb.open`, `ls`, `mkdir`, `rm`), done by exec'ing sh
 * and coreutils as the sandbox's own user: whatever the sandbox's code could not touch, these
 * cannot either. The process's exit code and stderr become the errors Python's open() raises.
 */
import type { Readable } from "node:stream";
import { SANDBOX_LIMITS, type SandboxEntry } from "../../protocol/sandboxes.js";
import type { RunningExec } from "../docker/sandbox-engine.js";
import { invalid, ServiceError, ServiceErrorCode } from "./errors.js";

/** Runs one helper command in the sandbox; its stdin is given or closed at once. */
export type RunHelper = (command: string[]) => Promise<RunningExec>;

const SH = (script: string, ...args: string[]) => ["sh", "-c", script, "sh", ...args];
/** Exit codes the scripts use for what sh's tests find before the command runs. */
const MISSING = 44;
const FOLDER = 45;

export function checkPath(path: string): string {
  if (typeof path !== "string" || !path.startsWith("/")) throw invalid(`a sandbox path must be absolute (start with /), got ${JSON.stringify(String(path).slice(0, 80))}`);
  if (path.length > 4096 || /[\0\n\r]/.test(path)) throw invalid("a sandbox path is at most 4096 characters, without NUL or line breaks");
  return path;
}

/** The error open() would raise for what the helper said (exit code and stderr), with its errno for clients to map. */
function fileError(path: string, code: number, stderr: string): ServiceError {
  const said = stderr.trim().split("\n").pop() ?? "";
  const e = (c: ServiceErrorCode, errno: string, message: string) => new ServiceError(c, message, { errno });
  if (code === MISSING || /No such file/.test(said)) return e(ServiceErrorCode.notFound, "ENOENT", `no such file in the sandbox: ${path}`);
  if (code === FOLDER || /Is a directory/.test(said)) return e(ServiceErrorCode.invalidArgument, "EISDIR", `${path} is a folder in the sandbox`);
  if (/Permission denied|Read-only file system|Operation not permitted/.test(said)) return e(ServiceErrorCode.forbidden, "EACCES", `the sandbox's user may not do that to ${path}: ${said}`);
  if (/Not a directory/.test(said)) return e(ServiceErrorCode.invalidArgument, "ENOTDIR", `a part of ${path} is not a folder in the sandbox`);
  if (/File exists/.test(said)) return e(ServiceErrorCode.conflict, "EEXIST", `${path} exists in the sandbox`);
  if (/No space left/.test(said)) return e(ServiceErrorCode.limitExceeded, "ENOSPC", `the sandbox's folder holding ${path} is full: ${said}`);
  return e(ServiceErrorCode.conflict, "EIO", `the file operation on ${path} failed (exit ${code})${said ? `: ${said}` : ""}`);
}

async function collect(stream: Readable, max: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    size += (chunk as Buffer).length;
    if (size <= max) parts.push(chunk as Buffer);
  }
  return Buffer.concat(parts);
}

/** Runs a helper to its end: exit code, stdout (up to `max` bytes kept) and stderr. */
async function run(helper: RunHelper, command: string[], max = 1024 * 1024, input?: AsyncIterable<Buffer>): Promise<{ code: number; out: Buffer; err: string }> {
  const { proc } = await helper(command);
  const out = collect(proc.stdout, max);
  const err = collect(proc.stderr, 64 * 1024);
  if (input) {
    let sent = 0;
    for await (const chunk of input) {
      sent += chunk.length;
      if (sent > SANDBOX_LIMITS.fileBytes) {
        proc.stdin.destroy();
        throw new ServiceError(ServiceErrorCode.limitExceeded, `a file written through the API is at most ${SANDBOX_LIMITS.fileBytes} bytes`);
      }
      if (!proc.stdin.write(chunk)) await new Promise((r) => proc.stdin.once("drain", r));
    }
  }
  proc.stdin.end();
  const [code, o, e] = await Promise.all([proc.exited, out, err]);
  return { code, out: o, err: e.toString("utf8") };
}

export class SandboxFiles {
  constructor(private readonly helper: RunHelper) {}

  /** The file's bytes, streamed; errors come before the first byte. */
  async read(path: string): Promise<{ stream: Readable }> {
    checkPath(path);
    const { proc } = await this.helper(SH(`[ -e "$1" ] || exit ${MISSING}; [ -d "$1" ] && exit ${FOLDER}; exec cat -- "$1"`, path));
    proc.stdin.end();
    const err = collect(proc.stderr, 64 * 1024);
    // The first chunk, or the end: whichever comes first says whether it worked.
    const first = await new Promise<Buffer | null>((resolve) => {
      proc.stdout.once("readable", () => resolve(proc.stdout.read() as Buffer | null));
      proc.stdout.once("end", () => resolve(null));
    });
    if (first === null) {
      const code = await proc.exited;
      if (code !== 0) throw fileError(path, code, (await err).toString("utf8"));
    } else {
      proc.stdout.unshift(first);
    }
    return { stream: proc.stdout };
  }

  async write(path: string, body: AsyncIterable<Buffer>, append: boolean): Promise<{ path: string; size: number }> {
    checkPath(path);
    const script = `[ -d "$1" ] && exit ${FOLDER}; cat ${append ? ">>" : ">"} "$1" && wc -c < "$1"`;
    const r = await run(this.helper, SH(script, path), 1024, body);
    if (r.code !== 0) throw fileError(path, r.code, r.err);
    return { path, size: Number(r.out.toString().trim()) || 0 };
  }

  async remove(path: string, recursive: boolean): Promise<{ path: string; removed: true }> {
    checkPath(path);
    if (path === "/") throw invalid("refusing to remove the sandbox's root folder");
    const script = `[ -e "$1" ] || [ -L "$1" ] || exit ${MISSING}; ${recursive ? 'rm -rf -- "$1"' : `[ -d "$1" ] && ! [ -L "$1" ] && exit ${FOLDER}; rm -f -- "$1"`}`;
    const r = await run(this.helper, SH(script, path));
    if (r.code !== 0) throw r.code === FOLDER ? new ServiceError(ServiceErrorCode.invalidArgument, `${path} is a folder in the sandbox: remove it with recursive`, { errno: "EISDIR" }) : fileError(path, r.code, r.err);
    return { path, removed: true };
  }

  async mkdir(path: string, parents: boolean): Promise<{ path: string }> {
    checkPath(path);
    const r = await run(this.helper, ["mkdir", ...(parents ? ["-p"] : []), "--", path]);
    if (r.code !== 0) throw fileError(path, r.code, r.err);
    return { path };
  }

  /** A folder's entries (or the one file), as find prints them: type, size, mtime, path. */
  async entries(path: string): Promise<SandboxEntry[]> {
    checkPath(path);
    const script = `[ -e "$1" ] || exit ${MISSING}; if [ -d "$1" ]; then find "$1" -mindepth 1 -maxdepth 1 -printf '%y\\t%s\\t%T@\\t%p\\0'; else find "$1" -maxdepth 0 -printf '%y\\t%s\\t%T@\\t%p\\0'; fi`;
    const r = await run(this.helper, SH(script, path), 64 * 1024 * 1024);
    if (r.code !== 0) throw fileError(path, r.code, r.err);
    const types: Record<string, SandboxEntry["type"]> = { f: "file", d: "directory", l: "symlink" };
    return r.out
      .toString("utf8")
      .split("\0")
      .filter(Boolean)
      .map((line) => {
        const [type, size, mtime, ...rest] = line.split("\t");
        return { path: rest.join("\t"), type: types[type!] ?? "other", size: Number(size), mtime: Number(mtime) };
      })
      .sort((a, b) => a.path.localeCompare(b.path));
  }
}
