/**
 * The uid:gid functions run as (issue 15, point 7). It must be an id no host account or group
 * has: on one machine a container's processes are host processes of that uid, so the account
 * holding it could read their `/proc/<pid>/environ` (secrets, the agent's token), signal them and
 * read what they write. Checked once, when the daemon starts, against the host's account
 * databases: `/etc/passwd` and `/etc/group`, the subordinate ranges of `/etc/subuid` and
 * `/etc/subgid` (a user with a range holding the id can make processes of it, through rootless
 * containers), and `getent` where it exists (accounts from NSS: LDAP, systemd-homed…).
 *
 * Whether the daemon runs as root or not, containers run as this id. A daemon that is not root
 * cannot hand the agent's socket to it (chown), so it leaves the socket 0666 instead: still
 * reachable by nothing else, since its folder (the daemon's own, 0755, mounted read-only into its
 * container alone) lies inside the 0700 `$GANTRY_HOME`. Running the
 * container as the daemon's own user instead (as before) would make the function the owner of
 * its socket folder (it could write there) and let the daemon's account hold its processes.
 * Under rootless Docker the id must be one the user's subordinate range maps (under 65536 with
 * the default range): set GANTRY_CONTAINER_UID / GANTRY_CONTAINER_GID accordingly.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";

/** Who functions run as, and how their agent's socket reaches them. */
export interface ContainerIdentity {
  uid: number;
  gid: number;
  /** Docker's `User`: "uid:gid". */
  user: string;
  /** Whom the agent's socket is handed to (the daemon is root); null: it cannot chown, the socket is left 0666. */
  socketOwner: { uid: number; gid: number } | null;
}

/** Where the account databases are read; tests pass files of their own and leave getent out. */
export interface HostAccounts {
  passwd?: string;
  group?: string;
  subuid?: string;
  subgid?: string;
  /** Asks NSS (`getent passwd|group ID`); false: the files alone. */
  getent?: boolean;
  /** The daemon's own uid (whether it can chown the socket); default process.getuid(). */
  daemonUid?: number;
}

/** The largest id Linux hands out: 2^32 - 1 is (uid_t) -1, "no change". */
const MAX_ID = 4294967294;
/** Historical special ids beside root: 65534 nobody/nogroup (NFS squash, user namespaces' overflow), 65535 the 16-bit -1. */
const SPECIAL: Record<number, string> = { 65534: "nobody/nogroup (the overflow id)", 65535: "the 16-bit (uid_t) -1" };

const FIX =
  "set GANTRY_CONTAINER_UID and GANTRY_CONTAINER_GID to an id that no host account, group or subordinate range has " +
  "(the default, 99000, is outside every range Debian and systemd hand out)";

export class ContainerUserError extends Error {
  override name = "ContainerUserError";
}

interface Holder {
  name: string;
  where: string;
}

function readLines(path: string | undefined): string[] {
  if (!path) return [];
  try {
    return readFileSync(path, "utf8").split("\n");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
}

/** Entries of a colon-separated database (passwd, group) whose field `field` is `id`. */
function byIdField(path: string | undefined, field: number, id: number): string[] {
  const names: string[] = [];
  for (const line of readLines(path)) {
    if (!line || line.startsWith("#") || line.startsWith("+") || line.startsWith("-")) continue;
    const f = line.split(":");
    if (f[field] !== undefined && f[field] !== "" && Number(f[field]) === id) names.push(f[0]!);
  }
  return names;
}

/** Users whose subordinate range (`name:start:count`) holds `id`. */
function bySubRange(path: string | undefined, id: number): string[] {
  const names: string[] = [];
  for (const line of readLines(path)) {
    const [name, start, count] = line.split(":");
    if (!name || start === undefined || count === undefined) continue;
    const s = Number(start);
    const c = Number(count);
    if (Number.isFinite(s) && Number.isFinite(c) && id >= s && id < s + c) names.push(name);
  }
  return names;
}

/** `getent DB ID`'s name, or null when nothing has it (or getent is not installed). */
function getent(db: "passwd" | "group", id: number): string | null {
  try {
    const out = execFileSync("getent", [db, String(id)], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"], timeout: 5000 });
    return out.split(":")[0]?.trim() || null;
  } catch {
    return null; // exit 2: not found; ENOENT: no getent here (the files were read anyway)
  }
}

function who(kind: "uid" | "gid", id: number, hosts: HostAccounts): Holder | null {
  if (kind === "uid") {
    const user = byIdField(hosts.passwd, 2, id)[0];
    if (user) return { name: user, where: `the account "${user}" in ${hosts.passwd}` };
    const sub = bySubRange(hosts.subuid, id)[0];
    if (sub) return { name: sub, where: `the subordinate uid range of "${sub}" in ${hosts.subuid}` };
    const nss = hosts.getent ? getent("passwd", id) : null;
    if (nss) return { name: nss, where: `the account "${nss}" (getent passwd)` };
    return null;
  }
  const group = byIdField(hosts.group, 2, id)[0];
  if (group) return { name: group, where: `the group "${group}" in ${hosts.group}` };
  // An account whose primary group it is shares its files too, listed in /etc/group or not.
  const primary = byIdField(hosts.passwd, 3, id)[0];
  if (primary) return { name: primary, where: `the primary group of the account "${primary}" in ${hosts.passwd}` };
  const sub = bySubRange(hosts.subgid, id)[0];
  if (sub) return { name: sub, where: `the subordinate gid range of "${sub}" in ${hosts.subgid}` };
  const nss = hosts.getent ? getent("group", id) : null;
  if (nss) return { name: nss, where: `the group "${nss}" (getent group)` };
  return null;
}

const VARIABLE = { uid: "GANTRY_CONTAINER_UID", gid: "GANTRY_CONTAINER_GID" } as const;

function checkOne(kind: "uid" | "gid", id: number, hosts: HostAccounts): void {
  const label = `the container ${kind} ${id} (${VARIABLE[kind]})`;
  if (!Number.isInteger(id) || id < 0 || id > MAX_ID) {
    throw new ContainerUserError(`${label} is not an id: give a whole number from 1 to ${MAX_ID}; ${FIX}`);
  }
  if (id === 0) throw new ContainerUserError(`${label} is root's: functions never run as root; ${FIX}`);
  if (SPECIAL[id]) throw new ContainerUserError(`${label} is ${SPECIAL[id]}, which other software uses; ${FIX}`);
  const holder = who(kind, id, hosts);
  if (holder) {
    throw new ContainerUserError(
      `${label} belongs to ${holder.where} on this host: "${holder.name}" could read the functions' environment (secrets, agent token) ` +
        `and signal their processes; ${FIX}`,
    );
  }
}

/**
 * Checks the configured uid and gid (none is root, none is a host account's, group's or
 * subordinate range's) and says how containers run as them. Throws ContainerUserError, naming
 * the id, what holds it and the variable to set.
 */
export function checkContainerUser(
  cfg: { containerUid: number; containerGid: number },
  hosts: HostAccounts = { passwd: "/etc/passwd", group: "/etc/group", subuid: "/etc/subuid", subgid: "/etc/subgid", getent: true },
): ContainerIdentity {
  checkOne("uid", cfg.containerUid, hosts);
  checkOne("gid", cfg.containerGid, hosts);
  const daemonUid = hosts.daemonUid ?? process.getuid?.() ?? 0;
  const { containerUid: uid, containerGid: gid } = cfg;
  return { uid, gid, user: `${uid}:${gid}`, socketOwner: daemonUid === 0 ? { uid, gid } : null };
}
