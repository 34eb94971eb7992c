/**
 * The host's package-index settings passed into image builds (daemon/host/index-settings.ts), read
 * from an in-memory machine: pip's and npm's files and variables, the proxy variables, and what is
 * left out (and said) because a build container cannot use it or must not keep it.
 */
import { describe, it, expect } from "vitest";
import { indexSettings, parseIni } from "../../daemon/host/index-settings.js";

const HOME = "/home/ana";
const PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

/** A machine with these files (by absolute path) and this environment. */
function host(files: Record<string, string>, env: Record<string, string> = {}) {
  const reads: string[] = [];
  const settings = indexSettings({
    env,
    home: HOME,
    read: (path) => {
      reads.push(path);
      return Object.hasOwn(files, path) ? files[path]! : null;
    },
  });
  return { ...settings, reads };
}

const notesText = (notes: string[]) => notes.join("\n");

describe("parseIni", () => {
  it("reads sections, both separators, comments and blank lines", () => {
    const ini = parseIni(
      [
        "# a comment",
        "; another comment",
        "top = level",
        "",
        "[Global]",
        "index-url = https://pypi.example/simple",
        "timeout: 30",
        "  # an indented comment",
        "[install]",
        "trusted-host=pypi.example",
      ].join("\n"),
    );
    expect(ini.get("")!.get("top")).toBe("level");
    // Section names are matched without case; keys are kept lower-case.
    expect(ini.get("global")!.get("index-url")).toBe("https://pypi.example/simple");
    expect(ini.get("global")!.get("timeout")).toBe("30");
    expect(ini.get("install")!.get("trusted-host")).toBe("pypi.example");
    expect([...ini.get("global")!.keys()]).toEqual(["index-url", "timeout"]);
  });

  it("joins indented continuation lines to the value above (pip's multi-line lists)", () => {
    const ini = parseIni("[global]\nextra-index-url =\n    https://a.example/simple\n    https://b.example/simple\nretries = 3\n");
    expect(ini.get("global")!.get("extra-index-url")).toBe("https://a.example/simple https://b.example/simple");
    expect(ini.get("global")!.get("retries")).toBe("3");
  });

  it("keeps an indented line right after a section header as a key, not a continuation of the last section", () => {
    const ini = parseIni("[global]\nindex-url = https://a.example/simple\n[install]\n  pre = true\n");
    expect(ini.get("global")!.get("index-url")).toBe("https://a.example/simple");
    expect(ini.get("install")!.get("pre")).toBe("true");
  });

  it("strips surrounding double quotes and keeps = inside values", () => {
    const ini = parseIni('registry = "https://npm.example/"\nquery = https://x.example/simple?a=b\ninner = a "b" c\n');
    expect(ini.get("")!.get("registry")).toBe("https://npm.example/");
    expect(ini.get("")!.get("query")).toBe("https://x.example/simple?a=b");
    expect(ini.get("")!.get("inner")).toBe('a "b" c');
  });

  it("handles Windows line ends and skips lines that are not key = value", () => {
    const ini = parseIni("[global]\r\nindex-url = https://a.example/simple\r\njust words\r\n=no key\r\n");
    expect(ini.get("global")!.get("index-url")).toBe("https://a.example/simple");
    expect([...ini.get("global")!.keys()]).toEqual(["index-url"]);
  });

  it("splits npm's per-registry keys at =, not at the : inside the key", () => {
    const ini = parseIni("//npm.example:8443/:_authToken=abc\n@corp:registry=https://npm.corp/\n", { colon: false });
    expect(ini.get("")!.get("//npm.example:8443/:_authtoken")).toBe("abc");
    expect(ini.get("")!.get("@corp:registry")).toBe("https://npm.corp/");
  });
});

