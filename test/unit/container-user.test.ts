/**
 * The start check of the uid:gid functions run as (daemon/host/container-user.ts): refused when
 * it is root's or a special id, or when a host account, group, primary group or subordinate range
 * has it, naming what holds it and the variable to set; and how the config reads the variables.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { DEFAULT_CONTAINER_ID, makeConfig } from "../../daemon/config.js";
import { checkContainerUser, ContainerUserError, type HostAccounts } from "../../daemon/host/container-user.js";

let dir: string;
let hosts: HostAccounts;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "gantry-uid-"));
  const file = (name: string, text: string) => {
    writeFileSync(join(dir, name), text);
    return join(dir, name);
  };
  hosts = {
    passwd: file(
      "passwd",
      ["root:x:0:0:root:/root:/bin/bash", "# a comment", "alice:x:1000:1000::/home/alice:/bin/bash", "bob:x:2000:77000::/home/bob:/bin/sh", ""].join("\n"),
    ),
    group: file("group", ["root:x:0:", "alice:x:1000:", "builders:x:88000:alice", ""].join("\n")),
    subuid: file("subuid", "alice:100000:65536\n"),
    subgid: file("subgid", "alice:100000:65536\n"),
    getent: false,
    daemonUid: 0,
  };
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const refusal = (uid: number, gid: number, h: HostAccounts = hosts): string => {
  try {
    checkContainerUser({ containerUid: uid, containerGid: gid }, h);
  } catch (err) {
    expect(err).toBeInstanceOf(ContainerUserError);
    return (err as Error).message;
  }
  throw new Error(`${uid}:${gid} was accepted`);
};

describe("the container user's start check", () => {
  it("accepts 99000:99000 where nothing has it; a root daemon hands the socket to it", () => {
    expect(checkContainerUser({ containerUid: 99000, containerGid: 99000 }, hosts)).toEqual({
      uid: 99000,
      gid: 99000,
      user: "99000:99000",
      socketOwner: { uid: 99000, gid: 99000 },
    });
  });

  it("a daemon that is not root runs containers as the same id, leaving the socket to its mode (no chown)", () => {
    expect(checkContainerUser({ containerUid: 99000, containerGid: 99000 }, { ...hosts, daemonUid: 1000 })).toMatchObject({
      user: "99000:99000",
      socketOwner: null,
    });
  });

  it("refuses a uid an account has, naming the account, the file and the variable to set", () => {
    const message = refusal(1000, 99000);
    expect(message).toContain(`the container uid 1000 (GANTRY_CONTAINER_UID) belongs to the account "alice" in ${hosts.passwd}`);
    expect(message).toContain("could read the functions' environment");
    expect(message).toContain("set GANTRY_CONTAINER_UID and GANTRY_CONTAINER_GID");
  });

  it("refuses a gid a group has, or that is an account's primary group", () => {
    expect(refusal(99000, 88000)).toContain(`the container gid 88000 (GANTRY_CONTAINER_GID) belongs to the group "builders" in ${hosts.group}`);
    expect(refusal(99000, 77000)).toContain(`belongs to the primary group of the account "bob" in ${hosts.passwd}`);
  });

  it("refuses an id inside a user's subordinate range (that user's rootless containers can run as it)", () => {
    expect(refusal(123456, 99000)).toContain(`the container uid 123456 (GANTRY_CONTAINER_UID) belongs to the subordinate uid range of "alice" in ${hosts.subuid}`);
    expect(refusal(99000, 165535)).toContain(`the subordinate gid range of "alice" in ${hosts.subgid}`);
    expect(() => checkContainerUser({ containerUid: 165536, containerGid: 165536 }, hosts)).not.toThrow(); // just past it
  });

  it("refuses root, the overflow ids and what is not an id", () => {
    expect(refusal(0, 99000)).toMatch(/^the container uid 0 \(GANTRY_CONTAINER_UID\) is root's: functions never run as root; set GANTRY_CONTAINER_UID/);
    expect(refusal(99000, 0)).toMatch(/^the container gid 0 \(GANTRY_CONTAINER_GID\) is root's/);
    expect(refusal(65534, 99000)).toContain("nobody/nogroup");
    for (const bad of [-1, 1.5, Number.NaN, 4294967295]) expect(refusal(bad, 99000)).toContain("is not an id: give a whole number from 1 to 4294967294");
  });

  it("reads the host's own files and getent by default: an account of this machine is refused by name", () => {
    const [name, , uid] = readFileSync("/etc/passwd", "utf8").split("\n").map((l) => l.split(":")).find((f) => Number(f[2]) > 0 && Number(f[2]) < 65534)!;
    expect(() => checkContainerUser({ containerUid: Number(uid), containerGid: DEFAULT_CONTAINER_ID })).toThrow(
      `the container uid ${uid} (GANTRY_CONTAINER_UID) belongs to the account "${name}" in /etc/passwd`,
    );
  });

  it("asks getent beyond the files (accounts from NSS): an id only getent knows is refused", () => {
    // Files that know no one (missing): the account holding the id is found by getent alone.
    const empty = { passwd: join(dir, "none"), group: join(dir, "none"), getent: true, daemonUid: 0 };
    const nss = readFileSync("/etc/passwd", "utf8").split("\n").map((l) => l.split(":")).find((f) => Number(f[2]) > 0 && Number(f[2]) < 65534)!;
    expect(refusal(Number(nss[2]), 99000, empty)).toContain(`belongs to the account "${nss[0]}" (getent passwd)`);
  });
});

describe("GANTRY_CONTAINER_UID and GANTRY_CONTAINER_GID", () => {
  const saved = { uid: process.env.GANTRY_CONTAINER_UID, gid: process.env.GANTRY_CONTAINER_GID };
  afterEach(() => {
    for (const [k, v] of [["GANTRY_CONTAINER_UID", saved.uid], ["GANTRY_CONTAINER_GID", saved.gid]] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });

  it("default to 99000 each; the gid follows the uid unless given; overrides win", () => {
    delete process.env.GANTRY_CONTAINER_UID;
    delete process.env.GANTRY_CONTAINER_GID;
    expect(makeConfig({ home: dir })).toMatchObject({ containerUid: 99000, containerGid: 99000 });
    process.env.GANTRY_CONTAINER_UID = "120000";
    expect(makeConfig({ home: dir })).toMatchObject({ containerUid: 120000, containerGid: 120000 });
    process.env.GANTRY_CONTAINER_GID = "120001";
    expect(makeConfig({ home: dir })).toMatchObject({ containerUid: 120000, containerGid: 120001 });
    expect(makeConfig({ home: dir, containerUid: 130000 })).toMatchObject({ containerUid: 130000, containerGid: 120001 });
  });

  it("refuse what is not a whole number, naming the variable", () => {
    process.env.GANTRY_CONTAINER_UID = "nobody";
    expect(() => makeConfig({ home: dir })).toThrow('GANTRY_CONTAINER_UID="nobody" is not a uid/gid: give a whole number, e.g. 99000');
  });
});
