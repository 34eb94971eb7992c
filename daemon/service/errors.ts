/**
 * Errors the service layer raises. They carry a domain code and know nothing of HTTP:
 * `daemon/api/errors.ts` maps each code to its answer in one place.
 */
import { DiskFullError } from "../store/group-commit.js";

export const ServiceErrorCode = {
  notFound: "not_found",
  invalidArgument: "invalid_argument",
  conflict: "conflict",
  queueFull: "queue_full",
  /** A limit waiting does not lift (a Dict's entries, a Queue's partitions): nothing was written. */
  limitExceeded: "limit_exceeded",
  shuttingDown: "shutting_down",
  /** A function asks for GPUs this machine does not have (and never will, as it stands). */
  gpuUnavailable: "gpu_unavailable",
  imageBuildFailed: "image_build_failed",
  /** An image build ran past the daemon's --build-timeout and was stopped. */
  imageBuildTimeout: "image_build_timeout",
  baseImageMissing: "base_image_missing",
  /** The disk holding gantry's home is full: nothing new can be stored until there is room. */
  diskFull: "disk_full",
  /** The Docker engine does not answer (restarting, stopped): what needs it waits or is refused. */
  engineUnavailable: "engine_unavailable",
  /** The caller may not have this (a value pickled by another app's function). */
  forbidden: "forbidden",
  /** The daemon's own installation is broken (a missing build output, say). */
  internal: "internal",
} as const;
export type ServiceErrorCode = (typeof ServiceErrorCode)[keyof typeof ServiceErrorCode];

export class ServiceError extends Error {
  constructor(
    readonly code: ServiceErrorCode,
    message: string,
    /** More fields for the answer's error object (a sandbox file error's errno). */
    readonly extra?: Record<string, unknown>,
  ) {
    super(message);
    this.name = "ServiceError";
  }
}

export const notFound = (message: string) => new ServiceError(ServiceErrorCode.notFound, message);
export const invalid = (message: string) => new ServiceError(ServiceErrorCode.invalidArgument, message);

/** A store failure as the service tells it: a full disk refuses the new call and says where; others pass through. */
export function fromStore(err: unknown): unknown {
  if (!(err instanceof DiskFullError)) return err;
  return new ServiceError(ServiceErrorCode.diskFull, `${err.message}. Nothing was queued and nothing acknowledged is lost; submit again once there is room`);
}
