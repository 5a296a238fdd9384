/**
 * `perago __broker` (hidden): the broker process of the runtime, the only one that talks to
 * Conductor. Started by the supervisor with narrow permissions.
 *
 * @module
 */
import { narrowStandaloneChild } from "../runtime/permissions.ts";
import { runBrokerRole } from "../runtime/roles.ts";
import { ignoreTerminalSignals, keepStdoutForProtocol } from "./_child_io.ts";
import type { Command } from "./_command.ts";

/** `perago __broker`. */
export const command: Command = {
  help: 'Usage: perago __broker\n\nInternal: started by "perago start"; reads its ' +
    "settings and results as JSON lines on stdin and answers on stdout.",
  async run() {
    keepStdoutForProtocol();
    ignoreTerminalSignals();
    if (Deno.build.standalone) await narrowStandaloneChild("broker");
    return await runBrokerRole({ input: Deno.stdin.readable, output: Deno.stdout });
  },
};
