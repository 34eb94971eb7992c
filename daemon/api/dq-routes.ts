/**
 * /v1/dicts and /v1/queues (protocol/dicts-queues.ts lists the routes). Every route is open to
 * functions' containers too (their credential gains Dicts and Queues, nothing else); the caller's
 * app, known from the endpoint it came through, is who wrote a value and who may read a pickled one.
 */
import type http from "node:http";
import { DQ_LIMITS } from "../../protocol/dicts-queues.js";
import type { Dicts } from "../service/dicts.js";
import type { NamedObjects } from "../service/named-objects.js";
import type { Queues } from "../service/queues.js";
import { callerApp } from "./caller.js";
import { invalid } from "./errors.js";
import { readJson, type Router } from "./http-kit.js";

/** Room for a put_many of 10,000 values (each up to 1 MiB would not fit: the body limit names itself). */
const DQ_BODY_BYTES = 64 * 1024 * 1024;

type Body = Record<string, unknown>;

async function body(req: http.IncomingMessage): Promise<Body> {
  const b = await readJson(req, DQ_BODY_BYTES);
  if (b === undefined) return {};
  if (b === null || typeof b !== "object" || Array.isArray(b)) throw invalid(`the body must be a JSON object`);
  return b as Body;
}

const flag = (query: URLSearchParams, name: string): boolean => {
  const v = query.get(name);
  if (v !== null && v !== "0" && v !== "1") throw invalid(`${name} must be 0 or 1`);
  return v === "1";
};

const count = (query: URLSearchParams, name: string, fallback: number, max: number): number => {
  const raw = query.get(name);
  const n = raw === null ? fallback : Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > max) throw invalid(`${name} must be a whole number from 0 to ${max}`);
  return n;
};

const seconds = (query: URLSearchParams, name: string): number | undefined => {
  const raw = query.get(name);
  return raw === null ? undefined : Number(raw);
};

const OBJECT_ROUTES = (base: string) =>
  [
    ["GET", base],
    ["POST", base],
    ["POST", `${base}/ephemeral`],
    ["GET", `${base}/:name`],
    ["DELETE", `${base}/:name`],
    ["POST", `${base}/:name/heartbeat`],
  ] as const;

/** The routes a container's credential allows beside calls: every Dict and Queue route. */
export const DQ_CONTAINER_ROUTES: ReadonlyArray<readonly [string, string]> = [
  ...OBJECT_ROUTES("/v1/dicts"),
  ...["get", "contains", "put", "update", "pop", "clear"].map((op) => ["POST", `/v1/dicts/:name/${op}`] as const),
  ["GET", "/v1/dicts/:name/len"],
  ["GET", "/v1/dicts/:name/items"],
  ...OBJECT_ROUTES("/v1/queues"),
  ...["put", "get", "clear"].map((op) => ["POST", `/v1/queues/:name/${op}`] as const),
  ["GET", "/v1/queues/:name/len"],
  ["GET", "/v1/queues/:name/items"],
];

function register(r: Router, method: string, path: string, handler: Parameters<Router["on"]>[2]): void {
  if (!DQ_CONTAINER_ROUTES.some(([m, p]) => m === method && p === path)) throw new Error(`${method} ${path} is missing from DQ_CONTAINER_ROUTES`);
  r.on(method, path, handler);
}

/** The routes Dicts and Queues share: list, create, ephemeral, view, delete, heartbeat. */
function registerObjects(r: Router, base: string, objects: NamedObjects, view: (name: string) => unknown, list: () => unknown[], plural: string): void {
  register(r, "GET", base, async () => ({ status: 200, body: { [plural]: list() } }));
  register(r, "POST", base, async ({ req }) => {
    const b = await body(req);
    if (b.exist_ok !== undefined && typeof b.exist_ok !== "boolean") throw invalid(`exist_ok must be true or false`);
    const { object, created } = await objects.create(b.name as string, b.exist_ok === true);
    return { status: created ? 201 : 200, body: view(object.name) };
  });
  register(r, "POST", `${base}/ephemeral`, async () => ({ status: 201, body: view((await objects.createEphemeral()).name) }));
  register(r, "GET", `${base}/:name`, async ({ params }) => ({ status: 200, body: view(params.name!) }));
  register(r, "DELETE", `${base}/:name`, async ({ params }) => {
    await objects.delete(params.name!);
    return { status: 200, body: { name: params.name, deleted: true } };
  });
  register(r, "POST", `${base}/:name/heartbeat`, async ({ params }) => ({ status: 200, body: await objects.heartbeat(params.name!) }));
}

