import { describe, expect, it } from "vitest";
import {
  allocateGpus,
  describeInventory,
  everSatisfiable,
  gpuMatches,
  parseGpuRequest,
  pickDonors,
  type Gpu,
  type GpuHolder,
  type GpuRequest,
} from "../../daemon/core/gpu.js";

const gpu = (index: number, name: string, memoryMiB = 81920): Gpu => ({
  index,
  uuid: `GPU-${index}`,
  name,
  memoryMiB,
  busId: null,
  minor: index,
});
const A100 = "NVIDIA A100-SXM4-80GB";
const reqs = (...raw: string[]): GpuRequest[] => raw.map(parseGpuRequest);
const uuids = (a: ReturnType<typeof allocateGpus>) => (a.ok ? a.gpus.map((g) => g.uuid) : null);

describe("parseGpuRequest", () => {
  it("reads a type, an optional count and 'any'", () => {
    expect(parseGpuRequest("A100")).toEqual({ type: "A100", count: 1 });
    expect(parseGpuRequest("H100:2")).toEqual({ type: "H100", count: 2 });
    expect(parseGpuRequest("ANY:4")).toEqual({ type: "any", count: 4 });
    expect(parseGpuRequest("a100-80gb")).toEqual({ type: "a100-80gb", count: 1 });
  });

  it("refuses what is not a request, naming the value and the limit", () => {
    expect(() => parseGpuRequest("H100:0")).toThrow(/"H100:0" is not a GPU request.*1 to 8 GPUs/);
    expect(() => parseGpuRequest("H100:9")).toThrow(/1 to 8/);
    expect(() => parseGpuRequest("A100 80GB")).toThrow(/not a GPU request/);
    expect(() => parseGpuRequest("")).toThrow(/not a GPU request/);
  });
});

describe("gpuMatches: the usual type names, case-insensitively", () => {
  const cases: Array<[string, string, number, boolean]> = [
    ["A100", A100, 81920, true],
    ["a100", A100, 81920, true],
    ["A100-80GB", A100, 81920, true],
    ["A100-40GB", A100, 81920, false],
    ["A100-40GB", "NVIDIA A100-SXM4-40GB", 40960, true],
    ["A100-80GB", "NVIDIA A100 80GB PCIe", 81920, true],
    ["H100", "NVIDIA H100 80GB HBM3", 81559, true],
    ["H100-80GB", "NVIDIA H100 PCIe", 81559, true], // memory word from the GPU's memory when the name has none
    ["H100", "NVIDIA H200", 143771, false],
    ["H200", "NVIDIA H200", 143771, true],
    ["L4", "NVIDIA L4", 23034, true],
    ["L4", "NVIDIA L40S", 46068, false],
    ["L40S", "NVIDIA L40S", 46068, true],
    ["T4", "Tesla T4", 15360, true],
    ["A10G", "NVIDIA A10G", 23028, true],
    ["A10", "NVIDIA A100-SXM4-80GB", 81920, false],
    ["RTX-4090", "NVIDIA GeForce RTX 4090", 24564, true],
    ["any", "Tesla T4", 15360, true],
  ];
  it.each(cases)("%s against %s → %s", (type, name, memoryMiB, expected) => {
    expect(gpuMatches({ name, memoryMiB }, type)).toBe(expected);
  });
});

