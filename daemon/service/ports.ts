/**
 * The ports the service layer needs from its adapters, shaped for their one consumer.
 * `daemon/api/agent-hub.ts` implements the agent endpoint over a unix socket (one machine) and
 * over TCP (a Swarm cluster), both with WebSocket.
 */
import type { AgentToDaemon, DaemonToAgent } from "../../protocol/agent-messages.js";

/** The live connection to one container's agent. */
export interface AgentConnection {
  send(msg: DaemonToAgent): void;
  close(): void;
}

export interface AgentEndpointEvents {
  connected: [conn: AgentConnection];
  message: [msg: AgentToDaemon];
  disconnected: [reason: string];
}

/** One container's private endpoint, which only that container's token opens. */
export interface AgentEndpoint {
  /** The host folder holding its unix socket, mounted into that container alone; null over TCP. */
  readonly socketDir: string | null;
  /** What the container's environment needs to reach it (the agent, and code calling functions). */
  readonly agentEnv: Record<string, string>;
  /** Listens; a unix socket is handed to `owner` (the container's uid:gid) when given, its folder stays the daemon's. */
  listen(owner: { uid: number; gid: number } | null): Promise<void>;
  on<E extends keyof AgentEndpointEvents>(event: E, listener: (...args: AgentEndpointEvents[E]) => void): unknown;
  close(): Promise<void>;
}

/** Opens an endpoint for one container: its id, a folder of its own, and the token its agent must present. */
/** The container an endpoint serves: its app, and the volumes it mounts (what its credential reaches). */
export interface EndpointContainer {
  id: string;
  socketDir: string;
  app: string;
  volumes?: ReadonlyArray<{ name: string; readOnly: boolean }>;
}

export type AgentEndpointFactory = (container: EndpointContainer, token: string) => AgentEndpoint;
