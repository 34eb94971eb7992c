/** Asks for the daemon's token once; the daemon answers with an HttpOnly session cookie. */
import { useState } from "preact/hooks";
import { api, setAuthNeeded } from "../api.js";
import { ErrorBox } from "../components.js";
import { live } from "../live.js";

export function SignIn() {
  const [token, setToken] = useState("");
  const [error, setError] = useState<Error | undefined>(undefined);
  const [busy, setBusy] = useState(false);
  return (
    <div class="signin-backdrop">
      <form
        class="card signin"
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          try {
            await api("POST", "/v1/session", { token });
            setToken("");
            setAuthNeeded(false);
            live.reconnect();
          } catch (err) {
            setError(err as Error);
          } finally {
            setBusy(false);
          }
        }}
      >
        <h1>gantry</h1>
        <p>This daemon wants its token (what its <code>--token-file</code> holds, or <code>GANTRY_TOKEN</code>).</p>
        <label>
          Token
          <input type="password" name="token" autocomplete="current-password" value={token} onInput={(e) => setToken((e.target as HTMLInputElement).value)} required autofocus />
        </label>
        <ErrorBox error={error} />
        <button type="submit" class="primary" disabled={busy || !token}>
          {busy ? "Checking…" : "Sign in"}
        </button>
        <p class="muted small">This browser keeps a session cookie the page itself cannot read; the token is not stored.</p>
      </form>
    </div>
  );
}
