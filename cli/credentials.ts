import { readFileSync, statSync } from "node:fs";
import { resolve } from "node:path";
import { UsageError } from "./exit-codes.js";

/**
 * The token in a --token-file: its content, trimmed. The file must be the caller's alone (no
 * permission for group or others, i.e. mode 0600 or 0400): a token others can read is theirs too.
 */
export function readTokenFile(file: string, flag = "--token-file"): string {
  const path = resolve(file);
  let mode: number;
  try {
    const st = statSync(path);
    if (!st.isFile()) throw new UsageError(`${flag} ${file} is not a file`);
    mode = st.mode & 0o777;
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(`${flag} ${file} cannot be read: ${(err as Error).message}`);
  }
  if (mode & 0o077) {
    throw new UsageError(
      `${flag} ${file} can be read or written by other users (mode ${mode.toString(8).padStart(4, "0")}); ` +
        `a token file must be yours alone: chmod 600 ${file}`,
    );
  }
  let token: string;
  try {
    token = readFileSync(path, "utf8").trim();
  } catch (err) {
    throw new UsageError(`${flag} ${file} cannot be read: ${(err as Error).message}`);
  }
  if (!token) throw new UsageError(`${flag} ${file} is empty: put the token in it (for example: openssl rand -hex 32 > ${file})`);
  return token;
}

/** A PEM file a flag names (--ca-cert, --tls-cert, --tls-key), read now so that a wrong path is told at once. */
export function readPemFile(file: string, flag: string): Buffer {
  try {
    const st = statSync(file);
    if (!st.isFile()) throw new UsageError(`${flag} ${file} is not a file`);
    return readFileSync(file);
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(`${flag} ${file} cannot be read: ${(err as Error).message}`);
  }
}
