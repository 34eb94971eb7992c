/**
 * A small in-memory stand-in for the daemon's /v1/sandboxes (protocol/sandboxes.ts), for unit tests
 * of the TypeScript SDK and CLI: it records what it was sent, answers with the contract's shapes,
 * and serves a process's output in pieces (a follow answer that ends before the stream closed, a
 * UTF-8 character split across chunks) so readers show they keep their offset.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import type { ProcessView, SandboxView } from "../../protocol/sandboxes.js";

export interface FakeProcess {
  id: string;
  command: string[];
  stdout: Buffer;
  stderr: Buffer;
  /** Where the first follow answer stops (then ends without saying closed); the rest comes on the next ask. */
  cutAt: number;
  returncode: number | null;
  stdin: Array<{ bytes: string; eof: boolean }>;
}

export interface FakeSandboxes {
  url: string;
  server: http.Server;
  created: unknown[];
  requests: string[];
  sandboxes: Map<string, { view: SandboxView; procs: Map<string, FakeProcess>; pendingPolls: number }>;
  /** What the next exec runs as: its output and exit code. */
  nextExec: { stdout: string; stderr: string; returncode: number };
  close(): Promise<void>;
}

let seq = 0;
const id = (prefix: string) => `${prefix}-${String(++seq).padStart(18, "0")}`;

function view(body: Record<string, unknown>): SandboxView {
  const now = new Date().toISOString();
  return {
    id: id("sb"),
    app: String(body.app),
    name: (body.name as string) ?? null,
    state: "pending",
    returncode: null,
    error: null,
    timeout_kind: null,
    command: (body.command as string[]) ?? [],
    image: null,
    tags: (body.tags as Record<string, string>) ?? {},
    created_at: now,
    started_at: null,
    ended_at: null,
    timeout: (body.timeout as number) ?? 300,
    idle_timeout: (body.idle_timeout as number) ?? null,
    block_network: Boolean(body.block_network),
    pty: Boolean(body.pty),
    running_execs: 0,
  };
}

function processView(sbId: string, p: FakeProcess): ProcessView {
  return {
    id: p.id,
    sandbox_id: sbId,
    command: p.command,
    running: p.returncode === null,
    returncode: p.returncode,
    pty: false,
    started_at: new Date().toISOString(),
    ended_at: p.returncode === null ? null : new Date().toISOString(),
    stdout_bytes: p.stdout.length,
    stderr_bytes: p.stderr.length,
    dropped: false,
  };
}

function json(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}

const notFound = (res: http.ServerResponse, what: string) => json(res, 404, { error: { code: "not_found", message: `no ${what}` } });

/** GET …/stdout|stderr: from offset; a first follow answer stops at cutAt without saying closed. */
function serveStream(res: http.ServerResponse, p: FakeProcess, stream: "stdout" | "stderr", q: URLSearchParams): void {
  const data = p[stream];
  const offset = Number(q.get("offset") ?? 0);
  const follow = q.get("follow") === "1";
  const cut = follow && stream === "stdout" && offset < p.cutAt;
  const end = cut ? p.cutAt : data.length;
  res.writeHead(200, { "content-type": "application/octet-stream", "x-gantry-closed": cut ? "0" : "1" });
  const bytes = data.subarray(offset, end);
  // Two writes, the first ending mid-character when it can: readers must keep a split character whole.
  res.write(bytes.subarray(0, 2));
  res.end(bytes.subarray(2));
}

export async function startSandboxFake(): Promise<FakeSandboxes> {
  const fake = {
    created: [] as unknown[],
    requests: [] as string[],
    sandboxes: new Map(),
    nextExec: { stdout: "", stderr: "", returncode: 0 },
  } as unknown as FakeSandboxes;
  const server = http.createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on("data", (c: Buffer) => parts.push(c));
    req.on("end", () => handle(fake, req, res, Buffer.concat(parts)));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  fake.server = server;
  fake.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  fake.close = () => new Promise((r) => server.close(() => r()));
  return fake;
}

function handle(fake: FakeSandboxes, req: http.IncomingMessage, res: http.ServerResponse, body: Buffer): void {
  const url = new URL(req.url ?? "/", "http://fake");
  fake.requests.push(`${req.method} ${url.pathname}${url.search}`);
  const m = /^\/v1\/sandboxes(?:\/([^/]+))?(?:\/(.*))?$/.exec(url.pathname);
  if (!m) return notFound(res, "route");
  const [, sbId, rest] = m;
  if (!sbId) {
    if (req.method === "POST") {
      const b = JSON.parse(body.toString()) as Record<string, unknown>;
      fake.created.push(b);
      const v = view(b);
      const main: FakeProcess = { id: "main", command: v.command, stdout: Buffer.from("héllo\nwörld\nlast"), stderr: Buffer.from("oops\n"), cutAt: 8, returncode: null, stdin: [] };
      fake.sandboxes.set(v.id, { view: v, procs: new Map([["main", main]]), pendingPolls: 1 });
      return json(res, 201, v);
    }
    const all = [...fake.sandboxes.values()].map((s) => s.view).reverse();
    return json(res, 200, { sandboxes: all.filter((v) => !url.searchParams.get("app") || v.app === url.searchParams.get("app")) });
  }
  const sb = fake.sandboxes.get(sbId);
  if (!sb) return notFound(res, `sandbox ${sbId}`);
  if (!rest) {
    if (sb.view.state === "pending" && sb.pendingPolls-- <= 0) {
      sb.view.state = sb.view.app === "fails" ? "failed" : "running";
      if (sb.view.state === "failed") sb.view.error = "image build failed: no such package nope";
    }
    return json(res, 200, sb.view);
  }
  if (rest === "terminate") {
    if (sb.view.state === "running" || sb.view.state === "pending") Object.assign(sb.view, { state: "terminated", returncode: 137, error: "terminated" });
    return json(res, 200, sb.view);
  }
  if (rest === "tags") {
    sb.view.tags = (JSON.parse(body.toString()) as { tags: Record<string, string> }).tags;
    return json(res, 200, sb.view);
  }
  if (rest === "exec") {
    const b = JSON.parse(body.toString()) as { command: string[] };
    const p: FakeProcess = { id: id("ex"), command: b.command, stdout: Buffer.from(fake.nextExec.stdout), stderr: Buffer.from(fake.nextExec.stderr), cutAt: 0, returncode: fake.nextExec.returncode, stdin: [] };
    sb.procs.set(p.id, p);
    return json(res, 201, processView(sbId, p));
  }
  const pm = /^procs\/([^/]+)(?:\/(stdout|stderr|stdin))?$/.exec(rest);
  const p = pm && sb.procs.get(pm[1]!);
  if (!p) return notFound(res, `process ${rest}`);
  if (!pm[2]) return json(res, 200, processView(sbId, p));
  if (pm[2] === "stdin") {
    p.stdin.push({ bytes: body.toString(), eof: url.searchParams.get("eof") === "1" });
    return json(res, 200, { written: body.length });
  }
  return serveStream(res, p, pm[2] as "stdout" | "stderr", url.searchParams);
}
