/**
 * Errors the service layer raises. They carry a domain code and know nothing of HTTP:
 * `daemon/api/errors.ts` maps each code to its answer in one place.
 */
export const ServiceErrorCode = {
  notFound: "not_found",
  invalidArgument: "invalid_argument",
  conflict: "conflict",
  queueFull: "queue_full",
  shuttingDown: "shutting_down",
  /** A function asks for GPUs this machine does not have (and never will, as it stands). */
  gpuUnavailable: "gpu_unavailable",
  imageBuildFailed: "image_build_failed",
  baseImageMissing: "base_image_missing",
  /** The daemon's own installation is broken (a missing build output, say). */
  internal: "internal",
} as const;
export type ServiceErrorCode = (typeof ServiceErrorCode)[keyof typeof ServiceErrorCode];

export class ServiceError extends Error {
  constructor(
    readonly code: ServiceErrorCode,
    message: string,
  ) {
    super(message);
    this.name = "ServiceError";
  }
}

export const notFound = (message: string) => new ServiceError(ServiceErrorCode.notFound, message);
export const invalid = (message: string) => new ServiceError(ServiceErrorCode.invalidArgument, message);
