/**
 * Images as Modal builds them (issue 16), on the real Docker engine against the real package
 * index this machine reaches (with its own index settings passed into the builds): pip_install,
 * uv_pip_install, a requirements file with a local find_links folder, workdir, add_local_file,
 * add_local_python_source, from_dockerfile; a failed step, an overrunning build, and unchanged
 * redeploys. Functions run with no network: only builds reach the index.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DeployEvent } from "../../protocol/api.js";
import { deploy, deployEvents, docker, pyFixture, startTestDaemon, type TestDaemon } from "../helpers/daemon.js";
import { waitFor } from "../helpers/engine.js";

let t: TestDaemon;
let first: DeployEvent[];

beforeAll(async () => {
  t = await startTestDaemon();
  first = await deploy(t, pyFixture("pip/py_pip.py"));
}, 600_000);
afterAll(async () => {
  await t?.dispose();
});

const fn = (name: string) => t.client.functions.fromName("py-pip", name);

/** Deploys a file that must fail; answers the error the deploy ended with. */
async function failedDeploy(on: TestDaemon, file: string): Promise<Extract<DeployEvent, { type: "error" }>["error"]> {
  const last = (await deployEvents(on, file)).at(-1)!;
  if (last.type !== "error") throw new Error(`the deploy of ${file} did not fail: ${JSON.stringify(last)}`);
  return last.error;
}

describe("pip_install and uv_pip_install", () => {
  it("pip_install('numpy') installs numpy from the index into the Python that runs the function", async () => {
    const out = (await (await fn("numpy_sum")).remote(100)) as { sum: number; numpy: string };
    expect(out.sum).toBe(4950);
    expect(out.numpy).toMatch(/^\d+\.\d+/);
  });

  it("uv_pip_install installs uv into the image, then its packages", async () => {
    expect(await (await fn("uv_attrs")).remote()).toEqual({ attrs: "23.2.0", point: "Point(x=1, y=2)" });
    const done = first.at(-1) as Extract<DeployEvent, { type: "done" }>;
    const tag = done.functions.find((f) => f.name === "uv_attrs")!.image;
    const history = (await docker.getImage(tag).history()) as Array<{ CreatedBy: string }>;
    expect(history.map((h) => h.CreatedBy).join("\n")).toContain("install uv-setup");
  });
});

describe("local files", () => {
  it("installs a requirements file from a local wheel folder (find_links), and adds a file and a local package in the workdir", async () => {
    expect(await (await fn("from_local_files")).remote()).toEqual({
      wheel: "from a local wheel",
      config: { model: "small" },
      cwd: "/srv",
      localsrc: "hello pip from localsrc",
    });
  });

  it("builds from_dockerfile with the files its COPY lines name", async () => {
    expect(await (await fn("from_dockerfile")).remote()).toEqual({ copied: "copied from the context", built: "built by RUN" });
  });
});

describe("redeploys", () => {
  it("an unchanged redeploy builds nothing", async () => {
    const events = await deploy(t, pyFixture("pip/py_pip.py"));
    const done = events.at(-1) as Extract<DeployEvent, { type: "done" }>;
    expect(done.built).toEqual([]);
    expect(done.cached.length).toBeGreaterThanOrEqual(4);
    expect(events.some((e) => e.type === "build")).toBe(false);
  });

  it("a package that does not exist fails the deploy naming the step, the package and pip's last lines; the earlier deployment keeps answering", async () => {
    const error = await failedDeploy(t, pyFixture("pip/bad/py_pip.py"));
    expect(error.code).toBe("image_build_failed");
    expect(error.message).toContain('image step 1, pip_install("gantry-no-such-package-3f9c2")');
    expect(error.message).toContain("the step exited with code 1");
    expect(error.message).toMatch(/last lines of the build:\n(.*\n)*.*No matching distribution found for gantry-no-such-package-3f9c2/);
    const out = (await (await fn("numpy_sum")).remote(10)) as { sum: number };
    expect(out.sum).toBe(45);
  }, 180_000);
});

describe("python_version", () => {
  it("a version the base does not have fails the deploy naming the version it has", async () => {
    const error = await failedDeploy(t, pyFixture("pip/bad/py_version.py"));
    expect(error.message).toContain('debian_slim(python_version="3.12")');
    expect(error.message).toMatch(/has Python 3\.11 only; python_version=3\.12 asks for another/);
  });
});

describe("build limits", () => {
  it("stops a build that runs past --build-timeout, says so, and leaves no build container", async () => {
    const slow = await startTestDaemon({ buildTimeoutMs: 8_000 });
    try {
      const error = await failedDeploy(slow, pyFixture("pip/bad/py_slow_build.py"));
      expect(error.code).toBe("image_build_timeout");
      expect(error.message).toContain('was stopped at image step 1, run_commands("echo slow-build-started; sleep 300")');
      expect(error.message).toContain("past its limit of 8 s");
      expect(error.message).toContain("--build-timeout");
      expect(error.message).toContain("slow-build-started");
      // The engine stops the step's container once the build's connection closes.
      const buildContainers = async () => (await docker.listContainers({ all: true })).filter((c) => c.Command.includes("slow-build-started"));
      await waitFor("the build container's removal", async () => (await buildContainers()).length === 0, 30_000);
      expect(await buildContainers()).toEqual([]);
    } finally {
      await slow.dispose();
    }
  }, 120_000);
});
