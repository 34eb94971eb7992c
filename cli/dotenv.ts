/**
 * Reads a dotenv file (`gantry secret create NAME --from-dotenv .env`): `KEY=VALUE` lines,
 * optionally after `export `, with `#` comments and blank lines. A value may be unquoted (trimmed;
 * ` #` starts a comment), in single quotes (taken as written) or in double quotes (`\n`, `\t`,
 * `\"`, `\\` escapes; may span lines). A later line wins over an earlier one with the same key.
 * Errors name the file and line, never a value.
 */
export class DotenvError extends Error {
  constructor(file: string, line: number, why: string) {
    super(`${file}:${line}: ${why}`);
    this.name = "DotenvError";
  }
}

const KEY_AT_START = /^(?:export\s+)?([^=\s]*)\s*=/;
const KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;
const ESCAPES: Record<string, string> = { n: "\n", r: "\r", t: "\t", '"': '"', "\\": "\\", $: "$" };

export function parseDotenv(text: string, file: string): Record<string, string> {
  const lines = text.replace(/^\uFEFF/, "").split(/\r?\n/);
  const values: Record<string, string> = {};
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    const line = lines[i]!;
    const trimmed = line.trim();
    if (trimmed === "" || trimmed.startsWith("#")) continue;
    const m = KEY_AT_START.exec(trimmed);
    if (!m) throw new DotenvError(file, lineNo, `expected KEY=VALUE`);
    const key = m[1]!;
    if (!KEY.test(key)) throw new DotenvError(file, lineNo, `${JSON.stringify(key.slice(0, 80))} is not a valid key: use letters, digits and _, not starting with a digit`);
    const afterEq = trimmed.slice(m[0].length);
    const rest = afterEq.trimStart();
    /** Where the value starts in the untrimmed line. */
    const valueAt = line.length - line.trimStart().length + m[0].length + (afterEq.length - rest.length);
    if (rest.startsWith("'")) {
      const end = rest.indexOf("'", 1);
      if (end < 0) throw new DotenvError(file, lineNo, `the single-quoted value of ${key} has no closing quote`);
      expectNothingAfter(rest.slice(end + 1), file, lineNo, key);
      values[key] = rest.slice(1, end);
    } else if (rest.startsWith('"')) {
      const read = readDoubleQuoted(lines, i, valueAt + 1);
      if (!read) throw new DotenvError(file, lineNo, `the double-quoted value of ${key} has no closing quote`);
      expectNothingAfter(read.after, file, read.endLine + 1, key);
      values[key] = read.value;
      i = read.endLine;
    } else {
      values[key] = rest.replace(/\s+#.*$/, "").trim();
    }
  }
  return values;
}

function expectNothingAfter(after: string, file: string, lineNo: number, key: string): void {
  const t = after.trim();
  if (t !== "" && !t.startsWith("#")) throw new DotenvError(file, lineNo, `unexpected text after the quoted value of ${key}`);
}

/** A double-quoted value from `start` (just past the quote) on line `first`, possibly over several lines. */
function readDoubleQuoted(lines: string[], first: number, start: number): { value: string; endLine: number; after: string } | null {
  let value = "";
  for (let i = first; i < lines.length; i++) {
    const line = lines[i]!;
    for (let j = i === first ? start : 0; j < line.length; j++) {
      const ch = line[j]!;
      if (ch === "\\" && j + 1 < line.length) {
        const next = line[++j]!;
        value += ESCAPES[next] ?? `\\${next}`;
      } else if (ch === '"') {
        return { value, endLine: i, after: line.slice(j + 1) };
      } else {
        value += ch;
      }
    }
    value += "\n";
  }
  return null;
}
