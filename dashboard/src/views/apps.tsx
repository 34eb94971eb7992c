/** Apps and their functions: settings, what each is doing now, and stopping an app. */
import { useState } from "preact/hooks";
import { api } from "../api.js";
import { Confirm, Empty, ErrorBox, Field, Loading } from "../components.js";
import { ago, clock } from "../format.js";
import { useData, useLiveReload } from "../hooks.js";
import { href } from "../router.js";
import type { AppDetail, AppSummary, FunctionLiveView, FunctionView } from "../types.js";
import type { RollbackView, VersionView } from "../../../protocol/api.js";
import { MetricsCharts } from "./metrics.js";

type Fn = FunctionView & { live: FunctionLiveView };

function gpuText(gpu: string[] | null): string {
  return gpu ? gpu.join(" or ") : "—";
}

function StopApp({ app, queued, onStopped }: { app: string; queued: number; onStopped: () => void }) {
  const [open, setOpen] = useState(false);
  return (
    <>
      <button type="button" class="danger" onClick={() => setOpen(true)}>
        Stop app
      </button>
      <Confirm
        open={open}
        title={`Stop ${app}?`}
        confirmLabel={`Stop ${app}`}
        danger
        onClose={() => setOpen(false)}
        onConfirm={async () => {
          await api("POST", `/v1/apps/${encodeURIComponent(app)}/stop`);
          onStopped();
        }}
      >
        <p>
          {queued === 1 ? "Its 1 queued call is" : `Its ${queued} queued calls are`} cancelled, and so are its running calls (each is asked to
          stop in its container); then its containers stop. Deploy it again to serve calls.
        </p>
      </Confirm>
    </>
  );
}

function AppActions({ app, deployed, queued, onStopped }: { app: string; deployed: boolean; queued: number; onStopped: () => void }) {
  return (
    <div class="actions">
      <a class="button ghost" href={href("calls", undefined, { app })}>
        Calls
      </a>
      <a class="button ghost" href={href("logs", app)}>
        Logs
      </a>
      {deployed ? <StopApp app={app} queued={queued} onStopped={onStopped} /> : null}
    </div>
  );
}

