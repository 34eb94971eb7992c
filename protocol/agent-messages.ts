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

export const agentToDaemonSchema = z.discriminatedUnion("type", [
  z.object({
    type: z.literal("ready"),
    protocol: z.number().int(),
    runtime: z.string().max(200),
    functionName: z.string(),
  }),
  z.object({ type: z.literal("init_error"), error: remoteErrorSchema }),
  z.discriminatedUnion("ok", [
    z.object({ type: z.literal("output"), ...callRef, ok: z.literal(true), value: z.unknown() }),
    z.object({ type: z.literal("output"), ...callRef, ok: z.literal(false), error: remoteErrorSchema }),
  ]),
  z.object({
    type: z.literal("log"),
    stream: z.enum(["stdout", "stderr"]),
    line: z.string(),
    callId: z.string().optional(),
  }),
]);
export type AgentToDaemon = z.infer<typeof agentToDaemonSchema>;

export const daemonToAgentSchema = z.discriminatedUnion("type", [
  z.object({
    type: z.literal("input"),
    ...callRef,
    args: z.array(z.unknown()),
    /** Keyword arguments (Python functions); absent when there are none. */
    kwargs: z.record(z.string(), z.unknown()).optional(),
  }),
  z.object({ type: z.literal("shutdown") }),
]);
export type DaemonToAgent = z.infer<typeof daemonToAgentSchema>;

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
} as const;
