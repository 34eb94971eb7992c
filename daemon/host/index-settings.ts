/**
 * The host's package-index settings, passed into image builds (issue 16): pip's configuration
 * files and PIP_* variables, npm's .npmrc files and npm_config_* variables, and the proxy
 * variables. A machine behind a private index or a proxy builds images without edits.
 *
 * Read at each deploy (a few small files), so a changed pip.conf needs no daemon restart. What
 * cannot work inside a build container (a folder or file:// URL of this machine, a proxy on its
 * loopback, npm credentials that would land in the image's history) is left out and said.
 */
import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { PROXY_ARGS, type BuildSettings } from "../docker/image-plan.js";

type Ini = Map<string, Map<string, string>>;

/**
 * pip's and npm's INI dialect: [section], key = value (or key=value), # and ; comments, indented
 * continuation lines. pip also takes key: value; npm splits at = only (colon: false), as its
 * per-registry keys hold colons (//host:port/:_authToken=...).
 */
export function parseIni(text: string, { colon = true }: { colon?: boolean } = {}): Ini {
  const line = colon ? /^\s*([^=:\s][^=:]*?)\s*[=:]\s*(.*?)\s*$/ : /^\s*([^=\s][^=]*?)\s*=\s*(.*?)\s*$/;
  const out: Ini = new Map([["", new Map()]]);
  let section = out.get("")!;
  let last: string | null = null;
  for (const raw of text.split(/\r?\n/)) {
    if (!raw.trim() || /^\s*[#;]/.test(raw)) continue;
    const head = /^\s*\[([^\]]+)\]\s*$/.exec(raw);
    if (head) {
      const name = head[1]!.trim().toLowerCase();
      section = out.get(name) ?? new Map();
      out.set(name, section);
      last = null;
      continue;
    }
    if (/^\s/.test(raw) && last) {
      section.set(last, `${section.get(last)} ${raw.trim()}`.trim());
      continue;
    }
    const kv = line.exec(raw);
    if (!kv) continue;
    last = kv[1]!.toLowerCase();
    section.set(last, kv[2]!.replace(/^"(.*)"$/, "$1"));
  }
  return out;
}

/** Not a network URL: a path (absolute, relative, ~) or file://, which a build container cannot see. */
const isLocal = (v: string) => !/^[a-z][a-z0-9+.-]*:\/\//i.test(v) || /^file:/i.test(v);
const onLoopback = (v: string) => /^[a-z][a-z0-9+.-]*:\/\/([^@/]*@)?(localhost|127\.[\d.]+|\[::1\])(:\d+)?(\/|$)/i.test(v);
/** A proxy variable's value: a URL, or host:port alone (which curl and pip read as http://). */
const proxyOnLoopback = (v: string) => onLoopback(/^[a-z][a-z0-9+.-]*:\/\//i.test(v) ? v : `http://${v}`);
/** pip and npm expand ~ in paths (cert, cafile). */
const expandHome = (p: string, home: string) => (p === "~" || p.startsWith("~/") ? join(home, p.slice(1)) : p);

export interface HostFiles {
  env: NodeJS.ProcessEnv;
  read(path: string): string | null;
  home: string;
}

/**
 * pip's settings by its own precedence: global files, user files (not read when PIP_CONFIG_FILE
 * names a file), PIP_CONFIG_FILE, then PIP_* variables; [install] of any file over [global] of
 * any file. PIP_CONFIG_FILE=/dev/null turns every file off.
 */
function pipSettings(host: HostFiles): Map<string, string> {
  const envFile = host.env.PIP_CONFIG_FILE;
  const envText = envFile ? host.read(envFile) : null;
  const files = ["/etc/xdg/pip/pip.conf", "/etc/pip.conf"];
  if (envText === null) files.push(join(host.home, ".pip/pip.conf"), join(host.home, ".config/pip/pip.conf"));
  const texts = envFile === "/dev/null" ? [] : [...files.map((f) => host.read(f)), envText];
  const sections = { global: new Map<string, string>(), install: new Map<string, string>() };
  for (const text of texts) {
    if (text === null) continue;
    const ini = parseIni(text);
    for (const section of ["global", "install"] as const) for (const [k, v] of ini.get(section) ?? []) sections[section].set(k, v);
  }
  const merged = new Map<string, string>([...sections.global, ...sections.install]);
  for (const [k, v] of Object.entries(host.env)) {
    if (k.startsWith("PIP_") && v !== undefined && k !== "PIP_CONFIG_FILE") merged.set(k.slice(4).toLowerCase().replace(/_/g, "-"), v);
  }
  if (merged.has("timeout") && !merged.has("default-timeout")) merged.set("default-timeout", merged.get("timeout")!);
  return merged;
}

/** npm's settings: the global npmrc, ~/.npmrc, then npm_config_* variables (either case). */
function npmSettings(host: HostFiles): Map<string, string> {
  const prefix = host.env.PREFIX || host.env.npm_config_prefix || "/usr/local";
  const merged = new Map<string, string>();
  for (const f of [join(prefix, "etc/npmrc"), "/usr/etc/npmrc", "/etc/npmrc", host.env.NPM_CONFIG_USERCONFIG || join(host.home, ".npmrc")]) {
    const text = host.read(f);
    if (text === null) continue;
    for (const [k, v] of parseIni(text, { colon: false }).get("") ?? []) merged.set(k, v.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, n: string) => host.env[n] ?? ""));
  }
  for (const [k, v] of Object.entries(host.env)) {
    if (/^npm_config_/i.test(k) && v !== undefined) merged.set(k.slice(11).toLowerCase().replace(/_/g, "-"), v);
  }
  return merged;
}

