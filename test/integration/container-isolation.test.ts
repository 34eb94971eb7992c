/**
 * What a function's container may do to the host (issue 15, point 7), seen from inside real
 * functions on the real Docker engine: it runs as 99000:99000 (a uid no host account has; another
 * when configured), cannot write into its socket folder (read-only mount, and a root-owned 0755
 * folder even if it were writable), has a read-only root, no capabilities and no new privileges;
 * and a daemon whose uid is a host account's refuses to start.
 */
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeConfig } from "../../daemon/config.js";
import { startDaemon } from "../../daemon/daemon.js";
import { silentLogger } from "../../daemon/logger.js";
import { containersOf, deploy, docker, fixture, pyFixture, startTestDaemon, type TestDaemon } from "../helpers/daemon.js";

const run = promisify(execFile);
const NO_CAPS = "0000000000000000";

let t: TestDaemon;

beforeAll(async () => {
  t = await startTestDaemon();
  await deploy(t, fixture("isolation.ts"));
  await deploy(t, pyFixture("isolation/py_isolation.py"));
}, 180_000);
afterAll(async () => {
  await t?.dispose();
});

type Inspect = {
  uid: number;
  gid: number;
  groups: number[];
  capEff: string;
  capPrm: string;
  capBnd: string;
  noNewPrivs: string;
  runDir: { uid: number; gid: number; mode: number; entries: string[] };
  socket: { uid: number; gid: number; mode: number };
  writeRunDir: string;
  mkdirRunDir: string;
  chmodRunDir: string;
  writeRoot: string;
  writeAgent: string;
  writeCode: string;
  writeTmp: string;
  home: string;
};

const inspectFn = async () => (await (await t.client.functions.fromName("isolation", "inspect")).remote()) as Inspect;

/** The one container of isolation/inspect: Docker's view of it and its host socket folder. */
async function theContainer() {
  const [info] = await containersOf(t, "inspect");
  const c = await docker.getContainer(info!.Id).inspect();
  return { c, socketDir: join(t.home, "run", c.Config.Labels["gantry.container"]!) };
}

/** The uid, gid lines of a host process's status: [real, effective, saved, fs] each. */
function hostIds(pid: number): { uid: string[]; gid: string[] } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const line = (name: string) => status.match(new RegExp(`^${name}:\\s*(.*)$`, "m"))![1]!.trim().split(/\s+/);
  return { uid: line("Uid"), gid: line("Gid") };
}

const passwdIds = () => readFileSync("/etc/passwd", "utf8").split("\n").filter(Boolean).map((l) => Number(l.split(":")[2]));

