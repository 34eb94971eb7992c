import { GantryClient } from "../sdk/client.js";
import { defaultSocketPath } from "../sdk/transport.js";
import { makeOutput, type Output } from "./output.js";

export interface GlobalOptions {
  json?: boolean;
  verbose?: boolean;
  url?: string;
  token?: string;
}

export interface Context {
  out: Output;
  client: GantryClient;
}

/** The client for this invocation: the local socket, or --url / GANTRY_URL with a token. */
export function makeContext(opts: GlobalOptions): Context {
  const url = opts.url ?? process.env.GANTRY_URL;
  const token = opts.token ?? process.env.GANTRY_TOKEN;
  const client = new GantryClient(url ? { url, ...(token ? { token } : {}) } : { socketPath: defaultSocketPath() });
  return { out: makeOutput(Boolean(opts.json)), client };
}
