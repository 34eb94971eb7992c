/**
 * Sandboxes (issue 24): the list, newest first (all, or those running), and one sandbox's page
 * with its fields, the last 64 KiB of its main command's stdout and stderr, and Terminate.
 * Nothing on the status stream says a sandbox changed, so both read again on a timer while the
 * tab is visible and updates are not paused (and when the stream asks views to resync: resume,
 * reconnect).
 */
import { useEffect, useRef, useState } from "preact/hooks";
import { api, ApiFailure, qs, setAuthNeeded } from "../api.js";
import { Confirm, Copy, Empty, ErrorBox, Field, Loading, StatusBadge } from "../components.js";
import { ago, between, bytes, clock, duration } from "../format.js";
import { useData, useLiveReload, useNow } from "../hooks.js";
import { live } from "../live.js";
import { href, navigate, type Route } from "../router.js";
import type { ProcessView, SandboxState, SandboxView } from "../types.js";

/** Rows the list asks for (the daemon's newest first). */
const LIST_LIMIT = 100;
/** How much of each stream the page shows: the end, where a person looks first. */
export const TAIL_BYTES = 64 * 1024;
/** How often the list, and a live sandbox's page, read again. */
const REFRESH_MS = 2000;
/** Mirrors protocol/sandboxes.ts ENDED_STATES (a type-only import keeps zod out of the page). */
const ENDED = new Set<SandboxState>(["finished", "timed_out", "terminated", "failed"]);

/** Calls `fn` every `ms` while `active`, the tab is visible and the person has not paused updates. */
function useEvery(fn: () => void, ms: number, active = true): void {
  const ref = useRef(fn);
  ref.current = fn;
  useEffect(() => {
    if (!active) return;
    const t = setInterval(() => {
      if (document.visibilityState === "visible" && live.state !== "paused") ref.current();
    }, ms);
    return () => clearInterval(t);
  }, [ms, active]);
}

function Tags({ tags }: { tags: Record<string, string> }) {
  const entries = Object.entries(tags);
  if (!entries.length) return <>—</>;
  return (
    <>
      {entries.map(([k, v]) => (
        <span key={k} class="tag mono" data-tag={k}>
          {k}={v}
        </span>
      ))}
    </>
  );
}

function SandboxRow({ s, now }: { s: SandboxView; now: number }) {
  const to = href("sandboxes", s.id);
  // The whole row opens the sandbox; its links (the app) go where they say.
  const open = (e: MouseEvent) => {
    if (!(e.target as HTMLElement).closest("a")) navigate(to);
  };
  return (
    <tr data-sandbox={s.id} data-state={s.state} class="clickable" onClick={open}>
      <td>
        <a class="mono" href={to}>
          {s.id}
        </a>
      </td>
      <td>
        <a href={href("apps", s.app)}>{s.app}</a>
      </td>
      <td class="mono">{s.name ?? "—"}</td>
      <td>
        <StatusBadge status={s.state} />
      </td>
      <td class="num" data-part="returncode">
        {s.returncode ?? "—"}
      </td>
      <td class="num">{s.running_execs}</td>
      <td>
        <Tags tags={s.tags} />
      </td>
      <td title={clock(s.created_at)}>{ago(s.created_at, now)}</td>
      <td title={clock(s.ended_at)}>{ago(s.ended_at, now)}</td>
      <td class="mono small">{s.image ?? "—"}</td>
    </tr>
  );
}

