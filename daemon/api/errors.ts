/**
 * Errors meet HTTP here, in one place: `ApiError` for what only the API knows (a body too large,
 * an expired result), and the service layer's `ServiceError` codes mapped to their status.
 * Anything else is a logged 500.
 */
import { ServiceError, ServiceErrorCode } from "../service/errors.js";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly extra: Record<string, unknown> = {},
    /** Headers the answer carries (Retry-After on a 429, say). */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = "ApiError";
  }
}

export const notFound = (message: string) => new ApiError(404, ServiceErrorCode.notFound, message);
export const invalid = (message: string) => new ApiError(400, ServiceErrorCode.invalidArgument, message);

const STATUS: Record<ServiceErrorCode, number> = {
  not_found: 404,
  invalid_argument: 400,
  conflict: 409,
  queue_full: 429,
  limit_exceeded: 422,
  shutting_down: 503,
  gpu_unavailable: 422,
  image_build_failed: 422,
  image_build_timeout: 422,
  base_image_missing: 500,
  disk_full: 507,
  engine_unavailable: 503,
  internal: 500,
  forbidden: 403,
};

/** A write that failed for want of disk space somewhere the service did not name it (a deploy's files). */
function diskFull(err: unknown): ApiError | null {
  const e = err as { code?: string; path?: string };
  if (e?.code !== "ENOSPC" && e?.code !== "SQLITE_FULL" && e?.code !== "EDQUOT") return null;
  const where = e.path ? `the disk holding ${e.path}` : "the disk holding gantry's home folder";
  return new ApiError(507, ServiceErrorCode.diskFull, `${where} is full: gantry cannot store anything new until space is freed`);
}

/** A request that needed the Docker engine while it does not answer (restarting, stopped). */
function engineAway(err: unknown): ApiError | null {
  const e = err as { name?: string; code?: string; syscall?: string; message?: string };
  const unreachable = e?.name === "EngineUnreachableError" || (e?.syscall === "connect" && ["ECONNREFUSED", "ENOENT"].includes(e.code ?? ""));
  if (!unreachable) return null;
  return new ApiError(503, ServiceErrorCode.engineUnavailable, `the Docker engine does not answer (${e.message ?? e.code}); gantry keeps calls and carries on when it is back: try again then`);
}

export function toResponse(err: unknown): {
  status: number;
  body: { error: Record<string, unknown> };
  unexpected: boolean;
  headers?: Record<string, string>;
} {
  if (err instanceof ApiError) {
    return { status: err.status, body: { error: { code: err.code, message: err.message, ...err.extra } }, unexpected: false, headers: err.headers };
  }
  if (err instanceof ServiceError) {
    return { status: STATUS[err.code], body: { error: { code: err.code, message: err.message, ...err.extra } }, unexpected: false };
  }
  const known = diskFull(err) ?? engineAway(err);
  if (known) return toResponse(known);
  return { status: 500, body: { error: { code: "internal", message: "internal error; see the daemon log" } }, unexpected: true };
}
