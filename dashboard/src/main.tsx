/** gantry's dashboard: the shell (sidebar, live state, find a call) and its views. */
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { api, onAuthNeeded, setAuthNeeded } from "./api.js";
import { useData, useLiveReload, useLiveState } from "./hooks.js";
import { live } from "./live.js";
import { href, navigate, useRoute, type Route } from "./router.js";
import type { Health, Session } from "./types.js";
import { AppsView, AppView } from "./views/apps.js";
import { CallView_ } from "./views/call.js";
import { CallsView } from "./views/calls.js";
import { ContainersView } from "./views/containers.js";
import { DictsQueuesView } from "./views/dicts-queues.js";
import { GpusView } from "./views/gpus.js";
import { LogsView } from "./views/logs.js";
import { SandboxesView, SandboxView_ } from "./views/sandboxes.js";
import { SignIn } from "./views/signin.js";
import { VolumesView } from "./views/volumes.js";
import "./styles.css";

const CALL_ID = /^fc-[0-9a-hjkmnp-tv-z]{26}$/;

function LiveIndicator() {
  const { state, missed } = useLiveState();
  const label = { connecting: "Connecting…", live: "Live", paused: missed ? `Paused · ${missed} new` : "Paused", offline: "Reconnecting…" }[state];
  return (
    <div class={`live live-${state}`} data-live={state}>
      <span class="dot" aria-hidden="true" />
      <span>{label}</span>
      {state === "paused" ? (
        <button type="button" class="ghost small" onClick={() => live.resume()}>
          Resume
        </button>
      ) : (
        <button type="button" class="ghost small" onClick={() => live.pause()} disabled={state !== "live"}>
          Pause
        </button>
      )}
    </div>
  );
}

function FindCall() {
  const [value, setValue] = useState("");
  const [bad, setBad] = useState(false);
  return (
    <form
      class="find"
      role="search"
      onSubmit={(e) => {
        e.preventDefault();
        const id = value.trim();
        if (!CALL_ID.test(id)) return setBad(true);
        setValue("");
        navigate(href("calls", id));
      }}
    >
      <input
        type="search"
        name="call"
        placeholder="Go to call: paste fc-…"
        aria-label="call ID"
        aria-invalid={bad}
        value={value}
        onInput={(e) => {
          setValue((e.target as HTMLInputElement).value);
          setBad(false);
        }}
      />
      {bad ? <span class="hint">a call ID is fc- and 26 letters or digits</span> : null}
    </form>
  );
}

function Sidebar({ route, health, session }: { route: Route; health: Health | undefined; session: Session | undefined }) {
  const at = route.parts[0];
  const item = (name: string, label: string, count?: string) => (
    <a href={href(name)} class={at === name ? "on" : ""} data-nav={name}>
      <span>{label}</span>
      {count ? <span class="count">{count}</span> : null}
    </a>
  );
  return (
    <nav class="sidebar">
      <div class="brand">
        <img src="/favicon.svg" alt="" width="22" height="22" /> gantry
      </div>
      {item("apps", "Apps")}
      {item("calls", "Calls", health ? `${health.queued} queued · ${health.live - health.queued} running` : undefined)}
      {item("containers", "Containers", health ? String(health.containers) : undefined)}
      {item("gpus", "GPUs", health ? `${health.gpu.held}/${health.gpu.count}` : undefined)}
      {item("sandboxes", "Sandboxes")}
      {item("volumes", "Volumes")}
      {item("dicts-queues", "Dicts & Queues")}
      {item("logs", "Logs")}
      <div class="sidebar-foot muted small">
        {health ? (
          <>
            <div>v{health.version}</div>
            <div title={health.home}>{health.home}</div>
          </>
        ) : null}
        {session?.token_required ? (
          <button
            type="button"
            class="ghost small"
            onClick={async () => {
              await api("DELETE", "/v1/session");
              setAuthNeeded(true);
            }}
          >
            Sign out
          </button>
        ) : null}
      </div>
    </nav>
  );
}

function View({ route }: { route: Route }) {
  const [first, second] = route.parts;
  switch (first) {
    case "apps":
      return second ? <AppView name={second} /> : <AppsView />;
    case "calls":
      return second ? <CallView_ id={second} /> : <CallsView route={route} />;
    case "containers":
      return <ContainersView route={route} />;
    case "gpus":
      return <GpusView />;
    case "sandboxes":
      return second ? <SandboxView_ id={second} /> : <SandboxesView route={route} />;
    case "volumes":
      return <VolumesView />;
    case "dicts-queues":
      return <DictsQueuesView />;
    case "logs":
      return <LogsView app={second} route={route} />;
    default:
      return <div class="empty">No page here. <a href={href("apps")}>Apps</a></div>;
  }
}

function App() {
  const route = useRoute();
  const [authNeeded, setNeeded] = useState(false);
  const session = useData((signal) => api<Session>("GET", "/v1/session", undefined, signal), [authNeeded]);
  const health = useData((signal) => api<Health>("GET", "/v1/health", undefined, signal), [authNeeded]);
  useLiveReload(health.reload, () => true, 1000);
  useEffect(() => onAuthNeeded(setNeeded), []);
  useEffect(() => {
    if (session.data && !session.data.signed_in) setNeeded(true);
  }, [session.data]);
  useEffect(() => live.start(), []);
  if (authNeeded) return <SignIn />;
  return (
    <div class="shell">
      <Sidebar route={route} health={health.data} session={session.data} />
      <div class="main">
        <header class="topbar">
          <FindCall />
          <LiveIndicator />
        </header>
        <main class="content">
          <View key={route.parts.join("/")} route={route} />
        </main>
      </div>
    </div>
  );
}

render(<App />, document.getElementById("root")!);
