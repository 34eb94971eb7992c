import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { CancelledError, FunctionTimeoutError, NotFoundError, OutputExpiredError, RemoteError, TimeoutError } from "../../sdk/errors.js";
import { containersOf, deploy, fixture, startTestDaemon, type TestDaemon } from "../helpers/daemon.js";

let t: TestDaemon;

beforeAll(async () => {
  t = await startTestDaemon();
  await deploy(t, fixture("behaviours.ts"));
});
afterAll(async () => {
  await t?.dispose();
});

const fn = (name: string) => t.client.functions.fromName("behaviours", name);

describe("calls: failures, retries, timeouts, cancellation, expiry", () => {
  it("raises the function's exception with its type, message and remote traceback", async () => {
    const err = await (await fn("boom")).remote("bad input").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RemoteError);
    expect(err).toMatchObject({ remoteType: "ValueError", message: "ValueError: bad input" });
    expect((err as RemoteError).traceback).toMatch(/ValueError: bad input\n\s+at boom/);
  });

  it("retries a failed attempt and keeps the outcome of the attempt that succeeded", async () => {
    const call = await (await fn("flaky")).spawn();
    expect(await call.get({ timeoutMs: 30_000 })).toEqual({ calls: 2 });
    const view = await call.status();
    expect(view).toMatchObject({ status: "succeeded", attempt: 2 });
  });

  it("fails an attempt that overruns its timeout with FunctionTimeoutError and kills its container", async () => {
    const call = await (await fn("hang")).spawn();
    await vi.waitFor(async () => expect((await containersOf(t, "hang")).length).toBe(1), { timeout: 20_000 });
    const err = await call.get({ timeoutMs: 30_000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FunctionTimeoutError);
    expect((err as Error).message).toContain("timeout of 1 s");
    await vi.waitFor(async () => expect(await containersOf(t, "hang")).toEqual([]), { timeout: 20_000 });
  });

  it("get({timeoutMs}) raises TimeoutError while a call is pending", async () => {
    const call = await (await fn("slow")).spawn(2000);
    await expect(call.get({ timeoutMs: 0 })).rejects.toBeInstanceOf(TimeoutError);
    await expect(call.get({ timeoutMs: 200 })).rejects.toThrow(/still (queued|running) after waiting 200 ms/);
    expect(await call.get({ timeoutMs: 30_000 })).toEqual({ slept: 2000 });
  });

  it("cancels a running call, which then never retries", async () => {
    const call = await (await fn("slow")).spawn(60_000);
    await vi.waitFor(async () => expect((await call.status()).status).toBe("running"), { timeout: 20_000 });
    await call.cancel();
    await expect(call.get({ timeoutMs: 0 })).rejects.toBeInstanceOf(CancelledError);
    const view = await call.status();
    expect(view).toMatchObject({ status: "cancelled", attempt: 1 });
  });

  it("drops a result after its resultTtl: OutputExpiredError, status still readable", async () => {
    const call = await (await fn("ephemeral")).spawn("short");
    expect(await call.get({ timeoutMs: 30_000 })).toBe("short");
    await vi.waitFor(async () => expect((await call.status()).expired).toBe(true), { timeout: 10_000, interval: 200 });
    await expect(call.get({ timeoutMs: 0 })).rejects.toBeInstanceOf(OutputExpiredError);
    const res = await fetch(`${t.baseUrl}/result/${call.callId}`);
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({ error: { code: "output_expired" } });
    expect(await call.status()).toMatchObject({ status: "succeeded", expired: true });
  });

  it("answers unknown functions and call IDs with NotFoundError", async () => {
    await expect(t.client.functions.fromName("behaviours", "missing")).rejects.toBeInstanceOf(NotFoundError);
    const call = await t.client.functionCalls.fromId("fc-00000000000000000000000000");
    await expect(call.get({ timeoutMs: 0 })).rejects.toBeInstanceOf(NotFoundError);
    await expect(t.client.functionCalls.fromId("fc-nope")).rejects.toThrow(/not a call ID/);
  });
});

describe("containers", () => {
  it("keeps to maxContainers containers and maxInputs calls per container; calls beyond wait", async () => {
    const limited = await fn("limited");
    const calls = await Promise.all(Array.from({ length: 10 }, () => limited.spawn(400)));
    let most = 0;
    const results: Array<{ container: string; peak: number }> = [];
    for (const c of calls) {
      most = Math.max(most, (await containersOf(t, "limited")).length);
      results.push((await c.get({ timeoutMs: 60_000 })) as { container: string; peak: number });
    }
    expect(new Set(results.map((r) => r.container)).size).toBeLessThanOrEqual(2);
    expect(Math.max(...results.map((r) => r.peak))).toBe(2);
    expect(most).toBeLessThanOrEqual(2);
  });

  it("keeps minContainers warm before any call, and serves the first call from it", async () => {
    await vi.waitFor(async () => expect((await containersOf(t, "warm")).filter((c) => c.State === "running")).toHaveLength(1), { timeout: 20_000 });
    const [before] = await containersOf(t, "warm");
    expect(await (await fn("warm")).remote()).toBe("already warm");
    expect((await containersOf(t, "warm")).map((c) => c.Id)).toEqual([before!.Id]);
  });

  it("stops a container after its scaledownWindow idle", async () => {
    expect(await (await fn("short_lived")).remote("x")).toBe("x");
    expect((await containersOf(t, "short_lived")).length).toBe(1);
    await vi.waitFor(async () => expect(await containersOf(t, "short_lived")).toEqual([]), { timeout: 15_000, interval: 250 });
  });

  it("forwards stdout and stderr as log lines tagged with the call", async () => {
    const call = await (await fn("chatty")).spawn(3);
    expect(await call.get({ timeoutMs: 30_000 })).toBe(3);
    const logFile = join(t.home, "logs", "apps", "behaviours.log");
    await vi.waitFor(() => {
      const text = readFileSync(logFile, "utf8");
      expect(text).toContain(`${call.callId} stdout: line 2`);
      expect(text).toContain(`${call.callId} stderr: to stderr`);
    });
  });

  it("runs containers hardened: no network, non-root, read-only root, no capabilities", async () => {
    await (await fn("echo")).remote(1);
    const [info] = await containersOf(t, "echo");
    const { docker } = await import("../helpers/daemon.js");
    const c = await docker.getContainer(info!.Id).inspect();
    expect(c.HostConfig.NetworkMode).toBe("none");
    expect(c.Config.User).toBe("99000:99000");
    expect(c.HostConfig.ReadonlyRootfs).toBe(true);
    expect(c.HostConfig.CapDrop).toEqual(["ALL"]);
    expect(c.HostConfig.SecurityOpt).toContain("no-new-privileges");
    expect(c.Config.Labels).toMatchObject({ "gantry.app": "behaviours", "gantry.function": "echo", "gantry.daemon": t.daemon.daemonId });
  });

  it("fails queued calls with the import error when the app cannot start in its container", async () => {
    await deploy(t, fixture("fails-in-container.ts"));
    const call = await (await t.client.functions.fromName("fails-in-container", "never")).spawn();
    const err = await call.get({ timeoutMs: 50_000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RemoteError);
    expect((err as RemoteError).remoteType).toBe("TypeError");
    expect((err as Error).message).toContain("cannot initialise: missing model weights");
    expect((err as Error).message).toContain("could start (3 tries)");
  }, 60_000);
});
