import { describe, expect, it } from "vitest";
import { DotenvError, parseDotenv } from "../../cli/dotenv.js";

const parse = (text: string) => parseDotenv(text, "app.env");
const failure = (text: string) => {
  try {
    parse(text);
  } catch (err) {
    expect(err).toBeInstanceOf(DotenvError);
    return (err as Error).message;
  }
  throw new Error("parsed without an error");
};

describe("parseDotenv", () => {
  it("reads KEY=VALUE lines, skipping blanks and comments, with export and spaces around =", () => {
    expect(parse("# comment\n\nA=1\nexport B = two words  \n  C=3 # trailing comment\nD=\nE=a#b\n")).toEqual({ A: "1", B: "two words", C: "3", D: "", E: "a#b" });
  });

  it("takes single-quoted values as written and double-quoted ones with escapes, over several lines", () => {
    expect(parse(`A='x # not a comment \\n'\nB="line1\\nline2 \\"q\\" \\\\"\nC="first\nsecond"  # note\nD=after\n`)).toEqual({
      A: "x # not a comment \\n",
      B: 'line1\nline2 "q" \\',
      C: "first\nsecond",
      D: "after",
    });
  });

  it("lets a later line win, reads CRLF files and a BOM", () => {
    expect(parse("\uFEFFA=1\r\nA=2\r\n")).toEqual({ A: "2" });
  });

  it("names the file and line of what it cannot read, and never the value", () => {
    expect(failure("A=1\nsecret-value-here\n")).toBe("app.env:2: expected KEY=VALUE");
    expect(failure("A=1\n\nB-C=2\n")).toBe('app.env:3: "B-C" is not a valid key: use letters, digits and _, not starting with a digit');
    expect(failure("1A=x")).toContain('app.env:1: "1A" is not a valid key');
    expect(failure(`A='open secret`)).toBe("app.env:1: the single-quoted value of A has no closing quote");
    expect(failure(`A=1\nB="open secret\nC=3`)).toBe("app.env:2: the double-quoted value of B has no closing quote");
    expect(failure(`A="closed" trailing-secret`)).toBe("app.env:1: unexpected text after the quoted value of A");
    expect(failure(`A="multi\nline" trailing`)).toBe("app.env:2: unexpected text after the quoted value of A");
  });
});
