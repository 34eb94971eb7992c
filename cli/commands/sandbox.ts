/**
 * `gantry sandbox ls|create|exec|logs|terminate` (issue 24): sandboxes through the daemon's
 * /v1/sandboxes (protocol/sandboxes.ts), with the SDK's client.sandboxes. `exec` streams the
 * command's output as it comes and exits with its exit code; `-i` sends this CLI's stdin, `-t`
 * gives it a terminal (cli/tty-attach.ts).
 */
import type { Command } from "commander";
import { SANDBOX_LIMITS, type SandboxView } from "../../protocol/sandboxes.js";
import type { GantryClient } from "../../sdk/client.js";
import { ConflictError } from "../../sdk/errors.js";
import { checkedSandboxId, type ContainerProcess, type Sandbox, type SandboxCreateParams } from "../../sdk/sandbox.js";
import type { SandboxReadStream } from "../../sdk/sandbox-streams.js";
import { makeContext } from "../context.js";
import { UsageError } from "../exit-codes.js";
import { ago, table } from "../output.js";
import type { Runner } from "../runner.js";
import { attachProcess } from "../tty-attach.js";

const collect = (value: string, previous: string[] = []) => [...previous, value];
/** Characters of the TAGS cell in `sandbox ls`. */
const TAGS_CELL = 40;

