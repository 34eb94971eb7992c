/**
 * GPU allocation and passthrough against the real Docker engine, with two stand-in A100s:
 * test/fake-gpu's nvidia-smi describes them and its device-nodes script makes /dev/nvidia0..1
 * (with /dev/null's numbers), so containers really get the nodes and `docker inspect` shows them.
 */
import { execFileSync } from "node:child_process";
import { realpathSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { GpuStatusView, GpuView, GpuWaitView } from "../../protocol/api.js";
import { RemoteError } from "../../sdk/errors.js";
import { containersOf, deploy, docker, fixture, startTestDaemon, type TestDaemon } from "../helpers/daemon.js";

const FAKE = join(import.meta.dirname, "..", "fake-gpu");
const FAKE_SMI = join(FAKE, "nvidia-smi");
const UUID = ["GPU-00000000-1111-2222-3333-000000000000", "GPU-00000001-1111-2222-3333-000000000001"];
const CONTROL_NODES = ["/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools"];

type Gpus = GpuStatusView & { gpus: GpuView[]; waiting: GpuWaitView[] };
interface Seen {
  container: string;
  visible: string;
  devices: string[];
  ldLibraryPath: string | null;
  path: string;
  smi: boolean;
}

let t: TestDaemon;
const gpus = () => t.client.transport.json<Gpus>("GET", "/v1/gpus");
const holders = async () => (await gpus()).gpus.map((g) => g.holder?.container_id ?? null);
const fn = (name: string, app = "gpus") => t.client.functions.fromName(app, name);
const status = async (id: string) => (await (await t.client.functionCalls.fromId(id)).status()).status;

beforeAll(async () => {
  execFileSync(join(FAKE, "device-nodes"), ["add", "2"]);
  t = await startTestDaemon({ nvidiaSmi: FAKE_SMI });
  await deploy(t, fixture("gpus.ts"));
});
afterAll(async () => {
  await t?.dispose();
  execFileSync(join(FAKE, "device-nodes"), ["remove"]);
});

describe("GPUs", () => {
  it("lists the machine's GPUs, free, and how containers get them", async () => {
    const g = await gpus();
    expect(g).toMatchObject({ count: 2, passthrough: "device-nodes", held: 0, problem: null, waiting: [] });
    expect(g.gpus).toEqual([
      { index: 0, uuid: UUID[0], name: "NVIDIA A100-SXM4-80GB", memory_mib: 81920, device: "/dev/nvidia0", holder: null, node: null },
      { index: 1, uuid: UUID[1], name: "NVIDIA A100-SXM4-80GB", memory_mib: 81920, device: "/dev/nvidia1", holder: null, node: null },
    ]);
    expect(await t.client.transport.json("GET", "/v1/apps/gpus/functions/fallback")).toMatchObject({ gpu: ["H100", "a100-80gb"] });
  });

  it("gives each container a GPU of its own; a third call waits until one is free", async () => {
    const f = await fn("any_gpu");
    const ids = await Promise.all([0, 1, 2].map(async () => (await f.spawn(120_000)).callId));
    let running: string[] = [];
    let queued: string[] = [];
    await vi.waitFor(
      async () => {
        const s = await Promise.all(ids.map(status));
        running = ids.filter((_, i) => s[i] === "running");
        queued = ids.filter((_, i) => s[i] === "queued");
        expect([running.length, queued.length]).toEqual([2, 1]);
      },
      { timeout: 30_000, interval: 100 },
    );
    const g = await gpus();
    const held = g.gpus.map((x) => x.holder);
    expect(held.every((h) => h?.function === "any_gpu")).toBe(true);
    expect(new Set(held.map((h) => h!.container_id)).size).toBe(2);
    expect(g.waiting).toEqual([{ app: "gpus", function: "any_gpu", gpu: ["any"], queued: 1, since: expect.any(String) }]);

    // What Docker gave each container: its own GPU's node, the control nodes, the driver's files, the other GPU hidden.
    const inspected = await Promise.all((await containersOf(t, "any_gpu")).map((c) => docker.getContainer(c.Id).inspect()));
    expect(inspected).toHaveLength(2);
    const own = inspected.map((c) => {
      const devices = ((c.HostConfig.Devices ?? []) as Array<{ PathOnHost: string }>).map((d) => d.PathOnHost);
      const gpuNode = devices.find((d: string) => /^\/dev\/nvidia\d+$/.test(d))!;
      const i = Number(gpuNode.slice("/dev/nvidia".length));
      expect(devices).toEqual([gpuNode, ...CONTROL_NODES]);
      expect(c.Config.Env).toContain(`NVIDIA_VISIBLE_DEVICES=${UUID[i]}`);
      expect(c.HostConfig.MaskedPaths).toContain(`/proc/driver/nvidia/gpus/0000:${i === 0 ? "19" : "18"}:00.0`);
      expect(c.HostConfig.Binds).toContain(`${realpathSync(FAKE_SMI)}:/usr/local/nvidia/bin/nvidia-smi:ro`);
      expect(c.Config.User).toBe("99000:99000");
      expect(c.HostConfig).toMatchObject({ ReadonlyRootfs: true, CapDrop: ["ALL"], SecurityOpt: ["no-new-privileges"], NetworkMode: "none" });
      return i;
    });
    expect(own.sort()).toEqual([0, 1]);

    // Cancelling a running call stops its container; its GPU goes to the waiting call.
    await (await t.client.functionCalls.fromId(running[0]!)).cancel();
    await vi.waitFor(async () => expect(await status(queued[0]!)).toBe("running"), { timeout: 30_000, interval: 100 });
    expect((await gpus()).waiting).toEqual([]);
    for (const id of [running[1]!, queued[0]!]) await (await t.client.functionCalls.fromId(id)).cancel();
    await vi.waitFor(async () => expect(await holders()).toEqual([null, null]), { timeout: 30_000, interval: 200 });
  });

  it("inside the container the function sees exactly its GPU, the driver's libraries and nvidia-smi", async () => {
    const seen = (await (await fn("any_gpu")).remote(0)) as Seen;
    const i = UUID.indexOf(seen.visible);
    expect(i).toBeGreaterThanOrEqual(0);
    expect(seen.devices).toEqual(["nvidia-uvm", "nvidia-uvm-tools", `nvidia${i}`, "nvidiactl"]);
    expect(seen.ldLibraryPath).toBe("/usr/local/nvidia/lib64");
    expect(seen.path.startsWith("/usr/local/nvidia/bin:")).toBe(true);
    expect(seen.smi).toBe(true);
  });

  it("gives the GPU back when the container scales down", async () => {
    await vi.waitFor(async () => expect(await holders()).toEqual([null, null]), { timeout: 30_000, interval: 250 });
    expect(await containersOf(t, "any_gpu")).toEqual([]);
  });

  it("gives a CPU function no GPU at all", async () => {
    const seen = (await (await fn("cpu")).remote()) as Seen;
    expect(seen).toMatchObject({ visible: "void", devices: [], ldLibraryPath: null, smi: false });
    const [c] = await containersOf(t, "cpu");
    const info = await docker.getContainer(c!.Id).inspect();
    expect(info.HostConfig.Devices ?? []).toEqual([]);
    expect(await holders()).toEqual([null, null]);
  });

  it("takes the first fallback that fits", async () => {
    const seen = (await (await fn("fallback")).remote()) as Seen;
    expect(UUID).toContain(seen.visible);
  });

  it("an idle GPU container gives its GPU to another function's waiting call; A100:2 gets both", async () => {
    const holder = (await (await fn("idle_holder")).remote()) as Seen;
    expect(UUID).toContain(holder.visible);
    const seen = (await (await fn("pair")).remote()) as Seen;
    expect(seen.visible.split(",").sort()).toEqual(UUID);
    expect(seen.devices).toEqual(["nvidia-uvm", "nvidia-uvm-tools", "nvidia0", "nvidia1", "nvidiactl"]);
    await vi.waitFor(async () => expect(await containersOf(t, "idle_holder")).toEqual([]), { timeout: 20_000 });
  });

  it("keeps the GPU of a container held warm by minContainers; calls wait for it and show as waiting", async () => {
    await deploy(t, fixture("gpu-reserved.ts"));
    try {
      await vi.waitFor(
        async () => {
          expect((await gpus()).gpus.some((g) => g.holder?.function === "reserved")).toBe(true);
          expect((await containersOf(t, "reserved")).map((c) => c.State)).toEqual(["running"]);
        },
        { timeout: 30_000 },
      );
      const call = await (await fn("pair")).spawn();
      await vi.waitFor(async () => expect((await gpus()).waiting).toMatchObject([{ function: "pair", gpu: ["A100:2"], queued: 1 }]), { timeout: 30_000 });
      expect(await status(call.callId)).toBe("queued");
      expect(await containersOf(t, "reserved")).toHaveLength(1);
      await t.client.transport.json("POST", "/v1/apps/gpu-reserved/stop");
      expect(((await call.get({ timeoutMs: 60_000 })) as Seen).visible.split(",").sort()).toEqual(UUID);
    } finally {
      await t.client.transport.json("POST", "/v1/apps/gpu-reserved/stop"); // the tests after this one need both GPUs
    }
  });

  it("gives the GPU of a container killed under a running call back", async () => {
    const call = await (await fn("any_gpu")).spawn(120_000);
    await vi.waitFor(async () => expect(await status(call.callId)).toBe("running"), { timeout: 30_000 });
    const [c] = (await containersOf(t, "any_gpu")).filter((x) => x.State === "running");
    const ct = c!.Labels["gantry.container"];
    expect(await holders()).toContain(ct);
    await docker.getContainer(c!.Id).kill();
    await vi.waitFor(async () => expect(await holders()).not.toContain(ct), { timeout: 20_000 });
    // A container lost under a call re-runs it (attempt 2) in a new container, with a GPU of its own.
    await vi.waitFor(async () => expect(await call.status()).toMatchObject({ status: "running", attempt: 2 }), { timeout: 30_000 });
    await call.cancel();
    await vi.waitFor(async () => expect(await holders()).toEqual([null, null]), { timeout: 20_000 });
    expect(((await (await fn("pair")).remote()) as Seen).visible.split(",").sort()).toEqual(UUID);
  });

  it("gives every GPU back across a daemon restart: none leaked, none given twice", async () => {
    const call = await (await fn("any_gpu")).spawn(120_000);
    await vi.waitFor(async () => expect(await status(call.callId)).toBe("running"), { timeout: 30_000 });
    const before = (await containersOf(t, "any_gpu")).map((c) => c.Id);
    expect(before).toHaveLength(1);
    await t.stop({ graceMs: 0 });
    await t.restart();
    expect((await containersOf(t, "any_gpu")).map((c) => c.Id)).not.toContain(before[0]);
    // The lost call runs again with one GPU (attempt 2); once it is cancelled, both are free.
    const again = await t.client.functionCalls.fromId(call.callId);
    await vi.waitFor(async () => expect(await again.status()).toMatchObject({ status: "running", attempt: 2 }), { timeout: 30_000 });
    expect((await holders()).filter((h) => h !== null)).toHaveLength(1);
    await again.cancel();
    await vi.waitFor(async () => expect(await holders()).toEqual([null, null]), { timeout: 20_000 });
    expect(((await (await fn("pair")).remote()) as Seen).visible.split(",").sort()).toEqual(UUID);
  });

  it("refuses at deploy a request this machine can never meet, naming it and the GPUs it has", async () => {
    await expect(deploy(t, fixture("gpu-impossible.ts"))).rejects.toThrow(
      'function train asks for gpu \\"H100:2\\", which no GPU of this machine can meet: it has 2 GPUs: #0 NVIDIA A100-SXM4-80GB (80 GiB), #1 NVIDIA A100-SXM4-80GB (80 GiB)',
    );
  });

  it("fails the calls of a function whose GPUs the machine no longer has, instead of queueing them forever", async () => {
    const oneGpu = join(t.home, "one-gpu-smi");
    writeFileSync(oneGpu, `#!/bin/sh\nFAKE_GPUS="NVIDIA A100-SXM4-80GB:81920" exec ${FAKE_SMI} "$@"\n`, { mode: 0o755 });
    await t.restart({ nvidiaSmi: oneGpu });
    expect((await gpus()).count).toBe(1);
    const err = await (await fn("pair")).remote().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RemoteError);
    expect(err).toMatchObject({ remoteType: "GpuUnavailableError" });
    expect((err as Error).message).toContain('function gpus.pair asks for gpu "A100:2", which no GPU of this machine can meet: it has 1 GPU: #0');
    expect(((await (await fn("any_gpu")).remote(0)) as Seen).visible).toBe(UUID[0]);
  });
});
