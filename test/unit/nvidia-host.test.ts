import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { NvidiaHost, parseDeviceMinor, parseGpuQuery, parseLdconfig, procBusId } from "../../daemon/host/nvidia.js";

const FAKE_SMI = join(import.meta.dirname, "..", "fake-gpu", "nvidia-smi");
const dir = mkdtempSync(join(tmpdir(), "gt-nvidia-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A script standing in for nvidia-smi or ldconfig. */
function script(name: string, body: string): string {
  const p = join(dir, name);
  writeFileSync(p, `#!/bin/sh\n${body}\n`);
  chmodSync(p, 0o755);
  return p;
}

describe("parsing what the driver prints", () => {
  it("reads nvidia-smi's CSV (as a real H200 machine prints it)", () => {
    const rows = parseGpuQuery("0, GPU-5f1d7c3e-2b1a-4c2e-9d7e-0a1b2c3d4e5f, NVIDIA H200, 143771, 00000000:18:00.0, 580.159.04\n");
    expect(rows).toEqual([
      {
        index: 0,
        uuid: "GPU-5f1d7c3e-2b1a-4c2e-9d7e-0a1b2c3d4e5f",
        name: "NVIDIA H200",
        memoryMiB: 143771,
        busId: "00000000:18:00.0",
        driverVersion: "580.159.04",
      },
    ]);
  });

  it("refuses a line it cannot read, quoting it", () => {
    expect(() => parseGpuQuery("No devices were found")).toThrow(/cannot read: "No devices were found"/);
  });

  it("finds the device minor in the driver's information file", () => {
    const info = "Model: \t\t NVIDIA H200\nIRQ:   \t\t 61\nGPU UUID: \t GPU-5f1d\nDevice Minor: \t 3\nBus Type: \t PCIe\n";
    expect(parseDeviceMinor(info)).toBe(3);
    expect(parseDeviceMinor("Model: x\n")).toBeNull();
  });

  it("names the driver's folder for a bus id", () => {
    expect(procBusId("00000000:18:00.0")).toBe("0000:18:00.0");
    expect(procBusId("00000001:AF:00.0")).toBe("0001:af:00.0");
  });

  it("picks the 64-bit driver libraries from ldconfig -p", () => {
    const text = [
      "552 libs found in cache `/etc/ld.so.cache'",
      "\tlibnvidia-ml.so.1 (libc6,x86-64) => /usr/local/nvidia/lib64/libnvidia-ml.so.1",
      "\tlibcuda.so.1 (libc6,x86-64) => /usr/local/nvidia/lib64/libcuda.so.1",
      "\tlibcuda.so.1 (libc6) => /usr/lib32/libcuda.so.1",
      "\tlibcuda.so (libc6,x86-64) => /usr/local/nvidia/lib64/libcuda.so",
      "\tlibnvidia-gpucomp.so.580.159.04 (libc6,x86-64) => /usr/local/nvidia/lib64/libnvidia-gpucomp.so.580.159.04",
      "\tlibz.so.1 (libc6,x86-64) => /lib/x86_64-linux-gnu/libz.so.1",
    ].join("\n");
    expect(parseLdconfig(text)).toEqual([
      { name: "libnvidia-ml.so.1", path: "/usr/local/nvidia/lib64/libnvidia-ml.so.1" },
      { name: "libcuda.so.1", path: "/usr/local/nvidia/lib64/libcuda.so.1" },
      { name: "libnvidia-gpucomp.so.580.159.04", path: "/usr/local/nvidia/lib64/libnvidia-gpucomp.so.580.159.04" },
    ]);
  });
});

describe("NvidiaHost.read", () => {
  it("reads the stand-in GPUs, their minors from the driver's records, the control nodes and libraries", async () => {
    const proc = join(dir, "proc");
    mkdirSync(join(proc, "0000:19:00.0"), { recursive: true });
    writeFileSync(join(proc, "0000:19:00.0", "information"), "Model: \t\t NVIDIA A100\nDevice Minor: \t 7\n");
    const dev = join(dir, "dev");
    mkdirSync(dev);
    writeFileSync(join(dev, "nvidiactl"), "");
    writeFileSync(join(dev, "nvidia-uvm"), "");
    const lib = join(dir, "libcuda.so.580.1");
    writeFileSync(lib, "");
    const ldconfig = script("ldconfig", `echo "\tlibcuda.so.1 (libc6,x86-64) => ${lib}"`);
    const host = await new NvidiaHost({ smi: FAKE_SMI, procDir: proc, devDir: dev, ldconfig }).read();
    expect(host.problem).toBeNull();
    expect(host.driverVersion).toBe("580.0");
    expect(host.gpus).toEqual([
      { index: 0, uuid: "GPU-00000000-1111-2222-3333-000000000000", name: "NVIDIA A100-SXM4-80GB", memoryMiB: 81920, busId: "00000000:18:00.0", minor: 0 },
      { index: 1, uuid: "GPU-00000001-1111-2222-3333-000000000001", name: "NVIDIA A100-SXM4-80GB", memoryMiB: 81920, busId: "00000000:19:00.0", minor: 7 },
    ]);
    expect(host.controlNodes).toEqual([join(dev, "nvidiactl"), join(dev, "nvidia-uvm")]);
    expect(host.libraries).toEqual([{ name: "libcuda.so.1", path: lib }]);
    expect(host.smiPath).toBe(FAKE_SMI);
  });

  it("says why there are no GPUs: nvidia-smi missing, or failing", async () => {
    expect((await new NvidiaHost({ smi: "gantry-no-such-smi" }).read()).problem).toBe(
      "gantry-no-such-smi is not on PATH; is the NVIDIA driver installed?",
    );
    expect((await new NvidiaHost({ smi: join(dir, "nope") }).read()).problem).toBe(`${join(dir, "nope")} does not exist`);
    const failing = script("failing-smi", `echo "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver." >&2; exit 9`);
    const host = await new NvidiaHost({ smi: failing }).read();
    expect(host.gpus).toEqual([]);
    expect(host.problem).toBe(`${failing} failed: NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.`);
  });
});
