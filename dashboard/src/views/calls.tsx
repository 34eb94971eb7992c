/**
 * Calls, newest first, paged by the daemon (before/after cursors), filtered by app, function,
 * status and time; the first page follows the status stream: new calls appear and change
 * status without reloading. Calls can be selected and cancelled together.
 */
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { api, qs } from "../api.js";
import { Choice, Confirm, Empty, ErrorBox, Loading, StatusBadge } from "../components.js";
import { ago, between, clock, duration } from "../format.js";
import { useData, useNow } from "../hooks.js";
import { live } from "../live.js";
import { href, navigate, type Route } from "../router.js";
import type { AppSummary, CallStatusName, CallView, GantryEventView } from "../types.js";

const PAGE = 50;
const STATUSES: CallStatusName[] = ["queued", "running", "succeeded", "failed", "cancelled"];
const TERMINAL = new Set<string>(["succeeded", "failed", "cancelled"]);
const RANGES: Record<string, { label: string; ms: number }> = {
  "15m": { label: "last 15 min", ms: 15 * 60_000 },
  "1h": { label: "last hour", ms: 3600_000 },
  "24h": { label: "last 24 h", ms: 86400_000 },
  "7d": { label: "last 7 days", ms: 7 * 86400_000 },
};

interface Filters {
  app: string;
  function: string;
  status: string;
  range: string;
  before: string;
  after: string;
}

function filtersOf(q: URLSearchParams): Filters {
  const get = (k: string) => q.get(k) ?? "";
  return { app: get("app"), function: get("function"), status: get("status"), range: get("range"), before: get("before"), after: get("after") };
}

function withFilters(f: Filters, change: Partial<Filters>): string {
  const next = { ...f, ...change };
  // A new filter starts again at the newest calls.
  if (!("before" in change) && !("after" in change)) (next.before = ""), (next.after = "");
  return href("calls", undefined, { ...next });
}

/** Applies one status event to the page's rows: update, insert (first page only) or drop. */
function applyEvent(rows: CallView[], e: Extract<GantryEventView, { type: "call.status" }>, f: Filters, firstPage: boolean, sinceMs: number | null): CallView[] {
  const i = rows.findIndex((r) => r.call_id === e.call_id);
  const matches = (!f.app || e.app === f.app) && (!f.function || e.function === f.function) && (!f.status || e.status === f.status);
  if (i >= 0) {
    if (!matches) return rows.filter((_, k) => k !== i);
    const r = rows[i]!;
    const next: CallView = {
      ...r,
      status: e.status,
      attempt: e.attempt,
      started_at: e.status === "running" ? e.ts : r.started_at,
      finished_at: TERMINAL.has(e.status) ? e.ts : null,
    };
    return rows.map((x, k) => (k === i ? next : x));
  }
  if (!firstPage || !matches || (sinceMs !== null && Date.parse(e.ts) < sinceMs)) return rows;
  // A call this page has not seen: newer ones go on top (IDs sort by creation time).
  const row: CallView = {
    call_id: e.call_id,
    app: e.app,
    function: e.function,
    status: e.status,
    attempt: e.attempt,
    created_at: e.ts,
    started_at: e.status === "running" ? e.ts : null,
    finished_at: TERMINAL.has(e.status) ? e.ts : null,
    expired: false,
    expires_at: null,
    container_id: null,
  };
  const next = [...rows, row].sort((a, b) => (a.call_id < b.call_id ? 1 : -1));
  return next.slice(0, PAGE);
}

function CallRow({ c, selected, onSelect, now }: { c: CallView; selected: boolean; onSelect: (on: boolean) => void; now: number }) {
  const live = c.status === "queued" || c.status === "running";
  return (
    <tr data-call={c.call_id} data-status={c.status} class={selected ? "selected" : ""}>
      <td>
        <input type="checkbox" aria-label={`select ${c.call_id}`} checked={selected} disabled={!live} onChange={(ev) => onSelect((ev.target as HTMLInputElement).checked)} />
      </td>
      <td>
        <a class="mono" href={href("calls", c.call_id)}>
          {c.call_id}
        </a>
      </td>
      <td>{c.app}</td>
      <td class="mono">{c.function}</td>
      <td>
        <StatusBadge status={c.status} expired={c.expired} />
      </td>
      <td class="num">{c.attempt}</td>
      <td title={clock(c.created_at)}>{ago(c.created_at, now)}</td>
      <td class="num">{duration(between(c.started_at, c.finished_at, now))}</td>
    </tr>
  );
}

