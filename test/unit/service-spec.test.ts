import { describe, expect, it } from "vitest";
import { parseBackend, parseHostPort, parseVolumeDriver } from "../../daemon/config.js";
import { sharedVolume } from "../../daemon/service/volumes.js";
import { serviceCreateOptions } from "../../daemon/docker/service-spec.js";
import type { ContainerLaunch, GpuAccess, NodeInfo } from "../../daemon/docker/types.js";
import { SwarmGpus, UNTYPED_GPU } from "../../daemon/host/swarm-gpus.js";

const launch = (gpu: GpuAccess | null, more: Partial<ContainerLaunch> = {}): ContainerLaunch => ({
  containerId: "ct-1",
  daemonId: "gd-1",
  app: "app",
  function: "fn",
  image: "gantry/fn-node:abc",
  env: { GANTRY_FUNCTION: "fn", GANTRY_AGENT_URL: "ws://10.0.0.1:8701" },
  socketDir: null,
  codeDir: "/home/g/apps/app/h",
  network: "bridge",
  user: "99000:99000",
  cpu: 1.5,
  memoryMiB: 512,
  gpu,
  ...more,
});
const where = { image: "reg:5000/gantry/code:abc", network: "gantry" };

describe("serviceCreateOptions", () => {
  it("runs one replica that never restarts, hardened as on one machine, labelled, on the tasks' network", () => {
    const o = serviceCreateOptions(launch(null), where);
    expect(o.Mode).toEqual({ Replicated: { Replicas: 1 } });
    expect(o.Labels).toEqual({ "gantry.daemon": "gd-1", "gantry.app": "app", "gantry.function": "fn", "gantry.container": "ct-1" });
    const t = o.TaskTemplate as Record<string, any>;
    expect(t.RestartPolicy).toEqual({ Condition: "none" });
    // Docker's copy of the task's output is bounded, as a plain container's is.
    expect(t.LogDriver).toEqual({ Name: "json-file", Options: { "max-size": "10m", "max-file": "3" } });
    expect(t.Networks).toEqual([{ Target: "gantry" }]);
    expect(t.ContainerSpec).toMatchObject({
      Image: "reg:5000/gantry/code:abc",
      User: "99000:99000",
      ReadOnly: true,
      CapabilityDrop: ["ALL"],
      // Honoured by engines whose API has it; Docker 20.10's (API 1.41) drops it.
      Privileges: { NoNewPrivileges: true },
      Labels: o.Labels,
      Env: ["GANTRY_FUNCTION=fn", "GANTRY_AGENT_URL=ws://10.0.0.1:8701"],
      Mounts: [{ Type: "tmpfs", Target: "/tmp" }],
    });
    expect(t.Resources).toMatchObject({
      Limits: { NanoCPUs: 1.5e9, MemoryBytes: 512 * 1024 * 1024, Pids: 512 },
      Reservations: { NanoCPUs: 1.5e9, MemoryBytes: 512 * 1024 * 1024 },
    });
    expect(t.Resources.Reservations.GenericResources).toBeUndefined();
    expect(t.Placement).toEqual({});
  });

  it("reserves GPUs as NVIDIA-GPU generic resources on the node gantry chose", () => {
    const t = serviceCreateOptions(launch({ mode: "swarm", count: 2, node: "node-7" }), where).TaskTemplate as Record<string, any>;
    expect(t.Resources.Reservations.GenericResources).toEqual([{ DiscreteResourceSpec: { Kind: "NVIDIA-GPU", Value: 2 } }]);
    expect(t.Placement).toEqual({ Constraints: ["node.id==node-7"] });
  });

  it("refuses what a task cannot have: a mounted agent socket, device nodes", () => {
    expect(() => serviceCreateOptions(launch(null, { socketDir: "/run/x" }), where)).toThrow(/dials the daemon over TCP/);
    expect(() => serviceCreateOptions(launch({ mode: "device-requests", deviceIds: ["GPU-0"] }), where)).toThrow(/generic resources/);
  });

  it("mounts a volume as a bind of its folder, or as a Docker volume of the shared driver", () => {
    const driver = { volume: "gantry-vol-m-0123456789", name: "local", options: { type: "nfs", device: ":/x/m" } };
    const spec = serviceCreateOptions(
      launch(null, { volumes: [{ hostPath: "/g/volumes/d", path: "/data", readOnly: true }, { hostPath: "/g/volumes/m", path: "/models", readOnly: false, driver }] }),
      where,
    ).TaskTemplate as Record<string, any>;
    const mounts = (spec.ContainerSpec.Mounts as Array<Record<string, unknown>>);
    expect(mounts.find((m) => m.Target === "/data")).toEqual({ Type: "bind", Source: "/g/volumes/d", Target: "/data", ReadOnly: true });
    expect(mounts.find((m) => m.Target === "/models")).toMatchObject({
      Type: "volume",
      Source: "gantry-vol-m-0123456789",
      ReadOnly: false,
      VolumeOptions: { NoCopy: true, DriverConfig: { Name: "local", Options: { type: "nfs", device: ":/x/m" } } },
    });
  });

  it("keeps service names within Swarm's 63 characters", () => {
    const o = serviceCreateOptions(launch(null, { app: "a".repeat(40), function: "f".repeat(40) }), where);
    expect(o.Name!.length).toBeLessThanOrEqual(63);
  });
});

