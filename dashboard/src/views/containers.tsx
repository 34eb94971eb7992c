/** Containers: state, busy slots, GPUs, age, and the calls each runs now. */
import { Empty, ErrorBox, Loading, Slots } from "../components.js";
import { api } from "../api.js";
import { ago, clock } from "../format.js";
import { useData, useLiveReload, useNow } from "../hooks.js";
import { href, type Route } from "../router.js";
import type { ContainerView } from "../types.js";

export function ContainersView({ route }: { route: Route }) {
  const { data, error, reload } = useData((signal) => api<{ containers: ContainerView[] }>("GET", "/v1/containers", undefined, signal), []);
  useLiveReload(reload, (e) => e.type === "container.status" || e.type === "call.status");
  const now = useNow();
  const focus = route.query.get("id");
  const cluster = data?.containers.some((c) => c.node !== null) ?? false;
  if (error) return <ErrorBox error={error} />;
  if (!data) return <Loading />;
  return (
    <div class="stack">
      <header class="page-head">
        <h1>Containers</h1>
        <span class="muted">{data.containers.length} running</span>
      </header>
      {focus && !data.containers.some((c) => c.id === focus) ? <p class="muted">Container {focus} is gone (stopped after its calls, or idle).</p> : null}
      {!data.containers.length ? (
        <Empty>No containers: they start with the first call of a function and stop after its scaledownWindow.</Empty>
      ) : (
        <table class="grid">
          <thead>
            <tr>
              <th>container</th>
              <th>app · function</th>
              <th>state</th>
              <th>slots</th>
              <th>GPUs</th>
              {cluster ? <th>node</th> : null}
              <th>age</th>
              <th>running calls</th>
            </tr>
          </thead>
          <tbody>
            {data.containers.map((c) => (
              <tr key={c.id} data-container={c.id} class={c.id === focus ? "selected" : ""}>
                <td class="mono small" title={c.docker_id ?? ""}>
                  {c.id}
                </td>
                <td>
                  <a href={href("apps", c.app)}>{c.app}</a> · <span class="mono">{c.function}</span>
                  {c.variant ? <span class="mono small block muted" title="this parameter set's own pool">({c.variant})</span> : null}
                </td>
                <td>
                  <span class={`badge ct-${c.state}`}>{c.state}</span>
                </td>
                <td>
                  <Slots used={c.active_calls} max={c.max_inputs} />
                  {c.prefetched?.length ? <span class="muted small" title="calls sent ahead: each begins as a slot frees"> +{c.prefetched.length} waiting</span> : null}
                </td>
                <td>{c.gpus.length ? c.gpus.map((g) => `GPU ${g.index}`).join(", ") : "—"}</td>
                {cluster ? <td>{c.node ?? "placing…"}</td> : null}
                <td title={clock(c.started_at)}>{ago(c.started_at, now).replace(" ago", "")}</td>
                <td>
                  {c.calls.length
                    ? c.calls.map((id) => (
                        <a key={id} class="mono small block" href={href("calls", id)}>
                          {id}
                        </a>
                      ))
                    : "—"}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}
