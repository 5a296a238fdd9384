/**
 * `loadRuntimeConfig`: the worker-local settings, read from `.env` in the working directory
 * overlaid by the process environment, validated, and frozen.
 *
 * @module
 */
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { readDotenv } from "./dotenv.ts";
import { ConfigError } from "./errors.ts";
import {
  type ConductorConfig,
  DEFAULT_WORKSPACE_GC_INTERVAL_MS,
  DEFAULT_WORKSPACE_GC_TTL_MS,
  type Env,
  envOptional,
  type ExecutionMode,
  type LakeFsConfig,
  type ListenAddress,
  parseConductorConfig,
  parseDuration,
  parseExecutionMode,
  parseExecutorMaxHeapMb,
  parseFailureReasonMaxLength,
  parseLakeFsConfig,
  parseListenAddress,
  parseLogFileMaxSize,
  parseLogRetention,
  parseObjectCacheMaxSize,
  parseOptionalDuration,
  parseWarmPoolDirs,
  parseWarmPoolMaxSize,
  parseWarmPoolMinFiles,
  parseWorkspaceRefStyle,
  trimmed,
  type WorkspaceRefStyle,
} from "./parse.ts";
import {
  parseTaskDomain,
  parseTaskPaused,
  parseTaskSettings,
  TASK_ENV_VARS,
  taskEnvVars,
  type TaskSettings,
} from "./task_settings.ts";
import { resolveWorkerIdPrefix } from "./worker_id.ts";

export type {
  ConductorConfig,
  ExecutionMode,
  LakeFsConfig,
  ListenAddress,
  TaskSettings,
  WorkspaceRefStyle,
};

/** The complete, frozen worker-local configuration. Units are in the names. */
export interface RuntimeConfig {
  /** `PERAGO_WORKSPACE_ROOT`, absolute. @default `<os tmpdir>/perago/workspaces` */
  readonly workspaceRoot: string;
  /** `PERAGO_LOG_ROOT`, absolute. @default `<os tmpdir>/perago/logs` */
  readonly logRoot: string;
  /** `PERAGO_LOG_FILE_MAX_SIZE` in bytes. @default 100 MB */
  readonly logFileMaxSizeBytes: number;
  /** `PERAGO_LOG_RETENTION`. @default 30 days */
  readonly logRetentionMs: number;
  /** `PERAGO_WORKER_ID_PREFIX`, or the ASCII letters and digits of the module's stem. */
  readonly workerIdPrefix: string;
  /** `PERAGO_EXECUTION_MODE`. @default "process" */
  readonly executionMode: ExecutionMode;
  /** `PERAGO_WORKSPACE_GC_TTL`. @default 24 h */
  readonly workspaceGcTtlMs: number;
  /** `PERAGO_WORKSPACE_GC_INTERVAL`. @default 1 h */
  readonly workspaceGcIntervalMs: number;
  /** `PERAGO_SHUTDOWN_FORCE_KILL_AFTER`; `undefined` waits for the drain. */
  readonly shutdownForceKillAfterMs: number | undefined;
  /** `PERAGO_FAILURE_REASON_MAX_LENGTH`. @default 500 */
  readonly failureReasonMaxLength: number;
  /**
   * `PERAGO_TASK_DOMAIN`: the Conductor task domain of every served task type (a
   * `PERAGO_TASK_DOMAIN_<NAME>` overrides it for one; see {@linkcode loadTaskSettings}).
   * `undefined` = the default queue.
   */
  readonly taskDomain: string | undefined;
  /** `PERAGO_TASK_PAUSED`: task types this supervisor does not poll. @default [] */
  readonly pausedTasks: readonly string[];
  /** `PERAGO_WORKSPACE_REF_STYLE`: the spelling of published workspace refs. @default "snake" */
  readonly workspaceRefStyle: WorkspaceRefStyle;
  /**
   * `PERAGO_OBJECT_CACHE_MAX_SIZE` in bytes: the bound of the host's object cache under
   * `<workspaceRoot>/.perago-cache`; 0 turns the cache off. @default 5 GB
   */
  readonly objectCacheMaxBytes: number;
  /**
   * `PERAGO_WARM_POOL_DIRS`: ended attempts' directories kept under
   * `<workspaceRoot>/.perago-warm` for the next attempts of the same repository; 0 turns the
   * warm pool off. @default 2
   */
  readonly warmPoolDirs: number;
  /**
   * `PERAGO_WARM_POOL_MAX_SIZE` in bytes: what the warm pool's directories may hold together.
   * @default 10 GB
   */
  readonly warmPoolMaxBytes: number;
  /**
   * `PERAGO_WARM_POOL_MIN_FILES`: the smallest directory (in downloaded files) an executor of
   * `perago start` keeps in the warm pool, and is replaced for; 0 keeps every one.
   * @default 200
   */
  readonly warmPoolMinFiles: number;
  /**
   * `PERAGO_EXECUTOR_MAX_HEAP_MB`: the V8 heap limit of each executor process, so a runaway
   * task kills its own executor (the attempt is reported FAILED and retried), not the host;
   * 0 leaves V8's limit. Executors in thread mode share the process and get none.
   * @default 1024
   */
  readonly executorMaxHeapMb: number;
  /** Set when `CONDUCTOR_SERVER_URL` is. `perago start` requires it. */
  readonly conductor: ConductorConfig | undefined;
  /** Set when the three `LAKECTL_*` variables are. `perago start` requires it. */
  readonly lakefs: LakeFsConfig | undefined;
  /** `PERAGO_DEBUG=1`: stack traces and debug logs. */
  readonly debug: boolean;
  /** `PERAGO_METRICS_ADDRESS`: where `perago start` serves /metrics; `undefined` = off. */
  readonly metricsAddress: ListenAddress | undefined;
  /** `PERAGO_INSTANCE_ID`: the `perago_instance_id` label of `runtime.busy_slots`. */
  readonly instanceId: string | undefined;
  /** Absolute path of the `.env` that was read, when it existed. */
  readonly envFile: string | undefined;
}