describe("SwarmGpus", () => {
  const node = (id: string, more: Partial<NodeInfo>): NodeInfo => ({
    id,
    hostname: `host-${id}`,
    role: "worker",
    state: "ready",
    availability: "active",
    cpus: 8,
    memoryBytes: 2 ** 35,
    gpus: [],
    labels: {},
    ...more,
  });

  it("lists the GPUs ready, active nodes advertise, typed by their label, each on its node", async () => {
    const nodes = [
      node("n1", { gpus: [{ uuid: "GPU-a", type: "NVIDIA A100-SXM4-80GB" }, { uuid: "GPU-b", type: "NVIDIA A100-SXM4-80GB" }], labels: { "gantry.gpu.memory-mib": "81920" } }),
      node("n2", { gpus: [{ uuid: "GPU-c", type: null }] }),
      node("n3", { gpus: [{ uuid: "GPU-d", type: null }], availability: "drain" }),
      node("n4", { gpus: [{ uuid: "GPU-e", type: null }], state: "down" }),
    ];
    const read = await new SwarmGpus({ nodes: async () => nodes }).read();
    expect(read.problem).toBeNull();
    expect(read.gpus.map((g) => [g.uuid, g.node, g.name, g.memoryMiB])).toEqual([
      ["GPU-a", "n1", "NVIDIA A100-SXM4-80GB", 81920],
      ["GPU-b", "n1", "NVIDIA A100-SXM4-80GB", 81920],
      ["GPU-c", "n2", UNTYPED_GPU, 0],
    ]);
    expect(read.nodes).toHaveLength(4);
  });

  it("says why there are none", async () => {
    const read = await new SwarmGpus({ nodes: async () => [node("n1", {})] }).read();
    expect(read.gpus).toEqual([]);
    expect(read.problem).toBe("no ready node advertises NVIDIA-GPU generic resources (1 of 1 nodes ready)");
  });
});

describe("the cluster options", () => {
  it("reads HOST[:PORT], IPv6 in brackets, with a default port", () => {
    expect(parseHostPort("10.0.0.5", "x", 8701)).toEqual({ host: "10.0.0.5", port: 8701 });
    expect(parseHostPort("manager.lan:9000", "x", 8701)).toEqual({ host: "manager.lan", port: 9000 });
    expect(parseHostPort("[fd00::1]:0", "x", 8701)).toEqual({ host: "fd00::1", port: 0 });
    expect(() => parseHostPort("http://x", "--advertise-addr", 8701)).toThrow('--advertise-addr must be HOST or HOST:PORT (a port from 0 to 65535), got "http://x"');
    expect(() => parseHostPort("x:70000", "--advertise-addr", 8701)).toThrow(/a port from 0 to 65535/);
  });

  it("takes a shared volume driver as docker volume create does, and refuses options that would give every volume one storage", () => {
    expect(parseVolumeDriver(undefined)).toBeNull();
    const nfs = parseVolumeDriver("local", ["type=nfs", "o=addr=10.0.0.5,rw,nfsvers=4", "device=:/srv/gantry/volumes/{name}"]);
    expect(nfs).toEqual({ name: "local", options: { type: "nfs", o: "addr=10.0.0.5,rw,nfsvers=4", device: ":/srv/gantry/volumes/{name}" } });
    expect(() => parseVolumeDriver("local", ["type=nfs", "device=:/srv/all"])).toThrow(/no option holds \{name\}.*every gantry volume would share one storage/);
    expect(() => parseVolumeDriver(undefined, ["type=nfs"])).toThrow("--volume-driver-opt needs --volume-driver");
    expect(() => parseVolumeDriver("local", ["novalue"])).toThrow('--volume-driver-opt must be KEY=VALUE (as docker volume create -o), got "novalue"');
    expect(() => parseVolumeDriver("bad name!", [])).toThrow(/is not a Docker volume driver name/);
    // Each gantry volume: its own Docker volume, named after its options (a node keeps a volume's first options).
    const a = sharedVolume(nfs!, "models");
    expect(a.options.device).toBe(":/srv/gantry/volumes/models");
    expect(a.volume).toMatch(/^gantry-vol-models-[0-9a-f]{10}$/);
    expect(sharedVolume({ ...nfs!, options: { ...nfs!.options, o: "addr=10.0.0.6" } }, "models").volume).not.toBe(a.volume);
  });

  it("knows two backends", () => {
    expect(parseBackend(undefined)).toBe("docker");
    expect(parseBackend("swarm")).toBe("swarm");
    expect(() => parseBackend("k8s")).toThrow('backend "k8s" is not one of docker, swarm');
  });
});
