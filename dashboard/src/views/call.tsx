/** One call: its input, result or error with traceback, attempts, times, container and logs. */
import { useEffect, useState } from "preact/hooks";
import { api, ndjson, qs } from "../api.js";
import { Confirm, Copy, ErrorBox, Field, Loading, StatusBadge } from "../components.js";
import { between, clock, duration, json } from "../format.js";
import { useData, useLiveReload, useNow } from "../hooks.js";
import { href } from "../router.js";
import type { CallView, FunctionView, LogLine } from "../types.js";

/** GPU time (GPUs held × seconds), as a person reads it. */
function gpuSecondsText(s: number): string {
  const n = s < 10 ? s.toFixed(2) : s < 1000 ? s.toFixed(1) : Math.round(s).toLocaleString("en-US");
  return s >= 60 ? `${n} (${duration(s * 1000)} of GPU time)` : n;
}

function CallLogs({ call }: { call: CallView }) {
  const [lines, setLines] = useState<LogLine[]>([]);
  const [error, setError] = useState<Error | undefined>(undefined);
  const running = call.status === "queued" || call.status === "running";
  useEffect(() => {
    const ctl = new AbortController();
    setLines([]);
    const path = `/v1/apps/${encodeURIComponent(call.app)}/logs${qs({ function: call.function, call_id: call.call_id, tail: 500, follow: running ? 1 : undefined })}`;
    ndjson<LogLine>(path, (l) => setLines((ls) => [...ls, l].slice(-2000)), ctl.signal).catch((e: unknown) => {
      if (!ctl.signal.aborted) setError(e as Error);
    });
    return () => ctl.abort();
  }, [call.call_id, running]);
  return (
    <section class="card">
      <h2>Logs of this call</h2>
      <ErrorBox error={error} />
      {lines.length ? (
        <pre class="logs">
          {lines.map((l, i) => (
            <div key={i} class={`log-line ${l.stream}`}>
              <span class="muted">{l.ts.slice(11, 23)}</span> {l.line}
            </div>
          ))}
        </pre>
      ) : (
        <p class="muted">{running ? "Nothing printed yet." : "It printed nothing (or its lines have left the log's last megabyte)."}</p>
      )}
    </section>
  );
}

