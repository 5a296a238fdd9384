/**
 * The real task loading and attempt tools of an executor process. The attempt's code (the
 * workspace phases, the lakeFS client and sync, the object cache, the warm pool) is imported by
 * {@linkcode loadAttemptTools} on the first attempt, not at start: an executor waiting for
 * work never holds it in memory.
 *
 * @module
 */
import { getLogger } from "../log/logger.ts";
import { loadTask } from "../task/loader.ts";
import type { TaskDefinition } from "../task/types.ts";
import type { AttemptTools, ExecutorProcessDeps } from "./executor.ts";
import type { ExecutorInit } from "./protocol.ts";
import { importLazily } from "../util/lazy_import.ts";

/** Loads task modules by task name. */
export async function loadTasks(modules: readonly string[]): Promise<Map<string, TaskDefinition>> {
  const tasks = new Map<string, TaskDefinition>();
  for (const module of modules) {
    const { task } = await loadTask(module);
    tasks.set(task.name, task);
  }
  return tasks;
}

/**
 * Imports the attempt's code and makes its tools: `runAttempt`, the lakeFS client (none when
 * `init` has no lakeFS settings), the host's object cache (none when its size is 0) and its
 * warm pool (none when it holds 0 directories).
 */
export async function loadAttemptTools(init: ExecutorInit): Promise<AttemptTools> {
  const [{ runAttempt }, lakefs, cache, pool] = await Promise.all([
    importLazily<typeof import("../workspace/attempt.ts")>("workspace/attempt.ts"),
    init.lakefs === undefined
      ? undefined
      : importLazily<typeof import("../lakefs/client.ts")>("lakefs/client.ts"),
    init.lakefs === undefined || (init.objectCacheMaxBytes ?? 0) === 0
      ? undefined
      : importLazily<typeof import("../lakefs/object_cache.ts")>("lakefs/object_cache.ts"),
    init.lakefs === undefined || (init.warmPoolDirs ?? 0) === 0
      ? undefined
      : importLazily<typeof import("../workspace/warm_pool.ts")>("workspace/warm_pool.ts"),
  ]);
  const tools: AttemptTools = {
    runAttempt,
    lakefs: lakefs === undefined || init.lakefs === undefined
      ? undefined
      : new lakefs.LakeFsClient(init.lakefs),
  };
  const log = getLogger("runtime", "executor");
  if (cache !== undefined) {
    tools.downloadCache = new cache.ObjectCache({
      dir: cache.objectCacheDir(init.workspaceRoot),
      maxBytes: init.objectCacheMaxBytes ?? 0,
      onError: (message) => log.warn("object cache: {message}", { message }),
    });
  }
  if (pool !== undefined) {
    tools.warmPool = new pool.WarmPool({
      root: init.workspaceRoot,
      maxDirs: init.warmPoolDirs ?? 0,
      ...(init.warmPoolMaxBytes === undefined ? {} : { maxBytes: init.warmPoolMaxBytes }),
      // Only a directory that saves more than replacing the executor costs is kept (the
      // executor ends after each one it keeps): `PERAGO_WARM_POOL_MIN_FILES` files (see its
      // default for the measurements), or 1 MiB per such file: a large file kept saves its
      // copy from the object cache, and copying 200 MiB at about 1 GB/s is the 0.2 s a
      // replacement costs.
      minFiles: init.warmPoolMinFiles ?? 0,
      minBytes: (init.warmPoolMinFiles ?? 0) * BYTES_PER_FILE,
      onError: (message) => log.warn("{message}", { message }),
    });
  }
  return tools;
}

/** Bytes that count as one file towards `PERAGO_WARM_POOL_MIN_FILES` (see loadAttemptTools). */
const BYTES_PER_FILE = 1024 * 1024;

/** The executor's real dependencies besides its channel and logging. */
export const executorDeps: Pick<ExecutorProcessDeps, "loadTasks" | "loadAttemptTools"> = {
  loadTasks,
  loadAttemptTools,
};