describe("pip settings", () => {
  it("passes index-url, every extra-index-url, trusted-host, timeout, retries and proxy from pip.conf", () => {
    const s = host({
      "/etc/pip.conf": [
        "[global]",
        "index-url = https://pypi.corp/simple",
        "extra-index-url =",
        "    https://a.corp/simple",
        "    https://b.corp/simple",
        "trusted-host = pypi.corp a.corp",
        "timeout = 60",
        "retries = 7",
        "proxy = http://proxy.corp:3128",
      ].join("\n"),
    });
    expect(s.args).toEqual({
      PIP_INDEX_URL: "https://pypi.corp/simple",
      PIP_EXTRA_INDEX_URL: "https://a.corp/simple https://b.corp/simple",
      PIP_TRUSTED_HOST: "pypi.corp a.corp",
      PIP_DEFAULT_TIMEOUT: "60",
      PIP_RETRIES: "7",
      PIP_PROXY: "http://proxy.corp:3128",
    });
    expect(s.notes).toEqual([]);
    expect(s.files).toEqual({});
  });

  it("copies the CA bundle that cert names into ca.pem (its content, not its path)", () => {
    const s = host({ [`${HOME}/.config/pip/pip.conf`]: "[global]\ncert = /etc/ssl/corp-ca.pem\n", "/etc/ssl/corp-ca.pem": PEM });
    expect(s.files["ca.pem"]?.toString()).toBe(PEM);
    expect(Object.values(s.args)).not.toContain("/etc/ssl/corp-ca.pem");
    expect(s.notes).toEqual([]);
  });

  it("expands ~ in cert as pip does", () => {
    const s = host({ [`${HOME}/.pip/pip.conf`]: "[global]\ncert = ~/certs/ca.pem\n", [`${HOME}/certs/ca.pem`]: PEM });
    expect(s.files["ca.pem"]?.toString()).toBe(PEM);
  });

  it("says so when the cert cannot be read, and builds go on without it", () => {
    const s = host({ "/etc/pip.conf": "[global]\ncert = /etc/ssl/missing.pem\nindex-url = https://pypi.corp/simple\n" });
    expect(s.files).toEqual({});
    expect(s.args.PIP_INDEX_URL).toBe("https://pypi.corp/simple");
    expect(notesText(s.notes)).toContain("pip cert /etc/ssl/missing.pem cannot be read");
  });

  it("falls back to REQUESTS_CA_BUNDLE for the CA bundle when pip names none", () => {
    const s = host({ "/etc/ssl/bundle.pem": PEM }, { REQUESTS_CA_BUNDLE: "/etc/ssl/bundle.pem" });
    expect(s.files["ca.pem"]?.toString()).toBe(PEM);
  });

  it("takes [install] over [global], within a file and across files (pip's order)", () => {
    const s = host({
      "/etc/pip.conf": "[install]\nindex-url = https://install.corp/simple\n[global]\nindex-url = https://global.corp/simple\nretries = 2\n",
      [`${HOME}/.config/pip/pip.conf`]: "[global]\nindex-url = https://user-global.corp/simple\n",
    });
    expect(s.args.PIP_INDEX_URL).toBe("https://install.corp/simple");
    expect(s.args.PIP_RETRIES).toBe("2");
  });

  it("reads the files in pip's order: a user file over a global one", () => {
    const s = host({
      "/etc/xdg/pip/pip.conf": "[global]\nindex-url = https://xdg.corp/simple\nretries = 1\n",
      "/etc/pip.conf": "[global]\nindex-url = https://etc.corp/simple\n",
      [`${HOME}/.config/pip/pip.conf`]: "[global]\nindex-url = https://user.corp/simple\n",
    });
    expect(s.args.PIP_INDEX_URL).toBe("https://user.corp/simple");
    expect(s.args.PIP_RETRIES).toBe("1");
  });

  it("takes PIP_* variables over every file", () => {
    const s = host(
      { "/etc/pip.conf": "[install]\nindex-url = https://file.corp/simple\ntrusted-host = file.corp\n" },
      { PIP_INDEX_URL: "https://env.corp/simple", PIP_EXTRA_INDEX_URL: "https://x.corp/simple https://y.corp/simple", PIP_DEFAULT_TIMEOUT: "90" },
    );
    expect(s.args.PIP_INDEX_URL).toBe("https://env.corp/simple");
    expect(s.args.PIP_EXTRA_INDEX_URL).toBe("https://x.corp/simple https://y.corp/simple");
    expect(s.args.PIP_TRUSTED_HOST).toBe("file.corp");
    expect(s.args.PIP_DEFAULT_TIMEOUT).toBe("90");
  });

  it("reads PIP_CONFIG_FILE over the global files, and not the user's files then", () => {
    const s = host(
      {
        "/etc/pip.conf": "[global]\nindex-url = https://etc.corp/simple\nretries = 4\n",
        [`${HOME}/.config/pip/pip.conf`]: "[global]\ntrusted-host = user.corp\n",
        "/srv/ci/pip.ini": "[global]\nindex-url = https://ci.corp/simple\n",
      },
      { PIP_CONFIG_FILE: "/srv/ci/pip.ini" },
    );
    expect(s.args.PIP_INDEX_URL).toBe("https://ci.corp/simple");
    expect(s.args.PIP_RETRIES).toBe("4");
    expect(s.args.PIP_TRUSTED_HOST).toBeUndefined();
    // The variable names a file: it is not itself a setting.
    expect(Object.values(s.args)).not.toContain("/srv/ci/pip.ini");
  });

  it("reads no pip file at all when PIP_CONFIG_FILE is the null device (pip's switch)", () => {
    const s = host({ "/etc/pip.conf": "[global]\nindex-url = https://etc.corp/simple\n" }, { PIP_CONFIG_FILE: "/dev/null", PIP_RETRIES: "3" });
    expect(s.args).toEqual({ PIP_RETRIES: "3" });
  });

  it("leaves out a file:// or folder index, and find-links of any kind, naming each in a note", () => {
    const s = host({
      "/etc/pip.conf": [
        "[global]",
        "index-url = file:///srv/mirror/simple",
        "extra-index-url = https://ok.corp/simple /srv/wheelhouse ./relative ~/mine wheels",
        "find-links = /opt/wheels https://wheels.corp/",
      ].join("\n"),
    });
    expect(s.args.PIP_INDEX_URL).toBeUndefined();
    expect(s.args.PIP_EXTRA_INDEX_URL).toBe("https://ok.corp/simple");
    const text = notesText(s.notes);
    for (const place of ["file:///srv/mirror/simple", "/srv/wheelhouse", "./relative", "~/mine", "wheels", "/opt/wheels", "https://wheels.corp/"]) {
      expect(text).toContain(place);
    }
    expect(text).toContain("find_links=");
    expect(Object.keys(s.args).some((k) => k.includes("FIND_LINKS"))).toBe(false);
  });

  it("leaves out a local PIP_INDEX_URL from the environment too", () => {
    const s = host({}, { PIP_INDEX_URL: "file:///mnt/pypi", PIP_FIND_LINKS: "/mnt/wheels" });
    expect(s.args).toEqual({});
    expect(notesText(s.notes)).toContain("file:///mnt/pypi");
    expect(notesText(s.notes)).toContain("/mnt/wheels");
  });

  it("flags an index on this machine's loopback (it stays, but the note says a build cannot reach it)", () => {
    const s = host({}, { PIP_INDEX_URL: "http://127.0.0.1:8080/simple" });
    expect(s.args.PIP_INDEX_URL).toBe("http://127.0.0.1:8080/simple");
    expect(notesText(s.notes)).toMatch(/PIP_INDEX_URL http:\/\/127\.0\.0\.1:8080\/simple is on this machine's loopback/);
  });

  it("passes nothing on a machine with no settings", () => {
    expect(host({})).toMatchObject({ args: {}, files: {}, notes: [] });
  });
});

describe("npm settings", () => {
  it("passes registry, proxies, noproxy and strict-ssl from ~/.npmrc and copies cafile into npm-ca.pem", () => {
    const s = host({
      [`${HOME}/.npmrc`]: [
        "registry=https://npm.corp/",
        "proxy=http://proxy.corp:3128",
        "https-proxy=http://proxy.corp:3128",
        "noproxy=internal.corp",
        "strict-ssl=true",
        "cafile=/etc/ssl/npm-ca.pem",
      ].join("\n"),
      "/etc/ssl/npm-ca.pem": PEM,
    });
    expect(s.args).toEqual({
      NPM_CONFIG_REGISTRY: "https://npm.corp/",
      NPM_CONFIG_PROXY: "http://proxy.corp:3128",
      NPM_CONFIG_HTTPS_PROXY: "http://proxy.corp:3128",
      NPM_CONFIG_NOPROXY: "internal.corp",
      NPM_CONFIG_STRICT_SSL: "true",
    });
    expect(s.files["npm-ca.pem"]?.toString()).toBe(PEM);
    expect(s.notes).toEqual([]);
  });

  it("takes npm_config_* variables (either case) over the files, and the global npmrc under the user's", () => {
    const s = host(
      { "/usr/local/etc/npmrc": "registry=https://global.corp/\nstrict-ssl=false\n", [`${HOME}/.npmrc`]: "registry=https://user.corp/\n" },
      { npm_config_registry: "https://env.corp/", NPM_CONFIG_HTTPS_PROXY: "http://proxy.corp:8080" },
    );
    expect(s.args.NPM_CONFIG_REGISTRY).toBe("https://env.corp/");
    expect(s.args.NPM_CONFIG_HTTPS_PROXY).toBe("http://proxy.corp:8080");
    expect(s.args.NPM_CONFIG_STRICT_SSL).toBe("false");
  });

  it("reads NPM_CONFIG_USERCONFIG instead of ~/.npmrc", () => {
    const s = host({ [`${HOME}/.npmrc`]: "registry=https://home.corp/\n", "/srv/npmrc": "registry=https://ci.corp/\n" }, { NPM_CONFIG_USERCONFIG: "/srv/npmrc" });
    expect(s.args.NPM_CONFIG_REGISTRY).toBe("https://ci.corp/");
  });

  it("never passes npm credentials, and says which were left out", () => {
    const s = host(
      {
        [`${HOME}/.npmrc`]: [
          "registry=https://npm.corp/",
          "//npm.corp/:_authToken=npm_SECRETTOKEN1",
          "//npm.other:8443/:_password=c2VjcmV0",
          "_auth=dXNlcjpwYXNz",
          "//npm.env/:_authToken=${NPM_TOKEN}",
        ].join("\n"),
      },
      { NPM_TOKEN: "npm_SECRETTOKEN2" },
    );
    expect(s.args).toEqual({ NPM_CONFIG_REGISTRY: "https://npm.corp/" });
    const everything = JSON.stringify(s.args) + JSON.stringify(Object.values(s.files).map(String));
    for (const secret of ["SECRETTOKEN1", "SECRETTOKEN2", "c2VjcmV0", "dXNlcjpwYXNz"]) expect(everything).not.toContain(secret);
    const text = notesText(s.notes);
    expect(text).toMatch(/npm credentials \(.*_authtoken.*\) are not passed/);
    expect(text).toContain("//npm.corp/:_authtoken");
    expect(text).toContain("//npm.other:8443/:_password");
    expect(text).toContain("_auth");
    // The note names keys, never values.
    for (const secret of ["SECRETTOKEN1", "SECRETTOKEN2", "c2VjcmV0", "dXNlcjpwYXNz"]) expect(text).not.toContain(secret);
  });

  it("says so when the cafile cannot be read", () => {
    const s = host({ [`${HOME}/.npmrc`]: "cafile=/nope/ca.pem\n" });
    expect(s.files).toEqual({});
    expect(notesText(s.notes)).toContain("npm cafile /nope/ca.pem cannot be read");
  });

  it("expands ${VAR} in .npmrc values from the environment", () => {
    const s = host({ [`${HOME}/.npmrc`]: "registry=${REG}\n" }, { REG: "https://npm.from-env.corp/" });
    expect(s.args.NPM_CONFIG_REGISTRY).toBe("https://npm.from-env.corp/");
  });
});

describe("proxy variables", () => {
  it("passes HTTP(S)_PROXY and NO_PROXY in both cases, as Docker's predefined build arguments", () => {
    const env = { HTTPS_PROXY: "http://proxy.corp:3128", http_proxy: "http://proxy.corp:3128", NO_PROXY: "localhost,127.0.0.1,.corp", PATH: "/usr/bin" };
    const s = host({}, env);
    expect(s.args).toEqual({ HTTPS_PROXY: "http://proxy.corp:3128", http_proxy: "http://proxy.corp:3128", NO_PROXY: "localhost,127.0.0.1,.corp" });
    expect(s.notes).toEqual([]);
  });

  it("keeps a proxy on loopback but says a build container cannot reach it", () => {
    for (const proxy of ["http://127.0.0.1:3128", "http://localhost:3128/", "http://user:pw@[::1]:3128", "socks5h://127.0.0.1:1080", "127.0.0.1:3128"]) {
      const s = host({}, { HTTPS_PROXY: proxy });
      expect(s.args.HTTPS_PROXY).toBe(proxy);
      expect(notesText(s.notes), proxy).toContain("HTTPS_PROXY points at this machine's loopback");
    }
  });

  it("does not take a host whose name starts like loopback, or NO_PROXY's localhost, for a loopback proxy", () => {
    const s = host({}, { HTTP_PROXY: "http://localhost.corp:3128", HTTPS_PROXY: "http://127-0-0-1.corp:3128", NO_PROXY: "localhost", no_proxy: "127.0.0.1" });
    expect(s.notes).toEqual([]);
  });

  it("flags npm's proxy setting on loopback too", () => {
    const s = host({ [`${HOME}/.npmrc`]: "https-proxy=http://localhost:8888\n" });
    expect(s.args.NPM_CONFIG_HTTPS_PROXY).toBe("http://localhost:8888");
    expect(notesText(s.notes)).toContain("NPM_CONFIG_HTTPS_PROXY http://localhost:8888 is on this machine's loopback");
  });
});
