import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
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
    ).rejects.toThrow(/timeout must be between 1 and 86400 seconds/);
    await expect(bundleApp(write("anon.ts", `import { App } from "gantry";\nconst app = new App("a7");\nexport const f = app.function({}, async () => 1);\n`))).rejects.toThrow(
      /needs a named function/,
    );
  });
});
