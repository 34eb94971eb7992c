/**
 * /v1/secrets: create, replace, list and remove secrets. Answers carry names and keys, never
 * values; a request's values go to the service and nowhere else (error messages name keys only).
 */
import { parseCreateSecretRequest, secretNameSchema } from "../../protocol/secrets.js";
import type { Secrets } from "../service/secrets.js";
import { invalid } from "./errors.js";
import { checkJsonBody, jsonBodyText, readBody, type Router } from "./http-kit.js";

/** Far above the largest secret (64 KiB of keys and values), with room for JSON escapes. */
const SECRET_BODY_BYTES = 512 * 1024;

/** The body as JSON; unlike readJson, a parse error does not quote the body (it holds values). */
async function readSecretBody(req: Parameters<typeof readBody>[0]): Promise<unknown> {
  checkJsonBody(req);
  const text = jsonBodyText(await readBody(req, SECRET_BODY_BYTES)); // UTF-8 and depth checked, nothing quoted
  try {
    return JSON.parse(text);
  } catch {
    throw invalid(`the request body is not valid JSON: send {"name", "values": {KEY: VALUE}, "force"}`);
  }
}

function checkedName(raw: string): string {
  if (!secretNameSchema.safeParse(raw).success) {
    throw invalid(`${JSON.stringify(raw.slice(0, 80))} is not a secret name: letters, digits, _ and -, starting with a letter or _, at most 64 characters`);
  }
  return raw;
}

export function registerSecretRoutes(r: Router, d: { secrets: Secrets }): void {
  r.on("GET", "/v1/secrets", async () => ({ status: 200, body: { secrets: d.secrets.list() } }));

  r.on("GET", "/v1/secrets/:name", async ({ params }) => ({ status: 200, body: d.secrets.get(checkedName(params.name!)) }));

  r.on("POST", "/v1/secrets", async ({ req }) => {
    const parsed = parseCreateSecretRequest(await readSecretBody(req));
    if (!parsed.ok) throw invalid(parsed.message);
    const change = await d.secrets.create(parsed.request);
    return { status: change.replaced ? 200 : 201, body: change };
  });

  r.on("DELETE", "/v1/secrets/:name", async ({ params, query }) => {
    const force = query.get("force");
    if (force !== null && force !== "0" && force !== "1") throw invalid(`force must be 0 or 1`);
    const removed = await d.secrets.remove(checkedName(params.name!), force === "1");
    return { status: 200, body: { ...removed, removed: true } };
  });
}
