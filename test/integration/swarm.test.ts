/**
 * --backend swarm on a real single-node Docker Swarm (test/helpers/swarm.ts: a second engine with
 * two stand-in GPUs as generic resources, swarm init on loopback, a real local registry). Every
 * container is a Swarm service whose agent dials the daemon over TCP; images reach the node
 * through the registry. Tasks use host networking: on loopback that is how they reach the daemon.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { Labels } from "../../daemon/docker/types.js";
import type { CallView } from "../../protocol/api.js";
import { deploy, fixture, startTestDaemon, type TestDaemon } from "../helpers/daemon.js";
import { STAND_IN_GPUS, STAND_IN_GPU_TYPE, startTestSwarm, type TestSwarm } from "../helpers/swarm.js";

let swarm: TestSwarm;
let t: TestDaemon;

const services = async () =>
  (await swarm.docker.listServices({ filters: { label: [`${Labels.daemon}=${t.daemon.daemonId}`] } })) as Array<{ ID: string; Spec: { Labels: Record<string, string> } }>;
const taskContainer = async (containerId: string) => {
  const list = await swarm.docker.listContainers({ filters: { label: [`${Labels.container}=${containerId}`] } });
  return list[0]?.Id ?? null;
};

let home: string;

beforeAll(async () => {
  swarm = await startTestSwarm(["gantry/base-node:2"]);
  home = mkdtempSync(join(tmpdir(), "gt-swarm-"));
  t = await startTestDaemon({
    home,
    // The shared storage stand-in: the local driver binding the manager's volume folder (an NFS
    // export would be `type=nfs, o=addr=…, device=:/export/{name}`, mounted at $GANTRY_HOME/volumes here).
    volumeDriver: { name: "local", options: { type: "none", o: "bind", device: `${home}/volumes/{name}` } },
    dockerSocket: swarm.socket,
    backend: "swarm",
    registry: swarm.registry,
    advertiseAddr: { host: "127.0.0.1", port: 0 },
    swarmNetwork: "host",
    forceNetwork: null,
    agentPingMs: 300,
  });
  await deploy(t, fixture("swarm.ts"));
}, 240_000);
afterAll(async () => {
  await t?.dispose();
  await swarm?.stop();
  if (home) rmSync(home, { recursive: true, force: true });
}, 120_000);

describe("--backend swarm", () => {
  it("runs calls in Swarm tasks whose agents dial the daemon over TCP, from an image the node pulled from the registry", { timeout: 120_000 }, async () => {
    const where = await t.client.functions.fromName<[number], { x: number; container: string; agent: string | null; socket: string | null }>("swarmy", "where");
    const out = await where.remote(7);
    expect(out).toMatchObject({ x: 7, agent: expect.stringMatching(/^ws:\/\/127\.0\.0\.1:\d+$/), socket: null });
    const svc = (await services()).find((s) => s.Spec.Labels[Labels.container] === out.container);
    expect(svc?.Spec.Labels).toMatchObject({ [Labels.app]: "swarmy", [Labels.function]: "where" });
    const image = ((await swarm.docker.getService(svc!.ID).inspect()) as { Spec: { TaskTemplate: { ContainerSpec: { Image: string } } } }).Spec.TaskTemplate.ContainerSpec.Image;
    expect(image.startsWith(`${swarm.registry}/gantry/code:`)).toBe(true);
    // Hardened as on one machine (issue 15): the uid no host account has, read-only root, no capabilities.
    const task = await swarm.docker.getContainer((await taskContainer(out.container))!).inspect();
    expect(task.Config.User).toBe("99000:99000");
    expect(task.HostConfig).toMatchObject({ ReadonlyRootfs: true, CapDrop: ["ALL"] });
    // What Swarm's API 1.41 (Docker 20.10) cannot say: no-new-privileges (service-spec.ts sends it for later engines).
    if ((await swarm.docker.version()).ApiVersion === "1.41") expect(task.HostConfig.SecurityOpt ?? []).not.toContain("no-new-privileges");
    const catalog = (await (await fetch(`http://${swarm.registry}/v2/_catalog`)).json()) as { repositories: string[] };
    expect(catalog.repositories).toContain("gantry/code");

    const listed = await t.client.transport.json<{ containers: Array<{ id: string; node: string | null }> }>("GET", "/v1/containers");
    await vi.waitFor(async () => {
      const again = await t.client.transport.json<{ containers: Array<{ id: string; node: string | null }> }>("GET", "/v1/containers");
      expect(again.containers.find((c) => c.id === out.container)?.node).toEqual(expect.any(String));
    }, { timeout: 10_000, interval: 100 });
    expect(listed.containers.some((c) => c.id === out.container)).toBe(true);
    const health = await t.client.transport.json<Record<string, unknown>>("GET", "/v1/health");
    expect(health).toMatchObject({ backend: "swarm", registry: swarm.registry, agents: expect.stringMatching(/^ws:\/\//) });
  });

  it("mounts volumes through the shared --volume-driver, and a task reaches its own volume's files API only", { timeout: 90_000 }, async () => {
    const volumed = await t.client.functions.fromName<[string], { listed: string[]; other: string }>("swarmy", "volumed");
    const out = await volumed.remote("hello");
    expect(out.listed).toEqual(["by-task.txt", "via-api.txt"]);
    expect(out.other).toMatch(/reaches only the volumes its function mounts, and it mounts swarm-vol: volume not-mounted-here is refused/);
    // Both writes are in the storage the manager sees (here, its own folder), owned by the functions' uid.
    expect(readFileSync(join(home, "volumes", "swarm-vol", "by-task.txt"), "utf8")).toBe("hello");
    expect(readFileSync(join(home, "volumes", "swarm-vol", "via-api.txt"), "utf8")).toBe("hello via the API");
    // The task mounted a Docker volume of the driver, its options with the volume's name filled in.
    const svc = (await services()).find((s) => s.Spec.Labels[Labels.function] === "volumed");
    const spec = (await swarm.docker.getService(svc!.ID).inspect()) as { Spec: { TaskTemplate: { ContainerSpec: { Mounts: Array<Record<string, any>> } } } };
    const mount = spec.Spec.TaskTemplate.ContainerSpec.Mounts.find((m) => m.Target === "/data");
    expect(mount).toMatchObject({ Type: "volume", Source: expect.stringMatching(/^gantry-vol-swarm-vol-[0-9a-f]{10}$/) });
    expect(mount!.VolumeOptions.DriverConfig).toEqual({ Name: "local", Options: { type: "none", o: "bind", device: `${home}/volumes/swarm-vol` } });
  });

  it("scales down by removing the service once its container is idle past scaledownWindow", { timeout: 60_000 }, async () => {
    const where = await t.client.functions.fromName<[number], { container: string }>("swarmy", "where");
    const { container } = await where.remote(1);
    expect((await services()).some((s) => s.Spec.Labels[Labels.container] === container)).toBe(true);
    await vi.waitFor(async () => expect((await services()).some((s) => s.Spec.Labels[Labels.container] === container)).toBe(false), { timeout: 30_000, interval: 200 });
  });

  it("code in a task calls another function through the daemon's advertised address (its container's token)", { timeout: 60_000 }, async () => {
    const caller = await t.client.functions.fromName<[string], string>("swarmy", "caller");
    expect(await caller.remote("through TCP")).toBe("through TCP");
  });

  it("reserves a GPU as a Swarm generic resource on a node that has one; the GPU board and nodes say who holds it", { timeout: 60_000 }, async () => {
    const gpus = await t.client.transport.json<{ count: number; passthrough: string; gpus: Array<{ uuid: string; name: string; node: string | null }> }>("GET", "/v1/gpus");
    expect(gpus).toMatchObject({ count: 2, passthrough: "swarm" });
    expect(gpus.gpus.map((g) => g.uuid).sort()).toEqual(STAND_IN_GPUS);
    expect(gpus.gpus[0]!.name).toBe(STAND_IN_GPU_TYPE);

    const gpu = await t.client.functions.fromName<[], string | null>("swarmy", "gpu");
    const given = await gpu.remote();
    expect(STAND_IN_GPUS).toContain(given); // Swarm put DOCKER_RESOURCE_NVIDIA-GPU in the task's environment
    const svc = (await services()).find((s) => s.Spec.Labels[Labels.function] === "gpu")!;
    const spec = ((await swarm.docker.getService(svc.ID).inspect()) as { Spec: { TaskTemplate: Record<string, unknown> } }).Spec.TaskTemplate;
    expect(spec).toMatchObject({
      Resources: { Reservations: { GenericResources: [{ DiscreteResourceSpec: { Kind: "NVIDIA-GPU", Value: 1 } }] } },
      Placement: { Constraints: [`node.id==${swarm.nodeId}`] },
    });
    const nodes = await t.client.transport.json<{ nodes: Array<{ id: string; role: string; gpus: Array<{ holder: { function: string } | null }> }> }>("GET", "/v1/nodes");
    expect(nodes.nodes).toHaveLength(1);
    expect(nodes.nodes[0]).toMatchObject({ id: swarm.nodeId, role: "manager" });
    expect(nodes.nodes[0]!.gpus.filter((g) => g.holder?.function === "gpu")).toHaveLength(1);
  });

  it("re-runs the call of a task killed mid-call in a new task, without using a retry", { timeout: 90_000 }, async () => {
    const slow = await t.client.functions.fromName<[number], { done: boolean; container: string }>("swarmy", "slow");
    const call = await slow.spawn(3000);
    await vi.waitFor(async () => expect((await call.status()).status).toBe("running"), { timeout: 60_000, interval: 100 });
    const ct = (await t.client.transport.json<{ containers: Array<{ id: string; function: string }> }>("GET", "/v1/containers")).containers.find((c) => c.function === "slow")!;
    await vi.waitFor(async () => expect(await taskContainer(ct.id)).not.toBeNull(), { timeout: 10_000, interval: 100 });
    await swarm.docker.getContainer((await taskContainer(ct.id))!).kill();
    const out = await call.get({ timeoutMs: 60_000 });
    expect(out.done).toBe(true);
    expect(out.container).not.toBe(ct.id);
    const view = await t.client.transport.json<CallView>("GET", `/v1/calls/${call.callId}`);
    expect(view.attempt).toBe(2);
    expect(view.attempts).toEqual([expect.objectContaining({ attempt: 1, outcome: "lost" })]); // a lost task is not the function's failure
  });

  it("takes a task whose agent stops answering (its node gone, or the network) for gone: the call runs again", { timeout: 90_000 }, async () => {
    const slow = await t.client.functions.fromName<[number], { done: boolean; container: string }>("swarmy", "slow");
    const call = await slow.spawn(2000);
    await vi.waitFor(async () => expect((await call.status()).status).toBe("running"), { timeout: 60_000, interval: 100 });
    const ct = (await t.client.transport.json<{ containers: Array<{ id: string; function: string }> }>("GET", "/v1/containers")).containers.find((c) => c.function === "slow")!;
    const dockerId = (await taskContainer(ct.id))!;
    await swarm.docker.getContainer(dockerId).pause(); // frozen: no pong, no output, the socket stays open
    const out = await call.get({ timeoutMs: 60_000 });
    expect(out.container).not.toBe(ct.id);
    expect((await call.status()).attempt).toBe(2);
    await vi.waitFor(async () => expect((await services()).some((s) => s.Spec.Labels[Labels.container] === ct.id)).toBe(false), { timeout: 30_000, interval: 200 });
  });

  it("refuses a function that asks for network none: a task must reach the daemon", { timeout: 60_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), "gsw-app-"));
    try {
      const file = join(dir, "offline.ts");
      writeFileSync(file, `import { App } from "gantry";\nconst app = new App("offline");\nexport const f = app.function({ network: "none" }, async function f() { return 1; });\nexport default app;\n`);
      await expect(deploy(t, file)).rejects.toThrow('function f asks for network \\"none\\", which a Swarm task cannot have');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("removes services an earlier run of the daemon left behind when it starts", { timeout: 90_000 }, async () => {
    const leftover = (await swarm.docker.createService({
      Name: "gantry-leftover-test",
      Labels: { [Labels.daemon]: t.daemon.daemonId, [Labels.app]: "swarmy", [Labels.function]: "where", [Labels.container]: "ct-leftover" },
      TaskTemplate: { ContainerSpec: { Image: "gantry/base-node:2", Args: ["sleep", "600"] }, RestartPolicy: { Condition: "none" }, Networks: [{ Target: "host" }] },
      Mode: { Replicated: { Replicas: 1 } },
    })) as { id: string };
    await t.restart();
    const ids = (await services()).map((s) => s.ID);
    expect(ids).not.toContain(leftover.id);
    const where = await t.client.functions.fromName<[number], { x: number }>("swarmy", "where");
    expect((await where.remote(2)).x).toBe(2); // and it runs calls again
  });
  it("runs a single-node swarm without a registry: the task uses the image the manager built", { timeout: 90_000 }, async () => {
    await t.restart({ registry: null });
    const where = await t.client.functions.fromName<[number], { x: number }>("swarmy", "where");
    expect((await where.remote(3)).x).toBe(3);
    const images = (await services()).map((s) => (s.Spec as unknown as { TaskTemplate: { ContainerSpec: { Image: string } } }).TaskTemplate.ContainerSpec.Image);
    expect(images.length).toBeGreaterThan(0);
    for (const image of images) expect(image).toMatch(/^gantry\/code:/);
  });
});
