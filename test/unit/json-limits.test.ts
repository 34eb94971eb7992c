import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import WebSocket from "ws";
import { SocketAgentEndpoint } from "../../daemon/api/agent-hub.js";
import { jsonBodyText } from "../../daemon/api/http-kit.js";
import { silentLogger } from "../../daemon/logger.js";
import { invalidUtf8Offset, jsonDepthProblem, jsonNesting, MAX_AGENT_MESSAGE_DEPTH, MAX_JSON_DEPTH } from "../../protocol/json-limits.js";

const bytes = (s: string) => new TextEncoder().encode(s);
const nested = (depth: number, open = "[", close = "]") => open.repeat(depth) + close.repeat(depth);
const objects = (depth: number) => '{"a":'.repeat(depth) + "1" + "}".repeat(depth);

describe("jsonNesting: the depth of a JSON text, without parsing it", () => {
  it("counts arrays and objects, mixed, as bytes and as a string", () => {
    expect(jsonNesting("1").depth).toBe(0);
    expect(jsonNesting('{"a":[1,{"b":[]}],"c":{}}').depth).toBe(4);
    expect(jsonNesting(bytes(nested(300))).depth).toBe(300);
    expect(jsonNesting(objects(300)).depth).toBe(300);
    expect(jsonNesting("[[1],[2],[[3]]]").depth).toBe(3); // siblings do not add up
  });

  it("skips brackets inside strings, escaped quotes and escaped backslashes included", () => {
    expect(jsonNesting(JSON.stringify({ s: "[[[[{{{{" })).depth).toBe(1);
    expect(jsonNesting(JSON.stringify(['a\\"[[[[', "]]]"])).depth).toBe(1);
    // A string ending in a backslash: its closing quote is real, the bracket after it counts.
    expect(jsonNesting(JSON.stringify(["x\\", ["y"]])).depth).toBe(2);
    expect(jsonNesting('["\\u005b\\u005b", "\\\\"]').depth).toBe(1);
    expect(jsonNesting(bytes(JSON.stringify(["é[[ 日本 [[", ["🙂"]]))).depth).toBe(2);
  });

  it("agrees with the depth of random values whose strings are full of quotes, backslashes and brackets", () => {
    let seed = 7;
    const random = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
    const pieces = ['"', "\\", "[", "]", "{", "}", "a", "é", "\\\"", "\n"];
    const str = () => Array.from({ length: random(8) }, () => pieces[random(pieces.length)]).join("");
    const value = (room: number): unknown => {
      const pick = room > 0 ? random(4) : 3;
      if (pick === 0) return Array.from({ length: random(4) }, () => value(room - 1));
      if (pick === 1) return Object.fromEntries(Array.from({ length: random(4) }, () => [str(), value(room - 1)]));
      return pick === 2 ? random(100) : str();
    };
    const depthOf = (v: unknown): number =>
      Array.isArray(v) ? 1 + Math.max(0, ...v.map(depthOf)) : v !== null && typeof v === "object" ? 1 + Math.max(0, ...Object.values(v).map(depthOf)) : 0;
    for (let n = 0; n < 500; n++) {
      const v = value(6);
      const text = JSON.stringify(v);
      expect(jsonNesting(text).depth, text).toBe(depthOf(v));
      expect(jsonNesting(bytes(text)).depth, text).toBe(depthOf(v));
    }
  });

  it("stops at the first bracket past the limit, naming its offset", () => {
    expect(jsonNesting(nested(5), 5)).toEqual({ depth: 5, overflowAt: -1 });
    expect(jsonNesting(nested(6), 5)).toEqual({ depth: 6, overflowAt: 5 });
    expect(jsonNesting(' {"a": [[', 2).overflowAt).toBe(8);
  });

  it("scans 100,000 levels without recursion, and a flat body of megabytes", () => {
    expect(jsonNesting(bytes(nested(100_000))).depth).toBe(100_000);
    expect(jsonDepthProblem(bytes(nested(100_000)))).toBe(`JSON nested deeper than the limit of ${MAX_JSON_DEPTH} levels of arrays and objects (at byte ${MAX_JSON_DEPTH})`);
    expect(jsonDepthProblem(bytes(nested(MAX_JSON_DEPTH)))).toBeNull();
    const flat = bytes(JSON.stringify({ args: [Array.from({ length: 400_000 }, (_, i) => `item-[${i}]`)] }));
    expect(flat.length).toBeGreaterThan(5_000_000);
    expect(jsonNesting(flat).depth).toBe(3);
    expect(jsonDepthProblem(flat)).toBeNull(); // 400,000 brackets in strings: counted, then scanned
  });

  it("judges a text by its real depth, whether it opens few brackets (no scan) or many (in strings or not), as text or bytes", () => {
    const shallow = JSON.stringify({ type: "outputs", outputs: Array.from({ length: 21 }, (_, i) => ({ callId: `fc-${i}`, ok: true, value: { k: [i] } })) });
    expect(jsonDepthProblem(shallow)).toBeNull(); // 65 brackets: fewer than the limit's 512 levels
    expect(jsonNesting(shallow).depth).toBe(5); // {outputs: [{value: {k: [
    const at = shallow.indexOf("[", shallow.indexOf('"value"'));
    expect(jsonDepthProblem(shallow, 4)).toBe(`JSON nested deeper than the limit of 4 levels of arrays and objects (at character ${at})`);
    expect(jsonDepthProblem(shallow, 5)).toBeNull();
    expect(jsonDepthProblem(bytes(shallow), 5)).toBeNull();
    const quoted = JSON.stringify({ s: "[".repeat(2000) + "{".repeat(2000) }); // many brackets, depth 1
    expect(jsonDepthProblem(quoted)).toBeNull();
    expect(jsonDepthProblem(bytes(quoted))).toBeNull();
    expect(jsonDepthProblem(`[${quoted},${nested(MAX_JSON_DEPTH)}]`)).toBe(`JSON nested deeper than the limit of ${MAX_JSON_DEPTH} levels of arrays and objects (at character ${quoted.length + 2 + MAX_JSON_DEPTH - 1})`);
  });
});

