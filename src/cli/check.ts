// deno-lint-ignore-file no-console
/**
 * `perago check <module>`: validates the configuration and a task module, prints a summary
 * that never contains a secret.
 *
 * @module
 */
import {
  describeConfig,
  describeTaskSettings,
  loadRuntimeConfig,
  loadTaskSettings,
} from "../config/config.ts";
import { loadTask } from "../task/loader.ts";
import { taskDefWarnings } from "../task/taskdef.ts";
import { parseCommandArgs } from "./_args.ts";
import { UsageError } from "./_fail.ts";
import type { Command } from "./_command.ts";

const HELP = `Usage: perago check <module> [options]

Validates the configuration (.env in the working directory, overlaid by the
environment; both roots are probed for writability) and the task module, then prints:

  ok: <task name>
  the workspace and log roots, the task's workspace prefix and mode,
  whether Conductor and lakeFS are configured (never a secret), and how this
  deployment serves the task: its Conductor task domain (PERAGO_TASK_DOMAIN,
  PERAGO_TASK_DOMAIN_<NAME>), per-host concurrency (worker.concurrency,
  PERAGO_TASK_CONCURRENCY_<NAME>), polling, and whether it is paused
  (PERAGO_TASK_PAUSED). <NAME> is the task name upper-cased, other characters as _.
Warnings about the TaskDef (e.g. a publish budget longer than the response timeout)
go to stderr.

Options:
  -h, --help  show this help

Exit code 0 when everything is valid, 1 with "error: <message>" otherwise.`;

/** `perago check`. */
export const command: Command = {
  help: HELP,
  async run(args) {
    const { positionals } = parseCommandArgs("check", args, {});
    if (positionals.length !== 1) {
      throw new UsageError('check: expected exactly one task module; run "perago check --help"');
    }
    const moduleTarget = positionals[0]!;
    // Configuration is validated before the module is imported: a bad environment is reported
    // even when the module itself would fail to load.
    const config = await loadRuntimeConfig(moduleTarget);
    const { task } = await loadTask(moduleTarget);
    const [settings] = await loadTaskSettings([task.name]);
    for (const line of taskDefWarnings(task)) console.error(`warning: ${line}`);
    console.log(`ok: ${task.name}`);
    for (const line of describeConfig(config)) console.log(line);
    if (task.workspace) {
      console.log(`workspace prefix: /${task.workspace.prefix}`);
      console.log(`workspace mode: ${task.workspace.readOnly ? "read-only" : "writable"}`);
    } else {
      console.log("workspace: none (workspace-free task)");
    }
    for (const line of describeTaskSettings(settings!, task.worker)) console.log(line);
    return 0;
  },
};
