import { Command, CommanderError } from "commander";
import { VERSION } from "../protocol/version.js";
import { registerApps } from "./commands/apps.js";
import { registerCalls } from "./commands/calls.js";
import { registerDashboard } from "./commands/dashboard.js";
import { registerDaemon } from "./commands/daemon.js";
import { registerDeploy } from "./commands/deploy.js";
import { registerDicts } from "./commands/dicts.js";
import { registerGpus } from "./commands/gpus.js";
import { registerLogs } from "./commands/logs.js";
import { registerQueues } from "./commands/queues.js";
import { registerRun } from "./commands/run.js";
import { registerSandbox } from "./commands/sandbox.js";
import { registerSecrets } from "./commands/secrets.js";
import { registerServe } from "./commands/serve.js";
import { registerShell } from "./commands/shell.js";
import { registerTop } from "./commands/top.js";
import { registerVolumes } from "./commands/volumes.js";
import { EXIT_CODE_HELP, ExitCode } from "./exit-codes.js";
import { run } from "./runner.js";

const program = new Command("gantry")
  .description("Run functions in containers on your own machine: deploy, spawn calls, poll results.")
  .version(VERSION)
  .option("--json", "machine-readable output")
  .option("--verbose", "errors show every stack frame, gantry's own included (by default an app file's error shows only the app's frames)")
  .option("--url <url>", "talk to a daemon over HTTP or HTTPS instead of the local socket (or GANTRY_URL)")
  .option("--token-file <file>", "read the bearer token for --url from FILE, yours alone (chmod 600), or set GANTRY_TOKEN")
  .option("--ca-cert <file>", "trust this CA (PEM) for an https:// --url (or GANTRY_CA_CERT)")
  .option("--token <token>", "deprecated, it shows in ps: use GANTRY_TOKEN or --token-file")
  .addHelpText("after", `\nThe daemon's socket is $GANTRY_HOME/gantry.sock (GANTRY_HOME defaults to ~/.gantry).\n${EXIT_CODE_HELP}`)
  .showHelpAfterError("(run gantry --help for usage)")
  .exitOverride();

registerDaemon(program, run);
registerDeploy(program, run);
registerRun(program, run);
registerServe(program, run);
registerCalls(program, run);
registerApps(program, run);
registerLogs(program, run);
registerGpus(program, run);
registerDashboard(program, run);
registerSecrets(program, run);
registerVolumes(program, run);
registerDicts(program, run);
registerQueues(program, run);
registerSandbox(program, run);
registerShell(program, run);
registerTop(program, run);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    process.exitCode = err.exitCode === 0 ? ExitCode.ok : ExitCode.usage;
  } else {
    process.stderr.write(`Error: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exitCode = ExitCode.error;
  }
}
