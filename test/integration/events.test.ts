import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import WebSocket from "ws";
import { deploy, exampleApp, fixture, startTestDaemon, type TestDaemon } from "../helpers/daemon.js";

let t: TestDaemon;

beforeAll(async () => {
  t = await startTestDaemon();
  await deploy(t, exampleApp);
  await deploy(t, fixture("behaviours.ts"));
});
afterAll(async () => {
  await t?.dispose();
});

/** Opens a status stream and collects its messages. */
async function listen(url: string): Promise<{ messages: Array<Record<string, unknown>>; ws: WebSocket }> {
  const ws = new WebSocket(url);
  const messages: Array<Record<string, unknown>> = [];
  ws.on("message", (data) => messages.push(JSON.parse(data.toString()) as Record<string, unknown>));
  await new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("error", reject);
  });
  return { messages, ws };
}

describe("WebSocket status stream /v1/events", () => {
  it("streams a call's status changes over TCP, filtered by app", async () => {
    const { messages, ws } = await listen(`${t.baseUrl.replace("http", "ws")}/v1/events?app=my-job-queue`);
    try {
      const call = await (await t.client.functions.fromName("my-job-queue", "process_job")).spawn("streamed");
      await call.get({ timeoutMs: 30_000 });
      const mine = () => messages.filter((m) => m.type === "call.status" && m.call_id === call.callId).map((m) => m.status);
      await vi.waitFor(() => expect(mine()).toEqual(["queued", "running", "succeeded"]));
      const done = messages.find((m) => m.call_id === call.callId && m.status === "succeeded")!;
      expect(done).toMatchObject({ app: "my-job-queue", function: "process_job", attempt: 1, ts: expect.any(String) });
      expect(messages.every((m) => m.app === "my-job-queue")).toBe(true);
    } finally {
      ws.close();
    }
  });

  it("streams on the unix socket too, filtered by call ID, including log lines", async () => {
    const chatty = await t.client.functions.fromName("behaviours", "chatty");
    const sock = join(t.home, "gantry.sock");
    // Spawn first, then follow that call: the current state is readable over HTTP, then the stream.
    const call = await chatty.spawn(2);
    const { messages, ws } = await listen(`ws+unix://${sock}:/v1/events?call_id=${call.callId}`);
    try {
      await call.get({ timeoutMs: 30_000 });
      await vi.waitFor(() => expect(messages.some((m) => m.type === "call.status" && m.status === "succeeded")).toBe(true));
      expect(messages.every((m) => m.call_id === call.callId)).toBe(true);
      expect(messages.filter((m) => m.type === "log").map((m) => m.line)).toEqual(expect.arrayContaining(["line 0", "line 1"]));
    } finally {
      ws.close();
    }
  });

  it("refuses other WebSocket paths", async () => {
    const ws = new WebSocket(`${t.baseUrl.replace("http", "ws")}/v1/nothing`);
    const err = await new Promise<Error>((resolve) => ws.once("error", resolve));
    expect(err.message).toContain("404");
  });
});