/** Options of {@linkcode loadRuntimeConfig}. */
export interface LoadConfigOptions {
  /** Directory holding `.env`, and against which relative roots resolve. @default Deno.cwd() */
  cwd?: string;
  /**
   * The environment overlaying `.env`. An empty object keeps the real environment out.
   * @default the variables of {@linkcode CONFIG_ENV_VARS} read from `Deno.env`
   */
  env?: Record<string, string>;
  /** Create both roots and prove they are writable with a temporary dir and file. @default true */
  probeRoots?: boolean;
}

/** Every configuration variable perago reads, for `--allow-env` lists. */
export const CONFIG_ENV_VARS: readonly string[] = Object.freeze([
  "PERAGO_WORKSPACE_ROOT",
  "PERAGO_LOG_ROOT",
  "PERAGO_LOG_FILE_MAX_SIZE",
  "PERAGO_LOG_RETENTION",
  "PERAGO_WORKER_ID",
  "PERAGO_WORKER_ID_PREFIX",
  "PERAGO_EXECUTION_MODE",
  "PERAGO_WORKSPACE_GC_TTL",
  "PERAGO_WORKSPACE_GC_INTERVAL",
  "PERAGO_SHUTDOWN_FORCE_KILL_AFTER",
  "PERAGO_FAILURE_REASON_MAX_LENGTH",
  ...TASK_ENV_VARS,
  "PERAGO_WORKSPACE_REF_STYLE",
  "PERAGO_OBJECT_CACHE_MAX_SIZE",
  "PERAGO_WARM_POOL_DIRS",
  "PERAGO_WARM_POOL_MAX_SIZE",
  "PERAGO_WARM_POOL_MIN_FILES",
  "PERAGO_EXECUTOR_MAX_HEAP_MB",
  "PERAGO_DEBUG",
  "PERAGO_METRICS_ADDRESS",
  "PERAGO_INSTANCE_ID",
  "CONDUCTOR_SERVER_URL",
  "CONDUCTOR_AUTH_KEY",
  "CONDUCTOR_AUTH_SECRET",
  "LAKECTL_SERVER_ENDPOINT_URL",
  "LAKECTL_CREDENTIALS_ACCESS_KEY_ID",
  "LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY",
  // node:os tmpdir() reads these for the default roots.
  "TMPDIR",
  "TMP",
  "TEMP",
]);

