/**
 * Ephemeral apps (issue 21) in the service layer, over a real SQLite file and a fake clock: an app
 * whose client stops heartbeating is stopped by the sweep; a heartbeat keeps it; a plain deploy
 * makes it permanent; a restart gives its client a whole TTL to come back.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { silentLogger } from "../../daemon/logger.js";
import { AppStore } from "../../daemon/store/app-store.js";
import { openDatabase, type Db } from "../../daemon/store/database.js";
import { AppLifecycle, heartbeatEveryMs } from "../../daemon/service/app-lifecycle.js";
import { ServiceError } from "../../daemon/service/errors.js";

let dir: string;
let db: Db;
let apps: AppStore;
let now = 1_000_000;
let stopped: string[];
const TTL = 60_000;
const lifecycle = () => new AppLifecycle({ apps, dispatcher: { stopApp: (a) => (stopped.push(a), 1) }, log: silentLogger, ttlMs: TTL, clock: () => now });
const deploy = (name: string, expiresAt: number | null) => apps.saveDeployment({ name, state: "deployed", bundleHash: "h", source: null, deployedAt: now, expiresAt }, []);
const state = (name: string) => apps.listApps().find((a) => a.name === name)?.state;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "gantry-lifecycle-"));
  db = openDatabase(join(dir, "gantry.db"));
  apps = new AppStore(db);
  stopped = [];
});
afterEach(() => {
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("ephemeral apps", () => {
  it("are stopped by the sweep once their client stops heartbeating, and kept while it does", () => {
    const l = lifecycle();
    deploy("served", l.expiryFor(true));
    deploy("kept", l.expiryFor(false));
    now += TTL - 1;
    expect(l.sweep()).toEqual([]);
    expect(l.heartbeat("served")).toEqual({ app: "served", expires_at: new Date(now + TTL).toISOString(), heartbeat_every_s: heartbeatEveryMs(TTL) / 1000 });
    now += TTL - 1;
    expect(l.sweep()).toEqual([]);
    now += 2;
    expect(l.sweep()).toEqual(["served"]);
    expect(stopped).toEqual(["served"]);
    expect(state("served")).toBe("stopped");
    expect(state("kept")).toBe("deployed");
    now += 10 * TTL;
    expect(l.sweep()).toEqual([]); // stopped once; a permanent app never
  });

  it("refuse a heartbeat for an app that is permanent, stopped or unknown, naming why", () => {
    const l = lifecycle();
    deploy("kept", null);
    const message = (f: () => unknown) => {
      try {
        f();
      } catch (err) {
        return `${(err as ServiceError).code}: ${(err as Error).message}`;
      }
      return "no error";
    };
    expect(message(() => l.heartbeat("kept"))).toBe("invalid_argument: app kept is not ephemeral (it was deployed for good): it needs no heartbeat");
    expect(message(() => l.heartbeat("nope"))).toBe("not_found: no deployed app named nope");
    deploy("gone", l.expiryFor(true));
    l.stop("gone");
    expect(message(() => l.heartbeat("gone"))).toBe("invalid_argument: app gone is stopped: deploy it again");
  });

  it("become permanent when deployed plainly, and get a whole TTL after a daemon restart", () => {
    const l = lifecycle();
    deploy("a", l.expiryFor(true));
    deploy("a", l.expiryFor(false)); // gantry deploy over it
    now += 5 * TTL;
    expect(l.sweep()).toEqual([]);
    deploy("b", l.expiryFor(true));
    now += 2 * TTL; // the daemon was down this long
    const restarted = lifecycle();
    restarted.start();
    restarted.close();
    expect(state("b")).toBe("deployed");
    now += TTL + 1;
    expect(restarted.sweep()).toEqual(["b"]);
  });
});
