/**
 * `perago start <module...> [-j N] [--execution-mode process|thread]`: serve task modules.
 * SIGINT/SIGTERM drain (stop polling, finish running attempts, deliver results, exit 0); a
 * second signal, or PERAGO_SHUTDOWN_FORCE_KILL_AFTER, forces (executors killed, exit 1).
 *
 * @module
 */
import { startRuntime } from "../runtime/start.ts";
import type { Supervisor } from "../runtime/supervisor.ts";
import { parseCommandArgs } from "./_args.ts";
import { UsageError } from "./_fail.ts";
import type { Command } from "./_command.ts";

const HELP = `Usage: perago start <module...> [options]

Polls Conductor for the tasks of the given modules and runs their attempts in
executor processes under narrow permissions (one broker process talks to
Conductor; executors reach only lakeFS, the workspace and log roots).

Options:
  -j, --concurrency N          executor processes (default 1)
      --execution-mode MODE    process (default) or thread; overrides
                               PERAGO_EXECUTION_MODE. thread runs the broker
                               and executors as Web Workers with per-worker
                               permissions: deno run needs
                               --unstable-worker-options
      --metrics-address H:P    serve /metrics (Prometheus), /healthz and
                               /readyz on H:P, e.g. 127.0.0.1:9464;
                               overrides PERAGO_METRICS_ADDRESS (off when
                               neither is set)
  -h, --help                   show this help

Needs CONDUCTOR_SERVER_URL and the three LAKECTL_* variables, and each task's
TaskDef registered on Conductor ("perago extract <module> -o taskdef.json").
SIGINT/SIGTERM drain and exit 0; a second signal forces (exit 1).`;

/** `perago start`. */
export const command: Command = {
  help: HELP,
  async run(args) {
    const { values, positionals } = parseCommandArgs("start", args, {
      concurrency: { type: "string", short: "j" },
      "execution-mode": { type: "string" },
      "metrics-address": { type: "string" },
    });
    if (positionals.length === 0) {
      throw new UsageError('start: expected at least one task module; run "perago start --help"');
    }
    // Digits only: Number() would also take "2.0", "1e1", "0x2" or " 3".
    const concurrency = values.concurrency === undefined
      ? 1
      : /^[1-9][0-9]{0,3}$/.test(values.concurrency)
      ? Number(values.concurrency)
      : NaN;
    if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 1024) {
      throw new UsageError(
        `start: -j must be a whole number from 1 to 1024 (got ${values.concurrency})`,
      );
    }
    const mode = values["execution-mode"];
    if (mode !== undefined && mode !== "process" && mode !== "thread") {
      throw new UsageError(`start: --execution-mode must be process or thread (got ${mode})`);
    }
    let supervisor: Supervisor | undefined;
    let early = 0; // signals before the supervisor exists are replayed to it
    const onSignal = () => supervisor ? supervisor.shutdown() : early++;
    const signals = ["SIGINT", "SIGTERM"] as const;
    for (const signal of signals) Deno.addSignalListener(signal, onSignal);
    try {
      return await startRuntime({
        modules: positionals,
        concurrency,
        ...(mode === undefined ? {} : { executionMode: mode }),
        ...(values["metrics-address"] === undefined
          ? {}
          : { metricsAddress: values["metrics-address"] }),
        onSupervisor: (s) => {
          supervisor = s;
          for (; early > 0; early--) s.shutdown();
        },
      });
    } finally {
      for (const signal of signals) Deno.removeSignalListener(signal, onSignal);
    }
  },
};
