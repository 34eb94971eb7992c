import { readFileSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import { homedir } from "node:os";
import { join } from "node:path";
import { pipeline, Transform, type Readable } from "node:stream";
import { DaemonNotRunningError, errorFromApi, GantryError } from "./errors.js";

export interface TransportOptions {
  /** Unix socket of the daemon; default `$GANTRY_HOME/gantry.sock`. */
  socketPath?: string;
  /** Base URL instead of the socket, e.g. `http://127.0.0.1:8700` or `https://gantry.example:8700`. */
  url?: string;
  token?: string;
  /**
   * For `https:` URLs: the CA certificate(s) (PEM) the daemon's certificate must chain to, instead of
   * the system's. Default: the file GANTRY_CA_CERT names, else the system's CAs.
   */
  ca?: string | Buffer;
  /** How errors name where `ca` came from (the CLI: "--ca-cert FILE"); default "the ca option". */
  caLabel?: string;
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

/** A request whose body is bytes (application/octet-stream) rather than JSON: see Transport.request. */
export interface StreamRequestOptions {
  /** The body: bytes, or a stream of them. */
  body?: Uint8Array | Readable;
  /**
   * How many bytes a stream body holds: sent as Content-Length, and the request fails (naming both
   * numbers) when the stream holds another number. Without it a stream is sent chunked.
   */
  length?: number;
  /** Default application/octet-stream. */
  contentType?: string;
  headers?: Record<string, string>;
}

/** The CA for an https URL: the option, else the file GANTRY_CA_CERT names, else none (the system's CAs). */
function resolveCa(opts: TransportOptions): { ca: string | Buffer | undefined; caSource: string | null } {
  if (opts.ca !== undefined) return { ca: opts.ca, caSource: opts.caLabel ?? "the ca option" };
  const file = process.env.GANTRY_CA_CERT;
  if (!file) return { ca: undefined, caSource: null };
  try {
    return { ca: readFileSync(file), caSource: `GANTRY_CA_CERT (${file})` };
  } catch (err) {
    throw new GantryError(`GANTRY_CA_CERT names ${file}, which cannot be read: ${(err as Error).message}`, "invalid_argument");
  }
}

/** Errors of a TLS handshake whose certificate is not vouched for (node's and OpenSSL's codes). */
const CERT_ERRORS = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "CERT_UNTRUSTED",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "CERT_SIGNATURE_FAILURE",
  "CERT_REVOKED",
  "ERR_TLS_CERT_ALTNAME_INVALID",
]);

/** JSON over HTTP(S), on the daemon's unix socket or TCP, with keep-alive. Shared by the CLI and the SDK. */
export class Transport {
  private readonly agent: http.Agent;
  readonly target: string;
  /** True when requests go over TLS (an `https:` URL). */
  readonly tls: boolean;

  private readonly opts: TransportOptions;
  private readonly caSource: string | null = null;
  /** The CA an https URL's certificate must chain to (for WebSockets, which do not use the agent). */
  private readonly ca: string | Buffer | undefined;

  constructor(opts: TransportOptions = {}) {
    this.opts = opts.url || opts.socketPath ? opts : { ...envTarget(), ...opts };
    this.target = this.opts.url ?? this.opts.socketPath ?? defaultSocketPath();
    let protocol: string | null = null;
    if (this.opts.url) {
      try {
        protocol = new URL(this.opts.url).protocol;
      } catch {
        throw new GantryError(`the daemon's URL must look like http://HOST:PORT or https://HOST:PORT, got ${JSON.stringify(this.opts.url)}`, "invalid_argument");
      }
      if (protocol !== "http:" && protocol !== "https:") {
        throw new GantryError(`the daemon's URL must be http:// or https://, got ${JSON.stringify(this.opts.url)}`, "invalid_argument");
      }
    }
    this.tls = protocol === "https:";
    if (this.tls) {
      const { ca, caSource } = resolveCa(this.opts);
      this.caSource = caSource;
      this.ca = ca;
      this.agent = new https.Agent({ keepAlive: true, maxSockets: 64, ...(ca !== undefined ? { ca } : {}) });
    } else {
      this.agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
    }
  }

  /** The error for a request that failed below HTTP: no daemon, a certificate not vouched for, TLS against plain HTTP. */
  private transportError(err: NodeJS.ErrnoException): GantryError {
    if (err.code === "ENOENT" || err.code === "ECONNREFUSED") {
      return new DaemonNotRunningError(`no gantry daemon answers at ${this.target} (${err.code}); start it with: gantry daemon start`);
    }
    if (this.tls && err.code && CERT_ERRORS.has(err.code)) {
      const by = this.caSource ? `the CA from ${this.caSource}` : "none of the system's CAs (no CA was given)";
      return new GantryError(
        `the daemon at ${this.target} presented a certificate that ${by} vouches for (${err.code}: ${err.message.trim()}); ` +
          `give the CA that signed it: the SDK's ca option, GANTRY_CA_CERT=FILE, or gantry --ca-cert FILE`,
        "tls",
      );
    }
    if (this.tls && (err.code === "EPROTO" || /wrong version number|packet length too long/i.test(err.message))) {
      return new GantryError(`the daemon at ${this.target} did not answer TLS (${err.message.trim()}); if it serves plain HTTP, use an http:// URL`, "tls");
    }
    return new GantryError(`request to the daemon at ${this.target} failed: ${err.message.trim()}`, "transport");
  }

