import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import WebSocket from "ws";
import { SocketAgentEndpoint } from "../../daemon/api/agent-hub.js";
import { silentLogger } from "../../daemon/logger.js";
import type { AgentToDaemon } from "../../protocol/agent-messages.js";

let dir: string;
let endpoint: SocketAgentEndpoint;
const TOKEN = "t0ken-for-this-container";

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "gantry-agent-"));
  endpoint = new SocketAgentEndpoint(join(dir, "ct-1"), TOKEN, silentLogger);
  await endpoint.listen(null);
});
afterEach(async () => {
  await endpoint.close();
  rmSync(dir, { recursive: true, force: true });
});

const url = () => `ws+unix://${join(dir, "ct-1", "agent.sock")}:/agent`;

function connect(token: string): Promise<WebSocket> {
  const ws = new WebSocket(url(), { headers: { authorization: `Bearer ${token}` } });
  return new Promise((resolve, reject) => {
    ws.once("open", () => resolve(ws));
    ws.once("error", reject);
  });
}

function closed(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) => ws.once("close", (code, reason) => resolve({ code, reason: reason.toString() })));
}

describe("a container's agent endpoint", () => {
  it("serves a socket that refuses a wrong token, in a folder of the daemon's the container cannot write (0755)", async () => {
    // No owner to hand it to (a daemon that cannot chown): 0666, reachable only through the 0700 home and its one container.
    expect(statSync(join(dir, "ct-1", "agent.sock")).mode & 0o777).toBe(0o666);
    const folder = statSync(join(dir, "ct-1"));
    expect({ uid: folder.uid, mode: folder.mode & 0o7777 }).toEqual({ uid: process.getuid!(), mode: 0o755 });
    await expect(connect("wrong")).rejects.toThrow(/401/);
  });

  it.skipIf(process.getuid?.() !== 0)("hands the socket alone (0600) to the container's uid:gid; the folder stays root's", async () => {
    const owned = new SocketAgentEndpoint(join(dir, "ct-2"), TOKEN, silentLogger);
    await owned.listen({ uid: 99000, gid: 99001 });
    try {
      const socket = statSync(join(dir, "ct-2", "agent.sock"));
      const folder = statSync(join(dir, "ct-2"));
      expect({ uid: socket.uid, gid: socket.gid, mode: socket.mode & 0o777 }).toEqual({ uid: 99000, gid: 99001, mode: 0o600 });
      expect({ uid: folder.uid, gid: folder.gid, mode: folder.mode & 0o7777 }).toEqual({ uid: 0, gid: 0, mode: 0o755 });
    } finally {
      await owned.close();
    }
  });

  it("takes one agent with the right token, validates its messages, and refuses a second", async () => {
    const messages: AgentToDaemon[] = [];
    endpoint.on("message", (m) => messages.push(m));
    const ws = await connect(TOKEN);
    ws.send(JSON.stringify({ type: "ready", protocol: 1, runtime: "node test", functionName: "f" }));
    await vi.waitFor(() => expect(messages).toEqual([{ type: "ready", protocol: 1, runtime: "node test", functionName: "f" }]));
    await expect(connect(TOKEN)).rejects.toThrow(/401/);
    ws.close();
  });

  it("closes the connection on malformed JSON, naming the problem", async () => {
    const ws = await connect(TOKEN);
    const done = closed(ws);
    ws.send("{not json");
    expect(await done).toEqual({ code: 1008, reason: "malformed JSON from agent" });
  });

  it("closes the connection on a message outside the protocol", async () => {
    const gone = new Promise<string>((resolve) => endpoint.once("disconnected", resolve));
    const ws = await connect(TOKEN);
    const done = closed(ws);
    ws.send(JSON.stringify({ type: "output", callId: "fc-x", attempt: 0, ok: true, value: 1 }));
    const { code, reason } = await done;
    expect(code).toBe(1008);
    expect(reason).toMatch(/^invalid agent message: attempt/);
    expect(await gone).toMatch(/agent connection closed \(1008/);
  });
});
