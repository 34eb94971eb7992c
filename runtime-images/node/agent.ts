/**
 * gantry's runtime agent for Node.js, started as the container's entrypoint. It connects to the
 * daemon over WebSocket through the unix socket mounted at /run/gantry (or, across a Swarm
 * cluster, to the address in GANTRY_AGENT_URL), authenticates with the container's token, imports the app module, says ready, then runs inputs (up to maxInputs at
 * once) and returns each output with its call ID and attempt. stdout/stderr are forwarded as log
 * lines, tagged with the call that wrote them. Runs on Node.js >= 18 (Debian 12 ships 18).
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { pathToFileURL } from "node:url";
import WebSocket from "ws";
import {
  AGENT_CONTAINER_HEADER,
  AGENT_PROTOCOL_VERSION,
  AGENT_WS_PATH,
  AgentEnv,
  MAX_BATCH_MESSAGE_ITEMS,
  MAX_OUTPUT_BYTES,
  daemonToAgentSchema,
  type AgentInput,
  type AgentToDaemon,
} from "../../protocol/agent-messages.js";
import { INPUT_CONTEXT_KEY, type InputContext } from "../../protocol/input-context.js";
import { jsonDepthProblem, MAX_JSON_DEPTH } from "../../protocol/json-limits.js";
import { appRegistry, nameFunctionsByExport } from "../../protocol/registry.js";
import { functionError } from "./remote-error.js";
import { WebRequests } from "./web.js";

function env(name: string): string {
  const v = process.env[name];
  if (!v) {
    process.stderr.write(`gantry agent: environment variable ${name} is not set\n`);
    process.exit(2);
  }
  return v;
}

/** On one machine, the mounted unix socket; across a cluster, the daemon's advertised address. */
const agentUrl = process.env[AgentEnv.url] || null;
const socketPath = agentUrl ? null : env(AgentEnv.socket);
const token = env(AgentEnv.token);
const modulePath = env(AgentEnv.module);
const appName = env(AgentEnv.app);
const functionName = env(AgentEnv.function);
const maxInputs = Math.max(1, Number(process.env[AgentEnv.maxInputs]) || 1);
/** A longer line (no newline yet) is sent in pieces: the daemon refuses oversized messages. */
const MAX_LOG_LINE = 64 * 1024;

/**
 * One input as the function running it sees it (currentInput() in the SDK). Its AbortSignal is made
 * only when the function first reads it: making an AbortController costs more than a short call.
 */
class RunningInput implements InputContext {
  private controller: AbortController | null = null;
  /** Why the daemon asked this input to stop (null: it was not asked). */
  stopReason: Error | null = null;
  constructor(readonly callId: string, readonly attempt: number) {}
  get signal(): AbortSignal {
    this.controller ??= new AbortController();
    if (this.stopReason && !this.controller.signal.aborted) this.controller.abort(this.stopReason);
    return this.controller.signal;
  }
  stop(reason: Error): void {
    if (this.stopReason) return;
    this.stopReason = reason;
    this.controller?.abort(reason);
  }
}

/**
 * What runs now: an input, or a web request (its request ID tags the log lines it writes). One
 * AsyncLocalStorage for both: each run() of one costs every promise made inside it a little.
 */
const current = new AsyncLocalStorage<RunningInput | { callId: string }>();
(globalThis as Record<symbol, unknown>)[INPUT_CONTEXT_KEY] = () => {
  const store = current.getStore();
  return store instanceof RunningInput ? store : undefined;
};
/** Inputs running now, by "callId#attempt": stopped when the daemon asks one to stop. */
const aborts = new Map<string, RunningInput>();

/** The daemon asked an input to stop: its signal aborts, with an Error named InputCancellation. */
function cancelInput(callId: string, attempt: number, reason: string): void {
  if (takeWaiting(callId, attempt)) {
    // Prefetched and not begun: it ends here, as a cancelled input that never ran.
    const why = new Error(`the input was asked to stop before it began: ${reason}`);
    why.name = "InputCancellation";
    sendOutput(`${outputHead(callId, attempt, false)},"error":${JSON.stringify(functionError(why))}}`);
    return;
  }
  const why = new Error(`the input was asked to stop: ${reason}`);
  why.name = "InputCancellation";
  aborts.get(`${callId}#${attempt}`)?.stop(why);
}
const ws = new WebSocket(agentUrl ? `${agentUrl}${AGENT_WS_PATH}` : `ws+unix://${socketPath}:${AGENT_WS_PATH}`, {
  headers: { authorization: `Bearer ${token}`, [AGENT_CONTAINER_HEADER]: process.env[AgentEnv.containerId] ?? "" },
  maxPayload: 256 * 1024 * 1024,
});