export function SandboxesView({ route }: { route: Route }) {
  const running = route.query.get("state") === "running";
  const { data, error, reload } = useData(
    (signal) => api<{ sandboxes: SandboxView[] }>("GET", `/v1/sandboxes${qs({ limit: LIST_LIMIT, state: running ? "running" : undefined })}`, undefined, signal),
    [running],
  );
  useLiveReload(reload, () => false); // only the stream's resyncs (resume, reconnect)
  useEvery(reload, REFRESH_MS);
  const now = useNow(5000);
  return (
    <div class="stack">
      <header class="page-head">
        <h1>Sandboxes</h1>
        <div class="actions">
          <div class="segmented" role="group" aria-label="state">
            <a href={href("sandboxes")} class={running ? "" : "on"} data-filter-state="all">
              all
            </a>
            <a href={href("sandboxes", undefined, { state: "running" })} class={running ? "on" : ""} data-filter-state="running">
              running
            </a>
          </div>
          <button type="button" class="ghost small" onClick={reload}>
            Refresh
          </button>
        </div>
      </header>
      <ErrorBox error={error} />
      {!data && !error ? <Loading /> : null}
      {data && !data.sandboxes.length ? (
        <Empty>
          {running ? "No sandbox is running." : "No sandboxes yet"}: start one with <code>gantry.Sandbox.create("sleep", "60", app=app)</code> in Python, or{" "}
          <code>client.sandboxes.create({"{ app, command }"})</code>.
        </Empty>
      ) : null}
      {data?.sandboxes.length ? (
        <table class="grid sandboxes">
          <thead>
            <tr>
              <th>sandbox</th>
              <th>app</th>
              <th>name</th>
              <th>state</th>
              <th class="num">exit code</th>
              <th class="num">execs</th>
              <th>tags</th>
              <th>created</th>
              <th>ended</th>
              <th>image</th>
            </tr>
          </thead>
          <tbody>
            {data.sandboxes.map((s) => (
              <SandboxRow key={s.id} s={s} now={now} />
            ))}
          </tbody>
        </table>
      ) : null}
      {data && data.sandboxes.length >= LIST_LIMIT ? <p class="muted small">The newest {LIST_LIMIT} are shown.</p> : null}
    </div>
  );
}

/** The part of the bytes to show as text: a tail cut mid-character starts at the next whole one. */
export function tailText(buf: Uint8Array, cut: boolean): string {
  let start = 0;
  if (cut) while (start < buf.length && start < 3 && (buf[start]! & 0xc0) === 0x80) start++;
  return new TextDecoder("utf-8").decode(buf.subarray(start));
}

interface Tail {
  text: string;
  /** Bytes before the shown tail. */
  skipped: number;
}
interface Output {
  proc: ProcessView;
  stdout: Tail;
  stderr: Tail;
}

async function readTail(id: string, stream: "stdout" | "stderr", total: number, signal: AbortSignal): Promise<Tail> {
  const offset = Math.max(0, total - TAIL_BYTES);
  const res = await fetch(`/v1/sandboxes/${encodeURIComponent(id)}/procs/main/${stream}${qs({ offset })}`, { credentials: "same-origin", signal });
  if (res.status === 401) setAuthNeeded(true);
  if (!res.ok) {
    const body = (await res.json().catch(() => ({}))) as { error?: { code?: string; message?: string } };
    throw new ApiFailure(res.status, body.error?.code ?? "error", body.error?.message ?? `${stream}: ${res.status} ${res.statusText}`);
  }
  return { text: tailText(new Uint8Array(await res.arrayBuffer()), offset > 0), skipped: offset };
}

async function readOutput(id: string, signal: AbortSignal): Promise<Output> {
  const proc = await api<ProcessView>("GET", `/v1/sandboxes/${encodeURIComponent(id)}/procs/main`, undefined, signal);
  const [stdout, stderr] = await Promise.all([readTail(id, "stdout", proc.stdout_bytes, signal), readTail(id, "stderr", proc.stderr_bytes, signal)]);
  return { proc, stdout, stderr };
}

function Stream({ name, tail, live }: { name: "stdout" | "stderr"; tail: Tail; live: boolean }) {
  return (
    <section class="card" data-stream={name}>
      <h2>{name}</h2>
      {tail.skipped ? <p class="muted small">The first {bytes(tail.skipped)} are not shown: this is the last {bytes(TAIL_BYTES)}.</p> : null}
      {tail.text ? (
        <pre class="logs" data-part={name}>
          {tail.text}
        </pre>
      ) : (
        <p class="muted" data-part={`${name}-empty`}>
          {live ? "Nothing written yet." : "Nothing was written."}
        </p>
      )}
    </section>
  );
}