/**
 * Reads the configuration variables from the process environment one by one, so that a
 * process started with `--allow-env=<CONFIG_ENV_VARS>` can load its configuration.
 *
 * @param names the variables to read. @default {@linkcode CONFIG_ENV_VARS}
 * @throws {ConfigError} when a variable may not be read.
 */
export function readProcessEnv(names: readonly string[] = CONFIG_ENV_VARS): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of names) {
    let value: string | undefined;
    try {
      value = Deno.env.get(name);
    } catch (error) {
      throw new ConfigError(
        `cannot read environment variable ${name}: ${errorText(error)}; grant --allow-env=${name}`,
        { variable: name, cause: error },
      );
    }
    if (value !== undefined) env[name] = value;
  }
  return env;
}

/**
 * Loads the runtime configuration: `.env` in `cwd` overlaid by `env`, every variable parsed and
 * validated in the order of the fields of {@linkcode RuntimeConfig} (the first bad one is
 * reported), roots made absolute and (unless `probeRoots` is false) created and probed for
 * writability. The result is frozen.
 *
 * Requires `--allow-read` of `<cwd>/.env`, `--allow-env` of {@linkcode CONFIG_ENV_VARS} when
 * `env` is not given, and `--allow-read`/`--allow-write` of both roots when probing.
 *
 * @param moduleTarget the task module (path or URL); its stem gives the default worker id
 *   prefix.
 * @throws {ConfigError} for the first bad value, with a one-line message naming the variable.
 * @example
 * ```ts
 * const config = await loadRuntimeConfig("tasks/build.ts", { env: {}, probeRoots: false });
 * config.workerIdPrefix; // "build"
 * ```
 */