const outbox: string[] = [];
function send(msg: AgentToDaemon): void {
  const text = JSON.stringify(msg);
  if (ws.readyState === WebSocket.OPEN) ws.send(text);
  else outbox.push(text);
}

// Forward stdout/stderr line by line; keep writing to the real streams too (docker logs).
for (const stream of ["stdout", "stderr"] as const) {
  const target = process[stream];
  const original = target.write.bind(target);
  let partial = "";
  target.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
    const text = partial + (typeof chunk === "string" ? chunk : Buffer.from(chunk).toString("utf8"));
    const lines = text.split("\n");
    partial = lines.pop() ?? "";
    while (partial.length > MAX_LOG_LINE) {
      lines.push(partial.slice(0, MAX_LOG_LINE));
      partial = partial.slice(MAX_LOG_LINE);
    }
    const callId = current.getStore()?.callId;
    for (const line of lines) send({ type: "log", stream, line, ...(callId ? { callId } : {}) });
    return original(chunk as never, ...(rest as []));
  }) as typeof target.write;
}

let handler: ((...args: unknown[]) => unknown) | null = null;
/** A web endpoint (app.webEndpoint) takes HTTP requests, not inputs. */
let isWeb = false;
/** A generator function: each item it yields is sent as it comes, before the call's output. */
let isGenerator = false;
/** A class (app.cls): its one instance in this container, and its methods (generator or not). */
let instance: Record<string, unknown> | null = null;
let methods = new Map<string, boolean>();
let running = 0;
/** Prefetched inputs (sent with `queued`), in the order received: each begins once a slot frees. */
const waiting: AgentInput[] = [];
/** Takes a prefetched input that has not begun out of `waiting`; false when it is not there. */
function takeWaiting(callId: string, attempt: number): boolean {
  const at = waiting.findIndex((w) => w.callId === callId && w.attempt === attempt);
  if (at < 0) return false;
  waiting.splice(at, 1);
  return true;
}
const web = new WebRequests(send, (requestId, fn) => current.run({ callId: requestId }, fn));

/** Imports the app module, names its functions as the CLI did at deploy, and finds ours. */
async function loadFunction(): Promise<void> {
  // The bundle carries its source map: errors and tracebacks name the user's files and lines.
  process.setSourceMapsEnabled?.(true);
  const moduleExports = (await import(pathToFileURL(modulePath).href)) as Record<string, unknown>;
  const app = appRegistry().get(appName);
  if (!app) throw new Error(`the app module defines no app named ${JSON.stringify(appName)}`);
  nameFunctionsByExport(app, moduleExports);
  const fn = app.functions.get(functionName);
  if (!fn) throw new Error(`app ${appName} defines no function named ${JSON.stringify(functionName)}`);
  handler = fn.handler;
  isWeb = (fn.options as { web?: unknown } | undefined)?.web !== undefined;
  isGenerator = (fn.options as { generator?: boolean } | undefined)?.generator === true;
  const cls = (fn.options as { cls?: { methods: Array<{ name: string; generator?: boolean }> } } | undefined)?.cls;
  if (cls) {
    // Its enter() runs now, before the agent says ready: no input reaches it before it finishes.
    methods = new Map(cls.methods.map((m) => [m.name, m.generator === true]));
    // Its parameter set (instance({ size: 2 }) has containers of its own), as one object; bytes as a Buffer.
    const params = JSON.parse(process.env.GANTRY_CLS_PARAMS || "{}") as Record<string, unknown>;
    for (const [k, v] of Object.entries(params)) if (v !== null && typeof v === "object" && "bytes" in v) params[k] = Buffer.from((v as { bytes: string }).bytes, "base64");
    instance = new (handler as unknown as new (params: Record<string, unknown>) => Record<string, unknown>)(params);
    if (typeof instance.enter === "function") await (instance.enter as () => unknown).call(instance);
  }
}

/** One item a generator yielded, sent at once (ahead of the call's output, which is batched). */
function sendItem(callId: string, attempt: number, index: number, item: unknown): void {
  let text: string | undefined;
  try {
    text = JSON.stringify(item === undefined ? null : item);
  } catch (err) {
    throw new TypeError(`item ${index} of ${functionName} is not JSON-serialisable: ${(err as Error).message}`);
  }
  if (text === undefined) throw new TypeError(`item ${index} of ${functionName} (a ${typeof item}) is not JSON-serialisable`);
  if (text.length > MAX_OUTPUT_BYTES) throw new Error(`item ${index} is ${text.length} bytes of JSON, over the limit of ${MAX_OUTPUT_BYTES} bytes`);
  const deep = jsonDepthProblem(text, MAX_JSON_DEPTH);
  if (deep) throw new TypeError(`item ${index} of ${functionName} is ${deep}`);
  const message = `{"type":"item","callId":${JSON.stringify(callId)},"attempt":${attempt},"index":${index},"value":${text}}`;
  if (ws.readyState === WebSocket.OPEN) ws.send(message);
  else outbox.push(message);
}

