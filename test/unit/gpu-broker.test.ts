import { describe, expect, it } from "vitest";
import { parseGpuRequest, type Gpu } from "../../daemon/core/gpu.js";
import type { HostGpus } from "../../daemon/host/nvidia.js";
import { silentLogger } from "../../daemon/logger.js";
import { GpuBroker, type GpuPassthroughSetting } from "../../daemon/service/gpu-broker.js";
import { ServiceError } from "../../daemon/service/errors.js";

const gpu = (index: number, minor = index): Gpu => ({
  index,
  uuid: `GPU-${index}`,
  name: "NVIDIA A100-SXM4-80GB",
  memoryMiB: 81920,
  busId: `00000000:${(0x18 + index).toString(16).toUpperCase()}:00.0`,
  minor,
});

const host = (gpus: Gpu[]): HostGpus => ({
  gpus,
  problem: gpus.length ? null : "nvidia-smi is not on PATH; is the NVIDIA driver installed?",
  driverVersion: "580.0",
  controlNodes: ["/dev/nvidiactl", "/dev/nvidia-uvm"],
  libraries: [{ name: "libcuda.so.1", path: "/usr/lib/x86_64-linux-gnu/libcuda.so.580.0" }],
  smiPath: "/usr/bin/nvidia-smi",
  devDir: "/dev",
});

async function broker(gpus: Gpu[], opts: { runtimes?: string[]; passthrough?: GpuPassthroughSetting } = {}): Promise<GpuBroker> {
  let current = host(gpus);
  const b = new GpuBroker({
    host: { read: async () => current },
    runtime: { engineInfo: async () => ({ version: "20.10", runtimes: opts.runtimes ?? ["runc"], name: "test", cpus: 2, memoryBytes: 2 ** 34 }) },
    passthrough: opts.passthrough ?? "auto",
    log: silentLogger,
  });
  await b.refresh();
  Object.assign(b, { setHost: (g: Gpu[]) => (current = host(g)) });
  return b;
}

const owner = (containerId: string) => ({ app: "a", function: "f", containerId });

describe("GpuBroker", () => {
  it("chooses device requests when the engine has NVIDIA's runtime, device nodes otherwise, none without GPUs", async () => {
    expect((await broker([gpu(0)], { runtimes: ["runc", "nvidia"] })).status().passthrough).toBe("device-requests");
    expect((await broker([gpu(0)])).status().passthrough).toBe("device-nodes");
    expect((await broker([gpu(0)], { runtimes: ["nvidia"], passthrough: "device-nodes" })).status().passthrough).toBe("device-nodes");
    expect((await broker([])).status()).toMatchObject({ count: 0, passthrough: null, problem: expect.stringContaining("nvidia-smi") });
  });

  it("hands out whole GPUs, shows who holds them, and takes them back", async () => {
    const b = await broker([gpu(0), gpu(1)]);
    let released = 0;
    b.onRelease(() => released++);
    expect(b.acquire(owner("ct-1"), [parseGpuRequest("any")])?.map((g) => g.uuid)).toEqual(["GPU-0"]);
    expect(b.acquire(owner("ct-2"), [parseGpuRequest("any")])?.map((g) => g.uuid)).toEqual(["GPU-1"]);
    expect(b.acquire(owner("ct-3"), [parseGpuRequest("any")])).toBeNull();
    expect(b.view().map((g) => g.holder?.container_id)).toEqual(["ct-1", "ct-2"]);
    b.release("ct-1");
    b.release("ct-1"); // twice changes nothing
    b.release("ct-no-gpus");
    expect(released).toBe(1);
    expect(b.view()[0]!.holder).toBeNull();
    expect(b.status().held).toBe(1);
  });

  it("refuses at check a request this machine can never meet, naming it and the GPUs it has", async () => {
    const b = await broker([gpu(0), gpu(1)]);
    await expect(b.check("embed", ["A100:2", "any"])).resolves.toBeUndefined();
    const err = await b.check("train", ["H100:2"]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ServiceError);
    expect((err as ServiceError).code).toBe("gpu_unavailable");
    expect((err as Error).message).toBe(
      'function train asks for gpu "H100:2", which no GPU of this machine can meet: it has 2 GPUs: #0 NVIDIA A100-SXM4-80GB (80 GiB), #1 NVIDIA A100-SXM4-80GB (80 GiB)',
    );
  });

  it("reads the inventory again at check before refusing (a GPU may have come since the start)", async () => {
    const b = (await broker([])) as GpuBroker & { setHost(g: Gpu[]): void };
    b.setHost([gpu(0)]);
    await expect(b.check("late", ["any"])).resolves.toBeUndefined();
    expect(b.status().count).toBe(1);
  });

  it("device nodes: the container's own node by minor, control nodes, libraries and nvidia-smi, other GPUs hidden", async () => {
    const b = await broker([gpu(0, 4), gpu(1, 5)]);
    const [mine] = b.acquire(owner("ct-1"), [parseGpuRequest("any")])!;
    expect(b.access([mine!])).toEqual({
      env: { NVIDIA_VISIBLE_DEVICES: "GPU-0" },
      gpu: {
        mode: "device-nodes",
        devices: ["/dev/nvidia4", "/dev/nvidiactl", "/dev/nvidia-uvm"],
        files: [
          { host: "/usr/lib/x86_64-linux-gnu/libcuda.so.580.0", container: "/usr/local/nvidia/lib64/libcuda.so.1" },
          { host: "/usr/bin/nvidia-smi", container: "/usr/local/nvidia/bin/nvidia-smi" },
        ],
        libraryDir: "/usr/local/nvidia/lib64",
        binDir: "/usr/local/nvidia/bin",
        hiddenPaths: ["/proc/driver/nvidia/gpus/0000:19:00.0"],
      },
    });
  });

  it("device requests: exact device IDs by UUID", async () => {
    const b = await broker([gpu(0), gpu(1)], { runtimes: ["nvidia"] });
    const gpus = b.acquire(owner("ct-1"), [parseGpuRequest("A100:2")])!;
    expect(b.access(gpus)).toEqual({
      env: { NVIDIA_VISIBLE_DEVICES: "GPU-0,GPU-1" },
      gpu: { mode: "device-requests", deviceIds: ["GPU-0", "GPU-1"] },
    });
  });
});