export function CallView_({ id }: { id: string }) {
  const call = useData((signal) => api<CallView>("GET", `/v1/calls/${encodeURIComponent(id)}`, undefined, signal), [id]);
  useLiveReload(call.reload, (e) => e.type === "call.status" && e.call_id === id, 100);
  const fn = useData(
    (signal) =>
      call.data ? api<FunctionView>("GET", `/v1/apps/${encodeURIComponent(call.data.app)}/functions/${encodeURIComponent(call.data.function)}`, undefined, signal) : Promise.resolve(undefined),
    [call.data?.app, call.data?.function],
  );
  const [cancelling, setCancelling] = useState(false);
  const now = useNow();
  if (call.error) return <ErrorBox error={call.error} />;
  const c = call.data;
  if (!c) return <Loading />;
  const isLive = c.status === "queued" || c.status === "running";
  // Re-runs for lost containers use no retry: they add to the attempts a call may take.
  const lostRuns = (c.attempts ?? []).filter((a) => a.outcome === "lost").length;
  const tries = fn.data ? fn.data.retries + 1 + lostRuns : null;
  return (
    <div class="stack" data-call-page={c.call_id}>
      <header class="page-head">
        <h1 class="mono">
          {c.call_id} <Copy text={c.call_id} label="Copy ID" />
        </h1>
        <div class="actions">
          <StatusBadge status={c.status} expired={c.expired} />
          {isLive ? (
            <button type="button" class="danger" onClick={() => setCancelling(true)}>
              Cancel call
            </button>
          ) : null}
        </div>
      </header>
      <section class="card">
        <dl class="fields">
          <Field label="function">
            <a href={href("apps", c.app)}>{c.app}</a> · <a href={href("calls", undefined, { app: c.app, function: c.function })} class="mono">{c.function}</a>
          </Field>
          <Field label="attempt">
            {c.attempt}
            {tries !== null ? ` of at most ${tries}` : ""}
          </Field>
          <Field label="created">{clock(c.created_at)}</Field>
          <Field label="started">{clock(c.started_at)}</Field>
          <Field label="finished">{clock(c.finished_at)}</Field>
          <Field label="ran for">{duration(between(c.started_at, c.finished_at, now))}</Field>
          {c.gpu_seconds != null ? (
            <Field label="GPU-seconds">
              <span data-part="gpu-seconds">{gpuSecondsText(c.gpu_seconds)}</span>
            </Field>
          ) : null}
          <Field label="container">{c.container_id ? <a href={href("containers", undefined, { id: c.container_id })} class="mono">{c.container_id}</a> : "—"}</Field>
          <Field label="result kept until">{c.expires_at ? `${clock(c.expires_at)}${c.expired ? " (expired)" : ""}` : "—"}</Field>
        </dl>
      </section>
      {c.attempts?.length ? (
        <section class="card">
          <h2>Earlier attempts</h2>
          <table class="attempts" data-part="attempts">
            <tbody>
              {c.attempts.map((a) => (
                <tr key={a.attempt}>
                  <td class="num">#{a.attempt}</td>
                  <td>{a.outcome === "lost" ? "container lost (no retry used)" : "failed (a retry followed)"}</td>
                  <td>{clock(a.ended_at)}</td>
                  <td>
                    {a.error ? (
                      <>
                        <span class="mono">{a.error.type}</span>: {a.error.message}
                      </>
                    ) : null}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </section>
      ) : null}
      <section class="card">
        <h2>Input</h2>
        {c.input ? (
          <>
            {c.input.scheduled ? <p class="muted" data-part="scheduled">Started by the function's schedule, with no arguments.</p> : null}
            {c.input.method ? <p class="muted" data-part="method">Method {c.input.method}{c.input.params ? ` of the instance (${Object.entries(c.input.params).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(", ")})` : ""}.</p> : null}
            {c.input.pickled_bytes !== undefined ? (
              <p class="muted" data-part="args">Pickled Python arguments ({c.input.pickled_bytes} bytes), from a Python caller.</p>
            ) : (
              <pre class="json" data-part="args">{json(c.input.args)}</pre>
            )}
            {c.input.kwargs ? <pre class="json" data-part="kwargs">{json(c.input.kwargs)}</pre> : null}
          </>
        ) : (
          <p class="muted">Not stored.</p>
        )}
      </section>
      {c.status === "succeeded" ? (
        <section class="card">
          <h2>Result</h2>
          {c.expired ? (
            <p class="muted">The result expired (the function's resultTtl passed); its status stays.</p>
          ) : c.result_pickle !== undefined ? (
            <p class="muted" data-part="result">
              A Python value, pickled for the Python program that called it ({Math.floor((c.result_pickle.length * 3) / 4)} bytes): read it with{" "}
              <span class="mono">gantry.FunctionCall.from_id("{c.call_id}").get()</span>.
            </p>
          ) : (
            <pre class="json" data-part="result">{json(c.result)}</pre>
          )}
        </section>
      ) : null}
      {c.error ? (
        <section class="card error-card">
          <h2>
            {isLive ? `Attempt ${c.attempt - 1} ${c.attempts?.at(-1)?.outcome === "lost" ? "lost its container, it runs again" : "failed, it is retried"}` : "Error"}:{" "}
            <span class="mono">{c.error.type}</span>
          </h2>
          <p data-part="error-message">{c.error.message}</p>
          {c.error.traceback ? <pre class="traceback" data-part="traceback">{c.error.traceback}</pre> : null}
        </section>
      ) : null}
      <CallLogs call={c} />
      <Confirm
        open={cancelling}
        title={`Cancel ${c.call_id}?`}
        confirmLabel="Cancel call"
        danger
        onClose={() => setCancelling(false)}
        onConfirm={async () => {
          await api("POST", `/v1/calls/${c.call_id}/cancel`);
          call.reload();
        }}
      >
        <p>{c.status === "running" ? "It is running: its attempt is stopped." : "It is queued: it will not run."} A cancelled call is not retried.</p>
      </Confirm>
    </div>
  );
}
