/**
 * The GPUs of a Swarm cluster: what each ready, active node advertises as generic resources
 * (`NVIDIA-GPU=<uuid>`, set in its engine's configuration), typed by the node's `gantry.gpu`
 * label (the name nvidia-smi prints, e.g. "NVIDIA A100-SXM4-80GB"; unlabelled: "NVIDIA GPU",
 * which only `gpu: "any"` matches). Read at start and on GET /v1/gpus?refresh=1.
 */
import type { Gpu } from "../core/gpu.js";
import type { ContainerRuntime } from "../docker/types.js";
import type { HostGpus } from "./nvidia.js";

export const UNTYPED_GPU = "NVIDIA GPU";
/** Optional node label with its GPUs' memory in MiB (for "80GB" in a request). */
export const GPU_MEMORY_LABEL = "gantry.gpu.memory-mib";

export class SwarmGpus {
  constructor(private readonly runtime: Pick<ContainerRuntime, "nodes">) {}

  async read(): Promise<HostGpus> {
    const nodes = await this.runtime.nodes();
    const usable = nodes.filter((n) => n.state === "ready" && n.availability === "active");
    const gpus: Gpu[] = [];
    for (const n of usable) {
      const memory = Number(n.labels[GPU_MEMORY_LABEL]) || 0;
      n.gpus.forEach((g, i) => gpus.push({ index: gpus.length, uuid: g.uuid, name: g.type ?? UNTYPED_GPU, memoryMiB: memory, busId: null, minor: i, node: n.id }));
    }
    return {
      gpus,
      problem: gpus.length ? null : `no ready node advertises NVIDIA-GPU generic resources (${usable.length} of ${nodes.length} nodes ready)`,
      driverVersion: null,
      controlNodes: [],
      libraries: [],
      smiPath: null,
      devDir: "/dev",
      nodes: nodes.map((n) => ({ id: n.id, hostname: n.hostname })),
    };
  }
}
