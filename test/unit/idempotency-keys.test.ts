import Database from "better-sqlite3";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { CallStore } from "../../daemon/store/call-store.js";
import { openDatabase, type Db } from "../../daemon/store/database.js";
import { GroupCommit } from "../../daemon/store/group-commit.js";
import { IDEMPOTENCY_KEY_TTL_MS } from "../../daemon/store/idempotency.js";

let dir: string;
let db: Db;
let calls: CallStore;
const T0 = 1_800_000_000_000;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "gantry-keys-test-"));
  db = openDatabase(join(dir, "gantry.db"));
  calls = new CallStore(db, new GroupCommit(db));
});
afterEach(() => {
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

const call = (id: string, fn = "f", now = T0) => ({ id, app: "a", function: fn, now, args: [id], kwargs: null });
/** What another connection sees: only what was committed. */
function committed(): { calls: string[]; keys: Array<{ function: string; key: string; call_id: string }> } {
  const r = new Database(join(dir, "gantry.db"), { readonly: true });
  try {
    return {
      calls: r.prepare(`SELECT id FROM calls ORDER BY id`).pluck().all() as string[],
      keys: r.prepare(`SELECT function, key, call_id FROM idempotency_keys ORDER BY function, key`).all() as never,
    };
  } finally {
    r.close();
  }
}

describe("CallStore.insertKeyed", () => {
  it("inserts one call for two submits with one key in the same commit; the second gets the first's ID", async () => {
    const [a, b] = await Promise.all([calls.insertKeyed(call("fc-1"), "k"), calls.insertKeyed(call("fc-2"), "k")]);
    expect(a).toBeNull();
    expect(b).toBe("fc-1");
    expect(committed()).toEqual({ calls: ["fc-1"], keys: [{ function: "f", key: "k", call_id: "fc-1" }] });
    expect(await calls.insertKeyed(call("fc-3"), "k")).toBe("fc-1"); // a later commit, too
  });

  it("scopes keys per function", async () => {
    expect(await calls.insertKeyed(call("fc-1", "f"), "k")).toBeNull();
    expect(await calls.insertKeyed(call("fc-2", "g"), "k")).toBeNull();
    expect(committed().calls).toEqual(["fc-1", "fc-2"]);
  });

  it("records the key only with its call: a failed insert leaves no key behind", async () => {
    await calls.insertMany("a", "f", [{ id: "fc-1", args: [], kwargs: null }], T0);
    await expect(calls.insertKeyed(call("fc-1"), "k")).rejects.toThrow(/UNIQUE|PRIMARY KEY/);
    expect(committed().keys).toEqual([]);
    expect(calls.keys.find("a", "f", "k", T0)).toBeNull();
  });

  it("forgets a key after 24 h: the next submit makes a new call and the key names it", async () => {
    await calls.insertKeyed(call("fc-1"), "k");
    expect(calls.keys.find("a", "f", "k", T0 + IDEMPOTENCY_KEY_TTL_MS - 1)).toBe("fc-1");
    expect(calls.keys.find("a", "f", "k", T0 + IDEMPOTENCY_KEY_TTL_MS)).toBeNull();
    expect(await calls.insertKeyed(call("fc-2", "f", T0 + IDEMPOTENCY_KEY_TTL_MS), "k")).toBeNull();
    expect(committed().keys).toEqual([{ function: "f", key: "k", call_id: "fc-2" }]);
  });

  it("prunes keys past 24 h with the expiry sweep, and only those", async () => {
    await calls.insertKeyed(call("fc-1", "f", T0), "old");
    await calls.insertKeyed(call("fc-2", "f", T0 + 3600_000), "newer");
    await calls.expireResults(T0 + IDEMPOTENCY_KEY_TTL_MS);
    expect(committed().keys.map((k) => k.key)).toEqual(["newer"]);
    expect(committed().calls).toEqual(["fc-1", "fc-2"]); // calls stay; only the keys go
  });
});
