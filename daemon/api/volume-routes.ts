/**
 * /v1/volumes (protocol/volumes.ts lists the routes): volumes and the files in them. File bodies
 * travel as application/octet-stream, streamed both ways (never whole in memory); everything
 * else is JSON. Paths are checked by the service before any file is touched.
 */
import { pipeline } from "node:stream/promises";
import type { Volumes } from "../service/volumes.js";
import { ApiError, invalid } from "./errors.js";
import { pathOf, readJson, type Router } from "./http-kit.js";

/** Room for a copy of 1,000 paths of 4,096 characters. */
const JSON_BODY_BYTES = 8 * 1024 * 1024;

const flag = (query: URLSearchParams, name: string): boolean => {
  const v = query.get(name);
  if (v !== null && v !== "0" && v !== "1") throw invalid(`${name} must be 0 or 1, got ${JSON.stringify(v.slice(0, 20))}`);
  return v === "1";
};

const pathParam = (query: URLSearchParams): string => query.get("path") ?? "";

export function registerVolumeRoutes(r: Router, d: { volumes: Volumes }): void {
  r.on("GET", "/v1/volumes", async () => ({ status: 200, body: { volumes: await d.volumes.list() } }));

  r.on("POST", "/v1/volumes", async ({ req }) => {
    const body = (await readJson(req, JSON_BODY_BYTES)) as { name?: unknown; exist_ok?: unknown } | undefined;
    if (!body || typeof body !== "object") throw invalid(`the body must be {"name": "...", "exist_ok": false}`);
    if (body.exist_ok !== undefined && typeof body.exist_ok !== "boolean") throw invalid(`exist_ok must be true or false`);
    const { volume, created } = await d.volumes.create(body.name as string, body.exist_ok === true);
    return { status: created ? 201 : 200, body: volume };
  });

  r.on("POST", "/v1/volumes/ephemeral", async () => ({ status: 201, body: await d.volumes.createEphemeral() }));

  r.on("GET", "/v1/volumes/:name", async ({ params }) => ({ status: 200, body: await d.volumes.get(params.name!) }));

  r.on("DELETE", "/v1/volumes/:name", async ({ params }) => {
    await d.volumes.delete(params.name!);
    return { status: 200, body: { name: params.name, deleted: true } };
  });

  r.on("POST", "/v1/volumes/:name/heartbeat", async ({ params }) => ({ status: 200, body: d.volumes.heartbeat(params.name!) }));

  r.on("POST", "/v1/volumes/:name/commit", async ({ params }) => {
    await d.volumes.commit(params.name!);
    return { status: 200, body: { name: params.name, committed: true } };
  });

  r.on("GET", "/v1/volumes/:name/entries", async ({ params, query }) => ({
    status: 200,
    body: { entries: await d.volumes.entries(params.name!, pathParam(query), flag(query, "recursive")) },
  }));

  r.on("GET", "/v1/volumes/:name/files", async ({ req, res, params, query }) => {
    const { size, stream } = await d.volumes.read(params.name!, pathParam(query));
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
    const written = await d.volumes.write(params.name!, pathParam(query), req as AsyncIterable<Buffer>, flag(query, "overwrite"));
    return { status: 201, body: written };
  });

  r.on("DELETE", "/v1/volumes/:name/files", async ({ params, query }) => ({
    status: 200,
    body: await d.volumes.remove(params.name!, pathParam(query), flag(query, "recursive")),
  }));

  r.on("POST", "/v1/volumes/:name/copy", async ({ req, params }) => {
    const body = (await readJson(req, JSON_BODY_BYTES)) as { src_paths?: unknown; dst_path?: unknown } | undefined;
    return { status: 200, body: await d.volumes.copy(params.name!, body?.src_paths, body?.dst_path) };
  });
}