export async function loadRuntimeConfig(
  moduleTarget: string,
  options: LoadConfigOptions = {},
): Promise<RuntimeConfig> {
  const cwd = resolve(options.cwd ?? Deno.cwd());
  const { env, envFile } = await readEnvironment(cwd, options.env ?? readProcessEnv());

  const tempRoot = join(tmpdir(), "perago");
  const config: RuntimeConfig = Object.freeze({
    workspaceRoot: resolve(
      cwd,
      trimmed(env["PERAGO_WORKSPACE_ROOT"]) ?? join(tempRoot, "workspaces"),
    ),
    logRoot: resolve(cwd, trimmed(env["PERAGO_LOG_ROOT"]) ?? join(tempRoot, "logs")),
    logFileMaxSizeBytes: parseLogFileMaxSize(env["PERAGO_LOG_FILE_MAX_SIZE"]),
    logRetentionMs: parseLogRetention(env["PERAGO_LOG_RETENTION"]),
    workerIdPrefix: resolveWorkerIdPrefix(moduleTarget, env),
    executionMode: parseExecutionMode(env["PERAGO_EXECUTION_MODE"]),
    workspaceGcTtlMs: parseDuration(env["PERAGO_WORKSPACE_GC_TTL"], {
      defaultMs: DEFAULT_WORKSPACE_GC_TTL_MS,
      name: "PERAGO_WORKSPACE_GC_TTL",
    }),
    workspaceGcIntervalMs: parseDuration(env["PERAGO_WORKSPACE_GC_INTERVAL"], {
      defaultMs: DEFAULT_WORKSPACE_GC_INTERVAL_MS,
      name: "PERAGO_WORKSPACE_GC_INTERVAL",
    }),
    shutdownForceKillAfterMs: parseOptionalDuration(
      env["PERAGO_SHUTDOWN_FORCE_KILL_AFTER"],
      "PERAGO_SHUTDOWN_FORCE_KILL_AFTER",
    ),
    failureReasonMaxLength: parseFailureReasonMaxLength(env["PERAGO_FAILURE_REASON_MAX_LENGTH"]),
    taskDomain: parseTaskDomain(env["PERAGO_TASK_DOMAIN"], "PERAGO_TASK_DOMAIN") ?? undefined,
    pausedTasks: parseTaskPaused(env["PERAGO_TASK_PAUSED"]),
    workspaceRefStyle: parseWorkspaceRefStyle(env["PERAGO_WORKSPACE_REF_STYLE"]),
    objectCacheMaxBytes: parseObjectCacheMaxSize(env["PERAGO_OBJECT_CACHE_MAX_SIZE"]),
    executorMaxHeapMb: parseExecutorMaxHeapMb(env["PERAGO_EXECUTOR_MAX_HEAP_MB"]),
    warmPoolDirs: parseWarmPoolDirs(env["PERAGO_WARM_POOL_DIRS"]),
    warmPoolMaxBytes: parseWarmPoolMaxSize(env["PERAGO_WARM_POOL_MAX_SIZE"]),
    warmPoolMinFiles: parseWarmPoolMinFiles(env["PERAGO_WARM_POOL_MIN_FILES"]),
    conductor: parseConductorConfig(env),
    lakefs: parseLakeFsConfig(env),
    debug: trimmed(env["PERAGO_DEBUG"]) === "1",
    metricsAddress: parseListenAddress(env["PERAGO_METRICS_ADDRESS"], "PERAGO_METRICS_ADDRESS"),
    instanceId: envOptional(env, "PERAGO_INSTANCE_ID"),
    envFile,
  });
  if (options.probeRoots ?? true) {
    await checkWritableRoot(config.workspaceRoot, "PERAGO_WORKSPACE_ROOT");
    await checkWritableRoot(config.logRoot, "PERAGO_LOG_ROOT");
  }
  return config;
}

/**
 * The deployment's settings of each served task type (domain, per-host concurrency cap,
 * paused), from `.env` in `cwd` overlaid by `env`, read like {@linkcode loadRuntimeConfig}
 * but for the per-task variables of `taskNames` too (their names depend on the tasks, so
 * they are read once the task modules are loaded).
 *
 * Requires `--allow-read` of `<cwd>/.env`, and `--allow-env` of {@linkcode CONFIG_ENV_VARS}
 * plus `taskEnvVars(taskNames)` when `env` is not given.
 *
 * @throws {ConfigError} for the first bad value, naming the variable.
 * @example
 * ```ts
 * const [settings] = await loadTaskSettings(["word_count"], { env: { PERAGO_TASK_DOMAIN: "qa" } });
 * settings?.domain; // "qa"
 * ```
 */
export async function loadTaskSettings(
  taskNames: readonly string[],
  options: Omit<LoadConfigOptions, "probeRoots"> = {},
): Promise<TaskSettings[]> {
  const cwd = resolve(options.cwd ?? Deno.cwd());
  const processEnv = options.env ??
    readProcessEnv([...CONFIG_ENV_VARS, ...taskEnvVars(taskNames)]);
  const { env } = await readEnvironment(cwd, processEnv);
  return parseTaskSettings(env, taskNames);
}

/**
 * Lines describing the task settings of one served task for `perago check`: its domain,
 * per-host concurrency, polling and whether it is paused.
 *
 * @param worker the task's own `worker` options (the defaults the deployment overrides).
 */
