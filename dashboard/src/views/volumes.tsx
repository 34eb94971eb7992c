/** Volumes: each one's size, files, the functions that mount it, and whether it is ephemeral. */
import { api } from "../api.js";
import { Empty, ErrorBox, Loading } from "../components.js";
import { ago, bytes, clock } from "../format.js";
import { useData, useLiveReload, useNow } from "../hooks.js";
import { href } from "../router.js";
import type { VolumeView } from "../types.js";

/** "app.function" as a link to its app. */
function Mount({ fn }: { fn: string }) {
  const dot = fn.indexOf(".");
  const app = dot < 0 ? fn : fn.slice(0, dot);
  return (
    <span class="block">
      <a href={href("apps", app)}>{app}</a>
      {dot < 0 ? null : <span class="mono"> · {fn.slice(dot + 1)}</span>}
    </span>
  );
}

export function VolumesView() {
  const { data, error, reload } = useData((signal) => api<{ volumes: VolumeView[] }>("GET", "/v1/volumes", undefined, signal), []);
  // Sizes change as functions write: read again as containers come and go.
  useLiveReload(reload, (e) => e.type === "container.status", 2000);
  const now = useNow(5000);
  if (error) return <ErrorBox error={error} />;
  if (!data) return <Loading />;
  const total = data.volumes.reduce((n, v) => n + v.size_bytes, 0);
  return (
    <div class="stack">
      <header class="page-head">
        <h1>Volumes</h1>
        <span class="muted">
          {data.volumes.length} · {bytes(total)}
        </span>
        <button type="button" class="ghost small" onClick={reload}>
          Refresh
        </button>
      </header>
      {!data.volumes.length ? (
        <Empty>
          No volumes: create one with <code>gantry volume create NAME</code>, or mount <code>Volume.fromName(NAME, {"{ createIfMissing: true }"})</code> in a
          function.
        </Empty>
      ) : (
        <table class="grid">
          <thead>
            <tr>
              <th>name</th>
              <th class="num">size</th>
              <th class="num">files</th>
              <th>mounted by</th>
              <th>created</th>
              <th>kind</th>
            </tr>
          </thead>
          <tbody>
            {data.volumes.map((v) => (
              <tr key={v.name} data-volume={v.name}>
                <td class="mono">{v.name}</td>
                <td class="num" title={`${v.size_bytes} bytes`}>
                  {bytes(v.size_bytes)}
                </td>
                <td class="num">{v.files}</td>
                <td>{v.mounted_by.length ? v.mounted_by.map((fn) => <Mount key={fn} fn={fn} />) : "—"}</td>
                <td title={clock(v.created_at)}>{ago(v.created_at, now)}</td>
                <td>
                  {v.ephemeral ? (
                    <span class="badge" title={v.expires_at ? `removed at ${clock(v.expires_at)} unless its owner heartbeats` : undefined}>
                      ephemeral
                    </span>
                  ) : (
                    "named"
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}