/**
 * Outputs that finished in this turn, as JSON text, the prefetched inputs that began in it, and
 * those given back (withdrawn) unbegun: sent together in one `outputs` message.
 */
let finished: string[] = [];
let begun: string[] = [];
let withdrawn: string[] = [];
const ref = (callId: string, attempt: number) => `{"callId":${JSON.stringify(callId)},"attempt":${attempt}}`;
function flushSoon(list: string[], json: string): void {
  list.push(json);
  if (finished.length + begun.length + withdrawn.length === 1) setImmediate(flushOutputs);
}
const sendOutput = (json: string) => flushSoon(finished, json);
const sendStarted = (callId: string, attempt: number) => flushSoon(begun, ref(callId, attempt));
function flushOutputs(): void {
  const n = Math.max(finished.length, begun.length, withdrawn.length);
  for (let i = 0; i < n; i += MAX_BATCH_MESSAGE_ITEMS) {
    const outs = finished.slice(i, i + MAX_BATCH_MESSAGE_ITEMS);
    const starts = begun.slice(i, i + MAX_BATCH_MESSAGE_ITEMS);
    const back = withdrawn.slice(i, i + MAX_BATCH_MESSAGE_ITEMS);
    const text = `{"type":"outputs","outputs":[${outs.join(",")}]${starts.length ? `,"started":[${starts.join(",")}]` : ""}${back.length ? `,"withdrawn":[${back.join(",")}]` : ""}}`;
    if (ws.readyState === WebSocket.OPEN) ws.send(text);
    else outbox.push(text);
  }
  finished = [];
  begun = [];
  withdrawn = [];
}

/** The daemon takes back prefetched inputs that have not begun (their container drains). */
function withdrawWaiting(refs: ReadonlyArray<{ callId: string; attempt: number }>): void {
  for (const r of refs) {
    // One that began already (its started says so), or is not known, stays as it is.
    if (takeWaiting(r.callId, r.attempt)) flushSoon(withdrawn, ref(r.callId, r.attempt));
  }
}
const outputHead = (callId: string, attempt: number, ok: boolean) => `{"callId":${JSON.stringify(callId)},"attempt":${attempt},"ok":${ok}`;

/** What an input runs: the function, or the class instance's method it names (and whether it yields). */
function targetOf(method: string | undefined): { run: (...args: unknown[]) => unknown; yields: boolean } {
  if (!instance) return { run: handler!, yields: isGenerator };
  if (method === undefined || !methods.has(method)) throw new TypeError(`${functionName} has no method ${JSON.stringify(method)}`);
  return { run: (instance[method] as (...args: unknown[]) => unknown).bind(instance), yields: methods.get(method)! };
}

/** A class's exit(), once, before the connection closes (the container is stopping). */
let exited = false;
async function runExit(): Promise<void> {
  if (exited || !instance || typeof instance.exit !== "function") return;
  exited = true;
  try {
    await (instance.exit as () => unknown).call(instance);
  } catch (err) {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  }
}

async function runInput(callId: string, attempt: number, args: unknown[], kwargs: Record<string, unknown> | undefined, method?: string): Promise<void> {
  running++;
  const input = new RunningInput(callId, attempt);
  const key = `${callId}#${attempt}`;
  aborts.set(key, input);
  try {
    const named = Object.keys(kwargs ?? {});
    if (named.length) {
      throw new TypeError(`${functionName} is a JavaScript function: it takes positional arguments only, not keyword arguments (${named.join(", ")})`);
    }
    const value = await current.run(input, async () => {
      // Called without a receiver: the traceback's first frame is the user's function ("at boom"), not "Object.boom".
      const { run, yields } = targetOf(method);
      const ret = run(...args);
      if (!yields) return ret;
      let index = 0;
      for await (const item of ret as AsyncIterable<unknown>) {
        if (input.stopReason) throw input.stopReason; // a generator stops between items
        sendItem(callId, attempt, index++, item);
      }
      return null;
    });
    let text: string;
    try {
      text = value === undefined ? "null" : JSON.stringify(value);
    } catch (err) {
      throw new TypeError(`the function's return value is not JSON-serialisable: ${(err as Error).message}`);
    }
    if (text === undefined) throw new TypeError(`the function's return value (a ${typeof value}) is not JSON-serialisable`);
    if (text.length > MAX_OUTPUT_BYTES) {
      const err = new Error(`the return value is ${text.length} bytes of JSON, over the limit of ${MAX_OUTPUT_BYTES} bytes`);
      err.name = "ResultTooLargeError";
      throw err;
    }
    // Deeper than the daemon takes (it would refuse the message): this call fails, nothing else.
    const deep = jsonDepthProblem(text, MAX_JSON_DEPTH);
    if (deep) throw new TypeError(`the return value of ${functionName} is ${deep}`);
    sendOutput(`${outputHead(callId, attempt, true)},"value":${text}}`); // the value's JSON as is: no parse and stringify again
  } catch (err) {
    sendOutput(`${outputHead(callId, attempt, false)},"error":${JSON.stringify(functionError(err))}}`);
  } finally {
    aborts.delete(key);
    running--;
    beginWaiting();
  }
}