describe("invalidUtf8Offset: where a body stops being UTF-8", () => {
  it("accepts UTF-8 of every length, and finds the first bad byte", () => {
    expect(invalidUtf8Offset(bytes('{"s":"aé日🙂"}'))).toBe(-1);
    expect(invalidUtf8Offset(Uint8Array.from([0x22, 0x61, 0xff, 0x22]))).toBe(2); // never in UTF-8
    expect(invalidUtf8Offset(Uint8Array.from([0x61, 0x80]))).toBe(1); // a stray continuation byte
    expect(invalidUtf8Offset(Uint8Array.from([0x61, 0xc3]))).toBe(1); // cut short
    expect(invalidUtf8Offset(Uint8Array.from([0xc0, 0xaf]))).toBe(0); // overlong "/"
    expect(invalidUtf8Offset(Uint8Array.from([0xe0, 0x80, 0xaf]))).toBe(0); // overlong, three bytes
    expect(invalidUtf8Offset(Uint8Array.from([0x20, 0xed, 0xa0, 0x80]))).toBe(1); // a surrogate
    expect(invalidUtf8Offset(Uint8Array.from([0xf4, 0x90, 0x80, 0x80]))).toBe(0); // above U+10FFFF
  });

  it("agrees with TextDecoder's fatal mode on every two-byte sequence", () => {
    const strict = new TextDecoder("utf-8", { fatal: true });
    const disagree: string[] = [];
    for (let a = 0; a < 256; a++) {
      for (let b = 0; b < 256; b++) {
        const pair = Uint8Array.from([a, b]);
        let valid = true;
        try {
          strict.decode(pair);
        } catch {
          valid = false;
        }
        if (invalidUtf8Offset(pair) < 0 !== valid) disagree.push(`${a.toString(16)} ${b.toString(16)}`);
      }
    }
    expect(disagree).toEqual([]);
  });
});

describe("jsonBodyText: what a JSON route reads before JSON.parse", () => {
  it("answers the text of a good body", () => {
    expect(jsonBodyText(Buffer.from('{"s":"日本"}'))).toBe('{"s":"日本"}');
  });

  it("refuses invalid UTF-8 (400), naming the byte, instead of replacing it with U+FFFD", () => {
    const body = Buffer.concat([Buffer.from('{"args":["ab'), Buffer.from([0xff, 0xfe]), Buffer.from('"]}')]);
    expect(() => jsonBodyText(body)).toThrow(expect.objectContaining({ status: 400, code: "invalid_argument", message: "request body is not valid UTF-8 (byte 12 is 0xff): JSON bodies are UTF-8" }));
  });

  it("refuses a body nested past the limit (400), naming the limit", () => {
    expect(() => jsonBodyText(Buffer.from(nested(100_000)))).toThrow(
      expect.objectContaining({ status: 400, code: "invalid_argument", message: expect.stringContaining(`deeper than the limit of ${MAX_JSON_DEPTH} levels`) }),
    );
    expect(jsonBodyText(Buffer.from(`{"args":[${nested(MAX_JSON_DEPTH - 2)}]}`))).toMatch(/^\{"args"/);
  });
});

describe("an agent's message nested too deep", () => {
  it("closes the agent's connection naming the limit, as for a malformed message, without handling it", async () => {
    const dir = mkdtempSync(join(tmpdir(), "gantry-agent-deep-"));
    const endpoint = new SocketAgentEndpoint(join(dir, "ct-1"), "t0ken", silentLogger);
    await endpoint.listen(null);
    const messages: unknown[] = [];
    endpoint.on("message", (m) => messages.push(m));
    const connect = () =>
      new Promise<WebSocket>((resolve, reject) => {
        const ws = new WebSocket(`ws+unix://${join(dir, "ct-1", "agent.sock")}:/agent`, { headers: { authorization: "Bearer t0ken" } });
        ws.once("open", () => resolve(ws));
        ws.once("error", reject);
      });
    try {
      const gone = new Promise<string>((resolve) => endpoint.once("disconnected", resolve));
      const ws = await connect();
      const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.once("close", (code, reason) => resolve({ code, reason: reason.toString() })));
      ws.send(`{"type":"ready","deep":${nested(100_000)}}`);
      const { code, reason } = await closed;
      expect(code).toBe(1008);
      expect(reason).toContain(`deeper than the limit of ${MAX_AGENT_MESSAGE_DEPTH} levels`);
      expect(messages).toEqual([]);
      expect(await gone).toMatch(/agent connection closed \(1008/); // the container's end, as for any agent that breaks the protocol
    } finally {
      await endpoint.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
