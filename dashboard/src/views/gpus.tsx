/** The GPU board: each GPU, the container and calls holding it, its use over the last minutes, and the functions waiting for one. */
import { api } from "../api.js";
import { Empty, ErrorBox, Field, Loading } from "../components.js";
import { ago } from "../format.js";
import { useData, useLiveReload, useNow } from "../hooks.js";
import { href } from "../router.js";
import type { ContainerView, GpuBoard } from "../types.js";
import { GpuChart, useGpuHistory } from "./metrics.js";

export function GpusView() {
  const board = useData((signal) => api<GpuBoard>("GET", "/v1/gpus", undefined, signal), []);
  const cts = useData((signal) => api<{ containers: ContainerView[] }>("GET", "/v1/containers", undefined, signal), []);
  const reload = () => {
    board.reload();
    cts.reload();
  };
  useLiveReload(reload, (e) => e.type === "container.status" || e.type === "call.status", 500);
  const history = useGpuHistory();
  const now = useNow();
  if (board.error) return <ErrorBox error={board.error} />;
  const b = board.data;
  if (!b) return <Loading />;
  const byId = new Map((cts.data?.containers ?? []).map((c) => [c.id, c]));
  return (
    <div class="stack">
      <header class="page-head">
        <h1>GPUs</h1>
        <span class="muted">
          {b.held} of {b.count} held
        </span>
      </header>
      <section class="card">
        <dl class="fields">
          <Field label="driver">{b.driver_version ?? "—"}</Field>
          <Field label="passthrough">{b.passthrough ?? "—"}</Field>
          {b.problem ? <Field label="problem">{b.problem}</Field> : null}
        </dl>
      </section>
      {history.error && b.gpus.length ? <ErrorBox error={history.error} /> : null}
      {!b.gpus.length ? (
        <Empty>No GPUs on this machine{b.problem ? `: ${b.problem}` : ""}.</Empty>
      ) : (
        <div class="gpu-grid">
          {b.gpus.map((g) => {
            const holder = g.holder ? byId.get(g.holder.container_id) : undefined;
            return (
              <section key={g.uuid} class={`card gpu ${g.holder ? "held" : "free"}`} data-gpu={g.index}>
                <h2>
                  GPU {g.index} <span class="muted small">{g.name}</span>
                </h2>
                <p class="muted small mono">
                  {g.uuid} · {g.device} · {Math.round(g.memory_mib / 1024)} GiB
                </p>
                {g.holder ? (
                  <div>
                    <p>
                      held by <a href={href("apps", g.holder.app)}>{g.holder.app}</a> · <span class="mono">{g.holder.function}</span>
                    </p>
                    <p class="mono small">
                      <a href={href("containers", undefined, { id: g.holder.container_id })}>{g.holder.container_id}</a>
                    </p>
                    {holder?.calls.length ? (
                      <p>
                        running{" "}
                        {holder.calls.map((id) => (
                          <a key={id} class="mono small block" href={href("calls", id)}>
                            {id}
                          </a>
                        ))}
                      </p>
                    ) : (
                      <p class="muted">idle</p>
                    )}
                  </div>
                ) : (
                  <p class="muted">free</p>
                )}
                <GpuChart history={history.data} uuid={g.uuid} />
              </section>
            );
          })}
        </div>
      )}
      <section class="card">
        <h2>Waiting for GPUs</h2>
        {b.waiting.length ? (
          <table class="grid">
            <thead>
              <tr>
                <th>app · function</th>
                <th>wants</th>
                <th class="num">queued calls</th>
                <th>waiting</th>
              </tr>
            </thead>
            <tbody>
              {b.waiting.map((w) => (
                <tr key={`${w.app}/${w.function}`}>
                  <td>
                    <a href={href("calls", undefined, { app: w.app, function: w.function, status: "queued" })}>
                      {w.app} · {w.function}
                    </a>
                  </td>
                  <td>{w.gpu.join(" or ")}</td>
                  <td class="num">{w.queued}</td>
                  <td>{ago(w.since, now).replace(" ago", "")}</td>
                </tr>
              ))}
            </tbody>
          </table>
        ) : (
          <p class="muted">No function waits for a GPU.</p>
        )}
      </section>
    </div>
  );
}
