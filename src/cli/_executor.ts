/**
 * `perago __executor` (hidden): an executor process of the runtime. Started by the
 * supervisor with narrow permissions; speaks the protocol on stdin/stdout.
 *
 * @module
 */
import { narrowStandaloneChild } from "../runtime/permissions.ts";
import { runExecutorRole } from "../runtime/roles.ts";
import { ignoreTerminalSignals, keepStdoutForProtocol } from "./_child_io.ts";
import type { Command } from "./_command.ts";

/** `perago __executor`. */
export const command: Command = {
  help: 'Usage: perago __executor\n\nInternal: started by "perago start"; reads its ' +
    "settings and attempts as JSON lines on stdin and answers on stdout.",
  async run() {
    keepStdoutForProtocol();
    ignoreTerminalSignals();
    if (Deno.build.standalone) await narrowStandaloneChild("executor");
    return await runExecutorRole({ input: Deno.stdin.readable, output: Deno.stdout });
  },
};
