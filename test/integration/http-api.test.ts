import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deploy, exampleApp, fixture, startTestDaemon, type TestDaemon } from "../helpers/daemon.js";

let t: TestDaemon;

beforeAll(async () => {
  t = await startTestDaemon({ maxBodyBytes: 64 * 1024 });
  await deploy(t, exampleApp);
  await deploy(t, fixture("behaviours.ts"));
});
afterAll(async () => {
  await t?.dispose();
});

const UNKNOWN_ID = "fc-00000000000000000000000000";
/** A body sent as JSON (a text/plain or form body is refused with 415: see request-rules.test.ts). */
const JSON_TYPE = { "content-type": "application/json" };

describe("HTTP submit/result (Modal's job-queue pattern) with a plain HTTP client", () => {
  it("POST /submit with ?data= answers 202 and a call ID; GET /result answers 200 with the return value", async () => {
    const sub = await fetch(`${t.baseUrl}/submit/my-job-queue/process_job?data=data`, { method: "POST" });
    expect(sub.status).toBe(202);
    const { call_id } = (await sub.json()) as { call_id: string };
    expect(call_id).toMatch(/^fc-[0-9a-z]{26}$/);
    const res = await fetch(`${t.baseUrl}/result/${call_id}?timeout=30`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ result: "data" });
  });

  it("POST /submit with a JSON body passes it as the function's argument", async () => {
    const sub = await fetch(`${t.baseUrl}/submit/my-job-queue/process_job`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ x: [1, 2] }),
    });
    expect(sub.status).toBe(202);
    const { call_id } = (await sub.json()) as { call_id: string };
    const res = await fetch(`${t.baseUrl}/result/${call_id}?timeout=30`);
    expect(await res.json()).toEqual({ result: { x: [1, 2] } });
  });

  it("takes a JSON null body as the input (null is a value)", async () => {
    const sub = await fetch(`${t.baseUrl}/submit/my-job-queue/process_job`, { method: "POST", headers: JSON_TYPE, body: "null" });
    expect(sub.status).toBe(202);
    const { call_id } = (await sub.json()) as { call_id: string };
    expect(await (await fetch(`${t.baseUrl}/result/${call_id}?timeout=30`)).json()).toEqual({ result: null });
  });

  it("GET /result answers 202 while the call is pending", async () => {
    const sub = await fetch(`${t.baseUrl}/submit/behaviours/slow`, { method: "POST", headers: JSON_TYPE, body: "3000" });
    const { call_id } = (await sub.json()) as { call_id: string };
    const pending = await fetch(`${t.baseUrl}/result/${call_id}`);
    expect(pending.status).toBe(202);
    expect(await pending.json()).toMatchObject({ call_id, status: expect.stringMatching(/queued|running/) });
    const done = await fetch(`${t.baseUrl}/result/${call_id}?timeout=30`);
    expect(done.status).toBe(200);
    expect(await done.json()).toEqual({ slept: 3000 });
  });

  it("GET /result answers 404 for an unknown call and 400 for something that is no call ID", async () => {
    const unknown = await fetch(`${t.baseUrl}/result/${UNKNOWN_ID}`);
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toMatchObject({ error: { code: "not_found", message: expect.stringContaining(UNKNOWN_ID) } });
    const bad = await fetch(`${t.baseUrl}/result/not-an-id`);
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ error: { code: "invalid_argument", message: expect.stringContaining("not a call ID") } });
  });

  it("a failed call answers 500 with the remote error's type, message and traceback", async () => {
    const sub = await fetch(`${t.baseUrl}/submit/behaviours/boom`, { method: "POST", headers: JSON_TYPE, body: JSON.stringify("kaput") });
    const { call_id } = (await sub.json()) as { call_id: string };
    const res = await fetch(`${t.baseUrl}/result/${call_id}?timeout=30`);
    expect(res.status).toBe(500);
    const body = (await res.json()) as { error: { type: string; message: string; traceback: string } };
    expect(body.error.type).toBe("ValueError");
    expect(body.error.message).toBe("kaput");
    expect(body.error.traceback).toContain("boom");
  });

  it("rejects bad input with a clear error and loses nothing", async () => {
    const unknownFn = await fetch(`${t.baseUrl}/submit/my-job-queue/nope`, { method: "POST", headers: JSON_TYPE, body: "1" });
    expect(unknownFn.status).toBe(404);
    expect(await unknownFn.json()).toMatchObject({ error: { message: "app my-job-queue has no function named nope" } });
    const unknownApp = await fetch(`${t.baseUrl}/submit/nope/process_job`, { method: "POST", headers: JSON_TYPE, body: "1" });
    expect(unknownApp.status).toBe(404);
    expect(await unknownApp.json()).toMatchObject({ error: { message: "no deployed app named nope" } });

    const badJson = await fetch(`${t.baseUrl}/submit/my-job-queue/process_job`, { method: "POST", headers: JSON_TYPE, body: "{not json" });
    expect(badJson.status).toBe(400);
    expect(await badJson.json()).toMatchObject({ error: { code: "invalid_argument", message: expect.stringContaining("not valid JSON") } });

    const big = await fetch(`${t.baseUrl}/submit/my-job-queue/process_job`, { method: "POST", headers: JSON_TYPE, body: JSON.stringify("x".repeat(70 * 1024)) });
    expect(big.status).toBe(413);
    expect(await big.json()).toMatchObject({ error: { code: "payload_too_large", message: expect.stringContaining("65536 bytes") } });

    const noInput = await fetch(`${t.baseUrl}/submit/my-job-queue/process_job`, { method: "POST" });
    expect(noInput.status).toBe(400);

    const shape = 'the body must be {"args": [...], "kwargs": {...}}, the function\'s arguments (both optional)';
    const refused: Array<[string, string]> = [
      ["null", shape],
      ["5", shape],
      ['{"args": 5}', `"args" must be an array: ${shape}`],
      ['{"arg": []}', `${shape}; unknown field "arg"`],
      ['{"kwargs": [1]}', `"kwargs" must be an object of named arguments: ${shape}`],
    ];
    for (const [body, message] of refused) {
      const res = await fetch(`${t.baseUrl}/v1/apps/my-job-queue/functions/process_job/calls`, { method: "POST", headers: JSON_TYPE, body });
      expect(res.status, body).toBe(400);
      expect(await res.json()).toMatchObject({ error: { message } });
    }

    // None of the refused requests queued a call.
    const list = await fetch(`${t.baseUrl}/v1/calls?app=my-job-queue&limit=1000`);
    const { calls } = (await list.json()) as { calls: Array<{ status: string }> };
    expect(calls.every((c) => c.status === "succeeded")).toBe(true);
  });

  it("serves the same API on the unix socket", async () => {
    const res = await t.client.transport.raw("POST", "/submit/my-job-queue/process_job?data=sock");
    expect(res.status).toBe(202);
    const id = (res.body as { call_id: string }).call_id;
    const result = await t.client.transport.raw("GET", `/result/${id}?timeout=30`);
    expect(result).toEqual({ status: 200, body: { result: "sock" } });
  });

  it("answers unknown routes and methods with JSON errors", async () => {
    const res = await fetch(`${t.baseUrl}/v2/nothing`);
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({ error: { code: "not_found" } });
    const method = await fetch(`${t.baseUrl}/submit/my-job-queue/process_job`);
    expect(method.status).toBe(405);
  });
});
