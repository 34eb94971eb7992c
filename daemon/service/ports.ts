/**
 * The ports the service layer needs from its adapters, shaped for their one consumer.
 * `daemon/api/agent-hub.ts` implements the agent endpoint over a unix socket and WebSocket.
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

/** One container's private endpoint: the folder holding its socket is mounted into that container alone. */
export interface AgentEndpoint {
  readonly socketDir: string;
  /** Listens; the socket (and its folder) are handed to `owner` when given. */
  listen(owner: { uid: number; gid: number } | null): Promise<void>;
  on<E extends keyof AgentEndpointEvents>(event: E, listener: (...args: AgentEndpointEvents[E]) => void): unknown;
  close(): Promise<void>;
}

/** Opens an endpoint for one container: its socket folder and the token its agent must present. */
export type AgentEndpointFactory = (socketDir: string, token: string) => AgentEndpoint;
