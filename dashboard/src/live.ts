/**
 * The daemon's status stream (/v1/events) for the whole page: one WebSocket, reconnected with
 * backoff, fanned out to the views. Paused, it keeps the connection but holds events back; on
 * resume (and after a reconnect) views read the current state again, as DESIGN 1.5 says a client
 * that missed changes should.
 */
import type { GantryEventView } from "./types.js";

export type LiveState = "connecting" | "live" | "paused" | "offline";
type Listener = (e: GantryEventView) => void;

class LiveStream {
  state: LiveState = "connecting";
  /** Events held back while paused. */
  missed = 0;
  private ws: WebSocket | null = null;
  private readonly listeners = new Set<Listener>();
  private readonly stateListeners = new Set<() => void>();
  private readonly resyncListeners = new Set<() => void>();
  private retryMs = 500;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private started = false;

  start(): void {
    if (this.started) return;
    this.started = true;
    this.connect();
  }

  private connect(): void {
    this.retryTimer = null;
    const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/v1/events`;
    const ws = new WebSocket(url);
    this.ws = ws;
    if (this.state !== "paused") this.set("connecting");
    ws.onopen = () => {
      this.retryMs = 500;
      if (this.state !== "paused") this.set("live");
      this.resync(); // anything that happened while we were away
    };
    ws.onmessage = (m) => {
      if (this.state === "paused") {
        this.missed++;
        this.emitState();
        return;
      }
      const e = JSON.parse(m.data as string) as GantryEventView;
      this.listeners.forEach((fn) => fn(e));
    };
    ws.onclose = () => {
      this.ws = null;
      if (this.state !== "paused") this.set("offline");
      this.retryTimer = setTimeout(() => this.connect(), this.retryMs);
      this.retryMs = Math.min(this.retryMs * 2, 10_000);
    };
  }

  pause(): void {
    this.set("paused");
  }

  resume(): void {
    this.missed = 0;
    this.set(this.ws?.readyState === WebSocket.OPEN ? "live" : "offline");
    this.resync();
  }

  /** Reconnects now (after signing in: the first attempt may have been refused). */
  reconnect(): void {
    this.retryMs = 500;
    if (this.ws) this.ws.close();
    else if (this.retryTimer) {
      clearTimeout(this.retryTimer);
      this.connect();
    }
  }

  on(fn: Listener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  onState(fn: () => void): () => void {
    this.stateListeners.add(fn);
    return () => this.stateListeners.delete(fn);
  }

  /** Called when views should read the current state again (resume, reconnect). */
  onResync(fn: () => void): () => void {
    this.resyncListeners.add(fn);
    return () => this.resyncListeners.delete(fn);
  }

  private resync(): void {
    this.resyncListeners.forEach((fn) => fn());
  }

  private set(s: LiveState): void {
    this.state = s;
    this.emitState();
  }

  private emitState(): void {
    this.stateListeners.forEach((fn) => fn());
  }
}

export const live = new LiveStream();
