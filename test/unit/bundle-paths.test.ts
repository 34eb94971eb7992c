import { describe, expect, it } from "vitest";
import { bundlePathProblem, MAX_BUNDLE_FILES, MAX_BUNDLE_PATH_DEPTH, MAX_PATH_PART_LENGTH } from "../../protocol/bundle-paths.js";
import { deployRequestSchema, formatZodError } from "../../protocol/function-spec.js";

describe("bundlePathProblem: a deploy's file paths as a set", () => {
  it("takes the files of an ordinary app, folders shared by several files", () => {
    expect(bundlePathProblem(["app.py", "lib/__init__.py", "lib/util.py", "lib/sub/deep.py", "app.pyc", "lib2/x.py"])).toBeNull();
    expect(bundlePathProblem([])).toBeNull();
  });

  it("refuses a path that is a file and the folder of another, in either order, naming both", () => {
    const problem = `the path "app.py" is a file, and also the folder of "app.py/x.py"`;
    expect(bundlePathProblem(["app.py", "app.py/x.py"])).toBe(problem);
    expect(bundlePathProblem(["app.py/x.py", "app.py"])).toBe(problem);
    expect(bundlePathProblem(["a/b", "a/b/c/d.py"])).toBe(`the path "a/b" is a file, and also the folder of "a/b/c/d.py"`);
    expect(bundlePathProblem(["ab", "a/b"])).toBeNull(); // a prefix of the name is not a folder
  });

  it("refuses two spellings of one path and a path given twice", () => {
    expect(bundlePathProblem(["a/b.py", "a//b.py"])).toMatch(/the path "a\/\/b.py" is not in its plain form/);
    expect(bundlePathProblem(["lib/"])).toMatch(/the path "lib\/" is not in its plain form/);
    expect(bundlePathProblem(["/etc/passwd"])).toMatch(/not in its plain form/);
    expect(bundlePathProblem(["x.py", "x.py"])).toBe(`the path "x.py" is given twice`);
  });

  it("refuses too many files and too deep a path, naming the limit", () => {
    const many = Array.from({ length: MAX_BUNDLE_FILES + 1 }, (_, i) => `m${i}.py`);
    expect(bundlePathProblem(many)).toBe(`${MAX_BUNDLE_FILES + 1} files, over the limit of ${MAX_BUNDLE_FILES}`);
    expect(bundlePathProblem(many.slice(1))).toBeNull();
    expect(bundlePathProblem(many, { maxFiles: Infinity })).toBeNull();
    const deep = `${"d/".repeat(MAX_BUNDLE_PATH_DEPTH + 1)}x.py`;
    expect(bundlePathProblem([deep])).toBe(`the path ${JSON.stringify(deep)} lies ${MAX_BUNDLE_PATH_DEPTH + 1} folders deep, over the limit of ${MAX_BUNDLE_PATH_DEPTH}`);
    expect(bundlePathProblem([`${"d/".repeat(MAX_BUNDLE_PATH_DEPTH)}x.py`])).toBeNull();
    const name = "n".repeat(MAX_PATH_PART_LENGTH + 1);
    expect(bundlePathProblem([`lib/${name}.py`])).toBe(`the path "lib/${name}.py" has a name of ${MAX_PATH_PART_LENGTH + 4} characters, over the limit of ${MAX_PATH_PART_LENGTH}`);
    expect(bundlePathProblem([`lib/${"n".repeat(MAX_PATH_PART_LENGTH - 3)}.py`])).toBeNull();
  });
});

describe("the deploy request: its files and assets as sets", () => {
  const request = (files: Record<string, string>, assets?: Record<string, Record<string, { data: string; mode: 420 }>>) => ({
    app: "paths",
    runtime: "python",
    module: "app",
    functions: [{ name: "f", options: {} }],
    files,
    ...(assets ? { assets } : {}),
  });
  const problem = (body: unknown) => {
    const parsed = deployRequestSchema.safeParse(body);
    return parsed.success ? null : formatZodError(parsed.error);
  };

  it("refuses a Python app whose files conflict, naming the path", () => {
    expect(problem(request({ "app.py": "x = 1", "app.py/x.py": "y = 2" }))).toBe(`files: the path "app.py" is a file, and also the folder of "app.py/x.py"`);
    expect(problem(request({ "app.py": "x = 1", "lib//m.py": "" }))).toMatch(/^files: the path "lib\/\/m.py" is not in its plain form/);
    expect(problem(request({ "app.py": "x = 1", "lib/m.py": "" }))).toBeNull();
  });

  it("refuses an image's folder whose files conflict", () => {
    const hash = "a".repeat(64);
    const file = { data: "", mode: 420 as const };
    expect(problem(request({ "app.py": "" }, { [hash]: { data: file, "data/x": file } }))).toBe(`assets.${hash}: the path "data" is a file, and also the folder of "data/x"`);
    expect(problem(request({ "app.py": "" }, { [hash]: { "data/y": file, "data/x": file } }))).toBeNull();
  });
});
