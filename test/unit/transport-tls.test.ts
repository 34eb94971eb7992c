/**
 * The client transport's schemes (issue 15, point 8), without a daemon: an https:// URL always
 * speaks TLS (never plain HTTP with the token in it), http:// and the socket stay plain, a bad CA
 * setting is named; and the daemon's token rule (checkToken).
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { checkToken, MIN_TOKEN_LENGTH } from "../../daemon/config.js";
import { GantryError } from "../../sdk/errors.js";
import { Transport } from "../../sdk/transport.js";

const saved = process.env.GANTRY_CA_CERT;
afterEach(() => {
  if (saved === undefined) delete process.env.GANTRY_CA_CERT;
  else process.env.GANTRY_CA_CERT = saved;
});

describe("the transport's schemes", () => {
  it("uses TLS for https://, plain HTTP for http:// and the socket", () => {
    delete process.env.GANTRY_CA_CERT;
    const cases: Array<[ConstructorParameters<typeof Transport>[0], boolean]> = [
      [{ url: "https://127.0.0.1:8700" }, true],
      [{ url: "http://127.0.0.1:8700" }, false],
      [{ socketPath: "/tmp/nowhere.sock" }, false],
    ];
    for (const [opts, tls] of cases) {
      const t = new Transport(opts);
      expect(t.tls).toBe(tls);
      t.close();
    }
  });

  it("refuses a URL that is neither http:// nor https://, and a GANTRY_CA_CERT that cannot be read, naming it", () => {
    expect(() => new Transport({ url: "ftp://127.0.0.1:8700" })).toThrow(/must be http:\/\/ or https:\/\//);
    expect(() => new Transport({ url: "127.0.0.1:8700" })).toThrow(GantryError);
    process.env.GANTRY_CA_CERT = "/nonexistent/ca.pem";
    expect(() => new Transport({ url: "https://127.0.0.1:8700" })).toThrow(/GANTRY_CA_CERT names \/nonexistent\/ca\.pem, which cannot be read/);
    // Only https needs a CA: plain HTTP and the socket ignore it.
    expect(() => new Transport({ url: "http://127.0.0.1:8700" }).close()).not.toThrow();
  });

  it("never falls back to plain HTTP: https:// against a plain server fails, and the server sees no request (no token)", async () => {
    delete process.env.GANTRY_CA_CERT;
    let requests = 0;
    const server = http.createServer((_req, res) => {
      requests++;
      res.end("{}");
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as AddressInfo).port;
    const t = new Transport({ url: `https://127.0.0.1:${port}`, token: "a-token-that-must-not-leak" });
    try {
      const err = await t.json("GET", "/v1/health").then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(GantryError);
      expect((err as GantryError).message).toContain(`https://127.0.0.1:${port}`);
      expect(requests).toBe(0);
    } finally {
      t.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});

describe("checkToken", () => {
  it(`refuses a token under ${MIN_TOKEN_LENGTH} characters, naming its source, length and the rule; takes longer ones, or none`, () => {
    expect(() => checkToken("x".repeat(15), "GANTRY_TOKEN")).toThrow(
      "the token from GANTRY_TOKEN is 15 characters long; gantry takes tokens of 16 characters or more",
    );
    expect(() => checkToken("", "--token-file /tmp/t")).toThrow("the token from --token-file /tmp/t is 0 characters long");
    expect(() => checkToken("x".repeat(16), "GANTRY_TOKEN")).not.toThrow();
    expect(() => checkToken(null, "GANTRY_TOKEN")).not.toThrow();
  });
});
