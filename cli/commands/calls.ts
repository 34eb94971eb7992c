import type { Command } from "commander";
import { idempotencyKeyProblem, type CallView } from "../../protocol/api.js";
import type { Function_ } from "../../sdk/client.js";
import { makeContext } from "../context.js";
import { UsageError } from "../exit-codes.js";
import { ago, table } from "../output.js";
import type { Runner } from "../runner.js";
import { registerCallsPrune } from "./calls-prune.js";

function parseArgs(json: string | undefined): unknown[] {
  if (json === undefined) return [];
  try {
    return [JSON.parse(json)];
  } catch (err) {
    throw new UsageError(`the argument ${JSON.stringify(json)} is not valid JSON (${(err as Error).message}); quote strings, e.g. '"hi"'`);
  }
}

function parseTimeout(raw: string | undefined, fallback: number | undefined): number | undefined {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0) throw new UsageError(`--timeout must be a number of seconds >= 0, got ${JSON.stringify(raw)}`);
  return n * 1000;
}

const showResult = (v: unknown) => JSON.stringify(v);

const IDEMPOTENCY_KEY_HELP = "the first spawn with KEY (for this function, within 24 h) makes the call; again, it returns that call";

/** The function, keyed with --idempotency-key when given (checked here: exit 2). */
function keyed(f: Function_, key: string | undefined): Function_ {
  if (key === undefined) return f;
  const problem = idempotencyKeyProblem(key);
  if (problem) throw new UsageError(problem.replace("Idempotency-Key", "--idempotency-key"));
  return f.withOptions({ idempotencyKey: key });
}

function describe(c: CallView): string {
  const lines = [
    `call      ${c.call_id}`,
    `function  ${c.app}.${c.function}`,
    `status    ${c.status}${c.expired ? " (result expired)" : ""}`,
    `attempt   ${c.attempt}`,
    `created   ${c.created_at}`,
    `started   ${c.started_at ?? "-"}`,
    `finished  ${c.finished_at ?? "-"}`,
  ];
  // Earlier attempts: why the call ran again ("lost": its container went away, no retry used).
  for (const a of c.attempts ?? []) {
    const why = a.error ? `${a.error.type}: ${a.error.message.split("\n")[0]}` : "";
    lines.push(`  #${a.attempt}      ${a.outcome === "lost" ? "lost  " : "failed"} ${a.ended_at}  ${why}`);
  }
  if (c.result !== undefined) lines.push(`result    ${JSON.stringify(c.result)}`);
  if (c.result_pickle !== undefined) {
    lines.push(`result    a Python value, pickled (${Math.floor((c.result_pickle.length * 3) / 4)} bytes): read it with gantry.FunctionCall.from_id("${c.call_id}").get()`);
  }
  if (c.error) lines.push(`error     ${c.error.type}: ${c.error.message}`, ...(c.error.traceback ? [c.error.traceback.replace(/^/gm, "          ")] : []));
  return lines.join("\n");
}

export function registerCalls(program: Command, run: Runner): void {
  program
    .command("spawn")
    .argument("<app>")
    .argument("<function>")
    .argument("[json]", "the function's argument, as JSON")
    .option("--idempotency-key <key>", IDEMPOTENCY_KEY_HELP)
    .description("queue a call and print its call ID")
    .action(run<{ idempotencyKey?: string }>(async (o, app, fn, json) => {
      const { out, client } = makeContext(o);
      const args = parseArgs(json);
      const f = keyed(await client.functions.fromName(app!, fn!), o.idempotencyKey);
      const call = await f.spawn(...args);
      client.close();
      if (call.replayed) out.note(`the idempotency key already made call ${call.callId}: nothing new was queued`);
      out.result({ call_id: call.callId, ...(o.idempotencyKey === undefined ? {} : { replayed: call.replayed }) }, () => call.callId);
    }));

  program
    .command("call")
    .argument("<app>")
    .argument("<function>")
    .argument("[json]", "the function's argument, as JSON")
    .option("--timeout <seconds>", "give up waiting after this long (exit 5; the call goes on)")
    .option("--idempotency-key <key>", `${IDEMPOTENCY_KEY_HELP}, and waits for its result`)
    .description("spawn a call and wait for its result")
    .action(run<{ timeout?: string; idempotencyKey?: string }>(async (o, app, fn, json) => {
      const { out, client } = makeContext(o);
      const args = parseArgs(json);
      const timeoutMs = parseTimeout(o.timeout, undefined);
      const f = keyed(await client.functions.fromName(app!, fn!), o.idempotencyKey);
      const call = await f.spawn(...args);
      out.note(call.replayed ? `call ${call.callId} (made earlier with this idempotency key)` : `call ${call.callId}`);
      try {
        const result = await call.get(timeoutMs === undefined ? {} : { timeoutMs });
        const replayed = o.idempotencyKey === undefined ? {} : { replayed: call.replayed };
        out.result({ call_id: call.callId, ...replayed, result }, () => showResult(result));
      } finally {
        client.close();
      }
    }));

  program
    .command("get")
    .argument("<call_id>")
    .option("--timeout <seconds>", "wait up to this long for a pending call (default: do not wait)")
    .description("print a call's result; pending (5), failed (6), expired (7) and cancelled (8) exit non-zero")
    .action(run<{ timeout?: string }>(async (o, id) => {
      const { out, client } = makeContext(o);
      const call = await client.functionCalls.fromId(id!);
      try {
        const result = await call.get({ timeoutMs: parseTimeout(o.timeout, 0)! });
        out.result({ call_id: id, result }, () => showResult(result));
      } finally {
        client.close();
      }
    }));

  program
    .command("cancel")
    .argument("<call_id>")
    .description("cancel a queued or running call (a running one's container is stopped)")
    .action(run(async (g, id) => {
      const { out, client } = makeContext(g);
      const call = await client.functionCalls.fromId(id!);
      await call.cancel();
      client.close();
      out.result({ call_id: id, cancelled: true }, () => `cancelled ${id}`);
    }));

  const calls = program.command("calls").description("list, inspect and prune calls");
  calls
    .command("ls")
    .option("--app <app>")
    .option("--function <function>")
    .option("--status <status>", "queued, running, succeeded, failed or cancelled")
    .option("--limit <n>", "at most this many, newest first", "50")
    .description("list recent calls, newest first")
    .action(run<{ app?: string; function?: string; status?: string; limit: string }>(async (o) => {
      const { out, client } = makeContext(o);
      const q = new URLSearchParams({ limit: o.limit });
      if (o.app) q.set("app", o.app);
      if (o.function) q.set("function", o.function);
      if (o.status) q.set("status", o.status);
      const res = await client.transport.json<{ calls: CallView[] }>("GET", `/v1/calls?${q}`);
      client.close();
      out.result(res.calls, () =>
        table(
          ["CALL ID", "APP", "FUNCTION", "STATUS", "ATTEMPT", "CREATED"],
          res.calls.map((c) => [c.call_id, c.app, c.function, c.status + (c.expired ? " (expired)" : ""), String(c.attempt), ago(c.created_at)]),
        ) || "no calls",
      );
    }));
  calls
    .command("show")
    .argument("<call_id>")
    .description("show one call: status, attempts, times, result or error")
    .action(run(async (g, id) => {
      const { out, client } = makeContext(g);
      const call = await client.functionCalls.fromId(id!);
      const view = await call.status();
      client.close();
      out.result(view, () => describe(view));
    }));
  registerCallsPrune(calls, run);
}
