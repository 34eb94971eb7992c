/**
 * The paths of a deploy's files (a Python app's sources, an image's copied folder) as a whole:
 * each already passed the per-path rule (relative, no "." or "..": function-spec.ts), and here
 * the set must be one that can be written out as files: no path that is both a file and the
 * folder of another (`app.py` and `app.py/x.py`), no two spellings of one path (`a//b`, `a/b/`),
 * not too many files, not too deep, no name too long.
 */

/** The most files a Python app's sources may hold (the client ships at most 500: python/gantry/_manifest.py). */
export const MAX_BUNDLE_FILES = 1000;
/** The most folders deep a file may lie in a deploy. */
export const MAX_BUNDLE_PATH_DEPTH = 32;
/** The longest name of one file or folder (Linux's NAME_MAX; paths are ASCII, so characters are bytes). */
export const MAX_PATH_PART_LENGTH = 255;

export interface BundlePathLimits {
  maxFiles?: number;
  maxDepth?: number;
}

/** What is wrong with this set of relative file paths (naming the path and the limit), or null. */
export function bundlePathProblem(paths: readonly string[], limits: BundlePathLimits = {}): string | null {
  const maxFiles = limits.maxFiles ?? MAX_BUNDLE_FILES;
  const maxDepth = limits.maxDepth ?? MAX_BUNDLE_PATH_DEPTH;
  if (paths.length > maxFiles) return `${paths.length} files, over the limit of ${maxFiles}`;
  const files = new Set<string>();
  for (const path of paths) {
    const parts = path.split("/");
    if (parts.some((p) => p === "")) return `the path ${JSON.stringify(path)} is not in its plain form: no leading, trailing or doubled "/"`;
    const long = parts.find((p) => p.length > MAX_PATH_PART_LENGTH);
    if (long) return `the path ${JSON.stringify(path)} has a name of ${long.length} characters, over the limit of ${MAX_PATH_PART_LENGTH}`;
    if (parts.length - 1 > maxDepth) return `the path ${JSON.stringify(path)} lies ${parts.length - 1} folders deep, over the limit of ${maxDepth}`;
    if (files.has(path)) return `the path ${JSON.stringify(path)} is given twice`;
    files.add(path);
  }
  // A file that is also a folder of another: its every folder prefix, checked against the files.
  for (const path of paths) {
    for (let at = path.indexOf("/"); at >= 0; at = path.indexOf("/", at + 1)) {
      const folder = path.slice(0, at);
      if (files.has(folder)) return `the path ${JSON.stringify(folder)} is a file, and also the folder of ${JSON.stringify(path)}`;
    }
  }
  return null;
}
