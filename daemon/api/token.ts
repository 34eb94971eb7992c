import { timingSafeEqual } from "node:crypto";
import type http from "node:http";

/** Compares a presented token with the expected one in constant time. */
export function tokenMatches(given: string, want: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(want);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Whether the request carries `Authorization: Bearer <want>`. */
export function hasBearer(req: http.IncomingMessage, want: string): boolean {
  return tokenMatches((req.headers.authorization ?? "").replace(/^Bearer /, ""), want);
}