export function registerDictRoutes(r: Router, d: { dicts: Dicts }): void {
  const dicts = d.dicts;
  registerObjects(r, "/v1/dicts", dicts.objects, (n) => dicts.view(n), () => dicts.list(), "dicts");
  register(r, "POST", "/v1/dicts/:name/get", async ({ req, params }) => ({ status: 200, body: dicts.get(params.name!, (await body(req)).key, callerApp(req)) }));
  register(r, "POST", "/v1/dicts/:name/contains", async ({ req, params }) => ({ status: 200, body: dicts.contains(params.name!, (await body(req)).key) }));
  register(r, "POST", "/v1/dicts/:name/put", async ({ req, params }) => {
    const b = await body(req);
    if (b.skip_if_exists !== undefined && typeof b.skip_if_exists !== "boolean") throw invalid(`skip_if_exists must be true or false`);
    return { status: 200, body: await dicts.put(params.name!, b.key, b.value, b.skip_if_exists === true, callerApp(req)) };
  });
  register(r, "POST", "/v1/dicts/:name/update", async ({ req, params }) => ({ status: 200, body: await dicts.update(params.name!, (await body(req)).entries, callerApp(req)) }));
  register(r, "POST", "/v1/dicts/:name/pop", async ({ req, params }) => ({ status: 200, body: await dicts.pop(params.name!, (await body(req)).key, callerApp(req)) }));
  register(r, "GET", "/v1/dicts/:name/len", async ({ params }) => ({ status: 200, body: dicts.len(params.name!) }));
  register(r, "GET", "/v1/dicts/:name/items", async ({ req, params, query }) => ({
    status: 200,
    body: dicts.items(params.name!, count(query, "after", 0, Number.MAX_SAFE_INTEGER), count(query, "limit", 500, DQ_LIMITS.maxGet) || 500, callerApp(req)),
  }));
  register(r, "POST", "/v1/dicts/:name/clear", async ({ params }) => ({ status: 200, body: await dicts.clear(params.name!) }));
}

export function registerQueueRoutes(r: Router, d: { queues: Queues }): void {
  const queues = d.queues;
  registerObjects(r, "/v1/queues", queues.objects, (n) => queues.view(n), () => queues.list(), "queues");
  register(r, "POST", "/v1/queues/:name/put", async ({ req, params }) => ({ status: 200, body: await queues.put(params.name!, await body(req), callerApp(req)) }));
  register(r, "POST", "/v1/queues/:name/get", async ({ req, params }) => ({ status: 200, body: await queues.get(params.name!, await body(req), callerApp(req)) }));
  register(r, "GET", "/v1/queues/:name/len", async ({ params, query }) => ({ status: 200, body: queues.len(params.name!, query.get("partition") ?? undefined, flag(query, "total")) }));
  register(r, "POST", "/v1/queues/:name/clear", async ({ req, params }) => {
    const b = await body(req);
    if (b.all !== undefined && typeof b.all !== "boolean") throw invalid(`all must be true or false`);
    return { status: 200, body: await queues.clear(params.name!, b.partition, b.all === true) };
  });
  register(r, "GET", "/v1/queues/:name/items", async ({ req, params, query }) => ({
    status: 200,
    body: await queues.items(
      params.name!,
      query.get("partition") ?? undefined,
      count(query, "after", 0, Number.MAX_SAFE_INTEGER),
      count(query, "limit", 100, DQ_LIMITS.maxGet) || 100,
      seconds(query, "wait"),
      callerApp(req),
    ),
  }));
}
