import type { Command } from "commander";
import { makeContext } from "../context.js";
import { UsageError } from "../exit-codes.js";
import type { Runner } from "../runner.js";

interface LogLine {
  ts: string;
  function: string;
  call_id?: string;
  stream: "stdout" | "stderr";
  line: string;
}

export function registerLogs(program: Command, run: Runner): void {
  program
    .command("logs")
    .argument("<app>")
    .argument("[function]")
    .option("-f, --follow", "keep printing new lines until interrupted")
    .option("--tail <n>", "start with the last n lines", "100")
    .description("print what an app's functions wrote to stdout and stderr, tagged with the call")
    .action(run<{ follow?: boolean; tail: string }>(async (o, app, fn) => {
      const { out, client } = makeContext(o);
      const tail = Number(o.tail);
      if (!Number.isInteger(tail) || tail < 0) throw new UsageError(`--tail must be a whole number >= 0, got ${JSON.stringify(o.tail)}`);
      const q = new URLSearchParams({ tail: String(tail) });
      if (fn) q.set("function", fn);
      if (o.follow) q.set("follow", "1");
      const print = (l: LogLine) => {
        if (out.json) process.stdout.write(JSON.stringify(l) + "\n");
        else {
          const text = `${l.ts.slice(11, 23)} ${l.function} ${l.call_id ?? "-"}  ${l.line}\n`;
          (l.stream === "stderr" ? process.stderr : process.stdout).write(text);
        }
      };
      try {
        await client.transport.stream("GET", `/v1/apps/${encodeURIComponent(app!)}/logs?${q}`, undefined, (l) => print(l as LogLine));
      } finally {
        client.close();
      }
    }));
}
