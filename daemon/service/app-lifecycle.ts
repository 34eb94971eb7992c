/**
 * Stopping apps, and ephemeral apps (issue 21): `gantry serve` and Python's `with app.run():`
 * deploy their app as ephemeral and heartbeat while they run. One whose client stops
 * heartbeating (killed, its machine gone) is stopped by the sweep, as `gantry apps stop` would:
 * queued calls cancelled, containers stopped. A plain deploy makes an app permanent again.
 */
import type { Logger } from "../logger.js";
import type { AppStore } from "../store/app-store.js";
import { invalid, notFound } from "./errors.js";

export interface AppLifecycleDeps {
  apps: Pick<AppStore, "listApps" | "setAppState" | "touchApp">;
  dispatcher: { stopApp(app: string): number };
  log: Logger;
  /** How long an ephemeral app lives past its client's last heartbeat. */
  ttlMs: number;
  clock?: () => number;
}

/** How often a client of an ephemeral app heartbeats: four to a TTL, so one lost heartbeat costs nothing. */
export const heartbeatEveryMs = (ttlMs: number): number => Math.max(250, Math.floor(ttlMs / 4));

export class AppLifecycle {
  private readonly now: () => number;
  private sweeper: NodeJS.Timeout | null = null;

  constructor(private readonly d: AppLifecycleDeps) {
    this.now = d.clock ?? Date.now;
  }

  /** When an app deployed now expires: null unless ephemeral. */
  expiryFor(ephemeral: boolean): number | null {
    return ephemeral ? this.now() + this.d.ttlMs : null;
  }

  /** Stops an app: its queued calls are cancelled and its containers stop. Returns how many functions stopped. */
  stop(app: string): number {
    if (!this.d.apps.setAppState(app, "stopped")) throw notFound(`no deployed app named ${app}`);
    return this.d.dispatcher.stopApp(app);
  }

  /** Keeps an ephemeral app for another TTL; refused for one that is not ephemeral (or not deployed). */
  heartbeat(app: string): { app: string; expires_at: string; heartbeat_every_s: number } {
    const record = this.d.apps.listApps().find((a) => a.name === app);
    if (!record) throw notFound(`no deployed app named ${app}`);
    if (record.state !== "deployed") throw invalid(`app ${app} is stopped: deploy it again`);
    const expiresAt = this.now() + this.d.ttlMs;
    if (!this.d.apps.touchApp(app, expiresAt)) throw invalid(`app ${app} is not ephemeral (it was deployed for good): it needs no heartbeat`);
    return { app, expires_at: new Date(expiresAt).toISOString(), heartbeat_every_s: heartbeatEveryMs(this.d.ttlMs) / 1000 };
  }

  /**
   * Starts the sweep (every quarter TTL, at most every 10 s). Ephemeral apps get a whole TTL first:
   * their clients had no daemon to heartbeat to while it was down.
   */
  start(): void {
    for (const a of this.d.apps.listApps()) if (a.state === "deployed" && a.expiresAt !== null) this.d.apps.touchApp(a.name, this.now() + this.d.ttlMs);
    this.sweeper = setInterval(() => this.sweep(), Math.min(10_000, heartbeatEveryMs(this.d.ttlMs)));
    this.sweeper.unref();
  }

  close(): void {
    if (this.sweeper) clearInterval(this.sweeper);
  }

  /** Stops the ephemeral apps whose client has not heartbeated within the TTL. */
  sweep(): string[] {
    const now = this.now();
    const expired = this.d.apps.listApps().filter((a) => a.state === "deployed" && a.expiresAt !== null && a.expiresAt < now);
    for (const a of expired) {
      this.stop(a.name);
      this.d.log.warn("ephemeral app stopped: its client stopped heartbeating", { app: a.name, silent_s: Math.round((now - a.expiresAt! + this.d.ttlMs) / 1000) });
    }
    return expired.map((a) => a.name);
  }
}
