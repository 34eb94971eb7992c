/**
 * The daemon's /v1 API from the browser: same origin, the session cookie (when the daemon has a
 * token) sent by the browser itself. A 401 anywhere asks the person to sign in once.
 */
export class ApiFailure extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

type AuthListener = (needed: boolean) => void;
const authListeners = new Set<AuthListener>();

/** Called with true when the API asks for the token, false once signed in. */
export function onAuthNeeded(fn: AuthListener): () => void {
  authListeners.add(fn);
  return () => authListeners.delete(fn);
}
export function setAuthNeeded(needed: boolean): void {
  authListeners.forEach((fn) => fn(needed));
}

async function failure(res: Response): Promise<ApiFailure> {
  let code = "error";
  let message = `${res.status} ${res.statusText}`;
  try {
    const body = (await res.json()) as { error?: { code?: string; message?: string } };
    code = body.error?.code ?? code;
    message = body.error?.message ?? message;
  } catch {
    // not JSON: keep the status line
  }
  return new ApiFailure(res.status, code, message);
}

export async function api<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
  const res = await fetch(path, {
    method,
    credentials: "same-origin",
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal,
  });
  if (res.status === 401 && path !== "/v1/session") setAuthNeeded(true);
  if (!res.ok) throw await failure(res);
  return (await res.json()) as T;
}

/**
 * Reads an NDJSON stream (logs), one parsed line at a time, until it ends or `signal` aborts.
 * `onOpen` runs once the daemon answered (a follower is listening from then on).
 */
export async function ndjson<T>(path: string, onLine: (line: T) => void, signal: AbortSignal, onOpen?: () => void): Promise<void> {
  const res = await fetch(path, { credentials: "same-origin", signal });
  if (res.status === 401) setAuthNeeded(true);
  if (!res.ok || !res.body) throw await failure(res);
  onOpen?.();
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    buf += value;
    let nl: number;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line) onLine(JSON.parse(line) as T);
    }
  }
}

/** Builds a query string from the defined, non-empty values. */
export function qs(params: Record<string, string | number | undefined | null>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : "";
}