function MainOutput({ sandbox, tick, ended }: { sandbox: SandboxView; tick: number; ended: boolean }) {
  // Read again when it ends too: what it wrote last comes with the state that says so.
  const out = useData((signal) => readOutput(sandbox.id, signal), [sandbox.id, tick, ended]);
  if (out.error) {
    // A sandbox that never started has no main process to read.
    if (out.error instanceof ApiFailure && out.error.status === 404) return <p class="muted">No output: {out.error.message}</p>;
    return <ErrorBox error={out.error} />;
  }
  if (!out.data) return <Loading />;
  const { proc, stdout, stderr } = out.data;
  return (
    <>
      {proc.dropped ? <p class="muted small">Output past the daemon's limit per stream was dropped.</p> : null}
      <Stream name="stdout" tail={stdout} live={proc.running} />
      <Stream name="stderr" tail={stderr} live={proc.running} />
    </>
  );
}

/** A command line as a shell would read it back: arguments with spaces or quotes are quoted. */
export function shellLine(args: string[]): string {
  return args.map((a) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(" ");
}

function SandboxFields({ s, now }: { s: SandboxView; now: number }) {
  return (
    <dl class="fields">
      <Field label="app">
        <a href={href("apps", s.app)}>{s.app}</a>
      </Field>
      <Field label="name">{s.name ?? "—"}</Field>
      <Field label="command">
        <span class="mono" data-part="command">
          {s.command.length ? shellLine(s.command) : "none (stays up until its timeout or terminate)"}
        </span>
      </Field>
      <Field label="image">
        <span class="mono">{s.image ?? "—"}</span>
      </Field>
      <Field label="exit code">
        <span data-part="returncode">{s.returncode ?? "—"}</span>
        {s.timeout_kind ? ` (its ${s.timeout_kind === "idle" ? "idle timeout" : "timeout"} ended it)` : ""}
      </Field>
      <Field label="running execs">{s.running_execs}</Field>
      <Field label="tags">
        <Tags tags={s.tags} />
      </Field>
      <Field label="created">{clock(s.created_at)}</Field>
      <Field label="started">{clock(s.started_at)}</Field>
      <Field label="ended">{clock(s.ended_at)}</Field>
      <Field label="ran for">{duration(between(s.started_at, s.ended_at, now))}</Field>
      <Field label="timeout">
        {s.timeout} s{s.idle_timeout !== null ? ` · idle ${s.idle_timeout} s` : ""}
      </Field>
      <Field label="network">{s.block_network ? "blocked (loopback only)" : "not blocked"}</Field>
      <Field label="terminal">{s.pty ? "yes" : "no"}</Field>
    </dl>
  );
}

export function SandboxView_({ id }: { id: string }) {
  const [tick, setTick] = useState(0);
  const sb = useData((signal) => api<SandboxView>("GET", `/v1/sandboxes/${encodeURIComponent(id)}`, undefined, signal), [id, tick]);
  const [terminating, setTerminating] = useState(false);
  const now = useNow();
  const s = sb.data;
  const ended = s ? ENDED.has(s.state) : false;
  const again = () => setTick((t) => t + 1);
  useLiveReload(again, () => false);
  // While it lives its state and output change; once ended, one last read is enough.
  useEvery(again, REFRESH_MS, !ended);
  if (sb.error && !s) return <ErrorBox error={sb.error} />;
  if (!s) return <Loading />;
  return (
    <div class="stack" data-sandbox-page={s.id}>
      <header class="page-head">
        <h1 class="mono">
          {s.id} <Copy text={s.id} label="Copy ID" />
        </h1>
        <div class="actions">
          <StatusBadge status={s.state} />
          {ended ? null : (
            <button type="button" class="danger" onClick={() => setTerminating(true)}>
              Terminate
            </button>
          )}
        </div>
      </header>
      <ErrorBox error={sb.error} />
      <section class="card">
        <SandboxFields s={s} now={now} />
      </section>
      {s.error ? (
        <section class="card error-card">
          <h2>{s.state === "failed" ? "It did not start" : "Why it ended"}</h2>
          <p data-part="error">{s.error}</p>
        </section>
      ) : null}
      {s.state === "pending" ? <p class="muted">Starting: its image is built and its container started.</p> : <MainOutput sandbox={s} tick={tick} ended={ended} />}
      <Confirm
        open={terminating}
        title={`Terminate ${s.id}?`}
        confirmLabel="Terminate"
        danger
        onClose={() => setTerminating(false)}
        onConfirm={async () => {
          await api("POST", `/v1/sandboxes/${encodeURIComponent(s.id)}/terminate`);
          again();
        }}
      >
        <p>Its container is stopped with its command and execs (exit code 137). This cannot be undone.</p>
      </Confirm>
    </div>
  );
}
