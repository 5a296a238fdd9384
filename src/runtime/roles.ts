/**
 * The broker and executor roles wired to their real dependencies (Conductor client, lakeFS
 * client, logging, the attempt), for both transports: the hidden `__broker`/`__executor`
 * commands (stdio of a child process) and the thread-mode Worker entry (postMessage).
 *
 * @module
 */
import { ConductorClient } from "../conductor/client.ts";
import { LakeFsClient } from "../lakefs/client.ts";
import { ObjectCache, objectCacheDir } from "../lakefs/object_cache.ts";
import { getLogger } from "../log/logger.ts";
import { setupLogging } from "../log/setup.ts";
import { runBrokerProcess } from "./broker.ts";
import { runExecutorProcess } from "./executor.ts";
import { executorDeps } from "./executor_deps.ts";
import type { SyncWriter } from "./protocol.ts";

/** The byte streams a role speaks the protocol over. */
export interface RoleStreams {
  input: ReadableStream<Uint8Array>;
  /** A stream, or `Deno.stdout` itself (synchronous writes: much cheaper per message). */
  output: WritableStream<Uint8Array> | SyncWriter;
}

/**
 * Runs the broker until the supervisor stops it; returns its exit code. Logs redact the
 * Conductor secret, the only one the broker receives.
 *
 * Requires `--allow-net` to the Conductor host and write access to the log root.
 */
export function runBrokerRole(streams: RoleStreams): Promise<number> {
  return runBrokerProcess({
    ...streams,
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
}

/**
 * Runs one executor until the supervisor stops it; returns its exit code. Logs redact the
 * lakeFS secret, the only one an executor receives.
 *
 * Requires `--allow-net` to the lakeFS host and access to the workspace and log roots.
 */
export function runExecutorRole(streams: RoleStreams): Promise<number> {
  return runExecutorProcess({
    ...streams,
    setupLogging: (init) =>
      setupLogging({
        ...init.log,
        secrets: [init.lakefs.secretAccessKey],
        level: init.log.debug ? "debug" : "info",
      }),
    makeLakeFs: (init) => new LakeFsClient(init.lakefs),
    makeDownloadCache: (init) => {
      const maxBytes = init.objectCacheMaxBytes ?? 0;
      if (maxBytes === 0) return undefined;
      const log = getLogger("runtime", "executor");
      return new ObjectCache({
        dir: objectCacheDir(init.workspaceRoot),
        maxBytes,
        onError: (message) => log.warn("object cache: {message}", { message }),
      });
    },
    ...executorDeps,
  });
}
