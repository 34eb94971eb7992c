/**
 * `gantry secret create NAME KEY=VALUE… [--from-dotenv FILE] [--force]`, `secret ls`,
 * `secret rm NAME [--force]`: secrets through the daemon's /v1/secrets. Nothing here prints a value.
 */
import type { Command } from "commander";
import { readFile } from "node:fs/promises";
import type { SecretView } from "../../protocol/api.js";
import { secretKeyProblem, secretNameSchema, secretValuesProblem } from "../../protocol/secrets.js";
import { makeContext } from "../context.js";
import { DotenvError, parseDotenv } from "../dotenv.js";
import { UsageError } from "../exit-codes.js";
import { ago, table } from "../output.js";
import type { Runner } from "../runner.js";

interface SecretChange {
  secret: SecretView;
  replaced: boolean;
  rolled: string[];
}

function checkedName(name: string): string {
  if (!secretNameSchema.safeParse(name).success) {
    throw new UsageError(`${JSON.stringify(name.slice(0, 80))} is not a secret name: letters, digits, _ and -, starting with a letter or _, at most 64 characters`);
  }
  return name;
}

/** What an environment variable's name usually looks like: only such an argument is quoted back. */
const LOOKS_LIKE_A_KEY = /^[A-Z_][A-Z0-9_]{0,63}$/;

/** KEY=VALUE arguments; an argument without "=" is named only when it looks like a key (else it may be a value). */
function pairsFrom(args: string[]): Record<string, string> {
  const values: Record<string, string> = {};
  args.forEach((arg, i) => {
    const eq = arg.indexOf("=");
    if (eq < 0) {
      const what = LOOKS_LIKE_A_KEY.test(arg) ? `${arg} has no "=": write ${arg}=VALUE` : `argument ${i + 2} has no "=": write each as KEY=VALUE`;
      throw new UsageError(what);
    }
    const key = arg.slice(0, eq);
    const problem = secretKeyProblem(key);
    if (problem) throw new UsageError(problem);
    if (Object.hasOwn(values, key)) throw new UsageError(`key ${key} is given twice`);
    values[key] = arg.slice(eq + 1);
  });
  return values;
}

async function dotenvFrom(file: string): Promise<Record<string, string>> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    throw new UsageError(`cannot read the dotenv file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  try {
    const values = parseDotenv(text, file);
    for (const key of Object.keys(values)) {
      const problem = secretKeyProblem(key);
      if (problem) throw new UsageError(`${file}: ${problem}`);
    }
    return values;
  } catch (err) {
    throw err instanceof DotenvError ? new UsageError(err.message) : err;
  }
}

export function registerSecrets(program: Command, run: Runner): void {
  const secret = program.command("secret").description("keep secrets that functions get as environment variables");

  secret
    .command("create")
    .argument("<name>", "the secret's name")
    .argument("[pairs...]", "KEY=VALUE pairs")
    .option("--from-dotenv <file>", "read KEY=VALUE lines from a dotenv file (pairs given as arguments win)")
    .option("--force", "replace the secret if it exists (the containers of functions using it restart)")
    .description("create a secret from KEY=VALUE pairs and/or a dotenv file")
    .action(run<{ fromDotenv?: string; force?: boolean }>(async (opts, name, ...pairs) => {
      checkedName(name!);
      const values = { ...(opts.fromDotenv ? await dotenvFrom(opts.fromDotenv) : {}), ...pairsFrom(pairs) };
      if (Object.keys(values).length === 0) throw new UsageError(`secret ${name} needs at least one KEY=VALUE (or --from-dotenv FILE)`);
      const problem = secretValuesProblem(values);
      if (problem) throw new UsageError(`secret ${name}: ${problem}`);
      const { out, client } = makeContext(opts);
      try {
        const res = await client.transport.json<SecretChange>("POST", "/v1/secrets", { name, values, force: Boolean(opts.force) });
        out.result(res, () => {
          const keys = res.secret.keys.join(", ");
          const rolled = res.rolled.length ? `\ncontainers of ${res.rolled.join(", ")} restart to see it` : "";
          return `${res.replaced ? "replaced" : "created"} secret ${name} (keys: ${keys})${rolled}`;
        });
      } finally {
        client.close();
      }
    }));

  secret
    .command("ls")
    .alias("list")
    .description("list secrets: names, keys (never values), the functions using each, times")
    .action(run(async (g) => {
      const { out, client } = makeContext(g);
      try {
        const res = await client.transport.json<{ secrets: SecretView[] }>("GET", "/v1/secrets");
        out.result(res.secrets, () =>
          table(
            ["NAME", "KEYS", "USED BY", "CREATED", "UPDATED"],
            res.secrets.map((s) => [s.name, s.keys.join(","), s.used_by.join(",") || "-", ago(s.created_at), ago(s.updated_at)]),
          ) || "no secrets: create one with gantry secret create NAME KEY=VALUE",
        );
      } finally {
        client.close();
      }
    }));

  secret
    .command("rm")
    .alias("delete")
    .argument("<name>")
    .option("--force", "remove it even though deployed functions use it (their new containers fail to start until it exists again)")
    .description("remove a secret")
    .action(run<{ force?: boolean }>(async (opts, name) => {
      checkedName(name!);
      const { out, client } = makeContext(opts);
      try {
        const res = await client.transport.json<{ name: string; rolled: string[] }>(
          "DELETE",
          `/v1/secrets/${encodeURIComponent(name!)}${opts.force ? "?force=1" : ""}`,
        );
        out.result(res, () => `removed secret ${name}${res.rolled.length ? `\ncontainers of ${res.rolled.join(", ")} restart without it` : ""}`);
      } finally {
        client.close();
      }
    }));
}