/** `K=V` options (--tag, --env) as an object; a malformed one is a UsageError naming the option. */
export function parseKeyValues(list: string[] | undefined, option: string): Record<string, string> | undefined {
  if (!list?.length) return undefined;
  const out: Record<string, string> = {};
  for (const item of list) {
    const eq = item.indexOf("=");
    if (eq <= 0) throw new UsageError(`${option} takes KEY=VALUE, got ${JSON.stringify(item)}`);
    out[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return out;
}

/** `APP::FUNCTION` (as `gantry run` names functions) as its two names. */
export function parseFunctionRef(ref: string): { app: string; function: string } {
  const m = /^([^:]+)::([^:]+)$/.exec(ref);
  if (!m) throw new UsageError(`name the function as APP::FUNCTION (a deployed app and one of its functions), got ${JSON.stringify(ref)}`);
  return { app: m[1]!, function: m[2]! };
}

/** A whole number of seconds from an option, within the contract's limits. */
export function parseSeconds(raw: string | undefined, option: string): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  const { min, max } = SANDBOX_LIMITS.timeoutSeconds;
  if (!/^\s*\d+\s*$/.test(raw) || n < min || n > max) throw new UsageError(`${option} takes whole seconds from ${min} to ${max}, got ${JSON.stringify(raw)}`);
  return n;
}

/** The sandbox ID argument, checked before anything is sent. */
export function sandboxIdArg(id: string): string {
  try {
    return checkedSandboxId(id);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

function tagsText(tags: Record<string, string>): string {
  const text = Object.entries(tags).map(([k, v]) => `${k}=${v}`).join(",");
  return text.length > TAGS_CELL ? `${text.slice(0, TAGS_CELL - 1)}…` : text;
}

export function sandboxesTable(views: SandboxView[], all: boolean, now = Date.now()): string {
  return (
    table(
      ["ID", "APP", "NAME", "STATE", "CODE", "AGE", "TAGS"],
      views.map((v) => [v.id, v.app, v.name ?? "-", v.state, v.returncode === null ? "-" : String(v.returncode), ago(v.created_at, now).replace(/ ago$/, ""), tagsText(v.tags)]),
    ) || (all ? "no sandboxes" : "no running sandboxes (--all shows ended ones too)")
  );
}

/** Copies a stream's bytes to a local one as they come. */
async function pump(stream: SandboxReadStream, to: NodeJS.WriteStream): Promise<void> {
  for await (const chunk of stream.chunks()) {
    if (!to.write(chunk)) await new Promise((r) => to.once("drain", r));
  }
}

/** Sends this CLI's stdin to a process, then EOF; stops quietly once the process took no more (it ended). */
async function feedStdin(proc: ContainerProcess): Promise<void> {
  try {
    for await (const chunk of process.stdin as AsyncIterable<Buffer>) await proc.stdin.writeBytes(chunk);
    await proc.stdin.close();
  } catch (err) {
    if (!(err instanceof ConflictError)) throw err; // 409: its stdin is closed, it has ended
  }
}

/** Runs a process's output to the terminal, with stdin when asked; resolves with its exit code. */
async function streamProcess(proc: ContainerProcess, forwardStdin: boolean): Promise<number> {
  const output = Promise.all([pump(proc.stdout, process.stdout), pump(proc.stderr, process.stderr)]);
  if (forwardStdin) {
    void feedStdin(proc).catch((err: unknown) => process.stderr.write(`gantry: sending stdin stopped: ${(err as Error).message}\n`));
  } else {
    await proc.stdin.close().catch(() => undefined); // no -i: the command reads EOF, as docker exec without -i
  }
  const code = await proc.wait();
  await output;
  return code;
}

async function runExec(client: GantryClient, sb: Sandbox, command: string[], o: ExecOptions): Promise<number> {
  const proc = await sb.exec(command, { ...(o.workdir ? { workdir: o.workdir } : {}), ...(o.env?.length ? { env: parseKeyValues(o.env, "--env")! } : {}), pty: Boolean(o.tty) });
  try {
    if (!o.tty) return await streamProcess(proc, Boolean(o.interactive));
    return await attachProcess(client.transport, proc, { stdin: Boolean(o.interactive) });
  } finally {
    if (o.interactive) process.stdin.destroy();
  }
}

interface ExecOptions {
  workdir?: string;
  env?: string[];
  interactive?: boolean;
  tty?: boolean;
}

interface CreateOptions {
  app?: string;
  imageFrom?: string;
  timeout?: string;
  idleTimeout?: string;
  blockNetwork?: boolean;
  tag?: string[];
  env?: string[];
  workdir?: string;
  name?: string;
}

export function createParams(o: CreateOptions, command: string[]): SandboxCreateParams {
  if (!o.app) throw new UsageError("sandbox create needs --app APP (an app name; it need not be deployed)");
  return {
    app: o.app,
    ...(o.imageFrom ? { fromFunction: parseFunctionRef(o.imageFrom) } : {}),
    ...(command.length ? { command } : {}),
    ...(o.timeout !== undefined ? { timeout: parseSeconds(o.timeout, "--timeout")! } : {}),
    ...(o.idleTimeout !== undefined ? { idleTimeout: parseSeconds(o.idleTimeout, "--idle-timeout")! } : {}),
    ...(o.blockNetwork ? { blockNetwork: true } : {}),
    ...(o.tag?.length ? { tags: parseKeyValues(o.tag, "--tag")! } : {}),
    ...(o.env?.length ? { env: parseKeyValues(o.env, "--env")! } : {}),
    ...(o.workdir ? { workdir: o.workdir } : {}),
    ...(o.name ? { name: o.name } : {}),
  };
}

function registerLs(sandbox: Command, run: Runner): void {
  sandbox
    .command("ls")
    .alias("list")
    .option("--app <app>", "only this app's")
    .option("--tag <key=value>", "only those with this tag (repeatable: all must match)", collect)
    .option("--all", "ended ones too (by default only running ones)")
    .description("list sandboxes, newest first: id, app, name, state, exit code, age, tags")
    .action(run<{ app?: string; tag?: string[]; all?: boolean }>(async (o) => {
      const tags = parseKeyValues(o.tag, "--tag");
      const { out, client } = makeContext(o);
      try {
        const views = await client.sandboxes.listInfo({ ...(o.app ? { app: o.app } : {}), ...(tags ? { tags } : {}), state: o.all ? "all" : "running" });
        out.result(views, () => sandboxesTable(views, Boolean(o.all)));
      } finally {
        client.close();
      }
    }));
}

function registerCreate(sandbox: Command, run: Runner): void {
  sandbox
    .command("create")
    .argument("[command...]", "the main command (after --); none: it stays up until its timeout or terminate")
    .option("--app <app>", "the app it belongs to (a name; it need not be deployed)")
    .option("--image-from <app::function>", "use a deployed function's image (and its volumes, secrets and env)")
    .option("--timeout <seconds>", "how long it may live (default 300)")
    .option("--idle-timeout <seconds>", "end it after this long with nothing exec'd, written or touched")
    .option("--block-network", "no network at all (loopback only)")
    .option("--tag <key=value>", "a tag (repeatable)", collect)
    .option("--env <key=value>", "an environment variable (repeatable)", collect)
    .option("--workdir <path>", "the main command's working folder")
    .option("--name <name>", "a name, unique among the app's running sandboxes")
    .description("start a sandbox and print its ID once it runs (gantry sandbox create --app A -- CMD ARGS…)")
    .action(run<CreateOptions>(async (o, ...command) => {
      const params = createParams(o, command);
      const { out, client } = makeContext(o);
      try {
        const sb = await client.sandboxes.create(params);
        out.result(sb.lastInfo, () => sb.sandboxId);
      } finally {
        client.close();
      }
    }));
}

function registerExec(sandbox: Command, run: Runner): void {
  sandbox
    .command("exec")
    .argument("<id>", "the sandbox (sb-…)")
    .argument("<command...>", "the command and its arguments (after --)")
    .option("--workdir <path>", "its working folder")
    .option("--env <key=value>", "an environment variable (repeatable)", collect)
    .option("-i, --interactive", "send this CLI's stdin to it (then EOF)")
    .option("-t, --tty", "give it a terminal (raw mode when stdin is one; resizes follow)")
    .description("run a command in a running sandbox, its output streamed here; exits with its exit code")
    .addHelpText("after", "\nPut -- before the command when it has options of its own: gantry sandbox exec sb-… -- ls -l")
    .action(run<ExecOptions>(async (o, id, ...command) => {
      sandboxIdArg(id!);
      const { client } = makeContext(o);
      try {
        const sb = await client.sandboxes.fromId(id!);
        process.exitCode = await runExec(client, sb, command, o);
      } finally {
        client.close();
      }
    }));
}

async function printLogs(streams: { stdout: SandboxReadStream; stderr: SandboxReadStream }, follow: boolean): Promise<void> {
  if (follow) {
    await Promise.all([pump(streams.stdout, process.stdout), pump(streams.stderr, process.stderr)]);
    return;
  }
  const [out, err] = await Promise.all([streams.stdout.readAvailable(), streams.stderr.readAvailable()]);
  process.stdout.write(out.data);
  process.stderr.write(err.data);
}

function registerLogs(sandbox: Command, run: Runner): void {
  sandbox
    .command("logs")
    .argument("<id>", "the sandbox (sb-…)")
    .option("-f, --follow", "keep printing as it writes, until it ends")
    .option("--exec <exec-id>", "an exec's output (ex-…) instead of the main command's")
    .description("print what a sandbox's main command (or an exec) wrote: stdout here on stdout, stderr on stderr")
    .action(run<{ follow?: boolean; exec?: string }>(async (o, id) => {
      sandboxIdArg(id!);
      const { out, client } = makeContext(o);
      if (out.json && o.follow) throw new UsageError("--json prints the output written so far as one document: leave out --follow");
      try {
        const sb = await client.sandboxes.fromId(id!);
        let proc: ContainerProcess;
        try {
          proc = sb.process(o.exec ?? "main");
        } catch (err) {
          throw new UsageError((err as Error).message);
        }
        if (!out.json) return await printLogs(proc, Boolean(o.follow));
        const [so, se] = await Promise.all([proc.stdout.readAvailable(), proc.stderr.readAvailable()]);
        out.result({ sandbox: sb.sandboxId, process: proc.execId, stdout: so.data.toString("utf8"), stderr: se.data.toString("utf8"), ended: so.closed && se.closed }, () => "");
      } finally {
        client.close();
      }
    }));
}

function registerTerminate(sandbox: Command, run: Runner): void {
  sandbox
    .command("terminate")
    .alias("kill")
    .argument("<id>", "the sandbox (sb-…)")
    .description("end a sandbox (its processes get exit code 137); one already ended is left as it is")
    .action(run(async (o, id) => {
      sandboxIdArg(id!);
      const { out, client } = makeContext(o);
      try {
        const sb = await client.sandboxes.fromId(id!);
        const before = sb.lastInfo!;
        await sb.terminate();
        const v = sb.lastInfo!;
        out.result(v, () => (before.state === "running" || before.state === "pending" ? `terminated ${v.id} (exit ${v.returncode ?? "-"})` : `${v.id} had already ended: ${v.state}, exit ${v.returncode ?? "-"}`));
      } finally {
        client.close();
      }
    }));
}

export function registerSandbox(program: Command, run: Runner): void {
  const sandbox = program
    .command("sandbox")
    .alias("sandboxes")
    .description("containers started on demand (client.sandboxes.create, gantry.Sandbox.create): list, start, exec into, read, end");
  registerLs(sandbox, run);
  registerCreate(sandbox, run);
  registerExec(sandbox, run);
  registerLogs(sandbox, run);
  registerTerminate(sandbox, run);
}