export function CallsView({ route }: { route: Route }) {
  const f = filtersOf(route.query);
  const firstPage = !f.before && !f.after;
  const sinceMs = f.range && RANGES[f.range] ? Date.now() - RANGES[f.range]!.ms : null;
  const apps = useData((signal) => api<{ apps: AppSummary[] }>("GET", "/v1/apps", undefined, signal), []);
  const page = useData(
    (signal) =>
      api<{ calls: CallView[] }>(
        "GET",
        `/v1/calls${qs({ app: f.app, function: f.function, status: f.status, before: f.before, after: f.after, since: sinceMs ?? undefined, limit: PAGE + 1 })}`,
        undefined,
        signal,
      ),
    [f.app, f.function, f.status, f.range, f.before, f.after],
  );
  const [rows, setRows] = useState<CallView[]>([]);
  const [more, setMore] = useState(false);
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const [confirming, setConfirming] = useState(false);
  const now = useNow();

  useEffect(() => {
    if (!page.data) return;
    const got = page.data.calls;
    // One extra row says whether there is another page in the direction we went.
    setMore(got.length > PAGE);
    setRows(f.after ? got.slice(-PAGE) : got.slice(0, PAGE));
    setSelected(new Set());
  }, [page.data]);

  // Follow the status stream: events are applied in batches, once per frame.
  const pending = useRef<Array<Extract<GantryEventView, { type: "call.status" }>>>([]);
  useEffect(() => {
    let frame = 0;
    const off = live.on((e) => {
      if (e.type !== "call.status") return;
      pending.current.push(e);
      if (!frame)
        frame = requestAnimationFrame(() => {
          frame = 0;
          const batch = pending.current.splice(0);
          setRows((rs) => batch.reduce((acc, ev) => applyEvent(acc, ev, f, firstPage, sinceMs), rs));
        });
    });
    const offResync = live.onResync(() => page.reload());
    return () => {
      off();
      offResync();
      if (frame) cancelAnimationFrame(frame);
    };
  }, [f.app, f.function, f.status, f.range, f.before, f.after]);

  const appNames = apps.data?.apps.map((a) => a.name) ?? [];
  const fnNames = useMemo(() => (f.app ? (apps.data?.apps.find((a) => a.name === f.app)?.functions ?? []) : []), [apps.data, f.app]);
  const chosen = rows.filter((r) => selected.has(r.call_id) && (r.status === "queued" || r.status === "running"));

  return (
    <div class="stack">
      <header class="page-head">
        <h1>Calls</h1>
        <div class="actions">
          <button type="button" class="danger" disabled={!chosen.length} onClick={() => setConfirming(true)}>
            Cancel {chosen.length ? `${chosen.length} selected` : "selected"}
          </button>
        </div>
      </header>
      <form class="filters" onSubmit={(e) => e.preventDefault()}>
        <Choice label="app" name="app" value={f.app} none="all" options={appNames} onPick={(v) => navigate(withFilters(f, { app: v, function: "" }))} />
        <Choice label="function" name="function" value={f.function} none="all" options={fnNames} disabled={!f.app} onPick={(v) => navigate(withFilters(f, { function: v }))} />
        <div class="segmented" role="group" aria-label="status">
          {["", ...STATUSES].map((s) => (
            <a key={s || "all"} href={withFilters(f, { status: s })} class={f.status === s ? "on" : ""} data-filter-status={s || "all"}>
              {s || "all"}
            </a>
          ))}
        </div>
        <label>
          created
          <select name="range" value={f.range} onChange={(e) => navigate(withFilters(f, { range: (e.target as HTMLSelectElement).value }))}>
            <option value="">any time</option>
            {Object.entries(RANGES).map(([k, r]) => (
              <option key={k} value={k}>
                {r.label}
              </option>
            ))}
          </select>
        </label>
      </form>
      <ErrorBox error={page.error} />
      {!page.data && !page.error ? <Loading /> : null}
      {page.data && !rows.length ? <Empty>No calls {f.status || f.app || f.range ? "match these filters" : "yet"}.</Empty> : null}
      {rows.length ? (
        <table class="grid calls">
          <thead>
            <tr>
              <th>
                <input
                  type="checkbox"
                  aria-label="select all that can be cancelled"
                  checked={chosen.length > 0 && chosen.length === rows.filter((r) => r.status === "queued" || r.status === "running").length}
                  onChange={(ev) =>
                    setSelected((ev.target as HTMLInputElement).checked ? new Set(rows.filter((r) => r.status === "queued" || r.status === "running").map((r) => r.call_id)) : new Set())
                  }
                />
              </th>
              <th>call</th>
              <th>app</th>
              <th>function</th>
              <th>status</th>
              <th class="num">attempt</th>
              <th>created</th>
              <th class="num">ran for</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((c) => (
              <CallRow
                key={c.call_id}
                c={c}
                now={now}
                selected={selected.has(c.call_id)}
                onSelect={(on) =>
                  setSelected((s) => {
                    const n = new Set(s);
                    if (on) n.add(c.call_id);
                    else n.delete(c.call_id);
                    return n;
                  })
                }
              />
            ))}
          </tbody>
        </table>
      ) : null}
      <nav class="pager">
        <a class={`button ghost ${firstPage ? "disabled" : ""}`} href={withFilters(f, { before: "", after: "" })} aria-disabled={firstPage}>
          Newest
        </a>
        <a
          class={`button ghost ${firstPage || (f.after && !more) ? "disabled" : ""}`}
          href={rows.length ? withFilters(f, { after: rows[0]!.call_id, before: "" }) : "#"}
          aria-disabled={firstPage || Boolean(f.after && !more)}
        >
          ← Newer
        </a>
        <a
          class={`button ghost ${!f.after && !more ? "disabled" : ""}`}
          href={rows.length ? withFilters(f, { before: rows[rows.length - 1]!.call_id, after: "" }) : "#"}
          aria-disabled={!f.after && !more}
        >
          Older →
        </a>
        {firstPage ? <span class="muted small">new calls appear here as they come</span> : null}
      </nav>
      <Confirm
        open={confirming}
        title={`Cancel ${chosen.length} call${chosen.length === 1 ? "" : "s"}?`}
        confirmLabel="Cancel them"
        danger
        onClose={() => setConfirming(false)}
        onConfirm={async () => {
          const results = await Promise.allSettled(chosen.map((c) => api("POST", `/v1/calls/${c.call_id}/cancel`)));
          const failed = results.filter((r) => r.status === "rejected").length;
          setSelected(new Set());
          page.reload();
          if (failed) throw new Error(`${failed} of ${chosen.length} could not be cancelled (finished meanwhile?)`);
        }}
      >
        <p>Queued calls never run; running ones are stopped. Cancelled calls are not retried.</p>
      </Confirm>
    </div>
  );
}
