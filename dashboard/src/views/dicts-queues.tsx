/** Dicts and Queues: each one's size, when it was made, and whether it is ephemeral. */
import { useEffect } from "preact/hooks";
import type { DictView, QueueView } from "../../../protocol/dicts-queues.js";
import { api } from "../api.js";
import { Empty, ErrorBox, Loading } from "../components.js";
import { ago, clock } from "../format.js";
import { useData, useLiveReload, useNow } from "../hooks.js";

/** How often sizes are read again: nothing on the event stream says a Dict or Queue changed. */
const REFRESH_MS = 5000;

function Kind({ ephemeral, expiresAt }: { ephemeral: boolean; expiresAt: string | null }) {
  if (!ephemeral) return <>named</>;
  return (
    <span class="badge" title={expiresAt ? `removed at ${clock(expiresAt)} unless its owner heartbeats` : undefined}>
      ephemeral
    </span>
  );
}

export function DictsQueuesView() {
  const { data, error, reload } = useData(
    async (signal) => {
      const [d, q] = await Promise.all([
        api<{ dicts: DictView[] }>("GET", "/v1/dicts", undefined, signal),
        api<{ queues: QueueView[] }>("GET", "/v1/queues", undefined, signal),
      ]);
      return { dicts: d.dicts, queues: q.queues };
    },
    [],
  );
  // Functions fill and drain them as calls run; and on a timer, for programs outside the daemon.
  useLiveReload(reload, (e) => e.type === "call.status", 2000);
  useEffect(() => {
    const t = setInterval(() => {
      if (document.visibilityState === "visible") reload();
    }, REFRESH_MS);
    return () => clearInterval(t);
  }, [reload]);
  const now = useNow(5000);
  if (error) return <ErrorBox error={error} />;
  if (!data) return <Loading />;
  const { dicts, queues } = data;
  return (
    <div class="stack">
      <header class="page-head">
        <h1>Dicts &amp; Queues</h1>
        <span class="muted">
          {dicts.length} dicts · {queues.length} queues
        </span>
        <button type="button" class="ghost small" onClick={reload}>
          Refresh
        </button>
      </header>

      <section data-section="dicts">
        <h2>Dicts</h2>
        {!dicts.length ? (
          <Empty>
            No dicts: make one with <code>client.dicts.fromName(NAME, {"{ createIfMissing: true }"})</code>, or{" "}
            <code>gantry.Dict.from_name(NAME, create_if_missing=True)</code> in Python.
          </Empty>
        ) : (
          <table class="grid">
            <thead>
              <tr>
                <th>name</th>
                <th class="num">entries</th>
                <th>created</th>
                <th>kind</th>
              </tr>
            </thead>
            <tbody>
              {dicts.map((d) => (
                <tr key={d.name} data-dict={d.name}>
                  <td class="mono">{d.name}</td>
                  <td class="num">{d.len}</td>
                  <td title={clock(d.created_at)}>{ago(d.created_at, now)}</td>
                  <td>
                    <Kind ephemeral={d.ephemeral} expiresAt={d.expires_at} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>

      <section data-section="queues">
        <h2>Queues</h2>
        {!queues.length ? (
          <Empty>
            No queues: make one with <code>client.queues.fromName(NAME, {"{ createIfMissing: true }"})</code>, or{" "}
            <code>gantry.Queue.from_name(NAME, create_if_missing=True)</code> in Python.
          </Empty>
        ) : (
          <table class="grid">
            <thead>
              <tr>
                <th>name</th>
                <th class="num">items</th>
                <th class="num">partitions</th>
                <th>created</th>
                <th>kind</th>
              </tr>
            </thead>
            <tbody>
              {queues.map((q) => (
                <tr key={q.name} data-queue={q.name}>
                  <td class="mono">{q.name}</td>
                  <td class="num">{q.len}</td>
                  <td class="num">{q.partitions}</td>
                  <td title={clock(q.created_at)}>{ago(q.created_at, now)}</td>
                  <td>
                    <Kind ephemeral={q.ephemeral} expiresAt={q.expires_at} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>
    </div>
  );
}