function FunctionRow({ f }: { f: Fn }) {
  return (
    <tr data-function={f.name}>
      <td>
        <a href={href("calls", undefined, { app: f.app, function: f.name })} class="mono">
          {f.name}
        </a>
        {f.web ? <span class="tag">web · {f.web}</span> : null}
        {f.methods ? <span class="tag" title={`methods: ${f.methods.join(", ")}`}>class · {f.methods.length} methods</span> : null}
        {f.schedule ? <span class="tag" title={f.live.next_run_at ? `next run ${f.live.next_run_at}` : ""}>{f.schedule}</span> : null}
      </td>
      <td>{f.runtime}</td>
      <td class="mono small" title={f.image}>
        {f.image.replace(/^gantry\//, "")}
      </td>
      <td>{gpuText(f.gpu)}</td>
      <td class="num">{f.live.queued}</td>
      <td class="num">{f.live.running}</td>
      <td class="num">
        {f.live.containers}/{f.max_containers}
      </td>
      <td>{f.web_url ? <a href={f.web_url} target="_blank" rel="noreferrer" class="mono small">{f.web_url}</a> : "—"}</td>
    </tr>
  );
}

function AppCard({ name, summary }: { name: string; summary: AppSummary }) {
  const { data, error, reload } = useData((signal) => api<AppDetail>("GET", `/v1/apps/${encodeURIComponent(name)}`, undefined, signal), [name]);
  useLiveReload(reload, (e) => e.app === name);
  const queued = data?.functions.reduce((n, f) => n + f.live.queued, 0) ?? 0;
  return (
    <section class="card" data-app={name}>
      <header class="card-head">
        <div>
          <h2>
            <a href={href("apps", name)}>{name}</a>
          </h2>
          <span class={`badge app-${summary.state}`}>{summary.state}</span>
          {summary.ephemeral && summary.state === "deployed" ? <span class="badge" title="deployed by gantry serve or app.run(): stopped when its client goes away">ephemeral</span> : null}
          <span class="muted small" title={clock(summary.deployed_at)}>
            deployed {ago(summary.deployed_at)}
          </span>
        </div>
        <AppActions app={name} deployed={summary.state === "deployed"} queued={queued} onStopped={reload} />
      </header>
      <ErrorBox error={error} />
      {data ? (
        <table class="grid">
          <thead>
            <tr>
              <th>function</th>
              <th>runtime</th>
              <th>image</th>
              <th>GPU</th>
              <th class="num">queued</th>
              <th class="num">running</th>
              <th class="num">containers</th>
              <th>endpoint</th>
            </tr>
          </thead>
          <tbody>
            {data.functions.map((f) => (
              <FunctionRow key={f.name} f={f} />
            ))}
          </tbody>
        </table>
      ) : (
        <Loading />
      )}
    </section>
  );
}

function RollbackButton({ app, version, onDone }: { app: string; version: VersionView; onDone: () => void }) {
  const [open, setOpen] = useState(false);
  return (
    <>
      <button type="button" class="small ghost" onClick={() => setOpen(true)}>
        Roll back
      </button>
      <Confirm
        open={open}
        title={`Roll ${app} back to v${version.version}?`}
        confirmLabel={`Serve v${version.version}`}
        onClose={() => setOpen(false)}
        onConfirm={async () => {
          await api<RollbackView>("POST", `/v1/apps/${encodeURIComponent(app)}/rollback`, { version: version.version });
          onDone();
        }}
      >
        <p>
          Its functions ({version.functions.map((f) => f.name).join(", ") || "none"}) are served again from the images and code of v{version.version}, without
          building; running calls finish on the current version. This is recorded as a new version.
        </p>
      </Confirm>
    </>
  );
}

/** An app's versions, newest first: every deploy and rollback, what changed, the one served marked. */
function Versions({ app, deployedAt, onRolledBack }: { app: string; deployedAt: string; onRolledBack: () => void }) {
  // Read again when the app is deployed or rolled back (its deployed_at moves).
  const { data, error, reload } = useData(
    (signal) => api<{ versions: VersionView[] }>("GET", `/v1/apps/${encodeURIComponent(app)}/versions`, undefined, signal),
    [app, deployedAt],
  );
  return (
    <section class="card" data-versions={app}>
      <header class="card-head">
        <div>
          <h2>Versions</h2>
          <span class="muted small">the last 50 deploys and rollbacks</span>
        </div>
      </header>
      <ErrorBox error={error} />
      {!data ? (
        <Loading />
      ) : !data.versions.length ? (
        <p class="muted">No versions recorded yet: the next deploy is the first.</p>
      ) : (
        <table class="grid">
          <thead>
            <tr>
              <th>version</th>
              <th>deployed</th>
              <th>functions</th>
              <th>changes</th>
              <th></th>
            </tr>
          </thead>
          <tbody>
            {data.versions.map((v) => (
              <tr key={v.version} data-version={v.version} class={v.current ? "selected" : undefined}>
                <td class="mono">
                  v{v.version}
                  {v.current ? <span class="tag">current</span> : null}
                </td>
                <td title={clock(v.deployed_at)}>{ago(v.deployed_at)}</td>
                <td class="mono small">{v.functions.map((f) => f.name).join(", ") || "—"}</td>
                <td>
                  {v.changes.map((c, i) => (
                    <span class="block small" key={i}>
                      {c}
                    </span>
                  ))}
                </td>
                <td>
                  {v.current ? null : (
                    <RollbackButton
                      app={app}
                      version={v}
                      onDone={() => {
                        reload();
                        onRolledBack();
                      }}
                    />
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

export function AppsView() {
  const { data, error, reload } = useData((signal) => api<{ apps: AppSummary[] }>("GET", "/v1/apps", undefined, signal), []);
  useLiveReload(reload, (e) => e.type === "container.status", 1000);
  if (error) return <ErrorBox error={error} />;
  if (!data) return <Loading />;
  if (!data.apps.length) return <Empty>No apps yet. Deploy one with <code>gantry deploy app.ts</code> (or <code>app.py</code>).</Empty>;
  return (
    <div class="stack">
      <section class="card" data-part="overall-metrics">
        <header class="card-head">
          <div>
            <h2>All functions</h2>
            <span class="muted small">the last hour, a point a minute</span>
          </div>
        </header>
        <MetricsCharts />
      </section>
      {data.apps.map((a) => (
        <AppCard key={a.name} name={a.name} summary={a} />
      ))}
    </div>
  );
}

/** One app: every function's settings in full. */
export function AppView({ name }: { name: string }) {
  const { data, error, reload } = useData((signal) => api<AppDetail>("GET", `/v1/apps/${encodeURIComponent(name)}`, undefined, signal), [name]);
  useLiveReload(reload, (e) => e.app === name);
  if (error) return <ErrorBox error={error} />;
  if (!data) return <Loading />;
  const queued = data.functions.reduce((n, f) => n + f.live.queued, 0);
  return (
    <div class="stack">
      <header class="page-head">
        <h1>
          {data.name} <span class={`badge app-${data.state}`}>{data.state}</span>
          {data.ephemeral && data.state === "deployed" ? <span class="badge" title="deployed by gantry serve or app.run(): stopped when its client goes away">ephemeral</span> : null}
        </h1>
        <AppActions app={name} deployed={data.state === "deployed"} queued={queued} onStopped={reload} />
      </header>
      <p class="muted">
        Deployed {clock(data.deployed_at)}
        {data.source ? (
          <>
            {" "}
            from <code>{data.source}</code>
          </>
        ) : null}
      </p>
      {data.functions.map((f) => (
        <section class="card" key={f.name} data-function={f.name}>
          <h2 class="mono">{f.name}</h2>
          <dl class="fields">
            <Field label="runtime">{f.runtime}</Field>
            {f.schedule ? (
              <Field label="schedule">
                {f.schedule}
                {f.live.next_run_at ? ` · next run ${clock(f.live.next_run_at)}` : ""}
              </Field>
            ) : null}
            {f.methods ? <Field label="methods">{f.methods.map((m) => (f.generator_methods.includes(m) ? `${m} (generator)` : m)).join(", ")}</Field> : null}
            {f.params?.length ? (
              <Field label="parameters">{f.params.map((p) => `${p.name}: ${p.type}${p.default !== undefined ? ` = ${JSON.stringify(p.default)}` : ""}`).join(", ")}</Field>
            ) : null}
            {f.live.variants?.length ? (
              <Field label="pools by parameters">
                {f.live.variants.map((v) => (
                  <span class="block mono small" key={v.variant}>
                    ({v.variant}): {v.queued} queued · {v.running} running · {v.containers} containers
                  </span>
                ))}
              </Field>
            ) : null}
            <Field label="image">
              <code>{f.image}</code>
            </Field>
            <Field label="GPU">{gpuText(f.gpu)}</Field>
            <Field label="now">
              {f.live.queued} queued · {f.live.running} running · {f.live.containers} containers
              {f.live.gpu_wait_since ? ` · waiting for GPUs since ${clock(f.live.gpu_wait_since)}` : ""}
            </Field>
            <Field label="containers">
              {f.min_containers}–{f.max_containers} (buffer {f.buffer_containers}), idle ones stop after {f.scaledown_window_s} s
            </Field>
            <Field label="inputs per container">{f.max_inputs}</Field>
            <Field label="timeout">{f.timeout_s} s per attempt</Field>
            <Field label="retries">{f.retries}</Field>
            <Field label="results kept">{f.result_ttl_s} s</Field>
            <Field label="limits">
              {f.cpu === null ? "any CPU" : `${f.cpu} cores`} · {f.memory_mib === null ? "any memory" : `${f.memory_mib} MiB`}
            </Field>
            <Field label="network">{f.network}</Field>
            <Field label="environment">{f.env.length ? f.env.join(", ") : "—"}</Field>
            {f.web_url ? (
              <Field label="endpoint">
                <a href={f.web_url} target="_blank" rel="noreferrer">
                  {f.web_url}
                </a>{" "}
                ({f.web}
                {f.public ? ", public" : ", token required over TCP"})
              </Field>
            ) : null}
          </dl>
          <h3 class="charts-title">The last hour</h3>
          <MetricsCharts app={name} fn={f.name} />
        </section>
      ))}
      <Versions app={name} deployedAt={data.deployed_at} onRolledBack={reload} />
    </div>
  );
}
