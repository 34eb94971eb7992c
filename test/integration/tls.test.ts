/**
 * TLS (issue 15, point 8): a daemon with --tls-cert/--tls-key serves HTTPS and WSS, and every
 * client (the TypeScript SDK, the CLI, the Python client) reaches it with a custom CA, and refuses a
 * certificate that CA does not vouch for with an error naming the URL and the CA setting.
 * A throwaway CA and a server certificate for 127.0.0.1/localhost are made with openssl here.
 */
import { execFileSync } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { GantryClient } from "../../sdk/client.js";
import { GantryError } from "../../sdk/errors.js";
import { gantry, runProcess } from "../helpers/cli.js";
import { deploy, fixture, startTestDaemon, type TestDaemon } from "../helpers/daemon.js";

const TOKEN = "a-token-of-16+chars-for-tls";
const PYTHON = "/usr/bin/python3";
const PYTHONPATH = join(import.meta.dirname, "..", "..", "python");

let dir: string;
let t: TestDaemon;
let ca: Buffer;
let caPath: string;
let otherCaPath: string;

const openssl = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });

/** A self-signed CA (key and certificate) in dir: NAME.key, NAME.pem. */
function makeCa(name: string): void {
  openssl(
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
    "-keyout", `${name}.key`, "-out", `${name}.pem`, "-days", "2", "-subj", `/CN=gantry test ${name}`,
  );
}

