/**
 * `gantry shell APP::FUNCTION` (issue 24): an interactive shell in a deployed function's image
 * (with its volumes, secrets and env), as Modal's `modal shell`: a sandbox made `from_function`
 * with a terminal, this terminal attached to it (cli/tty-attach.ts), and the sandbox terminated
 * when the shell ends or this CLI is stopped. Commands piped in (not a terminal) run too.
 */
import type { Command } from "commander";
import type { GantryClient } from "../../sdk/client.js";
import type { Sandbox } from "../../sdk/sandbox.js";
import { makeContext } from "../context.js";
import type { Runner } from "../runner.js";
import { attachProcess } from "../tty-attach.js";
import { parseFunctionRef, parseSeconds } from "./sandbox.js";

/** bash where the image has it, else sh (not `exec bash 2>/dev/null || …`: that would hide bash's prompt, which goes to stderr). */
export const DEFAULT_SHELL = ["/bin/sh", "-c", "if command -v bash >/dev/null 2>&1; then exec bash; else exec sh; fi"];
/** How long a shell's sandbox may live unless --timeout says otherwise: an hour of work. */
const DEFAULT_SHELL_TIMEOUT_S = 3600;

/** The shell's command: --cmd run by sh, else DEFAULT_SHELL. */
export function shellCommand(cmd: string | undefined): string[] {
  return cmd === undefined ? DEFAULT_SHELL : ["/bin/sh", "-c", cmd];
}

/** Terminates the sandbox when this CLI is told to stop (SIGINT, SIGTERM, SIGHUP), then exits as such a signal would. */
function terminateOnSignals(sb: Sandbox): () => void {
  const signals: Array<[NodeJS.Signals, number]> = [["SIGINT", 130], ["SIGTERM", 143], ["SIGHUP", 129]];
  const handlers = signals.map(([sig, code]) => {
    const h = () => {
      void sb.terminate().catch(() => undefined).finally(() => process.exit(code));
    };
    process.once(sig, h);
    return [sig, h] as const;
  });
  return () => handlers.forEach(([sig, h]) => process.off(sig, h));
}

async function runShell(client: GantryClient, sb: Sandbox): Promise<number> {
  const release = terminateOnSignals(sb);
  try {
    return await attachProcess(client.transport, sb.process("main"), { stdin: true });
  } finally {
    release();
    process.stdin.destroy();
    await sb.terminate().catch(() => undefined); // ended already, or the daemon is gone: nothing left to end
  }
}

export function registerShell(program: Command, run: Runner): void {
  program
    .command("shell")
    .argument("<app::function>", "a deployed function: the shell runs in its image, with its volumes, secrets and env")
    .option("--cmd <command>", "run this (with sh -c) instead of bash (or sh where there is no bash)")
    .option("--timeout <seconds>", `end the shell after this long (default ${DEFAULT_SHELL_TIMEOUT_S})`)
    .option("--block-network", "no network inside (loopback only)")
    .description("open a shell in a deployed function's image (the sandbox ends with the shell)")
    .action(run<{ cmd?: string; timeout?: string; blockNetwork?: boolean }>(async (o, ref) => {
      const fromFunction = parseFunctionRef(ref!);
      const timeout = parseSeconds(o.timeout, "--timeout") ?? DEFAULT_SHELL_TIMEOUT_S;
      const { client } = makeContext(o);
      try {
        const sb = await client.sandboxes.create({
          app: fromFunction.app,
          fromFunction,
          command: shellCommand(o.cmd),
          pty: true,
          timeout,
          ...(o.blockNetwork ? { blockNetwork: true } : {}),
        });
        process.exitCode = await runShell(client, sb);
      } finally {
        client.close();
      }
    }));
}
