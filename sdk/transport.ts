import http from "node:http";
import { homedir } from "node:os";
import { join } from "node:path";
import { DaemonNotRunningError, errorFromApi, GantryError } from "./errors.js";

export interface TransportOptions {
  /** Unix socket of the daemon; default `$GANTRY_HOME/gantry.sock`. */
  socketPath?: string;
  /** Base URL instead of the socket, e.g. `http://127.0.0.1:8700`. */
  url?: string;
  token?: string;
}

export function gantryHome(): string {
  return process.env.GANTRY_HOME || join(homedir(), ".gantry");
}

/**
 * The daemon the environment names when the code names none: GANTRY_URL (with GANTRY_TOKEN);
 * inside a function's container across a cluster, GANTRY_API_URL with the container's token;
 * else the socket (defaultSocketPath).
 */
function envTarget(): TransportOptions {
  const e = process.env;
  if (e.GANTRY_URL) return { url: e.GANTRY_URL, ...(e.GANTRY_TOKEN ? { token: e.GANTRY_TOKEN } : {}) };
  if (e.GANTRY_API_URL) return { url: e.GANTRY_API_URL, ...(e.GANTRY_API_TOKEN ? { token: e.GANTRY_API_TOKEN } : {}) };
  return {};
}

/** The daemon's socket: inside a function's container, the one its agent uses (calls only); else $GANTRY_HOME/gantry.sock. */
export function defaultSocketPath(): string {
  return process.env.GANTRY_API_SOCKET || join(gantryHome(), "gantry.sock");
}

export interface Response {
  status: number;
  body: unknown;
}

/** JSON over HTTP, on the daemon's unix socket or TCP, with keep-alive. Shared by the CLI and the SDK. */
export class Transport {
  private readonly agent: http.Agent;
  readonly target: string;

  private readonly opts: TransportOptions;

  constructor(opts: TransportOptions = {}) {
    this.opts = opts.url || opts.socketPath ? opts : { ...envTarget(), ...opts };
    this.agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
    this.target = this.opts.url ?? this.opts.socketPath ?? defaultSocketPath();
  }

  private requestOptions(method: string, path: string, extra: Record<string, string>): http.RequestOptions {
    const headers: Record<string, string> = { accept: "application/json", ...extra };
    if (this.opts.token) headers.authorization = `Bearer ${this.opts.token}`;
    if (this.opts.url) {
      const u = new URL(path, this.opts.url);
      return { method, hostname: u.hostname, port: u.port, path: u.pathname + u.search, headers, agent: this.agent };
    }
    return { method, socketPath: this.opts.socketPath ?? defaultSocketPath(), path, headers, agent: this.agent };
  }

  private send(
    method: string,
    path: string,
    body: unknown,
    onResponse: (res: http.IncomingMessage) => void,
    reject: (e: unknown) => void,
    headers: Record<string, string> = {},
  ): void {
    const options = this.requestOptions(method, path, headers);
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    if (payload) {
      (options.headers as Record<string, string>)["content-type"] = "application/json";
      (options.headers as Record<string, string>)["content-length"] = String(payload.length);
    }
    const req = http.request(options, onResponse);
    req.on("error", (err: NodeJS.ErrnoException) => {
      if (err.code === "ENOENT" || err.code === "ECONNREFUSED") {
        reject(new DaemonNotRunningError(`no gantry daemon answers at ${this.target} (${err.code}); start it with: gantry daemon start`));
      } else reject(new GantryError(`request to the daemon at ${this.target} failed: ${err.message}`, "transport"));
    });
    req.end(payload);
  }

  /** Sends a request; resolves with status and parsed body, throwing only on transport failure. */
  async raw(method: string, path: string, body?: unknown): Promise<Response> {
    const { status, body: parsed } = await this.rawWithHeaders(method, path, body);
    return { status, body: parsed };
  }

  /** Like raw(), with extra request headers, resolving with the answer's headers too. */
  private rawWithHeaders(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<Response & { headers: http.IncomingHttpHeaders }> {
    return new Promise((resolve, reject) => {
      this.send(method, path, body, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("error", reject);
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let parsed: unknown = text;
          try {
            parsed = text ? JSON.parse(text) : null;
          } catch {
            /* keep the text */
          }
          resolve({ status: res.statusCode ?? 0, body: parsed, headers: res.headers });
        });
      }, reject, headers);
    });
  }

  /** Like raw(), but throws the matching GantryError for a non-2xx answer. */
  async json<T>(method: string, path: string, body?: unknown): Promise<T> {
    return (await this.exchange<T>(method, path, body)).body;
  }

  /** Like json(), with extra request headers, and the answer's headers too. */
  async exchange<T>(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<{ body: T; headers: http.IncomingHttpHeaders }> {
    const res = await this.rawWithHeaders(method, path, body, headers);
    if (res.status < 200 || res.status >= 300) throw errorFromApi(res.status, res.body);
    return { body: res.body as T, headers: res.headers };
  }

  /** POSTs and reads an NDJSON stream, one parsed object per line. */
  stream(method: string, path: string, body: unknown, onLine: (obj: unknown) => void): Promise<void> {
    return new Promise((resolve, reject) => {
      this.send(method, path, body, (res) => {
        if ((res.statusCode ?? 0) >= 300) {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => {
            let parsed: unknown = null;
            try {
              parsed = JSON.parse(Buffer.concat(chunks).toString("utf8"));
            } catch {
              /* not JSON */
            }
            reject(errorFromApi(res.statusCode ?? 0, parsed));
          });
          return;
        }
        let buf = "";
        const emit = (line: string) => {
          try {
            onLine(JSON.parse(line));
          } catch (err) {
            res.destroy();
            reject(err instanceof SyntaxError ? new GantryError(`the daemon sent a malformed line: ${line.slice(0, 200)}`, "transport") : err);
          }
        };
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          buf += chunk;
          let nl: number;
          while ((nl = buf.indexOf("\n")) >= 0) {
            const line = buf.slice(0, nl).trim();
            buf = buf.slice(nl + 1);
            if (line) emit(line);
          }
        });
        res.on("error", reject);
        res.on("end", () => {
          if (buf.trim()) emit(buf.trim());
          resolve();
        });
      }, reject);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}
