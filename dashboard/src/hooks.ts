/** Data loading that follows the status stream. */
import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { live, type LiveState } from "./live.js";
import type { GantryEventView } from "./types.js";

export interface Loaded<T> {
  data: T | undefined;
  error: Error | undefined;
  reload: () => void;
}

/** Loads with `load`, again whenever `deps` change or reload() is called; the newest answer wins. */
export function useData<T>(load: (signal: AbortSignal) => Promise<T>, deps: unknown[]): Loaded<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<Error | undefined>(undefined);
  const [tick, setTick] = useState(0);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  useEffect(() => {
    const ctl = new AbortController();
    load(ctl.signal).then(
      (d) => {
        if (ctl.signal.aborted) return;
        setData(d);
        setError(undefined);
      },
      (e: unknown) => {
        if (!ctl.signal.aborted) setError(e instanceof Error ? e : new Error(String(e)));
      },
    );
    return () => ctl.abort();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [...deps, tick]);
  return { data, error, reload };
}

/**
 * Calls `reload` when an event that `matters` arrives (at most every `everyMs`), and when the
 * stream asks views to read their state again (resume, reconnect).
 */
export function useLiveReload(reload: () => void, matters: (e: GantryEventView) => boolean = () => true, everyMs = 300): void {
  const ref = useRef({ reload, matters });
  ref.current = { reload, matters };
  useEffect(() => {
    let timer: ReturnType<typeof setTimeout> | null = null;
    const soon = () => {
      if (timer) return;
      timer = setTimeout(() => {
        timer = null;
        ref.current.reload();
      }, everyMs);
    };
    const offEvent = live.on((e) => {
      if (ref.current.matters(e)) soon();
    });
    const offResync = live.onResync(() => ref.current.reload());
    return () => {
      offEvent();
      offResync();
      if (timer) clearTimeout(timer);
    };
  }, [everyMs]);
}

export function useLiveState(): { state: LiveState; missed: number } {
  const [, force] = useState(0);
  useEffect(() => live.onState(() => force((n) => n + 1)), []);
  return { state: live.state, missed: live.missed };
}

/** The time now, refreshed every `everyMs` (ages and running durations tick). */
export function useNow(everyMs = 1000): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), everyMs);
    return () => clearInterval(t);
  }, [everyMs]);
  return now;
}
