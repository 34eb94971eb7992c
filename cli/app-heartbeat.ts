/**
 * Keeps an ephemeral app (gantry serve) alive: heartbeats as often as the daemon asks (a quarter of
 * its TTL), so the daemon stops the app if this process dies without stopping it. A failed
 * heartbeat is said once and tried again at the next beat.
 */
import type { GantryClient } from "../sdk/client.js";

const FIRST_EVERY_MS = 15_000;

export function heartbeatApp(client: GantryClient, app: string, onProblem: (message: string) => void): { stop(): void } {
  let timer: NodeJS.Timeout | null = null;
  let stopped = false;
  let warned = false;
  const beat = async () => {
    let everyMs = FIRST_EVERY_MS;
    try {
      const answer = await client.transport.json<{ heartbeat_every_s?: number }>("POST", `/v1/apps/${encodeURIComponent(app)}/heartbeat`);
      if (typeof answer.heartbeat_every_s === "number" && answer.heartbeat_every_s > 0) everyMs = answer.heartbeat_every_s * 1000;
      warned = false;
    } catch (err) {
      if (!warned && !stopped) onProblem(`could not keep app ${app} alive: ${(err as Error).message}`);
      warned = true;
    }
    if (stopped) return;
    timer = setTimeout(() => void beat(), everyMs);
    timer.unref();
  };
  void beat();
  return {
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
  };
}