/** A server certificate for 127.0.0.1 and localhost, signed by the CA "ca": server.key, server.pem. */
function makeServerCert(): void {
  openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost");
  writeFileSync(join(dir, "server.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n");
  openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "server.ext");
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "gt-tls-"));
  makeCa("ca");
  makeCa("other-ca");
  makeServerCert();
  caPath = join(dir, "ca.pem");
  otherCaPath = join(dir, "other-ca.pem");
  ca = readFileSync(caPath);
  t = await startTestDaemon({ tls: { certPath: join(dir, "server.pem"), keyPath: join(dir, "server.key") }, token: TOKEN });
  await deploy(t, fixture("behaviours.ts"));
});
afterAll(async () => {
  await t?.dispose();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** What a client's request rejected with. */
async function failure(p: Promise<unknown>): Promise<GantryError> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(GantryError);
  return err as GantryError;
}

describe("a daemon with --tls-cert and --tls-key", () => {
  it("serves HTTPS: the TypeScript client with the CA spawns and gets a call", async () => {
    expect(t.baseUrl).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const client = new GantryClient({ url: t.baseUrl, token: TOKEN, ca });
    try {
      expect(client.transport.tls).toBe(true);
      const health = await client.transport.json<{ http: string }>("GET", "/v1/health");
      expect(health.http).toMatch(/^https:\/\//);
      const echo = await client.functions.fromName("behaviours", "echo");
      const call = await echo.spawn({ over: "https" });
      expect(await call.get()).toEqual({ over: "https" });
    } finally {
      client.close();
    }
  });

  it("the TypeScript client takes the CA from GANTRY_CA_CERT too", async () => {
    const before = process.env.GANTRY_CA_CERT;
    process.env.GANTRY_CA_CERT = caPath;
    try {
      const client = new GantryClient({ url: t.baseUrl, token: TOKEN });
      await expect(client.transport.json("GET", "/v1/health")).resolves.toMatchObject({ ok: true });
      client.close();
    } finally {
      if (before === undefined) delete process.env.GANTRY_CA_CERT;
      else process.env.GANTRY_CA_CERT = before;
    }
  });

  it("without the CA, or with another, the TypeScript client refuses the certificate: the error names the URL and the CA setting", async () => {
    const noCa = new GantryClient({ url: t.baseUrl, token: TOKEN });
    const e1 = await failure(noCa.transport.json("GET", "/v1/health"));
    noCa.close();
    expect(e1.code).toBe("tls");
    expect(e1.message).toContain(t.baseUrl);
    expect(e1.message).toContain("no CA was given");
    expect(e1.message).toContain("GANTRY_CA_CERT");

    const wrong = new GantryClient({ url: t.baseUrl, token: TOKEN, ca: readFileSync(otherCaPath) });
    const e2 = await failure(wrong.transport.json("GET", "/v1/health"));
    wrong.close();
    expect(e2.code).toBe("tls");
    expect(e2.message).toContain(t.baseUrl);
    expect(e2.message).toContain("the CA from the ca option");
  });

  it("plain HTTP to the TLS port gets no answer", async () => {
    const plainUrl = t.baseUrl.replace(/^https:/, "http:");
    await expect(fetch(`${plainUrl}/v1/health`)).rejects.toThrow();
    const plain = new GantryClient({ url: plainUrl });
    expect(plain.transport.tls).toBe(false);
    await expect(plain.transport.json("GET", "/v1/health")).rejects.toBeInstanceOf(GantryError);
    plain.close();
  });

  it("serves WSS: the status stream opens with the CA, and refuses the handshake without it", async () => {
    const url = `${t.baseUrl.replace(/^https:/, "wss:")}/v1/events`;
    const ws = new WebSocket(url, { headers: { authorization: `Bearer ${TOKEN}` }, ca });
    await new Promise<void>((resolve, reject) => (ws.once("open", () => resolve()), ws.once("error", reject)));
    ws.close();
    const untrusted = new WebSocket(url, { headers: { authorization: `Bearer ${TOKEN}` } });
    const err = await new Promise<NodeJS.ErrnoException>((resolve) => untrusted.once("error", resolve));
    expect(err.code).toBe("UNABLE_TO_VERIFY_LEAF_SIGNATURE");
  });

  it("the CLI reaches it with --url https://…, --ca-cert and GANTRY_TOKEN (or --token-file); without the CA it says which flag to use", async () => {
    const home = mkdtempSync(join(tmpdir(), "gt-tls-cli-"));
    try {
      const ok = await gantry(home, ["--url", t.baseUrl, "--ca-cert", caPath, "apps", "ls", "--json"], { GANTRY_TOKEN: TOKEN });
      expect(ok.code, ok.stderr).toBe(0);
      expect((JSON.parse(ok.stdout) as Array<{ name: string }>).map((a) => a.name)).toContain("behaviours");

      const tokenFile = join(home, "token");
      writeFileSync(tokenFile, `${TOKEN}\n`);
      chmodSync(tokenFile, 0o600);
      const fromFile = await gantry(home, ["--url", t.baseUrl, "--token-file", tokenFile, "apps", "ls", "--json"], { GANTRY_CA_CERT: caPath, GANTRY_TOKEN: "" });
      expect(fromFile.code, fromFile.stderr).toBe(0);

      const noCa = await gantry(home, ["--url", t.baseUrl, "apps", "ls"], { GANTRY_TOKEN: TOKEN, GANTRY_CA_CERT: "" });
      expect(noCa.code).toBe(1);
      expect(noCa.stderr).toContain(t.baseUrl);
      expect(noCa.stderr).toContain("--ca-cert");
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });

  it("the Python client reaches it with GANTRY_CA_CERT (or ca_cert=), and without the CA says so", async () => {
    const env = { ...process.env, PYTHONPATH, GANTRY_URL: t.baseUrl, GANTRY_TOKEN: TOKEN };
    const code = [
      "import json, gantry",
      "from gantry._client import Client",
      "call = gantry.Function.from_name('behaviours', 'echo').spawn({'over': 'python'})",
      "explicit = Client(url=" + JSON.stringify(t.baseUrl) + ", token=" + JSON.stringify(TOKEN) + ", ca_cert=" + JSON.stringify(caPath) + ")",
      "again = gantry.Function.from_name('behaviours', 'echo', client=explicit).remote('explicit')",
      "print(json.dumps({'got': call.get(timeout=60), 'again': again}))",
    ].join("\n");
    const ok = await runProcess(PYTHON, ["-c", code], { ...env, GANTRY_CA_CERT: caPath });
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout.trim())).toEqual({ got: { over: "python" }, again: "explicit" });

    const noCa = await runProcess(PYTHON, ["-c", "import gantry\ngantry.Function.from_name('behaviours', 'echo').remote(1)"], { ...env, GANTRY_CA_CERT: "" });
    expect(noCa.code).not.toBe(0);
    expect(noCa.stderr).toContain(t.baseUrl);
    expect(noCa.stderr).toContain("GANTRY_CA_CERT");
  });
});

describe("gantry daemon start --tls-cert --tls-key", () => {
  it("starts a daemon serving HTTPS (its API and its web endpoints), which status reports", async () => {
    const home = mkdtempSync(join(tmpdir(), "gt-tls-start-"));
    const tokenFile = join(home, "token");
    writeFileSync(tokenFile, TOKEN);
    chmodSync(tokenFile, 0o600);
    const g = (...args: string[]) => gantry(home, args, { GANTRY_TOKEN: "" });
    try {
      const started = await g(
        "daemon", "start", "--http-port", "0", "--tls-cert", join(dir, "server.pem"), "--tls-key", join(dir, "server.key"),
        "--token-file", tokenFile, "--container-network", "none",
      );
      expect(started.code, started.stderr).toBe(0);
      const http = /^ {2}http: +(\S+)$/m.exec(started.stdout)?.[1];
      expect(http).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      expect(started.stdout).toMatch(/^ {2}web: +https:\/\/127\.0\.0\.1:\d+$/m);
      const status = await g("--url", http!, "--ca-cert", caPath, "--token-file", tokenFile, "daemon", "status");
      expect(status.code, status.stderr).toBe(0);
      expect(status.stdout).toContain(`http:       ${http}`);
      expect(status.stdout).toMatch(/^ {2}web: +https:\/\//m);
    } finally {
      await g("daemon", "stop", "--grace", "0");
      rmSync(home, { recursive: true, force: true });
    }
  });
});
