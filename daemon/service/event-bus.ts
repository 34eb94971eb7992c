import { EventEmitter } from "node:events";
import type { CallStatus } from "../core/call-state.js";

/**
 * A call's status changed; sent after the change is committed. (DESIGN 1.5) A call that ended
 * before its running mark was written gets its "running" step just before its end. Each call's
 * steps come in order: queued, running, then queued again (a retry) or its end.
 */
export interface CallStatusEvent {
  type: "call.status";
  call_id: string;
  app: string;
  function: string;
  status: CallStatus;
  attempt: number;
  ts: string;
}

export interface ContainerEvent {
  type: "container.status";
  container_id: string;
  app: string;
  function: string;
  status: "starting" | "ready" | "stopping" | "stopped" | "failed";
  detail?: string;
  ts: string;
}

export interface LogEvent {
  type: "log";
  app: string;
  function: string;
  container_id: string;
  call_id?: string;
  stream: "stdout" | "stderr";
  line: string;
  ts: string;
}

/** A generator call's item was stored (its value is read from GET /v1/calls/{id}/items). */
export interface CallItemEvent {
  type: "call.item";
  call_id: string;
  app: string;
  function: string;
  /** The item's index, from 0. */
  index: number;
  ts: string;
}

export type GantryEvent = CallStatusEvent | ContainerEvent | LogEvent | CallItemEvent;

/** In-process fan-out of committed changes: waiters, status streams, log files. */
export class EventBus extends EventEmitter<{ event: [GantryEvent] }> {
  constructor() {
    super();
    this.setMaxListeners(0);
  }

  publish(e: GantryEvent): void {
    this.emit("event", e);
  }
}
