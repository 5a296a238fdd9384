// deno-lint-ignore-file no-console
/**
 * The hidden child commands `perago __broker` and `perago __executor`: the runtime's broker
 * and executor processes, started by the supervisor (`perago start`) with narrow permissions,
 * re-invoking this same program (or compiled binary). Both speak the protocol as JSON lines
 * on stdin/stdout, so anything printed goes to stderr; terminal signals are ignored (Ctrl-C
 * reaches the whole process group: the supervisor drains and tells its children when to
 * stop).
 *
 * @module
 */
import type { ChildRole } from "../runtime/permissions.ts";
import { type OpenChannel, streamChannel } from "../runtime/channel.ts";
import { runBrokerRole, runExecutorRole } from "../runtime/roles.ts";
import type { Command } from "./_command.ts";
import { importLazily } from "../util/lazy_import.ts";

/** `perago __broker`: the only process that talks to Conductor. */
export const brokerCommand: Command = childCommand(
  "broker",
  "settings and results",
  runBrokerRole,
);

/** `perago __executor`: runs the attempts, one at a time. */
export const executorCommand: Command = childCommand(
  "executor",
  "settings and attempts",
  runExecutorRole,
);

function childCommand(
  role: ChildRole,
  reads: string,
  runRole: (open: OpenChannel) => Promise<number>,
): Command {
  return {
    help: `Usage: perago __${role}\n\nInternal: started by "perago start"; reads its ` +
      `${reads} as JSON lines on stdin and answers on stdout.`,
    async run() {
      keepStdoutForProtocol();
      ignoreTerminalSignals();
      // Only a compiled binary narrows itself; a `deno run` child never loads that module.
      if (Deno.build.standalone) {
        await (await importLazily<typeof import("../runtime/permissions.ts")>(
          "runtime/permissions.ts",
        )).narrowStandaloneChild(role);
      }
      return await runRole(streamChannel(Deno.stdin, Deno.stdout));
    },
  };
}

/** Sends `console.log`/`info`/`debug` (stdout in Deno) to stderr, like `console.error`. */
function keepStdoutForProtocol(): void {
  const toStderr = (...args: unknown[]) => console.error(...args);
  console.log = toStderr;
  console.info = toStderr;
  console.debug = toStderr;
}

/** Ignores SIGINT and SIGTERM; the supervisor's `shutdown` message stops the child. */
function ignoreTerminalSignals(): void {
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    try {
      Deno.addSignalListener(signal, () => {});
    } catch {
      // not supported on this platform (Windows has no SIGTERM listener)
    }
  }
}
