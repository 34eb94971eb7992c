/**
 * Schedules (issue 21) on the real daemon and Docker engine: a Period runs several times, each run
 * a call marked scheduled; a redeploy without it stops it; a Cron is accepted and its next run
 * shown; a schedule on a function that needs arguments is refused; TypeScript schedules run.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gantry } from "../helpers/cli.js";
import { deploy, fixture, pyFixture, startTestDaemon, type TestDaemon } from "../helpers/daemon.js";
import { waitFor } from "../helpers/engine.js";

let t: TestDaemon;

beforeAll(async () => {
  t = await startTestDaemon();
  await deploy(t, pyFixture("schedules/py_sched.py"));
}, 300_000);
afterAll(async () => {
  await t?.dispose();
});

interface CallRow {
  call_id: string;
  status: string;
}
const callsOf = async (app: string, fn: string) => (await t.client.transport.json<{ calls: CallRow[] }>("GET", `/v1/calls?app=${app}&function=${fn}&limit=200`)).calls;

describe("schedules", () => {
  it("run a Period function again and again, each run a call marked scheduled; apps ls shows the schedule and its next run", async () => {
    await waitFor("three scheduled runs of tick", async () => (await callsOf("py-sched", "tick")).filter((c) => c.status === "succeeded").length >= 3, 60_000);
    const [latest] = await callsOf("py-sched", "tick");
    const view = await t.client.transport.json<{ input: { scheduled?: boolean } }>("GET", `/v1/calls/${latest!.call_id}`);
    expect(view.input.scheduled).toBe(true);
    const ls = await gantry(t.home, ["apps", "ls", "--json"]);
    const app = (JSON.parse(ls.stdout) as Array<{ name: string; schedules: Array<{ function: string; schedule: string; next_run_at: string }> }>).find((a) => a.name === "py-sched")!;
    expect(app.schedules.map((s) => [s.function, s.schedule]).sort()).toEqual([["morning", "cron 0 9 * * 1-5 (Europe/Paris)"], ["tick", "every 1 s"]]);
    expect(app.schedules.every((s) => Date.parse(s.next_run_at) > Date.now() - 5000)).toBe(true);
    const text = await gantry(t.home, ["apps", "ls"]);
    expect(text.stdout).toMatch(/py-sched\.tick\s+every 1 s\s+\d/);
  }, 90_000);

  it("show a Cron's next run in its time zone", async () => {
    const app = await t.client.transport.json<{ functions: Array<{ name: string; schedule: string | null; live: { next_run_at: string | null } }> }>("GET", "/v1/apps/py-sched");
    const morning = app.functions.find((f) => f.name === "morning")!;
    expect(morning.schedule).toBe("cron 0 9 * * 1-5 (Europe/Paris)");
    const next = new Date(morning.live.next_run_at!);
    expect(next.getTime()).toBeGreaterThan(Date.now());
    expect(new Intl.DateTimeFormat("en-GB", { timeZone: "Europe/Paris", hour: "2-digit", minute: "2-digit", weekday: "short" }).format(next)).toMatch(/^(Mon|Tue|Wed|Thu|Fri) 09:00$/);
  });

  it("stop when a redeploy drops the schedule; TypeScript schedules run too", async () => {
    await deploy(t, pyFixture("schedules/py_sched_dropped.py"));
    const app = await t.client.transport.json<{ functions: Array<{ name: string; schedule: string | null; live: { next_run_at: string | null } }> }>("GET", "/v1/apps/py-sched");
    expect(app.functions.find((f) => f.name === "tick")).toMatchObject({ schedule: null, live: { next_run_at: null } });
    const ticks = (await callsOf("py-sched", "tick")).length;
    await deploy(t, fixture("schedules.ts"));
    // Two TypeScript runs, a second apart, mean the scheduler went on meanwhile: tick had its chances and took none.
    await waitFor("two scheduled runs of beat", async () => (await callsOf("ts-sched", "beat")).filter((c) => c.status === "succeeded").length >= 2, 60_000);
    const after = (await callsOf("py-sched", "tick")).length;
    expect(after - ticks).toBeLessThanOrEqual(1); // at most the run that was already under way
  }, 120_000);

  it("refuse a schedule on a function that needs arguments, and a cron expression that does not parse", async () => {
    const bad = await gantry(t.home, ["deploy", pyFixture("schedules/py_sched_bad.py")]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain("function needs has a schedule, so it is called with no arguments, but it needs path");
    const res = await t.client.transport.raw("POST", "/v1/apps/deploy", {
      app: "cron-bad",
      functions: [{ name: "f", options: { schedule: { cron: "61 * * * *" } } }],
      bundle: "export default {}",
    });
    expect(JSON.stringify(res.body)).toContain('function f: schedule: cron expression \\"61 * * * *\\" is invalid');
  });
});
