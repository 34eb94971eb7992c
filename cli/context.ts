import { resolve } from "node:path";
import { GantryClient } from "../sdk/client.js";
import { defaultSocketPath } from "../sdk/transport.js";
import { readPemFile, readTokenFile } from "./credentials.js";
import { makeOutput, type Output } from "./output.js";

export interface GlobalOptions {
  json?: boolean;
  verbose?: boolean;
  url?: string;
  /** Deprecated (it shows in `ps`): GANTRY_TOKEN or --token-file. */
  token?: string;
  tokenFile?: string;
  caCert?: string;
}

export interface Context {
  out: Output;
  client: GantryClient;
}

/** The bearer token for --url: --token (deprecated), else --token-file, else GANTRY_TOKEN. */
export function clientToken(opts: GlobalOptions): string | undefined {
  if (opts.token) return opts.token;
  if (opts.tokenFile) return readTokenFile(opts.tokenFile);
  return process.env.GANTRY_TOKEN || undefined;
}

/** The CA file for an https:// --url (absolute): --ca-cert, else GANTRY_CA_CERT; undefined: the system's CAs. */
export function clientCaFile(opts: GlobalOptions): { path: string; flag: string } | undefined {
  if (opts.caCert) return { path: resolve(opts.caCert), flag: "--ca-cert" };
  if (process.env.GANTRY_CA_CERT) return { path: resolve(process.env.GANTRY_CA_CERT), flag: "GANTRY_CA_CERT" };
  return undefined;
}

/** The client for this invocation: the local socket, or --url / GANTRY_URL with a token (and a CA for https://). */
export function makeContext(opts: GlobalOptions): Context {
  const url = opts.url ?? process.env.GANTRY_URL;
  let client: GantryClient;
  if (url) {
    const token = clientToken(opts);
    const caFile = clientCaFile(opts);
    const ca = caFile ? readPemFile(caFile.path, caFile.flag) : undefined;
    client = new GantryClient({ url, ...(token ? { token } : {}), ...(ca && caFile ? { ca, caLabel: `${caFile.flag} ${caFile.path}` } : {}) });
  } else {
    client = new GantryClient({ socketPath: defaultSocketPath() });
  }
  return { out: makeOutput(Boolean(opts.json)), client };
}
