/** An app's logs, following live (NDJSON from /v1/apps/{app}/logs?follow=1), pausable. */
import { useEffect, useRef, useState } from "preact/hooks";
import { api, ndjson, qs } from "../api.js";
import { Choice, Empty, ErrorBox } from "../components.js";
import { useData } from "../hooks.js";
import { href, navigate, type Route } from "../router.js";
import type { AppSummary, LogLine } from "../types.js";

const KEEP = 5000;

export function LogsView({ app, route }: { app: string | undefined; route: Route }) {
  const fn = route.query.get("function") ?? "";
  const apps = useData((signal) => api<{ apps: AppSummary[] }>("GET", "/v1/apps", undefined, signal), []);
  const [lines, setLines] = useState<LogLine[]>([]);
  const [error, setError] = useState<Error | undefined>(undefined);
  const [following, setFollowing] = useState(true);
  /** The daemon answered: from then on, new lines reach this page. */
  const [open, setOpen] = useState(false);
  const box = useRef<HTMLPreElement>(null);
  const atBottom = useRef(true);

  useEffect(() => {
    if (!app) return;
    const ctl = new AbortController();
    setLines([]);
    setError(undefined);
    setOpen(false);
    let batch: LogLine[] = [];
    let frame = 0;
    const flush = () => {
      frame = 0;
      const add = batch;
      batch = [];
      setLines((ls) => [...ls, ...add].slice(-KEEP));
    };
    const path = `/v1/apps/${encodeURIComponent(app)}/logs${qs({ function: fn, tail: 500, follow: following ? 1 : undefined })}`;
    ndjson<LogLine>(
      path,
      (l) => {
        batch.push(l);
        if (!frame) frame = requestAnimationFrame(flush);
      },
      ctl.signal,
      () => setOpen(true),
    ).catch((e: unknown) => {
      if (!ctl.signal.aborted) setError(e as Error);
    });
    return () => {
      ctl.abort();
      if (frame) cancelAnimationFrame(frame);
    };
  }, [app, fn, following]);

  useEffect(() => {
    const el = box.current;
    if (el && atBottom.current) el.scrollTop = el.scrollHeight;
  }, [lines]);

  const names = apps.data?.apps.map((a) => a.name) ?? [];
  const fns = apps.data?.apps.find((a) => a.name === app)?.functions ?? [];
  return (
    <div class="stack logs-page">
      <header class="page-head">
        <h1>Logs</h1>
        <div class="actions">
          <Choice label="app" name="app" value={app ?? ""} none="choose…" options={names} onPick={(v) => navigate(href("logs", v || undefined))} />
          <Choice label="function" name="function" value={fn} none="all" options={fns} disabled={!app} onPick={(v) => navigate(href("logs", app, { function: v }))} />
          <button type="button" class="ghost" disabled={!app} onClick={() => setFollowing((f) => !f)} aria-pressed={following}>
            {following ? "❚❚ Pause" : "▶ Follow"}
          </button>
        </div>
      </header>
      <ErrorBox error={error} />
      {!app ? (
        <Empty>Choose an app to read its functions' output.</Empty>
      ) : (
        <pre
          class="logs tall"
          ref={box}
          data-following={following && open ? "yes" : "no"}
          onScroll={(e) => {
            const el = e.currentTarget as HTMLPreElement;
            atBottom.current = el.scrollHeight - el.scrollTop - el.clientHeight < 24;
          }}
        >
          {lines.length ? (
            lines.map((l, i) => (
              <div key={i} class={`log-line ${l.stream}`}>
                <span class="muted">{l.ts.replace("T", " ").slice(0, 23)}</span> <span class="fn">{l.function}</span>{" "}
                {l.call_id ? (
                  <a class="mono" href={href("calls", l.call_id)}>
                    {l.call_id.slice(0, 13)}…
                  </a>
                ) : (
                  <span class="muted">-</span>
                )}{" "}
                {l.line}
              </div>
            ))
          ) : (
            <span class="muted">{following ? "Waiting for output…" : "No lines."}</span>
          )}
        </pre>
      )}
    </div>
  );
}