  private requestOptions(method: string, path: string, extra: Record<string, string>): http.RequestOptions {
    const headers: Record<string, string> = { accept: "application/json", ...extra };
    if (this.opts.token) headers.authorization = `Bearer ${this.opts.token}`;
    if (this.opts.url) {
      const u = new URL(path, this.opts.url);
      // An IPv6 address comes bracketed in a URL; node wants it bare.
      return { method, hostname: u.hostname.replace(/^\[(.*)\]$/, "$1"), port: u.port, path: u.pathname + u.search, headers, agent: this.agent };
    }
    return { method, socketPath: this.opts.socketPath ?? defaultSocketPath(), path, headers, agent: this.agent };
  }

  /**
   * Where a WebSocket to `path` connects, as the `ws` package takes it (`ws://`, `wss://`, or
   * `ws+unix://SOCKET:PATH`), with the token's header and an https URL's CA.
   */
  webSocketTarget(path: string): { address: string; headers: Record<string, string>; ca?: string | Buffer } {
    const headers: Record<string, string> = {};
    if (this.opts.token) headers.authorization = `Bearer ${this.opts.token}`;
    if (!this.opts.url) return { address: `ws+unix://${this.opts.socketPath ?? defaultSocketPath()}:${path}`, headers };
    const u = new URL(path, this.opts.url);
    u.protocol = this.tls ? "wss:" : "ws:";
    return { address: u.toString(), headers, ...(this.ca !== undefined ? { ca: this.ca } : {}) };
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
    // An https: URL goes over TLS, always: never plain HTTP with the token in it.
    const req = this.tls ? https.request(options, onResponse) : http.request(options, onResponse);
    req.on("error", (err: NodeJS.ErrnoException) => reject(this.transportError(err)));
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

  /**
   * A request whose body streams out and whose answer streams in (volume files): resolves once the
   * answer's head has come, with the answer to read (a 2xx one; read or destroy it). A non-2xx
   * answer throws the matching GantryError, even one that comes before the body is all sent. A
   * stream body that fails, or holds another number of bytes than `length`, fails the request
   * with that error.
   */
  request(method: string, path: string, opts: StreamRequestOptions = {}): Promise<http.IncomingMessage> {
    return new Promise((resolve, reject) => {
      let settled = false;
      let answered = false;
      /** An error of the body (its stream, or its length): what the request fails with, not the socket's echo of it. */
      let bodyError: unknown = null;
      const fail = (err: unknown) => {
        if (settled) return;
        settled = true;
        reject(err);
      };
      const { body, length } = opts;
      const headers: Record<string, string> = { ...opts.headers };
      if (body !== undefined) {
        headers["content-type"] = opts.contentType ?? "application/octet-stream";
        const size = body instanceof Uint8Array ? body.byteLength : length;
        if (size !== undefined) headers["content-length"] = String(size);
      }
      const onResponse = (res: http.IncomingMessage) => {
        answered = true;
        const status = res.statusCode ?? 0;
        if (status >= 200 && status < 300) {
          if (settled) res.destroy();
          settled = true;
          resolve(res);
          return;
        }
        const chunks: Buffer[] = [];
        const done = () => {
          let parsed: unknown = null;
          try {
            parsed = JSON.parse(Buffer.concat(chunks).toString("utf8"));
          } catch {
            /* not JSON: the status names it */
          }
          fail(errorFromApi(status, parsed));
          if (!req.writableFinished) req.destroy(); // the daemon said no: the rest of the body need not go
        };
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", done);
        res.on("close", done);
        res.on("error", () => undefined); // a cut answer: "close" reports what came
      };
      const options = this.requestOptions(method, path, headers);
      const req = this.tls ? https.request(options, onResponse) : http.request(options, onResponse);
      req.on("error", (err: NodeJS.ErrnoException) => {
        if (bodyError) fail(bodyError);
        else if (!answered) fail(this.transportError(err)); // after an error answer, the socket's error is its echo
      });
      if (body === undefined || body instanceof Uint8Array) {
        req.end(body);
        return;
      }
      let sent = 0;
      const counted = new Transform({
        transform(chunk: Buffer | string, _enc, cb) {
          const buf = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
          sent += buf.length;
          if (length !== undefined && sent > length) {
            bodyError = new GantryError(`the body holds more than the ${length} bytes it was said to hold`, "invalid_argument");
            cb(bodyError as Error);
          } else cb(null, buf);
        },
        flush(cb) {
          if (length !== undefined && sent !== length) {
            bodyError = new GantryError(`the body held ${sent} bytes, not the ${length} it was said to hold (did the file change while it was sent?)`, "invalid_argument");
            cb(bodyError as Error);
          } else cb();
        },
      });
      body.once("error", (err) => {
        bodyError ??= err;
      });
      pipeline(body, counted, req, (err) => {
        if (!err) return;
        if (bodyError) fail(bodyError);
        else if (!answered) fail(err instanceof GantryError ? err : this.transportError(err as NodeJS.ErrnoException));
      });
    });
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
