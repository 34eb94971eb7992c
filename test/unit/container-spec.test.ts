import { describe, expect, it } from "vitest";
import { containerCreateOptions, DOCKER_MASKED_PATHS } from "../../daemon/docker/container-spec.js";
import type { ContainerLaunch, GpuAccess } from "../../daemon/docker/types.js";

const launch = (gpu: GpuAccess | null): ContainerLaunch => ({
  containerId: "ct-1",
  daemonId: "gd-1",
  app: "app",
  function: "fn",
  image: "gantry/fn-node:abc",
  env: { GANTRY_FUNCTION: "fn", NVIDIA_VISIBLE_DEVICES: gpu ? "GPU-0" : "void" },
  socketDir: "/home/g/run/ct-1",
  codeDir: "/home/g/apps/app/h",
  network: "none",
  user: "99000:99000",
  cpu: null,
  memoryMiB: null,
  gpu,
});

const nodes: GpuAccess = {
  mode: "device-nodes",
  devices: ["/dev/nvidia0", "/dev/nvidiactl"],
  files: [{ host: "/usr/lib/libcuda.so.580", container: "/usr/local/nvidia/lib64/libcuda.so.1" }],
  libraryDir: "/usr/local/nvidia/lib64",
  binDir: "/usr/local/nvidia/bin",
  hiddenPaths: ["/proc/driver/nvidia/gpus/0000:19:00.0"],
};

describe("containerCreateOptions", () => {
  it("hardens every container, GPU or not", () => {
    for (const gpu of [null, nodes, { mode: "device-requests", deviceIds: ["GPU-0"] } as GpuAccess]) {
      const o = containerCreateOptions(launch(gpu));
      expect(o.User).toBe("99000:99000");
      expect(o.HostConfig).toMatchObject({ CapDrop: ["ALL"], SecurityOpt: ["no-new-privileges"], ReadonlyRootfs: true, NetworkMode: "none" });
      // The socket folder and the code are mounted read-only: a function writes nowhere on the host's disk.
      expect(o.HostConfig?.Binds?.slice(0, 2)).toEqual(["/home/g/run/ct-1:/run/gantry:ro", "/home/g/apps/app/h:/opt/gantry/app:ro"]);
      // Docker's own copy of the output (docker logs) is bounded: a chatty function cannot fill the engine's disk.
      expect(o.HostConfig?.LogConfig).toEqual({ Type: "json-file", Config: { "max-size": "10m", "max-file": "3" } });
    }
  });

  it("gives a CPU function no device and NVIDIA_VISIBLE_DEVICES=void", () => {
    const o = containerCreateOptions(launch(null));
    expect(o.HostConfig?.Devices).toBeUndefined();
    expect(o.HostConfig?.DeviceRequests).toBeUndefined();
    expect(o.HostConfig?.MaskedPaths).toBeUndefined();
    expect(o.Env).toContain("NVIDIA_VISIBLE_DEVICES=void");
  });

  it("device requests: the nvidia driver with exact device IDs", () => {
    const o = containerCreateOptions(launch({ mode: "device-requests", deviceIds: ["GPU-0", "GPU-1"] }));
    expect(o.HostConfig?.DeviceRequests).toEqual([{ Driver: "nvidia", DeviceIDs: ["GPU-0", "GPU-1"], Capabilities: [["gpu"]] }]);
    expect(o.HostConfig?.Devices).toBeUndefined();
  });

  it("device nodes: the nodes, the driver's files read-only, other GPUs hidden, its folders first on the paths", () => {
    const o = containerCreateOptions(launch(nodes), ["PATH=/opt/conda/bin:/usr/bin", "LD_LIBRARY_PATH=/opt/lib", "LANG=C.UTF-8"]);
    expect(o.HostConfig?.Devices).toEqual([
      { PathOnHost: "/dev/nvidia0", PathInContainer: "/dev/nvidia0", CgroupPermissions: "rw" },
      { PathOnHost: "/dev/nvidiactl", PathInContainer: "/dev/nvidiactl", CgroupPermissions: "rw" },
    ]);
    expect(o.HostConfig?.Binds).toContain("/usr/lib/libcuda.so.580:/usr/local/nvidia/lib64/libcuda.so.1:ro");
    expect(o.HostConfig?.MaskedPaths).toEqual([...DOCKER_MASKED_PATHS, "/proc/driver/nvidia/gpus/0000:19:00.0"]);
    expect(o.Env).toEqual(expect.arrayContaining(["LD_LIBRARY_PATH=/usr/local/nvidia/lib64:/opt/lib", "PATH=/usr/local/nvidia/bin:/opt/conda/bin:/usr/bin"]));
    const bare = containerCreateOptions(launch(nodes), []);
    expect(bare.Env).toEqual(expect.arrayContaining(["LD_LIBRARY_PATH=/usr/local/nvidia/lib64", expect.stringMatching(/^PATH=\/usr\/local\/nvidia\/bin:\/usr\/local\/sbin:/)]));
  });
});
