/**
 * The wire protocol between the daemon and the runtime agent inside each container.
 * One JSON object per WebSocket text message, validated on both ends with these schemas.
 */
import { z } from "zod";
import { remoteErrorSchema } from "./remote-error.js";

export const AGENT_PROTOCOL_VERSION = 1;
/** Path of the agent socket inside a container (the folder is bind-mounted per container). */
export const AGENT_SOCKET_DIR_IN_CONTAINER = "/run/gantry";
export const AGENT_SOCKET_NAME = "agent.sock";
export const AGENT_WS_PATH = "/agent";
/** The largest return value (as JSON) an agent sends; a larger one fails the call with ResultTooLargeError. */
export const MAX_OUTPUT_BYTES = 32 * 1024 * 1024;

const callRef = { callId: z.string().min(1).max(64), attempt: z.number().int().min(1) };
/** The most inputs (or outputs) one `inputs` (or `outputs`) message carries. */
export const MAX_BATCH_MESSAGE_ITEMS = 1000;
/** Base64 text: how pickled values (Python's pickle) travel, between Python programs and Python functions only. */
export const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const pickled = z.string().regex(BASE64, "a pickled value is base64");
const inputFields = {
  ...callRef,
  args: z.array(z.unknown()),
  /** Keyword arguments (Python functions); absent when there are none. */
  kwargs: z.record(z.string(), z.unknown()).optional(),
  /** Python callers: the pickled (args, kwargs) instead of args and kwargs. The result is pickled back. */
  pickle: pickled.optional(),
  /** A class's call: the method it runs. */
  method: z.string().max(64).optional(),
  /**
   * Prefetched (issue 25): sent while every slot of the container is busy. The agent runs it once a
   * slot frees, in the order received, and says `started` then; its timeout counts from there.
   */
  queued: z.literal(true).optional(),
};
const outputItem = z.discriminatedUnion("ok", [
  z.object({ ...callRef, ok: z.literal(true), value: z.unknown(), pickled: pickled.optional() }),
  z.object({ ...callRef, ok: z.literal(false), error: remoteErrorSchema }),
]);
export type AgentOutput = z.infer<typeof outputItem>;

/**
 * Web endpoints (DESIGN 1.8): an HTTP request travels over the agent's connection as
 * `http_request` (the head) and `http_body` chunks (base64, the last with `end: true`); the answer
 * comes back the same way as `http_response` then `http_body` chunks, or `http_error` when the
 * function failed before answering. `http_cancel` tells the agent the client went away or the
 * request ran out of time.
 */
/** The most bytes of body one http_body message carries (counted before base64). */
export const MAX_HTTP_CHUNK_BYTES = 256 * 1024;
const requestRef = { requestId: z.string().min(1).max(64) };
const headerList = z.array(z.tuple([z.string().max(1024), z.string().max(64 * 1024)])).max(500);
const bodyChunk = z.object({ type: z.literal("http_body"), ...requestRef, data: z.string(), end: z.boolean() });

export const agentToDaemonSchema = z.discriminatedUnion("type", [
  z.object({
    type: z.literal("ready"),
    protocol: z.number().int(),
    runtime: z.string().max(200),
    functionName: z.string(),
  }),
  z.object({ type: z.literal("init_error"), error: remoteErrorSchema }),
  z.discriminatedUnion("ok", [
    z.object({ type: z.literal("output"), ...callRef, ok: z.literal(true), value: z.unknown(), pickled: pickled.optional() }),
    z.object({ type: z.literal("output"), ...callRef, ok: z.literal(false), error: remoteErrorSchema }),
  ]),
  /** One item a generator call yielded (index from 0, in order), before the call's output. */
  z.object({ type: z.literal("item"), ...callRef, index: z.number().int().min(0), value: z.unknown(), pickled: pickled.optional() }),
  /**
   * Several outputs at once (an agent sends what finished in one turn together), the prefetched
   * inputs (sent with `queued`) that began in that turn (`started`, handled first: the daemon starts
   * each one's timeout then), and those it gave back, never begun, when asked to (`withdrawn`).
   */
  z.object({
    type: z.literal("outputs"),
    outputs: z.array(outputItem).max(MAX_BATCH_MESSAGE_ITEMS),
    started: z.array(z.object(callRef)).max(MAX_BATCH_MESSAGE_ITEMS).optional(),
    withdrawn: z.array(z.object(callRef)).max(MAX_BATCH_MESSAGE_ITEMS).optional(),
  }),
  z.object({
    type: z.literal("log"),
    stream: z.enum(["stdout", "stderr"]),
    line: z.string(),
    /** The call or web request that wrote the line. */
    callId: z.string().optional(),
  }),
  z.object({ type: z.literal("http_response"), ...requestRef, status: z.number().int().min(100).max(599), headers: headerList }),
  bodyChunk,
  z.object({ type: z.literal("http_error"), ...requestRef, error: remoteErrorSchema }),
]);
export type AgentToDaemon = z.infer<typeof agentToDaemonSchema>;

