/**
 * The one family of errors that know their HTTP answer. Route handlers throw these; `toResponse`
 * maps them (and anything else, as a logged 500) in one place.
 */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = "ApiError";
  }
}

export const notFound = (message: string) => new ApiError(404, "not_found", message);
export const invalid = (message: string) => new ApiError(400, "invalid_argument", message);

export function toResponse(err: unknown): { status: number; body: { error: Record<string, unknown> }; unexpected: boolean } {
  if (err instanceof ApiError) {
    return { status: err.status, body: { error: { code: err.code, message: err.message, ...err.extra } }, unexpected: false };
  }
  return { status: 500, body: { error: { code: "internal", message: "internal error; see the daemon log" } }, unexpected: true };
}