function pipArgs(pip: Map<string, string>, host: HostFiles, s: BuildSettings): void {
  const urls = (key: string) => (pip.get(key) ?? "").split(/\s+/).filter(Boolean);
  const keepUrls = (key: string, arg: string) => {
    const all = urls(key);
    const kept = all.filter((u) => !isLocal(u));
    for (const u of all.filter(isLocal)) s.notes.push(`pip ${key} ${u} is a place on this machine, which builds cannot see: name it with find_links= in the step to send it`);
    if (kept.length) s.args[arg] = kept.join(" ");
  };
  keepUrls("index-url", "PIP_INDEX_URL");
  keepUrls("extra-index-url", "PIP_EXTRA_INDEX_URL");
  for (const u of urls("find-links")) {
    s.notes.push(isLocal(u) ? `pip find-links ${u} is a folder of this machine, which builds cannot see: pass find_links= to the step to send it` : `pip find-links ${u} is not passed: pass find_links= to the step`);
  }
  if (pip.get("trusted-host")) s.args.PIP_TRUSTED_HOST = pip.get("trusted-host")!;
  if (pip.get("default-timeout")) s.args.PIP_DEFAULT_TIMEOUT = pip.get("default-timeout")!;
  if (pip.get("retries")) s.args.PIP_RETRIES = pip.get("retries")!;
  if (pip.get("proxy")) s.args.PIP_PROXY = pip.get("proxy")!;
  const cert = pip.get("cert") || host.env.REQUESTS_CA_BUNDLE || host.env.SSL_CERT_FILE;
  if (cert) {
    const pem = host.read(expandHome(cert, host.home));
    if (pem === null) s.notes.push(`pip cert ${cert} cannot be read: builds use the image's own CA bundle`);
    else s.files["ca.pem"] = Buffer.from(pem);
  }
}

function npmArgs(npm: Map<string, string>, host: HostFiles, s: BuildSettings): void {
  const map: Array<[string, string]> = [
    ["registry", "NPM_CONFIG_REGISTRY"],
    ["proxy", "NPM_CONFIG_PROXY"],
    ["https-proxy", "NPM_CONFIG_HTTPS_PROXY"],
    ["noproxy", "NPM_CONFIG_NOPROXY"],
    ["strict-ssl", "NPM_CONFIG_STRICT_SSL"],
  ];
  for (const [key, arg] of map) if (npm.get(key)) s.args[arg] = npm.get(key)!;
  const secrets = [...npm.keys()].filter((k) => /(_authtoken|_auth|_password)$/i.test(k));
  if (secrets.length) s.notes.push(`npm credentials (${secrets.join(", ")}) are not passed: build arguments would keep them in the image's history`);
  const cafile = npm.get("cafile");
  if (cafile) {
    const pem = host.read(expandHome(cafile, host.home));
    if (pem === null) s.notes.push(`npm cafile ${cafile} cannot be read: builds use the image's own CA bundle`);
    else s.files["npm-ca.pem"] = Buffer.from(pem);
  }
}

/** The settings builds get, from the given host (pure but for `read`). */
export function indexSettings(host: HostFiles): BuildSettings {
  const s: BuildSettings = { args: {}, files: {}, notes: [] };
  pipArgs(pipSettings(host), host, s);
  npmArgs(npmSettings(host), host, s);
  for (const name of PROXY_ARGS) {
    const v = host.env[name];
    if (!v) continue;
    s.args[name] = v;
    if (!/^no_proxy$/i.test(name) && proxyOnLoopback(v)) s.notes.push(`${name} points at this machine's loopback, which a build container cannot reach: use an address of the docker0 bridge`);
  }
  for (const [arg, v] of Object.entries(s.args)) {
    if (onLoopback(v) && !PROXY_ARGS.includes(arg)) s.notes.push(`${arg} ${v} is on this machine's loopback, which a build container cannot reach`);
  }
  return s;
}

/** The daemon's own host: its environment and files. */
export function readHostIndexSettings(env: NodeJS.ProcessEnv = process.env): BuildSettings {
  return indexSettings({
    env,
    home: env.HOME || homedir(),
    read: (path) => {
      try {
        return existsSync(path) ? readFileSync(path, "utf8") : null;
      } catch {
        return null;
      }
    },
  });
}
