/**
 * `gantry dict` (or `dicts`): ls, get, items, clear, delete — Dicts through the daemon's /v1/dicts
 * (protocol/dicts-queues.ts). Keys and values show as JSON; one a Python program stored pickled shows
 * as `<pickled N bytes>` (its base64 under `*_pickled` with --json), never unpickled.
 */
import type { Command } from "commander";
import { createInterface } from "node:readline/promises";
import { dqNameProblem, type DictView, type WireValue } from "../../protocol/dicts-queues.js";
import type { GantryClient } from "../../sdk/client.js";
import type { Dict } from "../../sdk/dict.js";
import { pickledBytes } from "../../sdk/dq-common.js";
import { GantryError, NotFoundError, ValueNotJsonError } from "../../sdk/errors.js";
import { makeContext } from "../context.js";
import { UsageError } from "../exit-codes.js";
import { ago, table } from "../output.js";
import type { Runner } from "../runner.js";

/** Entries `dict items` shows unless --limit says otherwise. */
const DEFAULT_ITEMS = 100;
/** Characters of a key or value in a table cell. */
const CELL = 80;

export function checkedDqName(what: "Dict" | "Queue", name: string): string {
  const problem = dqNameProblem(what, name);
  if (problem) throw new UsageError(problem);
  return name;
}

/** A whole number ≥ 1 from an option or argument, or UsageError naming it. */
export function wholeNumber(raw: string, what: string): number {
  const n = Number(raw);
  if (!/^\s*\d+\s*$/.test(raw) || !Number.isSafeInteger(n) || n < 1) throw new UsageError(`${what} must be a whole number ≥ 1, got ${JSON.stringify(raw)}`);
  return n;
}

/** A key or value as a table shows it: compact JSON, cut to `width`; a pickled one as `<pickled N bytes>`. */
export function wireText(w: WireValue, width = CELL): string {
  if ("pickled" in w) return `<pickled ${pickledBytes(w.pickled)} bytes>`;
  const text = JSON.stringify(w.value) ?? "null";
  return text.length > width ? `${text.slice(0, width - 1)}…` : text;
}

/** A key or value for --json: `{ [name]: value }`, or `{ [name + "_pickled"]: base64 }` for a pickled one. */
export function wireJson(name: string, w: WireValue): Record<string, unknown> {
  return "pickled" in w ? { [`${name}_pickled`]: w.pickled } : { [name]: w.value };
}

/** KEY from the command line: its JSON when it parses (`1`, `"1"`, `[1,2]`), else the text itself. */
export function parseKey(raw: string): unknown {
  try {
    return JSON.parse(raw) as unknown;
  } catch {
    return raw;
  }
}

/** Asks on the terminal; false for anything but y or yes. */
async function confirm(question: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await rl.question(`${question} [y/N] `)).trim());
  } finally {
    rl.close();
  }
}

/** `delete` without --yes: asks on a terminal, refuses where there is none to ask on (as `gantry volume delete`). */
export async function confirmDelete(what: string, kind: string, name: string): Promise<void> {
  if (!process.stdin.isTTY || !process.stderr.isTTY) throw new UsageError(`deleting ${what} cannot be undone: pass --yes to confirm (there is no terminal to ask on)`);
  if (!(await confirm(`delete ${what}? This cannot be undone.`))) throw new GantryError(`${kind} ${name} was not deleted`, "aborted");
}

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

function dictsTable(dicts: DictView[]): string {
  return (
    table(
      ["NAME", "ENTRIES", "CREATED"],
      dicts.map((d) => [d.ephemeral ? `${d.name} (ephemeral)` : d.name, String(d.len), ago(d.created_at)]),
    ) || "no dicts: make one with client.dicts.fromName(NAME, { createIfMissing: true }), or gantry.Dict.from_name(NAME, create_if_missing=True) in Python"
  );
}

async function openDict(client: GantryClient, name: string): Promise<Dict> {
  return client.dicts.fromName(checkedDqName("Dict", name));
}

