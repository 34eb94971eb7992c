import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deploy, docker, fixture, startTestDaemon, type TestDaemon } from "../helpers/daemon.js";

let t: TestDaemon;

beforeAll(async () => {
  t = await startTestDaemon();
});
afterAll(async () => {
  await t?.dispose();
});

describe("function images", () => {
  it("builds an image with the spec's steps, tagged by content, and runs the function in it", async () => {
    const events = await deploy(t, fixture("custom-image.ts"));
    const done = events.at(-1)!;
    if (done.type !== "done") throw new Error("deploy failed");
    const tag = done.functions[0]!.image;
    expect(tag).toMatch(/^gantry\/fn-node:[0-9a-f]{20}$/);
    // Built now or by an earlier run on this engine: either way the image exists and has the step.
    const history = await docker.getImage(tag).history();
    expect(history.map((h: { CreatedBy: string }) => h.CreatedBy).join("\n")).toContain("echo baked > /opt/marker.txt");
    const building = events.filter((e) => e.type === "image" && e.status === "building");
    if (building.length) expect(events.some((e) => e.type === "build" && e.total > 0 && e.line.includes("Step"))).toBe(true);

    const fn = await t.client.functions.fromName("custom-image", "inspect");
    expect(await fn.remote()).toEqual({ marker: "baked", greeting: 'a$B "q" \\back', runtimeVar: "from-env", uid: 99000 });
  });

  it("installs Debian packages with aptInstall, and the function can run them", async () => {
    await deploy(t, fixture("apt-image.ts"));
    const fn = await t.client.functions.fromName("apt-demo", "jqv");
    expect(await fn.remote()).toMatch(/^jq-\d/);
  }, 180_000);

  it("installs npm packages from the registry, adds local files (ignoring what is asked), runs in the workdir, and builds fromDockerfile", async () => {
    await deploy(t, fixture("npm-image.ts"));
    const pad = await t.client.functions.fromName("npm-image", "pad");
    expect(await pad.remote("ab")).toEqual({ padded: "****ab", cwd: "/srv", data: "a note from a local folder", ignored: true, settings: { mode: "fast" } });
    const df = await t.client.functions.fromName("npm-image", "fromDockerfile");
    expect(await df.remote()).toBe("a note from a local folder");
  }, 300_000);

  it("refuses a deploy whose base image is missing, naming the image and the fix", async () => {
    const { bundleApp } = await import("../../cli/bundle-app.js");
    const app = await bundleApp(fixture("custom-image.ts"));
    const events: Array<{ type: string; error?: { message: string } }> = [];
    const functions = app.functions.map((f) => ({
      ...f,
      options: { ...(f.options as object), image: { base: { kind: "registry", ref: "gantry-test/does-not-exist:1" }, steps: [] } },
    }));
    await t.client.transport.stream("POST", "/v1/apps/deploy", { app: "missing-base", functions, bundle: app.bundle }, (e) => events.push(e as never));
    const last = events.at(-1)!;
    expect(last.type).toBe("error");
    expect(last.error!.message).toContain("the base image gantry-test/does-not-exist:1 is not on this machine and could not be pulled");
  });

  it("refuses a function that asks for a GPU on a machine without one, naming the request and why", async () => {
    const res = await t.client.transport.raw("POST", "/v1/apps/deploy", {
      app: "gpu-app",
      functions: [{ name: "train", options: { gpu: "A100" } }],
      bundle: "export {}",
    });
    expect(res.status).toBe(200);
    // One NDJSON line: the transport already parsed it.
    expect(res.body).toMatchObject({
      type: "error",
      error: {
        code: "gpu_unavailable",
        message: 'function train asks for gpu "A100", which no GPU of this machine can meet: it has no NVIDIA GPUs (nvidia-smi is not on PATH; is the NVIDIA driver installed?)',
      },
    });
  });
});
