/**
 * Dashboard sessions (DESIGN 1.12: server-side and revocable). Signing in with the token opens a
 * session: a random id (32 bytes, base64url) that the browser keeps in its cookie and the store
 * keeps only as a hash. A session ends when it is closed (sign-out), after 30 days, or when the
 * daemon starts with another token than the one it was opened under (every session at once).
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import type { Logger } from "../logger.js";
import type { SessionStore } from "../store/session-store.js";

/** How long a session lasts. */
export const SESSION_TTL_MS = 30 * 24 * 3600 * 1000;
/** How often expired sessions are deleted (lookups delete the ones they meet anyway). */
const SWEEP_MS = 3600 * 1000;
const ID_BYTES = 32;
const ID_SHAPE = /^[A-Za-z0-9_-]{43}$/;

export interface SessionsDeps {
  store: Pick<SessionStore, "insert" | "isOpen" | "delete" | "deleteAll" | "deleteExpired" | "tokenCheck" | "setTokenCheck">;
  /** The daemon's token now (null: none, and no sessions are needed). */
  token: string | null;
  log: Logger;
  clock?: () => number;
  random?: (bytes: number) => Buffer;
  ttlMs?: number;
  sweepMs?: number;
}

export interface OpenedSession {
  id: string;
  expiresAt: number;
}

export class Sessions {
  private readonly now: () => number;
  private readonly random: (bytes: number) => Buffer;
  readonly ttlMs: number;
  private sweeper: NodeJS.Timeout | null = null;

  constructor(private readonly d: SessionsDeps) {
    this.now = d.clock ?? Date.now;
    this.random = d.random ?? randomBytes;
    this.ttlMs = d.ttlMs ?? SESSION_TTL_MS;
  }

  /**
   * Ends every session when the token is not the one they were opened under, deletes expired ones,
   * and from now on sweeps them now and then (until `stop`).
   */
  start(): void {
    const kept = this.d.store.tokenCheck();
    if (kept === null || !checks(kept, this.d.token)) {
      const dropped = this.dropAll();
      if (kept !== null && dropped > 0) this.d.log.info("the token changed: every dashboard session was signed out", { sessions: dropped });
      this.d.store.setTokenCheck(tokenCheck(this.d.token, this.random(16)));
    }
    this.sweep();
    if (this.sweeper === null) {
      this.sweeper = setInterval(() => {
        try {
          this.sweep();
        } catch (err) {
          this.d.log.warn("session sweep failed", { err: (err as Error).message });
        }
      }, this.d.sweepMs ?? SWEEP_MS);
      this.sweeper.unref();
    }
  }

  stop(): void {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = null;
  }

  /** Opens a session; the id is what the browser keeps, and is shown nowhere else. */
  open(): OpenedSession {
    const id = this.random(ID_BYTES).toString("base64url");
    const now = this.now();
    const expiresAt = now + this.ttlMs;
    this.d.store.insert(hashId(id), now, expiresAt);
    return { id, expiresAt };
  }

  /** Whether `id` is an open session (not closed, not expired, opened under this token). */
  verify(id: string): boolean {
    return ID_SHAPE.test(id) && this.d.store.isOpen(hashId(id), this.now());
  }

  /** Ends one session; whether it was open. */
  close(id: string): boolean {
    return ID_SHAPE.test(id) && this.d.store.delete(hashId(id));
  }

  /** Ends every session; how many there were. */
  dropAll(): number {
    return this.d.store.deleteAll();
  }

  /** Deletes expired sessions; how many. */
  sweep(): number {
    return this.d.store.deleteExpired(this.now());
  }
}

const hashId = (id: string) => createHash("sha256").update(id).digest("base64url");

/** A salted hash of the token (so the database does not hold a plain hash of it): `v1:SALT:HASH`. */
function tokenCheck(token: string | null, salt: Buffer): string {
  if (token === null) return "none";
  const s = salt.toString("base64url");
  return `v1:${s}:${createHash("sha256").update(`${s}\0${token}`).digest("base64url")}`;
}

/** Whether `kept` (from `tokenCheck`) was made from `token`. */
function checks(kept: string, token: string | null): boolean {
  if (token === null) return kept === "none";
  const m = /^v1:([A-Za-z0-9_-]+):([A-Za-z0-9_-]+)$/.exec(kept);
  if (!m) return false;
  const want = Buffer.from(createHash("sha256").update(`${m[1]}\0${token}`).digest("base64url"));
  const got = Buffer.from(m[2]!);
  return want.length === got.length && timingSafeEqual(want, got);
}
