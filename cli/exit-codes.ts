import {
  CancelledError,
  DaemonNotRunningError,
  GantryError,
  InvalidArgumentError,
  NotFoundError,
  OutputExpiredError,
  RemoteError,
  TimeoutError,
} from "../sdk/errors.js";

/** Exit codes of every `gantry` verb (listed in `gantry --help`). */
export const ExitCode = {
  ok: 0,
  error: 1,
  usage: 2,
  daemonNotRunning: 3,
  notFound: 4,
  pending: 5,
  callFailed: 6,
  expired: 7,
  cancelled: 8,
} as const;

export const EXIT_CODE_HELP = `
Exit codes:
  0  success
  1  error (daemon or Docker failure, image build failed, ...)
  2  bad input: usage, invalid JSON, invalid app file or options
  3  no daemon is running (start one: gantry daemon start)
  4  not found: unknown app, function, call ID, secret, volume (or file in it), Dict (or key in it) or Queue
  5  the call is still pending (get/call --timeout ran out)
  6  the call failed (the function raised or timed out)
  7  the call's result has expired
  8  the call was cancelled`;

export class UsageError extends GantryError {
  constructor(message: string) {
    super(message, "usage");
  }
}

export function exitCodeFor(err: unknown): number {
  if (err instanceof UsageError || err instanceof InvalidArgumentError) return ExitCode.usage;
  if (err instanceof DaemonNotRunningError) return ExitCode.daemonNotRunning;
  if (err instanceof NotFoundError) return ExitCode.notFound;
  if (err instanceof TimeoutError) return ExitCode.pending;
  if (err instanceof RemoteError) return ExitCode.callFailed;
  if (err instanceof OutputExpiredError) return ExitCode.expired;
  if (err instanceof CancelledError) return ExitCode.cancelled;
  return ExitCode.error;
}