describe("a function's container", () => {
  it("runs as 99000:99000, which no host account has, inside and as the host sees its process", async () => {
    const r = await inspectFn();
    expect({ uid: r.uid, gid: r.gid, groups: r.groups }).toEqual({ uid: 99000, gid: 99000, groups: [99000] });
    expect(r.home).toBe("/tmp"); // the runtime images set HOME: nothing assumes an account in the image
    const { c } = await theContainer();
    expect(c.Config.User).toBe("99000:99000");
    expect(hostIds(c.State.Pid)).toEqual({ uid: ["99000", "99000", "99000", "99000"], gid: ["99000", "99000", "99000", "99000"] });
    expect(passwdIds()).not.toContain(99000);
  });

  it("cannot write into its socket folder: the host folder stays root's, holding only the socket", async () => {
    const r = await inspectFn();
    // Mounted read-only: creating, making a folder, changing its mode all fail.
    expect({ write: r.writeRunDir, mkdir: r.mkdirRunDir, chmod: r.chmodRunDir }).toEqual({ write: "EROFS", mkdir: "EROFS", chmod: "EROFS" });
    // The folder is root's, 0755; the socket is the container user's alone.
    expect(r.runDir).toEqual({ uid: 0, gid: 0, mode: 0o755, entries: ["agent.sock"] });
    expect(r.socket).toEqual({ uid: 99000, gid: 99000, mode: 0o600 });

    const { socketDir } = await theContainer();
    expect(readdirSync(socketDir)).toEqual(["agent.sock"]);
    expect(statSync(socketDir).uid).toBe(0);
    expect(statSync(socketDir).mode & 0o7777).toBe(0o755);
  });

  it("finds the socket folder closed to its user even where it is mounted writable (EACCES)", async () => {
    const { c, socketDir } = await theContainer();
    // The same folder, mounted read-write into a container of the same user and hardening: the permissions alone refuse.
    const probe = `const fs = require("fs"); const tryIt = (f) => { try { f(); return "ok"; } catch (e) { return e.code; } };
      console.log(JSON.stringify({ write: tryIt(() => fs.writeFileSync("/run/gantry/filler", "x")), mkdir: tryIt(() => fs.mkdirSync("/run/gantry/more")),
        chmod: tryIt(() => fs.chmodSync("/run/gantry", 0o777)), unlink: tryIt(() => fs.unlinkSync("/run/gantry/agent.sock")) }));`;
    const { stdout } = await run("docker", [
      "run", "--rm", "--network", "none", "--user", "99000:99000", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
      "--read-only", "-v", `${socketDir}:/run/gantry`, "--entrypoint", "node", c.Config.Image, "-e", probe,
    ]);
    expect(JSON.parse(stdout)).toEqual({ write: "EACCES", mkdir: "EACCES", chmod: "EPERM", unlink: "EACCES" });
    expect(readdirSync(socketDir)).toEqual(["agent.sock"]);
  }, 60_000);

  it("has a read-only root, no capabilities and no new privileges; only /tmp is writable", async () => {
    const r = await inspectFn();
    expect({ root: r.writeRoot, agent: r.writeAgent, code: r.writeCode, tmp: r.writeTmp }).toEqual({ root: "EROFS", agent: "EROFS", code: "EROFS", tmp: "ok" });
    expect({ eff: r.capEff, prm: r.capPrm, bnd: r.capBnd, nnp: r.noNewPrivs }).toEqual({ eff: NO_CAPS, prm: NO_CAPS, bnd: NO_CAPS, nnp: "1" });
    const { c } = await theContainer();
    expect(c.HostConfig).toMatchObject({ ReadonlyRootfs: true, CapDrop: ["ALL"], SecurityOpt: ["no-new-privileges"] });
  });

  it("runs Python functions the same way: 99000, and nothing written into the socket folder", async () => {
    const r = await (await t.client.functions.fromName("py-isolation", "inspect")).remote();
    expect(r).toEqual({ uid: 99000, gid: 99000, runDir: ["agent.sock"], writeRunDir: "EROFS", writeTmp: "ok" });
  }, 60_000);

  it("runs as the configured containerUid and containerGid", async () => {
    await t.restart({ containerUid: 123456, containerGid: 123457 }); // last in this file: nothing after needs 99000
    const r = await inspectFn();
    expect({ uid: r.uid, gid: r.gid, groups: r.groups }).toEqual({ uid: 123456, gid: 123457, groups: [123457] });
    expect(r.socket).toEqual({ uid: 123456, gid: 123457, mode: 0o600 });
    expect(r.writeRunDir).toBe("EROFS");
    const { c } = await theContainer();
    expect(c.Config.User).toBe("123456:123457");
    expect(hostIds(c.State.Pid).uid[1]).toBe("123456");
  }, 60_000);
});

describe("the daemon's start", () => {
  it("is refused, changing nothing, when the container uid is root or a host account's", async () => {
    const home = join(mkdtempSync(join(tmpdir(), "gt-uid-")), "home");
    try {
      await expect(startDaemon(makeConfig({ home, containerUid: 0 }), { log: silentLogger })).rejects.toThrow(
        /the container uid 0 \(GANTRY_CONTAINER_UID\) is root's.*set GANTRY_CONTAINER_UID/,
      );
      const account = readFileSync("/etc/passwd", "utf8").split("\n").map((l) => l.split(":")).find((f) => Number(f[2]) > 0 && Number(f[2]) < 65534)!;
      await expect(startDaemon(makeConfig({ home, containerUid: Number(account[2]) }), { log: silentLogger })).rejects.toThrow(
        `the container uid ${account[2]} (GANTRY_CONTAINER_UID) belongs to the account "${account[0]}" in /etc/passwd`,
      );
      expect(existsSync(home)).toBe(false);
    } finally {
      rmSync(join(home, ".."), { recursive: true, force: true });
    }
  });
});
