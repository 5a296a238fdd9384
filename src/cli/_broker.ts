/**
 * `perago __broker` (hidden): the broker process of the runtime, the only one that talks to
 * Conductor. Started by the supervisor with narrow permissions.
 *
 * @module
 */
import { ConductorClient } from "../conductor/client.ts";
import { setupLogging } from "../log/setup.ts";
import { runBrokerProcess } from "../runtime/broker.ts";
import { narrowStandaloneChild } from "../runtime/permissions.ts";
import { ignoreTerminalSignals, keepStdoutForProtocol } from "./_child_io.ts";
import type { Command } from "./main.ts";

/** `perago __broker`. */
export const command: Command = {
  summary: "internal: the broker process (started by perago start)",
  help: 'Usage: perago __broker\n\nInternal: started by "perago start"; reads its ' +
    "settings and results as JSON lines on stdin and answers on stdout.",
  async run() {
    keepStdoutForProtocol();
    ignoreTerminalSignals();
    if (Deno.build.standalone) await narrowStandaloneChild("broker");
    return await runBrokerProcess({
      input: Deno.stdin.readable,
      output: Deno.stdout.writable,
      setupLogging: (init) =>
        setupLogging({
          ...init.log,
          secrets: init.conductor.authSecret ? [init.conductor.authSecret] : [],
          level: init.log.debug ? "debug" : "info",
        }),
      makeConductor: (init) =>
        new ConductorClient({
          serverUrl: init.conductor.serverUrl,
          authKey: init.conductor.authKey,
          authSecret: init.conductor.authSecret,
        }),
    });
  },
};