export const daemonToAgentSchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("input"), ...inputFields }),
  /** Several inputs at once (calls dispatched to one container together). */
  z.object({ type: z.literal("inputs"), inputs: z.array(z.object(inputFields)).min(1).max(MAX_BATCH_MESSAGE_ITEMS) }),
  z.object({ type: z.literal("shutdown") }),
  /**
   * Stop one input (its call was cancelled, timed out, or its app stopped): Node aborts the
   * input's AbortSignal (currentInput().signal), Python raises InputCancellation in it (cancels the
   * task of an async def). The agent still sends the input's output once the function has really
   * stopped: until then it holds its slot. The daemon ignores what that output says.
   */
  z.object({ type: z.literal("cancel"), ...callRef, reason: z.string().max(1000) }),
  /**
   * Give back prefetched inputs that have not begun: their container drains (a new deployment or a
   * changed secret replaced it), so they should run on a new one. The agent drops each one still
   * waiting and lists it in `withdrawn` of its next outputs message; one that began already runs on
   * (its `started` says so), and one it does not know is ignored.
   */
  z.object({ type: z.literal("withdraw"), inputs: z.array(z.object(callRef)).min(1).max(MAX_BATCH_MESSAGE_ITEMS) }),
  z.object({
    type: z.literal("http_request"),
    ...requestRef,
    method: z.string().min(1).max(16),
    /** The path below the endpoint's prefix, starting with "/". */
    path: z.string().startsWith("/"),
    /** The prefix the endpoint is served under ("/web/app/function"): ASGI's root_path. */
    rootPath: z.string(),
    /** The raw query string, without "?". */
    query: z.string(),
    /** A class's web endpoint method that answers it (a function's endpoint names none). */
    target: z.string().min(1).max(64).optional(),
    headers: headerList,
    client: z.tuple([z.string(), z.number().int()]).nullable(),
  }),
  bodyChunk,
  z.object({ type: z.literal("http_cancel"), ...requestRef, reason: z.string() }),
]);
export type DaemonToAgent = z.infer<typeof daemonToAgentSchema>;
export type AgentInput = Omit<Extract<DaemonToAgent, { type: "input" }>, "type">;

/** Environment variables the daemon gives each container. */
export const AgentEnv = {
  token: "GANTRY_AGENT_TOKEN",
  socket: "GANTRY_AGENT_SOCKET",
  /** Node: the app module's path. Python: the module's name, imported from appDir. */
  module: "GANTRY_APP_MODULE",
  /** The folder holding the app's code (Python puts it first on sys.path). */
  appDir: "GANTRY_APP_DIR",
  app: "GANTRY_APP",
  function: "GANTRY_FUNCTION",
  maxInputs: "GANTRY_MAX_INPUTS",
  containerId: "GANTRY_CONTAINER_ID",
  /** The volumes mounted into the container, as JSON {name: mount path} (vol.commit() and listdir find theirs). */
  volumes: "GANTRY_VOLUMES",
  /** A class with parameters: its instance's parameter set, JSON (bytes as {"bytes": base64}). */
  clsParams: "GANTRY_CLS_PARAMS",
  /** Where code in the container reaches the daemon's API (calls only): GantryClient and gantry.Function use it. */
  apiSocket: "GANTRY_API_SOCKET",
  /** Over TCP (a Swarm cluster): the daemon's agent address, ws://HOST:PORT (the agent dials HOST:PORT/agent). */
  url: "GANTRY_AGENT_URL",
  /** Over TCP: the daemon's API for code in the container (calls only), http://HOST:PORT, and its token. */
  apiUrl: "GANTRY_API_URL",
  apiToken: "GANTRY_API_TOKEN",
} as const;

/** The header an agent dialling over TCP names its container with (its token must match). */
export const AGENT_CONTAINER_HEADER = "x-gantry-container";
