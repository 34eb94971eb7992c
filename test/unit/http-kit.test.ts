// The API's router and body reader (daemon/api/http-kit.ts): routes by method and path, path
// parameters, 404 and 405; bodies read up to their limit over a real loopback HTTP server.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { readBody, Router, type Handler } from "../../daemon/api/http-kit.js";

const named =
  (name: string): Handler =>
  async () => ({ status: 200, body: name });

function router(): Router {
  return new Router()
    .on("GET", "/v1/calls/:id", named("get call"))
    .on("DELETE", "/v1/calls/:id", named("cancel call"))
    .on("GET", "/v1/calls/:id/items", named("items"))
    .on("GET", "/v1/calls", named("list"))
    .on("POST", "/submit/:app/:fn", named("submit"))
    .on("GET", "/v1/apps/:app", named("app"));
}

describe("Router", () => {
  it("matches by method and path, with decoded parameters", async () => {
    const r = router();
    const m = r.match("GET", "/v1/calls/fc-01");
    expect(m.params).toEqual({ id: "fc-01" });
    expect(await m.handler({} as never)).toEqual({ status: 200, body: "get call" });
    expect(r.match("DELETE", "/v1/calls/fc-01").params).toEqual({ id: "fc-01" });
    expect(r.match("POST", "/submit/my%20app/f").params).toEqual({ app: "my app", fn: "f" });
    expect(r.match("GET", "/v1/calls/fc-01/items").params).toEqual({ id: "fc-01" });
    expect(r.match("GET", "/v1/calls/").params).toEqual({}); // the list: trailing slashes do not count
  });

  it("answers 405 for a path some route has under another method, 404 for none", () => {
    const r = router();
    expect(() => r.match("PUT", "/v1/calls/fc-01")).toThrow(expect.objectContaining({ status: 405, message: "PUT is not allowed on /v1/calls/fc-01" }));
    expect(() => r.match("GET", "/v1/nope/fc-01")).toThrow(expect.objectContaining({ status: 404, message: "no route GET /v1/nope/fc-01" }));
    expect(() => r.match("GET", "/v1/calls/a/b/c/d")).toThrow(expect.objectContaining({ status: 404 }));
  });

  it("does not take a parameter that is not valid percent-encoding", () => {
    expect(() => router().match("GET", "/v1/apps/%E0%A4%A")).toThrow(expect.objectContaining({ status: 404 }));
  });

  it("only() keeps the routes named and refuses the rest its own way", () => {
    const r = router().only([["GET", "/v1/calls/:id"]], (m, p) => Object.assign(new Error(`refused ${m} ${p}`), { status: 403 }));
    expect(r.match("GET", "/v1/calls/x").params).toEqual({ id: "x" });
    expect(() => r.match("DELETE", "/v1/calls/x")).toThrow("refused DELETE /v1/calls/x");
    expect(() => router().only([["GET", "/v1/missing"]], () => new Error("x"))).toThrow(/some of the allowed routes do not exist/);
  });
});

describe("readBody", () => {
  let server: http.Server | null = null;
  afterEach(async () => {
    server?.closeAllConnections();
    await new Promise((r) => server?.close(r));
    server = null;
  });

  /** A server answering each request with what readBody made of its body (or its error). */
  async function serve(limit: number): Promise<number> {
    server = http.createServer((req, res) => {
      readBody(req, limit).then(
        (buf) => res.end(JSON.stringify({ bytes: buf.length, text: buf.toString("utf8").slice(0, 20) })),
        (err: { status?: number; message: string }) => {
          if (!res.headersSent && res.writable) res.writeHead(err.status ?? 500).end(err.message);
        },
      );
    });
    await new Promise<void>((r) => server!.listen(0, "127.0.0.1", r));
    return (server.address() as AddressInfo).port;
  }

  function post(port: number, chunks: string[], headers: Record<string, string> = {}): Promise<{ status: number; text: string }> {
    return new Promise((resolve, reject) => {
      const req = http.request({ host: "127.0.0.1", port, method: "POST", path: "/", headers }, (res) => {
        let text = "";
        res.setEncoding("utf8").on("data", (c) => (text += c)).on("end", () => resolve({ status: res.statusCode!, text }));
      });
      req.on("error", reject);
      for (const c of chunks) req.write(c);
      req.end();
    });
  }

  it("reads a body in one or many chunks", async () => {
    const port = await serve(1000);
    expect(JSON.parse((await post(port, ['{"a":1}'])).text)).toEqual({ bytes: 7, text: '{"a":1}' });
    expect(JSON.parse((await post(port, ["ab", "cd", "ef"])).text)).toEqual({ bytes: 6, text: "abcdef" });
    expect(JSON.parse((await post(port, [])).text)).toEqual({ bytes: 0, text: "" });
  });

  it("refuses a declared length over the limit at once, naming both", async () => {
    const port = await serve(10);
    const res = await post(port, ["x".repeat(11)], { "content-length": "11" });
    expect(res).toEqual({ status: 413, text: "request body of 11 bytes exceeds the limit of 10 bytes" });
  });

  it("refuses a chunked body once it passes the limit", async () => {
    const port = await serve(10);
    const res = await post(port, ["x".repeat(6), "y".repeat(6)], { "transfer-encoding": "chunked" }).catch((err: Error) => ({ status: 0, text: err.message }));
    // The request is destroyed once over the limit: the client sees the 413 or the connection reset.
    expect([413, 0]).toContain(res.status);
    if (res.status === 413) expect(res.text).toBe("request body exceeds the limit of 10 bytes");
  });
});