describe("allocateGpus", () => {
  const two = [gpu(0, A100), gpu(1, A100)];

  it("gives whole, distinct GPUs and queues when none is free", () => {
    const first = allocateGpus(two, new Set(), reqs("any"));
    expect(uuids(first)).toEqual(["GPU-0"]);
    const second = allocateGpus(two, new Set(["GPU-0"]), reqs("any"));
    expect(uuids(second)).toEqual(["GPU-1"]);
    const third = allocateGpus(two, new Set(["GPU-0", "GPU-1"]), reqs("any"));
    expect(third).toMatchObject({ ok: false, ever: true });
    expect(third.ok || third.reason).toBe("no free GPU for any: 2 of 2 GPUs are held");
  });

  it("meets a count with that many GPUs, or waits for them", () => {
    expect(uuids(allocateGpus(two, new Set(), reqs("A100:2")))).toEqual(["GPU-0", "GPU-1"]);
    expect(allocateGpus(two, new Set(["GPU-1"]), reqs("A100:2"))).toMatchObject({ ok: false, ever: true });
  });

  it("says when a request can never be met, naming the GPUs the machine has", () => {
    const a = allocateGpus(two, new Set(), reqs("H100"));
    expect(a).toMatchObject({ ok: false, ever: false });
    expect(a.ok || a.reason).toBe(
      "no GPU of this machine can meet H100; it has 2 GPUs: #0 NVIDIA A100-SXM4-80GB (80 GiB), #1 NVIDIA A100-SXM4-80GB (80 GiB)",
    );
    expect(allocateGpus(two, new Set(), reqs("A100:3"))).toMatchObject({ ok: false, ever: false });
    expect(allocateGpus([], new Set(), reqs("any"))).toMatchObject({ ok: false, ever: false, reason: expect.stringContaining("no NVIDIA GPUs") });
  });

  it("tries fallbacks in order: the first that fits now wins", () => {
    const mixed = [gpu(0, "NVIDIA H100 80GB HBM3"), gpu(1, A100)];
    expect(allocateGpus(mixed, new Set(), reqs("H100", "A100"))).toMatchObject({ ok: true, request: { type: "H100" }, gpus: [{ uuid: "GPU-0" }] });
    expect(allocateGpus(mixed, new Set(["GPU-0"]), reqs("H100", "A100"))).toMatchObject({ ok: true, request: { type: "A100" }, gpus: [{ uuid: "GPU-1" }] });
    expect(allocateGpus(mixed, new Set(["GPU-0", "GPU-1"]), reqs("H100", "A100"))).toMatchObject({ ok: false, ever: true });
    expect(everSatisfiable(mixed, reqs("L4", "A100"))).toBe(true);
    expect(everSatisfiable(mixed, reqs("L4", "T4"))).toBe(false);
  });

  it("keeps a container's GPUs to one model", () => {
    const mixed = [gpu(0, "NVIDIA H100 80GB HBM3"), gpu(1, A100)];
    expect(allocateGpus(mixed, new Set(), reqs("any:2"))).toMatchObject({ ok: false, ever: false });
  });

  it("keeps a container's GPUs to one node of a cluster", () => {
    const on = (index: number, node: string): Gpu => ({ ...gpu(index, A100), node });
    const cluster = [on(0, "n1"), on(1, "n2"), on(2, "n2")];
    expect(uuids(allocateGpus(cluster, new Set(), reqs("A100:2")))).toEqual(["GPU-1", "GPU-2"]);
    expect(allocateGpus(cluster, new Set(["GPU-2"]), reqs("A100:2"))).toMatchObject({ ok: false, ever: true }); // n1 and n2 have one free each
    expect(everSatisfiable(cluster, reqs("A100:3"))).toBe(false);
  });

  it("fights fragmentation: a single GPU goes to the smallest free run, keeping adjacent pairs whole", () => {
    const four = [0, 1, 2, 3].map((i) => gpu(i, A100));
    // 1 is held: free runs are [0] and [2, 3]. A single GPU takes 0, leaving the pair 2-3 for a :2 request.
    expect(uuids(allocateGpus(four, new Set(["GPU-1"]), reqs("any")))).toEqual(["GPU-0"]);
    expect(uuids(allocateGpus(four, new Set(["GPU-1", "GPU-0"]), reqs("A100:2")))).toEqual(["GPU-2", "GPU-3"]);
    // A pair prefers adjacent GPUs over scattered ones.
    expect(uuids(allocateGpus(four, new Set(["GPU-1"]), reqs("A100:2")))).toEqual(["GPU-2", "GPU-3"]);
    // With only scattered GPUs free, a pair still runs on them.
    expect(uuids(allocateGpus(four, new Set(["GPU-1", "GPU-2"]), reqs("A100:2")))).toEqual(["GPU-0", "GPU-3"]);
  });

  it("gives 'any' the smaller GPUs first, keeping big ones for requests that need them", () => {
    const mixed = [gpu(0, "NVIDIA H100 80GB HBM3", 81559), gpu(1, "NVIDIA L4", 23034)];
    expect(uuids(allocateGpus(mixed, new Set(), reqs("any")))).toEqual(["GPU-1"]);
  });
});

describe("pickDonors", () => {
  const two = [gpu(0, A100), gpu(1, A100)];
  const holder = (id: string, uuids: string[], idleSinceMs: number | null, extra: Partial<GpuHolder> = {}): GpuHolder => ({
    containerId: id,
    uuids,
    idleSinceMs,
    releasing: false,
    donatable: true,
    ...extra,
  });

  it("stops the longest-idle container first, and only as many as the request needs", () => {
    const holders = [holder("ct-new", ["GPU-0"], 2000), holder("ct-old", ["GPU-1"], 1000)];
    expect(pickDonors(two, holders, reqs("any"))).toEqual(["ct-old"]);
    expect(pickDonors(two, holders, reqs("A100:2"))).toEqual(["ct-old", "ct-new"]);
  });

  it("never stops busy containers or those keeping minContainers warm", () => {
    expect(pickDonors(two, [holder("ct-busy", ["GPU-0"], null), holder("ct-min", ["GPU-1"], 1, { donatable: false })], reqs("any"))).toBeNull();
  });

  it("waits for GPUs already being released instead of stopping more", () => {
    const holders = [holder("ct-going", ["GPU-0"], null, { releasing: true }), holder("ct-idle", ["GPU-1"], 1)];
    expect(pickDonors(two, holders, reqs("any"))).toEqual([]);
  });

  it("skips idle containers whose GPUs would not help", () => {
    const mixed = [gpu(0, "NVIDIA L4", 23034), gpu(1, A100)];
    const holders = [holder("ct-l4", ["GPU-0"], 1), holder("ct-a100", ["GPU-1"], 5)];
    expect(pickDonors(mixed, holders, reqs("A100"))).toEqual(["ct-a100"]);
  });
});

describe("describeInventory", () => {
  it("lists index, name and memory", () => {
    expect(describeInventory([gpu(0, "NVIDIA L4", 23034)])).toBe("1 GPU: #0 NVIDIA L4 (22 GiB)");
    expect(describeInventory([])).toBe("no NVIDIA GPUs");
  });
});
