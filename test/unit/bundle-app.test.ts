import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AppFileError } from "../../cli/app-file-error.js";
import { bundleApp } from "../../cli/bundle-app.js";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "gantry-bundle-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const write = (name: string, text: string) => {
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
};

describe("bundleApp", () => {
  it("bundles an app that imports gantry with nothing installed beside it, and reads its functions", async () => {
    const file = write(
      "app.ts",
      `import { App } from "gantry";\nconst app = new App("a1");\nexport const f = app.function({ timeout: 5 }, async function f(x: number) { return x + 1; });\n`,
    );
    const out = await bundleApp(file);
    expect(out.app).toBe("a1");
    expect(out.functions).toEqual([{ name: "f", options: { timeout: 5 } }]);
    expect(out.bundle).not.toMatch(/from ["']gantry["']/);
  });

  it("does not run any function while reading definitions", async () => {
    const file = write(
      "app.ts",
      `import { App } from "gantry";\nconst app = new App("a2");\nexport const f = app.function({}, async function f() { throw new Error("ran!"); });\n`,
    );
    await expect(bundleApp(file)).resolves.toMatchObject({ app: "a2" });
  });

  it("keeps packages named in npmInstall external, and refuses ones that are nowhere", async () => {
    const ok = write(
      "ok.ts",
      `import { App, Image } from "gantry";\nimport leftPad from "left-pad-not-installed";\nconst app = new App("a3");\n` +
        `export const f = app.function({ image: Image.node().npmInstall("left-pad-not-installed@1.3.0") }, async function f(s: string) { return leftPad(s, 5); });\n`,
    );
    const out = await bundleApp(ok);
    expect(out.bundle).toMatch(/from "left-pad-not-installed"/);

    const bad = write(
      "bad.ts",
      `import { App } from "gantry";\nimport x from "nowhere-to-be-found";\nconst app = new App("a4");\nexport const f = app.function({}, async function f() { return x; });\n`,
    );
    await expect(bundleApp(bad)).rejects.toThrow(/imports "nowhere-to-be-found", which is neither installed beside the app nor in an Image.npmInstall/);
  });

  it("explains files that are not apps", async () => {
    await expect(bundleApp(write("empty.ts", "export const x = 1;\n"))).rejects.toThrow(/defines no gantry App/);
    await expect(bundleApp(write("nofn.ts", `import { App } from "gantry";\nnew App("a5");\n`))).rejects.toThrow(/defines no functions/);
    await expect(bundleApp(write("app.py", "x = 1\n"))).rejects.toThrow(/is a Python app file: it is read with python3/);
    await expect(bundleApp(write("throws.ts", `throw new Error("top-level boom");\n`))).rejects.toThrow(/loading .*throws\.ts failed: Error: top-level boom/);
    await expect(
      bundleApp(write("badopt.ts", `import { App } from "gantry";\nconst app = new App("a6");\nexport const f = app.function({ timeout: 0 }, async function f() {});\n`)),
    ).rejects.toThrow(/badopt\.ts:3:22: function f: timeout must be between 1 and 86400 seconds/);
  });
});

describe("bundleApp: function names from exports", () => {
  it("names anonymous functions and web endpoints by their exports, in the app file's order", async () => {
    const file = write(
      "anon.ts",
      `import { App } from "gantry";\nconst app = new App("n1");\n` +
        `export const first = app.function({ retries: 1 }, async (x: number) => x);\n` +
        `app.function({}, async function kept() {});\n` +
        `export const page = app.webEndpoint({}, async () => new Response("hi"));\n` +
        `const inner = { fetch: async () => new Response("hono") };\n` +
        `export const api = app.webEndpoint({}, inner.fetch);\n`,
    );
    const out = await bundleApp(file);
    expect(out.functions.map((f) => f.name)).toEqual(["first", "kept", "page", "api"]);
    expect(out.functions[0]).toEqual({ name: "first", options: { retries: 1 } });
    expect(out.functions[2]!.options).toEqual({ web: { kind: "fetch" } });
  });

  it("refuses a name that disagrees with its export, an anonymous function without one, and two exports of one", async () => {
    const header = `import { App } from "gantry";\nconst app = new App("n2");\n`;
    const mismatch = write("mismatch.ts", `${header}export const f = app.function({}, async function g() {});\n`);
    await expect(bundleApp(mismatch)).rejects.toThrow(
      /function "g" \(defined at .*mismatch\.ts:3:22\) is exported as "f": .*export const f = app\.function\(\.\.\., async function f\(/,
    );
    const unexported = write("unexported.ts", `${header}app.function({}, async () => 1);\n`);
    await expect(bundleApp(unexported)).rejects.toThrow(/app\.function\(\.\.\.\) defined at .*unexported\.ts:3:5 has an anonymous handler and no export to name it: export it/);
    const twice = write("twice.ts", `${header}export const a = app.function({}, async () => 1);\nexport { a as b };\n`);
    await expect(bundleApp(twice)).rejects.toThrow(/is exported under several names \(a, b\)/);
    const clash = write("clash.ts", `${header}export const f = app.function({}, async () => 1);\nexport const g = app.function({}, async function f() {});\n`);
    await expect(bundleApp(clash)).rejects.toThrow(/defines two functions named "f"/);
  });

  it("keeps an explicit web endpoint name and a named function that is not exported", async () => {
    const file = write(
      "explicit.ts",
      `import { App } from "gantry";\nconst app = new App("n3");\n` +
        `export const handler = app.webEndpoint({ name: "api" }, async () => new Response("x"));\n` +
        `app.function({}, async function worker() {});\n`,
    );
    expect((await bundleApp(file)).functions.map((f) => f.name)).toEqual(["api", "worker"]);
  });
});

describe("bundleApp: errors in app files", () => {
  it("shows a load error at the user's file and line, without the temp bundle's or gantry's frames", async () => {
    const file = write(
      "boom.ts",
      `import { App } from "gantry";\nconst app = new App("e1");\nfunction check(): void {\n  throw new RangeError("no weights");\n}\ncheck();\n`,
    );
    const err = (await bundleApp(file).catch((e: unknown) => e)) as AppFileError;
    expect(err).toBeInstanceOf(AppFileError);
    // The module's top level: "at FILE:6:1" or "at <anonymous> (FILE:6:1)", as the thread that imports it (a worker's) formats it.
    expect(err.message).toMatch(new RegExp(`^loading ${file} failed: RangeError: no weights\n {4}at check \\(${file}:4:9\\)\n {4}at (${file}:6:1|<anonymous> \\(${file}:6:1\\))$`));
    expect(err.verboseMessage).toContain(`at check (${file}:4:9)`);
    expect(err.verboseMessage).toMatch(/node:internal[/]modules[/]esm/); // gantry's frames: the import of the bundle
  });

  it("bundles with an inline source map naming the app's own files", async () => {
    const file = write("mapped.ts", `import { App } from "gantry";\nconst app = new App("e2");\nexport const f = app.function({}, async (x: number) => x);\n`);
    const { bundle } = await bundleApp(file);
    const inline = /\/\/# sourceMappingURL=data:application\/json;base64,(.+)\n$/.exec(bundle);
    const map = JSON.parse(Buffer.from(inline![1]!, "base64").toString()) as { sources: string[]; sourcesContent?: unknown };
    expect(map.sources).toContain(file);
    expect(map.sourcesContent).toBeUndefined();
  });
});
