/**
 * `gantry queue` (or `queues`): ls, len, peek, clear, delete — Queues through the daemon's
 * /v1/queues (protocol/dicts-queues.ts). `peek` reads items in place (nothing is taken out); values
 * show as JSON, a pickled one as `<pickled N bytes>`.
 */
import type { Command } from "commander";
import { DQ_LIMITS, type QueueView } from "../../protocol/dicts-queues.js";
import type { GantryClient } from "../../sdk/client.js";
import type { Queue, QueueItem } from "../../sdk/queue.js";
import { makeContext } from "../context.js";
import { UsageError } from "../exit-codes.js";
import { ago, table } from "../output.js";
import type { Runner } from "../runner.js";
import { checkedDqName, confirmDelete, wholeNumber, wireJson, wireText } from "./dicts.js";

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

function queuesTable(queues: QueueView[]): string {
  return (
    table(
      ["NAME", "ITEMS", "PARTITIONS", "CREATED"],
      queues.map((q) => [q.ephemeral ? `${q.name} (ephemeral)` : q.name, String(q.len), String(q.partitions), ago(q.created_at)]),
    ) || "no queues: make one with client.queues.fromName(NAME, { createIfMissing: true }), or gantry.Queue.from_name(NAME, create_if_missing=True) in Python"
  );
}

async function openQueue(client: GantryClient, name: string): Promise<Queue> {
  return client.queues.fromName(checkedDqName("Queue", name));
}

/** "queue jobs", "queue jobs (partition "a")". */
function where(name: string, partition: string | undefined): string {
  return partition === undefined ? `queue ${name}` : `queue ${name} (partition ${JSON.stringify(partition)})`;
}

export function registerQueues(program: Command, run: Runner): void {
  const queue = program
    .command("queue")
    .alias("queues")
    .description("look into the Queues programs and functions share (client.queues.fromName, gantry.Queue.from_name)");

  queue
    .command("ls")
    .alias("list")
    .description("list the queues: items, partitions holding some, when each was made, ephemeral ones marked")
    .action(run(async (g) => {
      const { out, client } = makeContext(g);
      try {
        const queues = await client.queues.list();
        out.result(queues, () => queuesTable(queues));
      } finally {
        client.close();
      }
    }));

  queue
    .command("len")
    .argument("<name>", "the queue")
    .option("--partition <key>", "count this partition (default: the default partition)")
    .option("--total", "count the items of every partition")
    .description("print how many items a queue holds")
    .action(run<{ partition?: string; total?: boolean }>(async (opts, name) => {
      checkedDqName("Queue", name!);
      if (opts.total && opts.partition !== undefined) throw new UsageError("give --partition or --total, not both");
      const { out, client } = makeContext(opts);
      try {
        const q = await openQueue(client, name!);
        const len = await q.len({ ...(opts.partition !== undefined ? { partition: opts.partition } : {}), ...(opts.total ? { total: true } : {}) });
        out.result({ queue: name, ...(opts.partition !== undefined ? { partition: opts.partition } : {}), ...(opts.total ? { total: true } : {}), len }, () => String(len));
      } finally {
        client.close();
      }
    }));

  queue
    .command("peek")
    .argument("<name>", "the queue")
    .argument("[n]", "how many items, oldest first (default 1)")
    .option("--partition <key>", "read this partition (default: the default partition)")
    .description("print the oldest items of a queue, as JSON, one a line, leaving them in it")
    .action(run<{ partition?: string }>(async (opts, name, rawN) => {
      checkedDqName("Queue", name!);
      const n = rawN === undefined ? 1 : wholeNumber(rawN, "N");
      const { out, client } = makeContext(opts);
      try {
        const q = await openQueue(client, name!);
        const items: QueueItem[] = [];
        let after: number | undefined;
        for (;;) {
          const page = await q.peek({
            ...(opts.partition !== undefined ? { partition: opts.partition } : {}),
            ...(after !== undefined ? { after } : {}),
            limit: Math.min(n - items.length, DQ_LIMITS.maxGet),
          });
          items.push(...page.slice(0, n - items.length));
          if (!page.length || items.length >= n) break;
          after = page.at(-1)!.seq;
        }
        out.result(
          items.map((i) => ({ seq: i.seq, ...wireJson("value", i.value) })),
          () => (items.length ? items.map((i) => wireText(i.value, Infinity)).join("\n") : `${where(name!, opts.partition)} is empty`),
        );
      } finally {
        client.close();
      }
    }));

  queue
    .command("clear")
    .argument("<name>", "the queue")
    .option("--partition <key>", "clear this partition (default: the default partition)")
    .option("--all", "clear every partition")
    .description("remove the items of a queue's partition, or of all of them")
    .action(run<{ partition?: string; all?: boolean }>(async (opts, name) => {
      checkedDqName("Queue", name!);
      if (opts.all && opts.partition !== undefined) throw new UsageError("give --partition or --all, not both");
      const { out, client } = makeContext(opts);
      try {
        const q = await openQueue(client, name!);
        const cleared = await q.clear({ ...(opts.partition !== undefined ? { partition: opts.partition } : {}), ...(opts.all ? { all: true } : {}) });
        const what = opts.all ? "every partition" : opts.partition !== undefined ? `partition ${JSON.stringify(opts.partition)}` : "the default partition";
        out.result({ queue: name, ...(opts.partition !== undefined ? { partition: opts.partition } : {}), all: Boolean(opts.all), cleared }, () => `cleared ${what} of queue ${name} (${plural(cleared, "item")})`);
      } finally {
        client.close();
      }
    }));

  queue
    .command("delete")
    .argument("<name>", "the queue")
    .option("-y, --yes", "do not ask (needed where there is no terminal to ask on)")
    .description("delete a queue and all its items")
    .action(run<{ yes?: boolean }>(async (opts, name) => {
      checkedDqName("Queue", name!);
      const { out, client } = makeContext(opts);
      try {
        if (!opts.yes) {
          const info = await client.queues.info(name!);
          await confirmDelete(`queue ${name} and its ${plural(info.len, "item")} in ${plural(info.partitions, "partition")}`, "queue", name!);
        }
        await client.queues.delete(name!);
        out.result({ name, deleted: true }, () => `deleted queue ${name}`);
      } finally {
        client.close();
      }
    }));
}