export function describeTaskSettings(
  settings: TaskSettings,
  worker: {
    readonly concurrency: number | undefined;
    readonly pollIntervalMs: number | undefined;
    readonly batchSize: number | undefined;
  },
): string[] {
  const domain = settings.domain === undefined
    ? `none (default queue)${
      settings.domainVariable === undefined ? "" : ` (${settings.domainVariable}=NO_DOMAIN)`
    }`
    : `${settings.domain} (${settings.domainVariable})`;
  const concurrency = settings.concurrency !== undefined
    ? `${settings.concurrency} (PERAGO_TASK_CONCURRENCY_*)`
    : worker.concurrency !== undefined
    ? `${worker.concurrency} (worker.concurrency)`
    : "all -j slots";
  const polling = worker.pollIntervalMs === undefined
    ? "adaptive"
    : `every ${worker.pollIntervalMs} ms when idle`;
  const batch = worker.batchSize === undefined ? "free slots" : `at most ${worker.batchSize}`;
  return [
    `task domain: ${domain}`,
    `task concurrency per host: ${concurrency}`,
    `task polling: ${polling}, batch ${batch}`,
    `task paused: ${settings.paused ? "yes (PERAGO_TASK_PAUSED): not polled" : "no"}`,
  ];
}

/** `.env` in `cwd` overlaid by `processEnv`, and the `.env` path when it exists. */
async function readEnvironment(
  cwd: string,
  processEnv: Record<string, string>,
): Promise<{ env: Env; envFile: string | undefined }> {
  const envPath = join(cwd, ".env");
  let dotenv: Record<string, string>;
  try {
    dotenv = await readDotenv(envPath);
  } catch (error) {
    throw new ConfigError(`cannot read ${envPath}: ${errorText(error)}; fix or remove the file`, {
      cause: error,
    });
  }
  return {
    env: { ...dotenv, ...processEnv },
    envFile: await isFile(envPath) ? envPath : undefined,
  };
}

/**
 * Creates `path` (recursively) and proves it writable by creating and removing a temporary
 * directory holding a file.
 *
 * Requires `--allow-read` and `--allow-write` of `path`.
 *
 * @throws {ConfigError} `<variable>: <path> is not writable: <reason>`.
 */
export function checkWritableRoot(path: string, variable: string): Promise<void> {
  // Synchronous calls: five dependent file operations at start-up, with nothing to overlap
  // them with; as async ops each was a thread hand-off (several ms in all on a busy host).
  let probe: string | undefined;
  try {
    Deno.mkdirSync(path, { recursive: true });
    probe = Deno.makeTempDirSync({ dir: path, prefix: ".perago-check-" });
    const file = join(probe, "write-test");
    Deno.writeTextFileSync(file, "ok");
    Deno.removeSync(file);
    return Promise.resolve();
  } catch (error) {
    return Promise.reject(
      new ConfigError(
        `${variable}: ${path} is not writable: ${errorText(error)}; ` +
          `point ${variable} at a writable directory`,
        { variable, cause: error },
      ),
    );
  } finally {
    if (probe !== undefined) {
      try {
        Deno.removeSync(probe, { recursive: true });
      } catch {
        // best effort
      }
    }
  }
}

/**
 * Safe lines describing `config` for `perago check`: roots, limits, identity, mode, and
 * whether Conductor and lakeFS are configured with their URLs (credentials in a URL masked).
 * Never a secret, nor the Conductor auth key or lakeFS access key id.
 *
 * @example
 * ```ts
 * const config = await loadRuntimeConfig("tasks/build.ts", { env: {}, probeRoots: false });
 * for (const line of describeConfig(config)) console.log(line);
 * ```
 */
