import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gantry } from "../helpers/cli.js";
import { fixture } from "../helpers/daemon.js";

const FAKE = join(import.meta.dirname, "..", "fake-gpu");
let home: string;
const g = (...args: string[]) => gantry(home, args, { GANTRY_NVIDIA_SMI: join(FAKE, "nvidia-smi") });

beforeAll(async () => {
  execFileSync(join(FAKE, "device-nodes"), ["add", "2"]);
  home = mkdtempSync(join(tmpdir(), "gg-"));
  const started = await g("daemon", "start", "--container-network", "none");
  expect(started.code, started.stderr).toBe(0);
});
afterAll(async () => {
  await g("daemon", "stop");
  rmSync(home, { recursive: true, force: true });
  execFileSync(join(FAKE, "device-nodes"), ["remove"]);
});

describe("GPUs from the CLI", () => {
  it("daemon status says how many GPUs and how containers get them", async () => {
    const s = await g("daemon", "status");
    expect(s.stdout).toMatch(/gpus: +2 \(0 held\), driver 580\.0, passthrough: device nodes \+ driver libraries mounted read-only/);
    expect(JSON.parse((await g("daemon", "status", "--json")).stdout)).toMatchObject({ gpu: { count: 2, passthrough: "device-nodes" } });
  });

  it("deploy shows each function's GPU request; gantry gpus and containers ls show who holds which", async () => {
    const dep = await g("deploy", fixture("gpus.ts"));
    expect(dep.code, dep.stderr).toBe(0);
    expect(dep.stdout).toContain("pair  (max 10 containers × 1 inputs, timeout 300 s, retries 0, gpu A100:2)");
    expect(dep.stdout).toContain("gpu H100 or a100-80gb");

    const free = await g("gpus");
    expect(free.code).toBe(0);
    expect(free.stdout).toMatch(/^GPU +NAME +MEMORY +UUID +HELD BY$/m);
    expect(free.stdout).toMatch(/^0 +NVIDIA A100-SXM4-80GB +80 GiB +GPU-00000000-1111-2222-3333-000000000000 +-$/m);

    const called = await g("call", "gpus", "idle_holder");
    expect(called.code, called.stderr).toBe(0);
    const held = JSON.parse((await g("gpus", "--json")).stdout) as { gpus: Array<{ holder: { app: string; function: string; container_id: string } | null }> };
    const holder = held.gpus.find((x) => x.holder)!.holder!;
    expect(holder).toMatchObject({ app: "gpus", function: "idle_holder" });
    expect((await g("gpus")).stdout).toContain(`gpus.idle_holder (${holder.container_id})`);

    const cts = await g("containers", "ls");
    expect(cts.stdout).toMatch(/^CONTAINER .* SLOTS +GPUS +STARTED$/m);
    expect(cts.stdout).toMatch(new RegExp(`^${holder.container_id} .* idle_holder +ready +0/1 +[01] `, "m"));
    const json = JSON.parse((await g("containers", "ls", "--json")).stdout) as Array<{ id: string; gpus: Array<{ index: number }> }>;
    expect(json.find((c) => c.id === holder.container_id)!.gpus).toHaveLength(1);
  });

  it("gpus --refresh reads the GPUs again", async () => {
    const r = await g("gpus", "--refresh", "--json");
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ count: 2 });
  });

  it("refuses a passthrough mode it does not know, before starting anything", async () => {
    const other = mkdtempSync(join(tmpdir(), "gg-"));
    const r = await gantry(other, ["daemon", "start", "--gpu-passthrough", "magic"]);
    rmSync(other, { recursive: true, force: true });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--gpu-passthrough: GPU passthrough "magic" is not one of auto, device-requests, device-nodes');
  });
});
