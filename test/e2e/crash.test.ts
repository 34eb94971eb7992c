import Docker from "dockerode";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { isAlive } from "../../daemon/lock.js";
import { GantryClient } from "../../sdk/client.js";
import { gantry } from "../helpers/cli.js";
import { fixture } from "../helpers/daemon.js";

const docker = new Docker({ socketPath: "/var/run/docker.sock" });
let home: string;
const g = (...args: string[]) => gantry(home, args);

beforeAll(() => {
  home = mkdtempSync(join(tmpdir(), "gc-"));
});
afterAll(async () => {
  await g("daemon", "stop");
  rmSync(home, { recursive: true, force: true });
});

describe("a daemon killed mid-call", () => {
  it("re-runs the call after restart (at least once) and removes the dead daemon's containers", async () => {
    expect((await g("daemon", "start", "--container-network", "none")).code).toBe(0);
    const file = join(home, "crashy.ts");
    writeFileSync(
      file,
      `import { App } from "gantry";\nconst app = new App("crashy");\n` +
        `export const work = app.function({ retries: 2 }, async function work(ms: number) { await new Promise((r) => setTimeout(r, ms)); return "done"; });\n`,
    );
    expect((await g("deploy", file)).code).toBe(0);
    const id = (await g("spawn", "crashy", "work", "1500")).stdout.trim();
    await vi.waitFor(async () => expect(JSON.parse((await g("calls", "show", id, "--json")).stdout)).toMatchObject({ status: "running" }), {
      timeout: 30_000,
      interval: 200,
    });
    const { pid, daemon_id } = JSON.parse((await g("daemon", "status", "--json")).stdout) as { pid: number; daemon_id: string };
    const label = { label: [`gantry.daemon=${daemon_id}`, "gantry.app=crashy"] };
    const before = await docker.listContainers({ all: true, filters: label });
    expect(before.length).toBe(1);

    process.kill(pid, "SIGKILL");
    await vi.waitFor(() => expect(isAlive(pid)).toBe(false), { timeout: 10_000 });
    expect((await g("get", id)).code).toBe(3); // no daemon

    expect((await g("daemon", "start", "--container-network", "none")).code).toBe(0);
    const got = await g("get", id, "--timeout", "60");
    expect(got.stdout.trim()).toBe('"done"');
    expect(JSON.parse((await g("calls", "show", id, "--json")).stdout)).toMatchObject({ status: "succeeded", attempt: 2 });
    const after = await docker.listContainers({ all: true, filters: label });
    expect(after.map((c) => c.Id)).not.toContain(before[0]!.Id);
    expect((await g("daemon", "stop")).code).toBe(0);
  });

  it("loses no acknowledged call of batches in flight when it is killed", { timeout: 120_000 }, async () => {
    expect((await g("daemon", "start", "--container-network", "none")).code).toBe(0);
    expect((await g("deploy", fixture("batches.ts"))).code).toBe(0);
    const { pid } = JSON.parse((await g("daemon", "status", "--json")).stdout) as { pid: number };
    const client = new GantryClient({ socketPath: join(home, "gantry.sock") });
    const acknowledged: string[] = [];
    let killed = false;
    // Four submitters send 1,000-call batches until the daemon dies under them.
    const submitters = Array.from({ length: 4 }, async (_, s) => {
      for (let n = 0; !killed; n++) {
        try {
          const res = await client.transport.json<{ call_ids: string[] }>("POST", "/v1/apps/batches/functions/echo/calls/batch", {
            calls: Array.from({ length: 1000 }, (_, i) => ({ args: [`${s}-${n}-${i}`] })),
          });
          acknowledged.push(...res.call_ids);
        } catch {
          return; // the daemon is gone: this batch was not acknowledged
        }
      }
    });
    await vi.waitFor(() => expect(acknowledged.length).toBeGreaterThanOrEqual(8000), { timeout: 60_000, interval: 10 });
    process.kill(pid, "SIGKILL");
    killed = true;
    await Promise.all(submitters);
    client.close();
    await vi.waitFor(() => expect(isAlive(pid)).toBe(false), { timeout: 10_000 });

    expect((await g("daemon", "start", "--container-network", "none")).code).toBe(0);
    const again = new GantryClient({ socketPath: join(home, "gantry.sock") });
    const echo = await again.functions.fromName("batches", "echo");
    expect(echo.functionName).toBe("echo");
    let finished = 0;
    for (let i = 0; i < acknowledged.length; i += 10_000) {
      const ids = acknowledged.slice(i, i + 10_000);
      await again.transport.stream("POST", "/v1/calls/results", { call_ids: ids, wait: 60 }, (line) => {
        expect(line).toMatchObject({ status: "succeeded" });
        finished++;
      });
    }
    again.close();
    expect(finished).toBe(acknowledged.length);
  });
});