export function registerDicts(program: Command, run: Runner): void {
  const dict = program
    .command("dict")
    .alias("dicts")
    .description("look into the Dicts programs and functions share (client.dicts.fromName, gantry.Dict.from_name)");

  dict
    .command("ls")
    .alias("list")
    .description("list the dicts: entries, when each was made, ephemeral ones marked")
    .action(run(async (g) => {
      const { out, client } = makeContext(g);
      try {
        const dicts = await client.dicts.list();
        out.result(dicts, () => dictsTable(dicts));
      } finally {
        client.close();
      }
    }));

  dict
    .command("get")
    .argument("<name>", "the dict")
    .argument("<key>", "the key: JSON when it parses as JSON (1, \"1\", [1,2]), else the text itself")
    .description("print the value at a key, as JSON (a missing key: exit 4)")
    .action(run(async (g, name, rawKey) => {
      checkedDqName("Dict", name!);
      const key = parseKey(rawKey!);
      const { out, client } = makeContext(g);
      try {
        const d = await openDict(client, name!);
        let wire: WireValue;
        try {
          const value = await d.get(key);
          if (value === undefined) throw new NotFoundError(`dict ${name} has no key ${JSON.stringify(key)}`);
          wire = { value };
        } catch (err) {
          if (!(err instanceof ValueNotJsonError)) throw err;
          wire = { pickled: err.pickled };
        }
        out.result({ dict: name, key, ...wireJson("value", wire) }, () => ("pickled" in wire ? wireText(wire) : JSON.stringify(wire.value, null, 2)));
      } finally {
        client.close();
      }
    }));

  dict
    .command("items")
    .argument("<name>", "the dict")
    .option("--limit <n>", `show at most n entries, oldest write first (default ${DEFAULT_ITEMS})`)
    .description("list a dict's keys and values")
    .action(run<{ limit?: string }>(async (opts, name) => {
      checkedDqName("Dict", name!);
      const limit = opts.limit === undefined ? DEFAULT_ITEMS : wholeNumber(opts.limit, "--limit");
      const { out, client } = makeContext(opts);
      try {
        const d = await openDict(client, name!);
        const items: Array<{ key: WireValue; value: WireValue }> = [];
        let after: string | null = null;
        let more = false;
        do {
          const page = await d.page(after, limit - items.length);
          items.push(...page.items.slice(0, limit - items.length));
          after = page.items.length ? page.next : null;
          more = after !== null;
        } while (after && items.length < limit);
        if (more && !out.json) out.note(`showing the first ${plural(items.length, "entry", "entries")}; --limit N shows more`);
        out.result(
          items.map((i) => ({ ...wireJson("key", i.key), ...wireJson("value", i.value) })),
          () => table(["KEY", "VALUE"], items.map((i) => [wireText(i.key), wireText(i.value)])) || `dict ${name} is empty`,
        );
      } finally {
        client.close();
      }
    }));

  dict
    .command("clear")
    .argument("<name>", "the dict")
    .description("remove every entry of a dict")
    .action(run(async (g, name) => {
      checkedDqName("Dict", name!);
      const { out, client } = makeContext(g);
      try {
        const cleared = await (await openDict(client, name!)).clear();
        out.result({ dict: name, cleared }, () => `cleared dict ${name} (${plural(cleared, "entry", "entries")})`);
      } finally {
        client.close();
      }
    }));

  dict
    .command("delete")
    .argument("<name>", "the dict")
    .option("-y, --yes", "do not ask (needed where there is no terminal to ask on)")
    .description("delete a dict and all its entries")
    .action(run<{ yes?: boolean }>(async (opts, name) => {
      checkedDqName("Dict", name!);
      const { out, client } = makeContext(opts);
      try {
        if (!opts.yes) {
          const info = await client.dicts.info(name!);
          await confirmDelete(`dict ${name} and its ${plural(info.len, "entry", "entries")}`, "dict", name!);
        }
        await client.dicts.delete(name!);
        out.result({ name, deleted: true }, () => `deleted dict ${name}`);
      } finally {
        client.close();
      }
    }));
}