/** Begins prefetched inputs while slots are free, telling the daemon each has begun (its timeout starts). */
function beginWaiting(): void {
  while (waiting.length && running + web.size < maxInputs) {
    const input = waiting.shift()!;
    sendStarted(input.callId, input.attempt);
    void runInput(input.callId, input.attempt, input.args, input.kwargs, input.method);
  }
}

/**
 * A message that could not be decoded (too deep for the runtime, or broken): the inputs it names
 * fail with the reason, rather than wait for their timeout or bring the agent down.
 */
function failUndecodable(text: string, why: string): void {
  const refs = [...text.matchAll(/"callId":"([^"\\]{1,64})","attempt":(\d{1,9})/g)].slice(0, MAX_BATCH_MESSAGE_ITEMS);
  for (const [, callId, attempt] of refs) {
    const error = new TypeError(`the input could not be decoded by the agent: ${why}`);
    sendOutput(`${outputHead(callId!, Number(attempt), false)},"error":${JSON.stringify(functionError(error))}}`);
  }
  process.stderr.write(`gantry agent: a message from the daemon could not be decoded (${why})${refs.length ? `: failed its ${refs.length} input(s)` : ""}\n`);
}

ws.on("open", () => {
  for (const text of outbox.splice(0)) ws.send(text);
  loadFunction().then(
    () => send({ type: "ready", protocol: AGENT_PROTOCOL_VERSION, runtime: `node ${process.version}`, functionName }),
    (err) => {
      send({ type: "init_error", error: functionError(err) });
      ws.close(1000, "init failed");
    },
  );
});

ws.on("message", (data) => {
  const text = data.toString();
  let parsed;
  try {
    parsed = daemonToAgentSchema.safeParse(JSON.parse(text));
  } catch (err) {
    return failUndecodable(text, (err as Error).message);
  }
  if (!parsed.success) {
    process.stderr.write(`gantry agent: ignoring a malformed message from the daemon\n`);
    return;
  }
  const msg = parsed.data;
  switch (msg.type) {
    case "input":
    case "inputs":
      for (const input of msg.type === "input" ? [msg] : msg.inputs) {
        if (isWeb) {
          const error = new TypeError(`${functionName} is a web endpoint: send it HTTP requests, not calls`);
          sendOutput(`${outputHead(input.callId, input.attempt, false)},"error":${JSON.stringify(functionError(error))}}`);
          continue;
        }
        if (input.pickle !== undefined) {
          // The daemon sends pickled inputs to Python functions only; this is a guard, not a path.
          const error = new TypeError(`${functionName} is a JavaScript function: it takes JSON arguments, not pickled Python ones`);
          sendOutput(`${outputHead(input.callId, input.attempt, false)},"error":${JSON.stringify(functionError(error))}}`);
          continue;
        }
        if (input.queued) {
          waiting.push(input);
          continue;
        }
        if (running + web.size >= maxInputs) process.stderr.write(`gantry agent: over maxInputs (${maxInputs}), running anyway\n`);
        void runInput(input.callId, input.attempt, input.args, input.kwargs, input.method);
      }
      beginWaiting();
      break;
    case "http_request":
      if (!isWeb) {
        send({ type: "http_error", requestId: msg.requestId, error: functionError(new TypeError(`${functionName} is not a web endpoint`)) });
        break;
      }
      web.start(msg, handler as (req: Request) => unknown);
      break;
    case "http_body":
      web.body(msg);
      break;
    case "http_cancel":
      web.cancel(msg.requestId, msg.reason);
      break;
    case "cancel":
      cancelInput(msg.callId, msg.attempt, msg.reason);
      break;
    case "withdraw":
      withdrawWaiting(msg.inputs);
      break;
    case "shutdown":
      void runExit().then(() => ws.close(1000, "shutdown"));
      break;
  }
});

// Ended by SIGTERM (docker stop, an engine stopping): exit as the signal would have, 128 + 15, so the
// daemon can tell a container stopped from outside from one whose function ended its process.
let terminated = false;
ws.on("close", () => process.exit(terminated ? 143 : 0));
ws.on("error", (err) => {
  process.stderr.write(`gantry agent: connection to the daemon failed: ${err.message}\n`);
  process.exit(1);
});
process.on("SIGTERM", () => {
  terminated = true;
  void runExit().then(() => ws.close(1001, "SIGTERM"));
});
