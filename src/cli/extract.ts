// deno-lint-ignore-file no-console
/**
 * `perago extract <module> [-o file]`: writes the Conductor TaskDef of a task module.
 *
 * @module
 */
import { parseWorkspaceRefStyle } from "../config/parse.ts";
import { loadTask } from "../task/loader.ts";
import { renderTaskDef, taskDefWarnings } from "../task/taskdef.ts";
import { parseCommandArgs } from "./_args.ts";
import { UsageError } from "./_fail.ts";
import type { Command } from "./_command.ts";

const HELP = `Usage: perago extract <module> [-o file]

Writes the Conductor TaskDef of the task module as JSON: name, ownerEmail, description,
retry, timeout and rate-limit controls, inputKeys/outputKeys and the input and output
JSON schemas. The output is deterministic (the same bytes on every run). The input
schema takes ref_type or refType (perago for Python); the output schema spells it as
the workers emit it: ref_type, or refType with PERAGO_WORKSPACE_REF_STYLE=camel.
Warnings go to stderr: a controls.publishBudget implying a longer response timeout
than controls.timeout.responseSeconds (the TaskDef keeps responseSeconds), or a
publish budget on a read-only task (ignored).

Options:
  -o, --output <file>  write to this file instead of standard output
  -h, --help           show this help

Register it with Conductor, for example:
  perago extract tasks/my_task.ts -o taskdef.json
  curl -X POST "$CONDUCTOR_SERVER_URL/metadata/taskdefs" \\
    -H 'content-type: application/json' -d "[$(cat taskdef.json)]"`;

/** `perago extract`. */
export const command: Command = {
  help: HELP,
  async run(args) {
    const { positionals, values } = parseCommandArgs("extract", args, {
      output: { type: "string", short: "o" },
    });
    if (positionals.length !== 1) {
      throw new UsageError(
        'extract: expected exactly one task module; run "perago extract --help"',
      );
    }
    const { task } = await loadTask(positionals[0]!);
    // The output schema spells the reference type as this deployment's workers will.
    const refStyle = parseWorkspaceRefStyle(Deno.env.get("PERAGO_WORKSPACE_REF_STYLE"));
    const json = renderTaskDef(task, { refStyle });
    for (const line of taskDefWarnings(task)) console.error(`warning: ${line}`);
    if (values.output === undefined || values.output === "-") {
      await Deno.stdout.write(new TextEncoder().encode(json));
    } else {
      await Deno.writeTextFile(values.output, json);
      console.error(`wrote ${values.output}`);
    }
    return 0;
  },
};
