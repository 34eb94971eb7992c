/** Hash routes (`#/calls?status=failed`): the daemon serves one page, links still work. */
import { useEffect, useState } from "preact/hooks";

export interface Route {
  /** The path's segments, e.g. ["calls", "fc-…"]. */
  parts: string[];
  query: URLSearchParams;
}

export function parseHash(hash: string): Route {
  const raw = hash.replace(/^#/, "") || "/apps";
  const q = raw.indexOf("?");
  const path = q < 0 ? raw : raw.slice(0, q);
  const parts = path.split("/").filter(Boolean).map((p) => decodeURIComponent(p));
  return { parts: parts.length ? parts : ["apps"], query: new URLSearchParams(q < 0 ? "" : raw.slice(q + 1)) };
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseHash(location.hash));
  useEffect(() => {
    const on = () => setRoute(parseHash(location.hash));
    addEventListener("hashchange", on);
    return () => removeEventListener("hashchange", on);
  }, []);
  return route;
}

/** A link target: `href("calls", id)`, `href("calls", undefined, {status: "failed"})`. */
export function href(...args: Array<string | Record<string, string | undefined> | undefined>): string {
  const parts: string[] = [];
  let query = "";
  for (const a of args) {
    if (a === undefined) continue;
    if (typeof a === "string") parts.push(encodeURIComponent(a));
    else {
      const q = new URLSearchParams();
      for (const [k, v] of Object.entries(a)) if (v) q.set(k, v);
      const s = q.toString();
      if (s) query = `?${s}`;
    }
  }
  return `#/${parts.join("/")}${query}`;
}

export function navigate(to: string): void {
  location.hash = to.replace(/^#/, "");
}