export function describeConfig(config: RuntimeConfig): string[] {
  const conductor = config.conductor === undefined
    ? "not configured"
    : `${safeUrl(config.conductor.serverUrl)}${
      config.conductor.authKey === undefined ? "" : " (with auth key)"
    }`;
  const lakefs = config.lakefs === undefined
    ? "not configured"
    : `${safeUrl(config.lakefs.endpointUrl)} (with credentials)`;
  return [
    `workspace root: ${config.workspaceRoot}`,
    `log root: ${config.logRoot}`,
    `log file max size: ${config.logFileMaxSizeBytes} bytes`,
    `log retention: ${formatDurationMs(config.logRetentionMs)}`,
    `worker id prefix: ${config.workerIdPrefix}`,
    `execution mode: ${config.executionMode}`,
    `workspace gc: ttl ${formatDurationMs(config.workspaceGcTtlMs)}, interval ${
      formatDurationMs(config.workspaceGcIntervalMs)
    }`,
    `shutdown force kill after: ${
      config.shutdownForceKillAfterMs === undefined
        ? "never (wait for running attempts)"
        : formatDurationMs(config.shutdownForceKillAfterMs)
    }`,
    `failure reason max length: ${config.failureReasonMaxLength}`,
    `task domain (all tasks): ${config.taskDomain ?? "none (default queue)"}`,
    `paused task types: ${
      config.pausedTasks.length === 0 ? "none" : config.pausedTasks.join(", ")
    }`,
    `workspace ref style: ${
      config.workspaceRefStyle === "camel" ? "camel (refType)" : "snake (ref_type)"
    }`,
    `object cache: ${
      config.objectCacheMaxBytes === 0 ? "off" : `up to ${config.objectCacheMaxBytes} bytes`
    }`,
    `warm pool: ${
      config.warmPoolDirs === 0
        ? "off"
        : `up to ${config.warmPoolDirs} directories, ${config.warmPoolMaxBytes} bytes`
    }`,
    `executor heap limit: ${
      config.executorMaxHeapMb === 0 ? "V8's default" : `${config.executorMaxHeapMb} MiB`
    }`,
    `conductor: ${conductor}`,
    `lakefs: ${lakefs}`,
    `metrics address: ${
      config.metricsAddress === undefined
        ? "off"
        : `${config.metricsAddress.hostname}:${config.metricsAddress.port}`
    }`,
    `env file: ${config.envFile ?? "none"}`,
  ];
}

/**
 * The secret values of `config` (Conductor auth secret, lakeFS secret access key), revealed,
 * for `setupLogging({ secrets })` so they are masked in every log line.
 *
 * @example
 * ```ts
 * const config = await loadRuntimeConfig("tasks/build.ts", {
 *   env: { LAKECTL_SERVER_ENDPOINT_URL: "http://127.0.0.1:8000", LAKECTL_CREDENTIALS_ACCESS_KEY_ID: "AKIA",
 *     LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY: "s3cr3t" },
 *   probeRoots: false,
 * });
 * configSecrets(config); // ["s3cr3t"]: what setupLogging redacts
 * ```
 */
export function configSecrets(config: RuntimeConfig): string[] {
  const secrets: string[] = [];
  if (config.conductor?.authSecret !== undefined) {
    secrets.push(config.conductor.authSecret.reveal());
  }
  if (config.lakefs !== undefined) secrets.push(config.lakefs.secretAccessKey.reveal());
  return secrets;
}

/**
 * Formats milliseconds with the largest whole unit: `86400000` -> `1d`, `90000` -> `90s`.
 */
export function formatDurationMs(ms: number): string {
  for (const [unit, size] of [["d", 86_400_000], ["h", 3_600_000], ["m", 60_000], ["s", 1_000]]) {
    if (ms > 0 && ms % (size as number) === 0) return `${ms / (size as number)}${unit}`;
  }
  return `${ms}ms`;
}

function safeUrl(value: string): string {
  try {
    const url = new URL(value);
    if (url.username !== "" || url.password !== "") {
      url.username = "***";
      url.password = "";
    }
    // Query strings may carry tokens.
    if (url.search !== "") url.search = "?***";
    return url.href;
  } catch {
    return "(unparsable URL)";
  }
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
