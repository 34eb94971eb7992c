/**
 * /v1/volumes (protocol/volumes.ts lists the routes): volumes and the files in them. File bodies
 * travel as application/octet-stream, streamed both ways (never whole in memory); everything
 * else is JSON. Paths are checked by the service before any file is touched.
 */
import { pipeline } from "node:stream/promises";
import type http from "node:http";
import type { Volumes } from "../service/volumes.js";
import { callerContainer } from "./caller.js";
import { ApiError, invalid } from "./errors.js";
import { pathOf, readJson, type Router } from "./http-kit.js";

/** The routes a container's credential reaches, for the volumes its function mounts only (Volumes.containerAccess). */
export const VOLUME_CONTAINER_ROUTES: ReadonlyArray<readonly [string, string]> = [
  ["GET", "/v1/volumes/:name"],
  ["POST", "/v1/volumes/:name/commit"],
  ["GET", "/v1/volumes/:name/entries"],
  ["GET", "/v1/volumes/:name/files"],
  ["PUT", "/v1/volumes/:name/files"],
  ["DELETE", "/v1/volumes/:name/files"],
  ["POST", "/v1/volumes/:name/copy"],
];

/** Room for a copy of 1,000 paths of 4,096 characters. */
const JSON_BODY_BYTES = 8 * 1024 * 1024;

const flag = (query: URLSearchParams, name: string): boolean => {
  const v = query.get(name);
  if (v !== null && v !== "0" && v !== "1") throw invalid(`${name} must be 0 or 1, got ${JSON.stringify(v.slice(0, 20))}`);
  return v === "1";
};

const pathParam = (query: URLSearchParams): string => query.get("path") ?? "";

/** `mode=644`: octal permission bits; undefined when left out. */
const modeParam = (query: URLSearchParams): number | undefined => {
  const v = query.get("mode");
  if (v === null) return undefined;
  if (!/^0?[0-7]{1,4}$/.test(v)) throw invalid(`mode must be octal permission bits such as 644, got ${JSON.stringify(v.slice(0, 20))}`);
  return parseInt(v, 8);
};

export function registerVolumeRoutes(r: Router, d: { volumes: Volumes }): void {
  /** A container reaches only the volumes its function mounts, and writes only read-write ones; other clients pass. */
  const scope = (req: http.IncomingMessage, name: string, write: boolean): string => {
    const container = callerContainer(req);
    if (container) d.volumes.containerAccess(name, container.volumes, write);
    return name;
  };
  registerVolumeAdmin(r, d);

  r.on("GET", "/v1/volumes/:name", async ({ req, params }) => ({ status: 200, body: await d.volumes.get(scope(req, params.name!, false)) }));

  r.on("POST", "/v1/volumes/:name/commit", async ({ req, params }) => {
    await d.volumes.commit(scope(req, params.name!, false));
    return { status: 200, body: { name: params.name, committed: true } };
  });

  r.on("GET", "/v1/volumes/:name/entries", async ({ req, params, query }) => ({
    status: 200,
    body: { entries: await d.volumes.entries(scope(req, params.name!, false), pathParam(query), flag(query, "recursive")) },
  }));

  r.on("GET", "/v1/volumes/:name/files", async ({ req, res, params, query }) => {
    const { size, stream } = await d.volumes.read(scope(req, params.name!, false), pathParam(query));
    res.writeHead(200, { "content-type": "application/octet-stream", "content-length": size });
    if (req.method === "HEAD") {
      stream.destroy();
      res.end();
      return undefined;
    }
    await pipeline(stream, res).catch(() => res.destroy()); // the client went away: nothing to answer
    return undefined;
  });

  r.on("PUT", "/v1/volumes/:name/files", async ({ req, params, query }) => {
    const type = (req.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase();
    if (type !== "application/octet-stream") {
      throw new ApiError(415, "unsupported_media_type", `PUT ${pathOf(req.url)} takes the file's bytes: send Content-Type: application/octet-stream${type ? ` (got ${JSON.stringify(type)})` : ""}`, { rule: "content-type" });
    }
    const name = scope(req, params.name!, true);
    const written = await d.volumes.write(name, pathParam(query), req as AsyncIterable<Buffer>, flag(query, "overwrite"), modeParam(query));
    return { status: 201, body: written };
  });

  r.on("DELETE", "/v1/volumes/:name/files", async ({ req, params, query }) => ({
    status: 200,
    body: await d.volumes.remove(scope(req, params.name!, true), pathParam(query), flag(query, "recursive")),
  }));

  r.on("POST", "/v1/volumes/:name/copy", async ({ req, params }) => {
    const name = scope(req, params.name!, true);
    const body = (await readJson(req, JSON_BODY_BYTES)) as { src_paths?: unknown; dst_path?: unknown; recursive?: unknown } | undefined;
    return { status: 200, body: await d.volumes.copy(name, body?.src_paths, body?.dst_path, body?.recursive ?? false) };
  });
}

/** Making, listing and removing volumes: the host's only (a container's credential does not reach these). */
function registerVolumeAdmin(r: Router, d: { volumes: Volumes }): void {
  r.on("GET", "/v1/volumes", async () => ({ status: 200, body: { volumes: await d.volumes.list() } }));

  r.on("POST", "/v1/volumes", async ({ req }) => {
    const body = (await readJson(req, JSON_BODY_BYTES)) as { name?: unknown; exist_ok?: unknown } | undefined;
    if (!body || typeof body !== "object") throw invalid(`the body must be {"name": "...", "exist_ok": false}`);
    if (body.exist_ok !== undefined && typeof body.exist_ok !== "boolean") throw invalid(`exist_ok must be true or false`);
    const { volume, created } = await d.volumes.create(body.name as string, body.exist_ok === true);
    return { status: created ? 201 : 200, body: volume };
  });

  r.on("POST", "/v1/volumes/ephemeral", async () => ({ status: 201, body: await d.volumes.createEphemeral() }));

  r.on("DELETE", "/v1/volumes/:name", async ({ params }) => {
    await d.volumes.delete(params.name!);
    return { status: 200, body: { name: params.name, deleted: true } };
  });

  r.on("POST", "/v1/volumes/:name/heartbeat", async ({ params }) => ({ status: 200, body: d.volumes.heartbeat(params.name!) }));
}
