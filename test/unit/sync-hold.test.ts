/**
 * A lone call's submit holds the log's sync for its result (issue 25), in the dispatcher with a
 * fake launcher over a real SQLite store whose log syncs take SYNC_MS: when the call is expected
 * to end before a sync would, the submit's insert and the call's end go to disk with one sync, and
 * the submit is acknowledged with it; a call expected to take longer does not hold it.
 */
import { fdatasync } from "node:fs";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { resolveFunctionSpec } from "../../protocol/function-spec.js";
import type { Dispatcher } from "../../daemon/service/dispatcher.js";
import { waitFor } from "../helpers/engine.js";
import { fakeDispatcher, tempCallStore, type fakeLauncher } from "../helpers/fake-launcher.js";

/** A slow disk: each sync of the log takes this long. */
const SYNC_MS = 200;
/** How long f's calls take on average, as the pool is told: under half a sync (a hold of 90 ms). */
const CALL_MS = 60;

/** Polls `cond` every event-loop turn (a hold is short: waitFor's 100 ms steps would miss it). */
async function until(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setImmediate(r));
  }
}

describe("Dispatcher: a lone call's submit holds the log sync for its result", () => {
  let store: ReturnType<typeof tempCallStore>;
  let dispatcher: Dispatcher;
  let fake: ReturnType<typeof fakeLauncher>;
  /** Syncs begun, and those not finished yet. */
  let syncs = 0;
  let syncing = 0;

  beforeEach(() => {
    syncs = 0;
    syncing = 0;
    store = tempCallStore("gantry-sync-hold-", {
      datasync: (fd, done) => {
        syncs++;
        syncing++;
        setTimeout(() => fdatasync(fd, (err) => (syncing--, done(err))), SYNC_MS);
      },
    });
  });
  afterEach(async () => {
    await dispatcher.shutdown();
    store.close();
  });

  const submit = () => dispatcher.submit("a", "f", { args: [], kwargs: null });

  /** A ready container of f (one slot) that has run one short call, so both a call's and a sync's length are known. */
  const warmed = async () => {
    ({ dispatcher, fake } = await fakeDispatcher(store.calls, resolveFunctionSpec("f", { maxContainers: 1 }, "node")));
    const first = submit();
    await waitFor("its container", async () => fake.launched.length === 1, 5000);
    const l = fake.launched[0]!;
    l.h.onReady();
    await waitFor("the first call running", async () => l.c.leases.size === 1, 5000);
    const [id] = [...l.c.leases.keys()];
    dispatcher.onOutput(l.pool, l.c, { callId: id!, attempt: 1, ok: true, value: 1 });
    await first;
    await waitFor("the first call's end on disk", async () => store.calls.get(id!)?.status === "succeeded", 5000);
    expect(store.calls.syncMs).toBeGreaterThanOrEqual(SYNC_MS - 1);
    l.pool.callMs = CALL_MS;
    await until(() => syncing === 0, "the log idle"); // a hold is granted only then
    return l;
  };

  it("puts the submit and the call's end on disk with one sync, and acknowledges the submit with it", async () => {
    const l = await warmed();
    const before = syncs;
    let acknowledged = false;
    const submitted = submit().then((id) => ((acknowledged = true), id));
    await until(() => l.c.leases.size === 1, "the call running");
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r)); // the insert is committed meanwhile
    const [id] = [...l.c.leases.keys()];
    expect(syncs).toBe(before); // held: the result is on its way
    dispatcher.onOutput(l.pool, l.c, { callId: id!, attempt: 1, ok: true, value: "done" });
    await expect(submitted).resolves.toBe(id);
    expect(acknowledged).toBe(true);
    expect(syncs).toBe(before + 1); // one sync for both
    expect(store.calls.get(id!)).toMatchObject({ status: "succeeded", resultJson: '"done"' });
  });

  it("does not hold for a call expected to take longer than a sync: the submit is synced at once", async () => {
    const l = await warmed();
    l.pool.callMs = 10 * SYNC_MS;
    const before = syncs;
    const submitted = submit();
    await until(() => syncs === before + 1, "the submit's own sync");
    const id = await submitted; // acknowledged before its call ended
    expect(l.c.leases.has(id)).toBe(true);
    dispatcher.onOutput(l.pool, l.c, { callId: id, attempt: 1, ok: true, value: "done" });
    await waitFor("the call's end, with a sync of its own", async () => syncs >= before + 2 && store.calls.get(id)?.status === "succeeded", 5000);
  });

  it("syncs the submit at the hold's end when the call's result does not come by then", async () => {
    const l = await warmed();
    const before = syncs;
    const t0 = Date.now();
    const submitted = submit();
    await until(() => l.c.leases.size === 1, "the call running");
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r)); // the insert is committed meanwhile
    expect(syncs).toBe(before); // held
    const id = await submitted; // the hold ended with no result: synced alone
    expect(Date.now() - t0).toBeGreaterThanOrEqual(CALL_MS * 1.5 + SYNC_MS - 5); // the hold, then the sync
    expect(syncs).toBe(before + 1);
    expect(l.c.leases.has(id)).toBe(true); // it runs on
    dispatcher.onOutput(l.pool, l.c, { callId: id, attempt: 1, ok: true, value: "late" });
    await until(() => store.calls.get(id)?.status === "succeeded", "the late end stored");
  });
});
