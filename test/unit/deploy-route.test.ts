/**
 * POST /v1/apps/deploy streams NDJSON after its 200: a deploy that fails in a way the service did
 * not foresee still ends with an error line (it used to end the 200 with an empty body).
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { buildRouter, type RouteDeps } from "../../daemon/api/routes.js";
import { answer, route } from "../../daemon/api/server.js";
import type { Logger } from "../../daemon/logger.js";
import { invalid } from "../../daemon/service/errors.js";

let server: http.Server | null = null;
afterEach(() => server?.close());

/** A server with the real routes and a deployer that fails with `err` after one event. */
async function serveDeploys(err: Error, logged: string[]): Promise<number> {
  const deployer = {
    deploy: async (_req: unknown, emit: (e: unknown) => void) => {
      emit({ type: "log", line: "storing files" });
      throw err;
    },
  };
  // Only the deployer is used; routes that read their ports when registered get empty ones.
  const deps = new Proxy({ deployer, deployBodyBytes: 1024 * 1024 } as Record<string | symbol, unknown>, { get: (t, k) => t[k] ?? { objects: {} } });
  const router = buildRouter(deps as unknown as RouteDeps);
  const log = { error: (msg: string, fields: { err?: string }) => logged.push(`${msg}: ${fields.err ?? ""}`), warn: () => {}, info: () => {} } as unknown as Logger;
  server = http.createServer((req, res) => void answer(req, res, log, () => route(router, req, res, true)));
  await new Promise<void>((resolve) => server!.listen(0, "127.0.0.1", resolve));
  return (server.address() as AddressInfo).port;
}

async function postDeploy(port: number): Promise<{ status: number; lines: unknown[] }> {
  const body = JSON.stringify({ app: "a", runtime: "python", module: "app", functions: [{ name: "f", options: {} }], files: { "app.py": "x = 1" } });
  const res = await fetch(`http://127.0.0.1:${port}/v1/apps/deploy`, { method: "POST", headers: { "content-type": "application/json" }, body });
  const text = await res.text();
  return { status: res.status, lines: text.split("\n").filter(Boolean).map((l) => JSON.parse(l) as unknown) };
}

describe("POST /v1/apps/deploy: a failure after the 200", () => {
  it("ends an unexpected failure with an error line, and logs it with its stack", async () => {
    const logged: string[] = [];
    const port = await serveDeploys(Object.assign(new Error("ENOTDIR: not a directory, mkdir 'x'"), { code: "ENOTDIR" }), logged);
    const { status, lines } = await postDeploy(port);
    expect(status).toBe(200);
    expect(lines).toEqual([
      { type: "log", line: "storing files" },
      { type: "error", error: { code: "internal", message: "internal error; see the daemon log" } },
    ]);
    expect(logged).toEqual([expect.stringMatching(/^request failed: Error: ENOTDIR: not a directory/)]);
  });

  it("ends a failure the service names with its error line, logging nothing", async () => {
    const logged: string[] = [];
    const port = await serveDeploys(invalid("function f: no such image"), logged);
    const { lines } = await postDeploy(port);
    expect(lines.at(-1)).toEqual({ type: "error", error: { code: "invalid_argument", message: "function f: no such image" } });
    expect(logged).toEqual([]);
  });
});
