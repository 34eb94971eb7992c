/**
 * A full disk under GANTRY_HOME (issue 11): the daemon stays up, submits answer 507 disk_full
 * naming the folder, nothing acknowledged is lost (a result finished meanwhile waits, then is
 * stored), app log lines that cannot be written are dropped, and everything resumes once there is
 * room, without a restart. GANTRY_HOME is a small tmpfs filled up, then grown.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { CallView } from "../../protocol/api.js";
import { deploy, fixture, startTestDaemon, type TestDaemon } from "../helpers/daemon.js";
import { mountSmallDisk, type SmallDisk } from "../helpers/tmpfs.js";

let disk: SmallDisk;
let home: string;
let t: TestDaemon;

beforeAll(async () => {
  disk = mountSmallDisk("gt-full-", 24);
  home = disk.dir;
  t = await startTestDaemon({ home });
  await deploy(t, fixture("faults.ts"));
}, 120_000);
afterAll(async () => {
  await t?.dispose();
  disk?.remove();
});

interface Health {
  ok: boolean;
  disk_full: { folder: string; held_writes: number } | null;
}
const health = async () => (await (await fetch(`${t.baseUrl}/v1/health`)).json()) as Health;

const submit = (body: unknown) =>
  fetch(`${t.baseUrl}/v1/apps/faults/functions/talk/calls`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });

describe("a full disk under GANTRY_HOME", () => {
  it("refuses submits with 507 naming the folder, keeps the daemon up and loses nothing; it resumes once there is room", { timeout: 120_000 }, async () => {
    // Acknowledged before the disk fills: it finishes (and logs) while the disk is full.
    const talk = await (await t.client.functions.fromName("faults", "talk")).spawn({ ms: 1500, lines: 300 });
    await vi.waitFor(async () => expect((await talk.status()).status).toBe("running"), { timeout: 30_000, interval: 50 });
    disk.fill();

    // SQLite may still reuse room in its write-ahead log for a while: submits fail once it needs more.
    const pad = "x".repeat(256 * 1024);
    let answer: Response | null = null;
    for (let i = 0; i < 200 && answer === null; i++) {
      const res = await submit({ args: [{ ms: 0, lines: 0, pad }] });
      if (res.status === 507) answer = res;
      else expect(res.status).toBe(202);
    }
    expect(answer, "a submit was refused with 507 once the disk was full").not.toBeNull();
    const body = (await answer!.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe("disk_full");
    expect(body.error.message).toContain(home);

    // The daemon is up; the call that finished meanwhile is not lost: its result waits for room.
    await vi.waitFor(
      async () => expect(await health()).toMatchObject({ ok: true, disk_full: { folder: home, held_writes: expect.any(Number) } }),
      { timeout: 20_000, interval: 100 },
    );
    await vi.waitFor(async () => expect((await health()).disk_full?.held_writes).toBeGreaterThan(0), {
      timeout: 20_000,
      interval: 100,
    });
    expect((await t.client.transport.json<CallView>("GET", `/v1/calls/${talk.callId}`)).status).toBe("running");

    // Room again (the tmpfs grows): the held result is stored, submits are taken, without a restart.
    disk.grow(64);
    expect(await talk.get({ timeoutMs: 60_000 })).toEqual({ talked: 300 });
    await vi.waitFor(async () => expect((await health()).disk_full).toBeNull(), { timeout: 30_000 });
    const again = await submit({ args: [{ ms: 0, lines: 1 }] });
    expect(again.status).toBe(202);
    const { call_id } = (await again.json()) as { call_id: string };
    expect(await (await t.client.functionCalls.fromId(call_id)).get({ timeoutMs: 60_000 })).toEqual({ talked: 1 });
  });
});
