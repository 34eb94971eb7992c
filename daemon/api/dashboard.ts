/**
 * The dashboard's static files (DESIGN 1.10): the Vite build in dashboard/dist, served at `/` and
 * `/assets/…`. Only the files found there at start are served (no path from a request touches the
 * file system), with a strict content security policy: everything comes from the daemon itself.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import type http from "node:http";
import { extname, join, relative, sep } from "node:path";

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".json": "application/json",
  ".woff2": "font/woff2",
  ".txt": "text/plain; charset=utf-8",
};

const SECURITY_HEADERS = {
  "content-security-policy":
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
};

interface StaticFile {
  body: Buffer;
  type: string;
  /** Hashed asset names never change content: cached for a year. index.html is always revalidated. */
  immutable: boolean;
}

export class DashboardFiles {
  private readonly files = new Map<string, StaticFile>();

  constructor(readonly dir: string) {
    for (const file of walk(dir)) {
      const url = "/" + relative(dir, file).split(sep).join("/");
      this.files.set(url, {
        body: readFileSync(file),
        type: TYPES[extname(file)] ?? "application/octet-stream",
        immutable: url.startsWith("/assets/"),
      });
    }
  }

  /** Whether the dashboard was built (npm run build). */
  get built(): boolean {
    return this.files.has("/index.html");
  }

  /** Whether this request is for the dashboard (the page, or one of its files). */
  serves(method: string | undefined, pathname: string): boolean {
    if (method !== "GET" && method !== "HEAD") return false;
    return pathname === "/" || pathname === "/index.html" || this.files.has(pathname);
  }

  send(req: http.IncomingMessage, res: http.ServerResponse, pathname: string): void {
    const file = this.files.get(pathname === "/" ? "/index.html" : pathname);
    if (!file) {
      const text = `gantry's dashboard is not built here: run npm run build (it compiles dashboard/ into ${this.dir})\n`;
      res.writeHead(404, { "content-type": "text/plain; charset=utf-8", "content-length": Buffer.byteLength(text) });
      res.end(text);
      return;
    }
    res.writeHead(200, {
      ...SECURITY_HEADERS,
      "content-type": file.type,
      "content-length": file.body.length,
      "cache-control": file.immutable ? "public, max-age=31536000, immutable" : "no-cache",
    });
    res.end(req.method === "HEAD" ? undefined : file.body);
  }
}

function* walk(dir: string): Generator<string> {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return; // not built
  }
  for (const name of names) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) yield* walk(path);
    else yield path;
  }
}
