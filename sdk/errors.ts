/**
 * Errors the client raises. Each has a stable `code` (the daemon's error code), so callers branch on
 * the class or the code, never on message text.
 */
export class GantryError extends Error {
  constructor(
    message: string,
    readonly code: string = "error",
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** The call was still queued or running when the wait ended. */
export class TimeoutError extends GantryError {
  constructor(message: string) {
    super(message, "timeout");
  }
}

/** The call finished, but its result was dropped after its resultTtl. */
export class OutputExpiredError extends GantryError {
  constructor(message: string) {
    super(message, "output_expired");
  }
}

/** Unknown app, function or call ID. */
export class NotFoundError extends GantryError {
  constructor(message: string) {
    super(message, "not_found");
  }
}

/** The request clashes with what exists (HTTP 409): a volume or a file that already exists, a volume still mounted, a call already finished. */
export class ConflictError extends GantryError {
  constructor(message: string) {
    super(message, "conflict");
  }
}

export class InvalidArgumentError extends GantryError {
  constructor(message: string, code = "invalid_argument") {
    super(message, code);
  }
}

/** No daemon answers on the socket or URL. */
export class DaemonNotRunningError extends GantryError {
  constructor(message: string) {
    super(message, "daemon_not_running");
  }
}

/** The function raised: the remote type, message and traceback are kept. */
export class RemoteError extends GantryError {
  constructor(
    readonly remoteType: string,
    message: string,
    readonly traceback: string,
    code = "function_failed",
  ) {
    super(`${remoteType}: ${message}`, code);
  }
}

/** The attempt ran past the function's timeout (and no retries were left). */
export class FunctionTimeoutError extends RemoteError {
  constructor(message: string, traceback = "") {
    super("FunctionTimeoutError", message, traceback, "function_timeout");
  }
}

export class CancelledError extends GantryError {
  constructor(message: string) {
    super(message, "cancelled");
  }
}

/** Maps an API error body to the matching class. */
export function errorFromApi(status: number, body: unknown): GantryError {
  const e = (body as { error?: { code?: string; message?: string } })?.error;
  const message = e?.message ?? `the daemon answered HTTP ${status}`;
  switch (e?.code) {
    case "not_found":
      return new NotFoundError(message);
    case "output_expired":
      return new OutputExpiredError(message);
    case "conflict":
      return new ConflictError(message);
    case "invalid_argument":
    case "payload_too_large":
    case "queue_full":
    case "limit_exceeded":
      return new InvalidArgumentError(message, e.code);
    default:
      return new GantryError(message, e?.code ?? "error");
  }
}

/** The call's result is a Python value, pickled for the Python program that spawned it: only a Python client reads it. */
export class ResultNotJsonError extends GantryError {
  constructor(message: string) {
    super(message, "result_not_json");
  }
}

/** A Queue's get found nothing within its timeout (Python's queue.Empty). */
export class QueueEmptyError extends GantryError {
  constructor(message: string) {
    super(message, "queue_empty");
  }
}

/** A Queue partition had no room for what a put brought within its timeout (HTTP 429 queue_full): nothing of that request was put. */
export class QueueFullError extends GantryError {
  constructor(message: string) {
    super(message, "queue_full");
  }
}

/**
 * A Dict's or Queue's key or value is a Python value, pickled by the Python program that stored it:
 * only a Python client reads it. `pickled` is its base64; `removed` holds, as they travelled, the
 * values the read took out of the Dict or Queue (a Queue's get, a Dict's pop), so none is lost.
 */
export class ValueNotJsonError extends GantryError {
  constructor(
    message: string,
    readonly pickled: string,
    readonly removed: ReadonlyArray<{ value: unknown } | { pickled: string }> = [],
  ) {
    super(message, "value_not_json");
  }
}
