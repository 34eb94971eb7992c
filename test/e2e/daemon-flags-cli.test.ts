/**
 * `gantry daemon start`'s token and listener flags (issue 15, point 8), through the real CLI: a token
 * never on the command line, never under 16 characters, from a file only its owner can read; TLS
 * needs both halves; beyond loopback needs a token, and the refusal says how to make one. Each
 * refusal exits 2 before any daemon starts.
 */
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gantry } from "../helpers/cli.js";

let home: string;
/** No token in the environment unless a test puts one there. */
const g = (args: string[], env: Record<string, string> = {}) => gantry(home, args, { GANTRY_TOKEN: "", ...env });
const GOOD_TOKEN = "e2e-token-file-0123456789abcdef";

beforeAll(() => {
  home = mkdtempSync(join(tmpdir(), "gf-"));
});
afterAll(async () => {
  await g(["daemon", "stop", "--grace", "0"]);
  rmSync(home, { recursive: true, force: true });
});

function tokenFile(name: string, content: string, mode: number): string {
  const path = join(home, name);
  writeFileSync(path, content);
  chmodSync(path, mode);
  return path;
}

/** A refusal: exit 2, the message on stderr, and no daemon started. */
async function refused(args: string[], env: Record<string, string> = {}): Promise<string> {
  const r = await g(["daemon", "start", ...args], env);
  expect(r.code, r.stderr).toBe(2);
  expect(existsSync(join(home, "gantry.sock"))).toBe(false);
  return r.stderr;
}

describe("gantry daemon start: tokens", () => {
  it("refuses --token on the command line: it shows in ps; says to use GANTRY_TOKEN or --token-file", async () => {
    const err = await refused(["--http-port", "0", "--token", GOOD_TOKEN]);
    expect(err).toContain("--token is refused");
    expect(err).toContain("shows in ps");
    expect(err).toContain("GANTRY_TOKEN");
    expect(err).toContain("--token-file");
  });

  it("refuses a token under 16 characters, from GANTRY_TOKEN or a token file, naming its length and the rule", async () => {
    const fromEnv = await refused(["--http-port", "0"], { GANTRY_TOKEN: "short-token" });
    expect(fromEnv).toContain("the token from GANTRY_TOKEN is 11 characters long");
    expect(fromEnv).toContain("16 characters or more");
    const file = tokenFile("short", "fifteen-chars!!\n", 0o600);
    const fromFile = await refused(["--http-port", "0", "--token-file", file]);
    expect(fromFile).toContain(`the token from --token-file ${file} is 15 characters long`);
  });

  it("refuses a token file other users can read (0644), naming it and chmod 600", async () => {
    const file = tokenFile("open", GOOD_TOKEN, 0o644);
    const err = await refused(["--http-port", "0", "--token-file", file]);
    expect(err).toContain(file);
    expect(err).toContain("mode 0644");
    expect(err).toContain(`chmod 600 ${file}`);
  });

  it("takes a 0600 token file: the daemon starts with that token (not in its argv), status works, it stops", async () => {
    const file = tokenFile("token", `${GOOD_TOKEN}\n`, 0o600);
    const started = await g(["daemon", "start", "--http-port", "0", "--token-file", file, "--container-network", "none", "--json"]);
    expect(started.code, started.stderr).toBe(0);
    const { pid, http } = JSON.parse(started.stdout) as { pid: number; http: string };
    expect(http).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    // The token guards TCP: the file's content, trimmed.
    expect((await fetch(`${http}/v1/health`)).status).toBe(401);
    expect((await fetch(`${http}/v1/health`, { headers: { authorization: `Bearer ${GOOD_TOKEN}` } })).status).toBe(200);
    // ps shows no token: the daemon got it in its environment.
    expect(readFileSync(`/proc/${pid}/cmdline`, "utf8")).not.toContain(GOOD_TOKEN);

    const status = await g(["daemon", "status"]);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toContain(`http:       ${http}`);
    const viaUrl = await g(["--url", http, "--token-file", file, "daemon", "status", "--json"]);
    expect(viaUrl.code, viaUrl.stderr).toBe(0);
    expect(JSON.parse(viaUrl.stdout)).toMatchObject({ pid });

    const stopped = await g(["daemon", "stop", "--grace", "0"]);
    expect(stopped.code, stopped.stderr).toBe(0);
  });
});

describe("gantry daemon start: listeners", () => {
  it("refuses --tls-cert without --tls-key (and the other way round), and files that are not there", async () => {
    const cert = tokenFile("cert.pem", "not a certificate", 0o644);
    expect(await refused(["--http-port", "0", "--tls-cert", cert])).toContain("--tls-cert needs --tls-key");
    expect(await refused(["--http-port", "0", "--tls-key", cert])).toContain("--tls-key needs --tls-cert");
    const missing = join(home, "missing.pem");
    expect(await refused(["--http-port", "0", "--tls-cert", missing, "--tls-key", cert])).toContain(`--tls-cert ${missing} cannot be read`);
    expect(await refused(["--http-port", "0", "--tls-cert", cert, "--tls-key", cert])).toMatch(/must be a PEM certificate and its private key/);
  });

  it("refuses --http-host 0.0.0.0 without a token, saying how to make one and pass it", async () => {
    const err = await refused(["--http-host", "0.0.0.0", "--http-port", "0"]);
    expect(err).toContain("--http-host 0.0.0.0 listens beyond loopback");
    expect(err).toContain("openssl rand -hex 32");
    expect(err).toContain("--token-file");
    expect(err).toContain("GANTRY_TOKEN");
  });

  it("refuses malformed --allowed-origin, --allowed-host and --web-port values, naming the flag", async () => {
    expect(await refused(["--http-port", "0", "--allowed-origin", "https://app.example.com/path"])).toContain("--allowed-origin must be an origin");
    expect(await refused(["--http-port", "0", "--allowed-origin", "app.example.com"])).toContain("--allowed-origin must be an origin");
    expect(await refused(["--http-port", "0", "--allowed-host", "bad host/"])).toContain("--allowed-host must be a host name");
    expect(await refused(["--http-port", "0", "--web-port", "http"])).toContain("--web-port must be a port number");
    expect(await refused(["--web-port", "8799"])).toContain("add --http-port");
  });
});
