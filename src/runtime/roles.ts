/**
 * The broker and executor roles wired to their real dependencies (Conductor client, lakeFS
 * client, logging, the attempt), for both transports: the hidden `__broker`/`__executor`
 * commands (a `streamChannel` over stdio) and the thread-mode Worker entry (a
 * `messageChannel` over postMessage).
 *
 * Each role imports its own modules when it starts: an executor process never loads the
 * broker or the Conductor client, nor a broker the attempt and lakeFS code (a few MiB of
 * resident memory each); an executor loads the attempt and lakeFS code on its first attempt
 * (executor_deps.ts).
 *
 * @module
 */
import { setupLogging } from "../log/setup.ts";
import type { OpenChannel } from "./channel.ts";
import { takeExposedGc } from "./idle_gc.ts";
import { importLazily } from "../util/lazy_import.ts";

/** Options of {@linkcode runBrokerRole}. */
export interface BrokerRoleOptions {
  /**
   * `own`: the broker sets up its own logging (a process or Worker of its own); `host`: it
   * logs through the logging already set up where it runs (the supervisor's isolate, whose
   * logs redact every configured secret). @default "own"
   */
  logging?: "own" | "host";
}

/**
 * Runs the broker until the supervisor stops it; returns its exit code. Logs redact the
 * Conductor secret, the only one the broker receives.
 *
 * Requires `--allow-net` to the Conductor host and write access to the log root.
 */
export async function runBrokerRole(
  open: OpenChannel,
  options: BrokerRoleOptions = {},
): Promise<number> {
  const [{ ConductorClient }, { runBrokerProcess }] = await Promise.all([
    importLazily<typeof import("../conductor/client.ts")>("conductor/client.ts"),
    importLazily<typeof import("./broker.ts")>("runtime/broker.ts"),
  ]);
  return await runBrokerProcess({
    open,
    setupLogging: (init) =>
      options.logging === "host"
        ? Promise.resolve({ dispose: () => Promise.resolve() })
        : setupLogging({
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
}

/**
 * Runs one executor until the supervisor stops it; returns its exit code. Logs redact the
 * lakeFS secret, the only one an executor receives.
 *
 * Requires `--allow-net` to the lakeFS host and access to the workspace and log roots.
 */
export async function runExecutorRole(open: OpenChannel): Promise<number> {
  // Before any task code loads: task modules never see the exposed gc function.
  const collectGarbage = takeExposedGc();
  const [{ runExecutorProcess }, deps] = await Promise.all([
    importLazily<typeof import("./executor.ts")>("runtime/executor.ts"),
    importLazily<typeof import("./executor_deps.ts")>("runtime/executor_deps.ts"),
  ]);
  return await runExecutorProcess({
    open,
    setupLogging: (init) =>
      setupLogging({
        ...init.log,
        secrets: init.lakefs === undefined ? [] : [init.lakefs.secretAccessKey],
        level: init.log.debug ? "debug" : "info",
      }),
    ...deps.executorDeps,
    ...(collectGarbage === undefined ? {} : { collectGarbage }),
  });
}
